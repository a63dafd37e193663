#!/usr/bin/env bash
# sinkbench on a GPU, the first time one is lent: the device checks, hypotheses with
# --device cuda, timings, and the largest difference from CPU records of the same runs.
#
#   bash benchmarks/gpu_check.sh                  # on the GPU machine, from the repository root
#   DEVICE=cpu bash benchmarks/gpu_check.sh       # dry run on a CPU machine (every step, no GPU)
#   bash benchmarks/gpu_check.sh --make-reference # here: rewrite benchmarks/gpu_reference/ (CPU records)
#   bash benchmarks/gpu_check.sh --fetch-wheels   # here, with a package index: what a GPU machine
#                                                 # without one lacks, into .whl/ (carry it along)
#
# Environment: DEVICE (cuda), LIMIT (whole script, seconds; default 540, so a 600 s device
# command has room), OUT (logs and records; default $OUT if set, else /tmp/gpu_check),
# SMOLLM2=1 to also run H1 on SmolLM2 (needs its package or converted weights there: the
# 94 MB GGUF does not fit a 64 MiB carry, so a lent machine here runs the zoo model only).
#
# Setup on a fresh machine: the repository's .venv if its torch sees the device; otherwise a
# venv over the machine's own python3 (its CUDA torch, --system-site-packages) with what is
# missing installed from .whl/ (carried) or from the package index, and sinkbench in editable
# mode (offline: --no-build-isolation).
#
# The runs: H1-H5 on the zoo model tiny-bb-bos (windows of 64 tokens, its maximum), every
# other setting the default, as the default run does; on SmolLM2 (SMOLLM2=1) H1 alone.
# Differences: benchmarks/compare_records.py against benchmarks/gpu_reference/*.jsonl (made on
# this repository's 2-core CPU by --make-reference) and against a CPU run of the same case on
# this machine, measured numbers only (--measured: the p-values and verdicts follow from them).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
MODE=${1:-check}
DEVICE=${DEVICE:-cuda}
LIMIT=${LIMIT:-540}
OUT=${OUT:-/tmp/gpu_check}
REF=benchmarks/gpu_reference
WHEELS=(nnsight==0.8.1 greenlet==3.5.6 websocket-client==1.9.2 zstandard==0.25.0 pydantic==2.14.4
        pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 gguf==0.19.0)

if [ "$MODE" = "--fetch-wheels" ]; then
    # wheels for the GPU image's Python 3.12 (the lent H200 image: torch 2.11, transformers 5.17, no package index)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
    exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}"
fi

# The whole script runs under its own time limit (timeout signals every process of the group).
if [ -z "${GPU_CHECK_INNER:-}" ]; then
    export GPU_CHECK_INNER=1
    timeout --kill-after=15 "$LIMIT" bash "$0" "$@"
    rc=$?
    [ $rc -eq 124 ] && echo "gpu_check: stopped at its limit of $LIMIT s (LIMIT=...)"
    exit $rc
fi

mkdir -p "$OUT"
T0=$(date +%s)
say() { echo "[gpu_check +$(( $(date +%s) - T0 ))s] $*"; }

