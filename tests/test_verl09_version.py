"""The verl 0.9 entry point refuses verl versions it was not built on (runs under any verl)."""

import importlib.metadata
import subprocess
import sys

import pytest

from vade_verl.verl09 import check_verl_version


@pytest.mark.parametrize("version", ["0.9.0", "0.9.1", "0.9.12"])
def test_0_9_releases_are_accepted(version):
    assert check_verl_version(version) == version


@pytest.mark.parametrize("version", ["0.7.1", "0.8.0", "0.10.0", "1.0.0"])
def test_other_versions_are_refused_with_what_to_do(version):
    with pytest.raises(RuntimeError, match=rf"verl {version} is installed.*0\.5-0\.7.*verl\.trainer\.main_ppo"):
        check_verl_version(version)


@pytest.mark.skipif(importlib.metadata.version("verl").startswith("0.9."), reason="the refusal needs a verl other than 0.9")
def test_the_entry_point_refuses_before_importing_verls_trainer():
    done = subprocess.run(
        [sys.executable, "-m", "vade_verl.verl09.main_ppo", "data.train_batch_size=8"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert f"verl {importlib.metadata.version('verl')} is installed" in done.stderr
