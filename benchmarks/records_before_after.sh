#!/usr/bin/env bash
# Identical records before and after a change that must not move a number (a refactor):
# runs the hypotheses at REV (a git worktree with its own copy of .venv whose editable
# install points at the worktree) and at the working tree, then compares the two
# results.jsonl value by value (benchmarks/compare_records.py; timestamps and versions
# aside). case_key is left out when a setting was added in between (it hashes every setting).
#
#   bash benchmarks/records_before_after.sh REV OUT MODEL [pytest args ...]
#   e.g. bash benchmarks/records_before_after.sh ad5d30e /tmp/proof tiny-bb-bos --seq-len 64
set -euo pipefail
rev=$1 out=$2 model=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
before=$out/worktree
mkdir -p "$out"
[ -d "$before" ] || git -C "$root" worktree add -f "$before" "$rev" -q
if [ ! -d "$before/.venv" ]; then
  cp -al "$root/.venv" "$before/.venv"  # hard links: seconds, no disk; the finder below is rewritten, not edited
  finder=$(ls "$before"/.venv/lib/python3*/site-packages/__editable___sinkbench_*_finder.py)
  sed "s#$root/#$before/#g" "$finder" > "$finder.new" && mv "$finder.new" "$finder"
fi
(cd "$before" && .venv/bin/python -m pytest hypotheses --model "$model" --results "$out/before" -q -p no:cacheprovider "$@" > "$out/before.log" 2>&1) || true
(cd "$root" && .venv/bin/python -m pytest hypotheses --model "$model" --results "$out/after" -q -p no:cacheprovider "$@" > "$out/after.log" 2>&1) || true
"$root/.venv/bin/python" "$root/benchmarks/compare_records.py" "$out/before" "$out/after" --ignore case_key --subset
