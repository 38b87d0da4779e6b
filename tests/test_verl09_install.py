"""The verl 0.9.1 GPU install line: pip's resolver on constraints/verl09-gpu.txt.

``pip install --dry-run --ignore-installed`` against the package registry for
``-e ".[verl09]" "verl[vllm]==0.9.1"`` under constraints/verl09-gpu.txt: no wheel is downloaded
(1-2 min on the 2-core machine, most of it the registry's answers). It skips when the registry cannot be
reached, and fails instead where ``VADE_REQUIRE_REAL_STACK=1`` (set by .ci/run), as tests/test_install_sets.py
does for the 0.7.1 GPU set.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_install_sets import REQUIRE, registry_reachable

ROOT = Path(__file__).resolve().parents[1]
GPU_SET = ROOT / "constraints" / "verl09-gpu.txt"


def pinned(path: Path) -> dict:
    """{lower-case name: version} of a constraints file's ``name==version`` lines."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {name.lower(): version for name, version in (line.split("==") for line in lines if "==" in line)}


def test_gpu_set_resolves(tmp_path):
    """verl 0.9.1 with its "vllm" extra (vllm 0.24.0 CUDA, torch 2.11.0, transformers 5.9.0) and our verl09 extra."""
    if not registry_reachable():
        if REQUIRE:
            pytest.fail("the package registry is needed for the GPU-set resolver check")
        pytest.skip("the package registry cannot be reached")
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
           "-c", str(GPU_SET), "-e", f"{ROOT}[verl09]", "verl[vllm]==0.9.1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    pins = pinned(GPU_SET)
    assert {name: resolved.get(name) for name in pins} == pins
    assert (pins["verl"], pins["vllm"], pins["torch"]) == ("0.9.1", "0.24.0", "2.11.0")  # verl 0.9.1's "vllm" extra
    assert "flashinfer-python" in resolved and resolved["vade-verl"]  # vLLM's CUDA wheel came with its GPU kernels
