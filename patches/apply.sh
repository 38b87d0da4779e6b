#!/usr/bin/env bash
# Apply vade-verl's minimal patches to the verl installed in the current Python environment.
# Idempotent: a patch that is already applied is skipped; a patch that neither applies nor is applied
# (another verl version or a locally edited file) stops the script with an error.
#
#   PYTHON=python patches/apply.sh          # uses $PYTHON (default: python) to locate verl
#   patches/apply.sh --check                # exit 1 if any patch is not applied yet; changes nothing
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python}"
REQUIRED_VERL=0.7.1
CHECK_ONLY=0
[ "${1:-}" = --check ] && CHECK_ONLY=1

if ! FOUND="$("$PYTHON" -c '
import os, importlib.metadata as md, importlib.util as iu
spec = iu.find_spec("verl")
print(md.version("verl"), os.path.dirname(os.path.dirname(spec.origin)))' 2>/dev/null)"; then
  echo "patches/apply.sh: no installed verl found for PYTHON=$PYTHON ($(command -v "$PYTHON" || true))" >&2
  exit 2
fi
read -r VERL_VERSION SITE <<< "$FOUND"

if [ "$VERL_VERSION" != "$REQUIRED_VERL" ]; then
  echo "patches/apply.sh: these patches are for verl $REQUIRED_VERL, found verl $VERL_VERSION in $SITE" >&2
  exit 2
fi

status=0
for p in "$HERE"/verl-"$REQUIRED_VERL"-*.patch; do
  name="$(basename "$p")"
  if patch -d "$SITE" -p1 -R --dry-run -s -f < "$p" > /dev/null 2>&1; then
    echo "already applied: $name"
  elif [ "$CHECK_ONLY" = 1 ]; then
    echo "NOT applied: $name"; status=1
  elif patch -d "$SITE" -p1 --dry-run -s -f < "$p" > /dev/null 2>&1; then
    patch -d "$SITE" -p1 -s -f --no-backup-if-mismatch < "$p"
    echo "applied: $name -> $SITE"
  else
    echo "patches/apply.sh: $name neither applies nor is applied in $SITE (edited verl?)" >&2
    exit 3
  fi
done
exit $status
