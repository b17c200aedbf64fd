#!/usr/bin/env bash
# The GPU check, in one go: CUDA tests and `spinsim bench device=cuda` on the Ising, Potts and
# Neural CPM cases, every figure in one file.
#
#   scripts/device_check.sh [OUT_DIR]        (default: $OUT, else ./device-check)
#
# For a machine with an NVIDIA GPU and a CUDA build of torch already installed (Triton comes
# with it), with spinsim's other dependencies in the same Python ($PYTHON, default python3):
# the script installs nothing and reaches no network. It fits in 8 minutes: each step has its
# own time limit, and a step that fails or runs out of time is recorded and the next one runs.
# Without a GPU it runs what the CPU allows (the Triton kernels in Triton's interpreter, where
# triton is installed, and the bench on the CPU with short timings), so the script itself is
# checked anywhere: DEVICE_CHECK_DEVICE=cpu forces that.
set -u
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-device-check}}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
REPORT="$OUT_DIR/device_check.txt"
: > "$REPORT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

say() { printf '%s\n' "$*" | tee -a "$REPORT"; }

# step NAME SECONDS COMMAND...: run with a time limit, output into the report, status noted
step() {
    local name=$1 limit=$2
    shift 2
    say ""
    say "== $name (limit ${limit} s): $*"
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >> "$REPORT" 2>&1
    local rc=$?
    local verdict="ok"
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && verdict="OUT OF TIME"
    [ $rc -ne 0 ] && [ "$verdict" = ok ] && verdict="FAILED (exit $rc)"
    say "-- $name: $verdict after $((SECONDS - start)) s"
}

say "spinsim device check, $(date -Is), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
say "host: $(hostname), CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$REPORT" 2>&1
fi
if ! "$PYTHON" -c "import torch, hydra, h5py, numba, spinsim" >> "$REPORT" 2>&1; then
    say "spinsim or one of its dependencies does not import in $PYTHON: install them first"
    exit 2
fi
"$PYTHON" - >> "$REPORT" 2>&1 <<'EOF'
import importlib.util, torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "available:", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0))
spec = importlib.util.find_spec("triton")
if spec:
    import triton
    print("triton", triton.__version__)
else:
    print("triton: not installed")
EOF

DEVICE=${DEVICE_CHECK_DEVICE:-$("$PYTHON" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")}
say "checking on: $DEVICE"

if [ "$DEVICE" = cuda ]; then
    # every test that needs CUDA (Triton engine, clusters, the CPM and Neural CPM samplers)
    step "CUDA tests" 240 "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider tests
    BENCH=(repeats=3 reference_repeats=1 min_seconds=0.3)
    LIMIT=420
else
    # Triton's kernels in its interpreter (skipped where triton is not installed)
    step "Triton interpreter" 240 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_triton_engine.py
    BENCH=(repeats=1 reference_repeats=1 min_seconds=0.05)
    LIMIT=300
fi
CASES="[ising-square-2560-b1,ising-square-2560-b16,potts3-square-2560-b1,neural-delta-mnist-b16,neural-train-closure-mnist-b16]"
step "bench device=$DEVICE" "$LIMIT" "$PYTHON" -m spinsim bench "cases=$CASES" "device=$DEVICE" "${BENCH[@]}" \
    "output=$OUT_DIR/bench.json" "hydra.run.dir=$OUT_DIR/hydra"
if [ -f "$OUT_DIR/bench.json" ]; then
    say ""
    say "== bench.json"
    cat "$OUT_DIR/bench.json" >> "$REPORT"
fi
say ""
say "report: $REPORT"
grep -q "FAILED\|OUT OF TIME" "$REPORT" && exit 1
exit 0
