"""No tracked file points at a path outside the repository (a developer's machine, a shared notes
folder): project files cite papers and public sources instead.

Refused in every tracked text file: absolute paths under machine- or user-specific roots (/work,
/root, /home, /Users, /mnt, /scratch) and relative paths out to a sibling `shared` folder. /tmp is
refused outside tests/, where tests may use it as a scratch location; ALLOWED lists the other
deliberate uses, each with its reason. This file, which spells the patterns out, is not scanned.
"""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START = r"(?<![\w.:/~$-])"  # a path's first slash, not one inside a URL, a word or ~/ and $HOME/
OUTSIDE = re.compile(START + r"/(?:work|root|home|Users|mnt|scratch)/|\.\./shared\b")
TMP = re.compile(START + r"/tmp/")
THIS_FILE = "tests/test_no_outside_paths.py"
ALLOWED = {
    # (file, text on the line): why it may stay
    ("vade_verl/tiny/build.py", "--out /tmp/vade_tiny"): "a usage example's scratch output folder",
}


def tracked_text_files():
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    for name in names:
        data = (ROOT / name).read_bytes() if (ROOT / name).is_file() else b""
        if b"\0" not in data:
            yield name, data.decode("utf-8", errors="replace")


def offending_lines():
    for name, text in tracked_text_files():
        if name == THIS_FILE:
            continue
        in_tests = name.startswith("tests/")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line) or (not in_tests and TMP.search(line)):
                if not any(name == f and allowed in line for f, allowed in ALLOWED):
                    yield f"{name}:{number}: {line.strip()}"


def test_the_patterns_find_what_they_should():
    assert OUTSIDE.search("see /work/shared/papers/x.md") and OUTSIDE.search("cat ../shared/notes")
    assert OUTSIDE.search('open("/root/data")') and TMP.search("flock /tmp/lock")
    assert not OUTSIDE.search("https://example.org/home/page and ~/data/geo3k and $HOME/data")
    assert not OUTSIDE.search("recipes/work/x and docs/shared_notes")


def test_no_tracked_file_points_outside_the_repository():
    offenders = list(offending_lines())
    assert not offenders, "paths outside the repository (cite the paper or public source instead):\n" + "\n".join(offenders)