# ------------------------------------------------------------------ setup
python_for_device() {
    if [ -x .venv/bin/python ] && .venv/bin/python - "$DEVICE" <<'EOF' 2>/dev/null
import sys, torch, nnsight  # noqa: F401
sys.exit(0 if sys.argv[1] == "cpu" or torch.cuda.is_available() else 1)
EOF
    then echo "$REPO/.venv/bin/python"; return; fi
    local venv=/tmp/sinkbench-gpu-venv
    python3 -m venv --system-site-packages "$venv" >&2 || return 1
    if [ -d .whl ]; then
        "$venv/bin/python" -m pip install -q --no-index --no-deps --no-compile .whl/*.whl >&2 || return 1
    else
        "$venv/bin/python" -m pip install -q --no-deps "${WHEELS[@]}" >&2 || return 1
    fi
    "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e . >&2 || return 1
    echo "$venv/bin/python"
}

if [ "$MODE" = "--make-reference" ]; then DEVICE=cpu; fi
say "setup (device $DEVICE)"
PY=$(python_for_device) || { say "setup failed: no python with torch, nnsight and sinkbench for $DEVICE"; exit 3; }
"$PY" - "$DEVICE" <<'EOF' || { say "device $DEVICE not usable"; exit 3; }
import sys, torch, transformers, nnsight
dev = sys.argv[1]
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, nnsight {nnsight.__version__}")
if dev.startswith("cuda"):
    assert torch.cuda.is_available(), "torch sees no CUDA device"
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
EOF
say "setup done"

# ------------------------------------------------------------------ runs
# run_case NAME DEVICE MODEL [pytest args]: one hypothesis run, its wall time, records in $OUT/NAME
run_case() {
    local name=$1 dev=$2 model=$3; shift 3
    local t=$(date +%s%N)
    rm -rf "$OUT/$name"
    "$PY" -m pytest hypotheses -q -p no:cacheprovider --model "$model" --device "$dev" --results "$OUT/$name" "$@" \
        > "$OUT/$name.log" 2>&1
    local rc=$?
    # exit 1 is a finding (a failing verdict), not an error
    say "$name: $(tail -1 "$OUT/$name.log" | tr -d '=') [exit $rc, $(( ($(date +%s%N) - t) / 1000000 )) ms]"
    [ $rc -le 1 ] || { tail -20 "$OUT/$name.log"; return 1; }
}

ZOO=(tiny-bb-bos --seq-len 64)
SMOL=(smollm2-135m -k dark_tail)

if [ "$MODE" = "--make-reference" ]; then
    mkdir -p "$REF"
    run_case zoo-cpu cpu "${ZOO[@]}" && cp "$OUT/zoo-cpu/results.jsonl" "$REF/tiny-bb-bos.jsonl"
    if [ "${SMOLLM2:-0}" = 1 ]; then
        run_case smollm2-cpu cpu "${SMOL[@]}" && cp "$OUT/smollm2-cpu/results.jsonl" "$REF/smollm2-135m-h1.jsonl"
    fi
    git rev-parse HEAD > "$REF/COMMIT"
    say "reference records in $REF (commit $(cat "$REF/COMMIT"))"
    exit 0
fi

say "device checks: tests/test_device_safety.py$( [ -f tests/test_conformance.py ] && echo ' tests/test_conformance.py')"
t=$(date +%s)
"$PY" -m pytest -q -p no:cacheprovider tests/test_device_safety.py $( [ -f tests/test_conformance.py ] && echo tests/test_conformance.py) \
    > "$OUT/device-tests.log" 2>&1
rc=$?
say "device checks: $(tail -1 "$OUT/device-tests.log" | tr -d '=') [exit $rc, $(( $(date +%s) - t )) s]"

# compare NAME REFERENCE: the largest difference of the measured numbers, then every value
compare() {
    local name=$1 ref=$2
    [ -f "$ref" ] || { say "$name: no reference $ref"; return; }
    local ignore=(--ignore params.device --ignore case_key --ignore params.dtype)
    say "$name vs $ref (measured numbers):"
    "$PY" benchmarks/compare_records.py "$ref" "$OUT/$name" --measured --subset --show 5 "${ignore[@]}"
    say "$name vs $ref (every value, p-values and verdicts too):"
    "$PY" benchmarks/compare_records.py "$ref" "$OUT/$name" --subset --show 5 "${ignore[@]}"
}

run_case zoo-$DEVICE "$DEVICE" "${ZOO[@]}"
run_case zoo-cpu-here cpu "${ZOO[@]}"
echo "reference made at commit $(cat "$REF/COMMIT" 2>/dev/null || echo '?'); this checkout $(git rev-parse HEAD 2>/dev/null || echo '?')"
compare zoo-$DEVICE "$REF/tiny-bb-bos.jsonl"
compare zoo-$DEVICE "$OUT/zoo-cpu-here/results.jsonl"
if [ "${SMOLLM2:-0}" = 1 ]; then
    run_case smollm2-$DEVICE "$DEVICE" "${SMOL[@]}" && compare smollm2-$DEVICE "$REF/smollm2-135m-h1.jsonl"
fi
say "done"
