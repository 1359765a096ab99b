#!/usr/bin/env bash
# The GPU checks of issue 18 in one prepared run (< 10 minutes on an H200-class GPU), for a session
# that has a GPU. Prints every figure with the machine; writes the logs into ${OUT:-/tmp/gpu-check}.
#
#   bash bench/gpu_check.sh            (from the repository root, with .venv built by scripts/setup.sh)
#
# 1. the device: torch sees CUDA, bf16 supported, the default model loads in bf16 on it
# 2. tests on CUDA (device selection picks CUDA by itself): decoding, PPO loop and maths, DPO, reward model
# 3. playground decoding on CUDA (static cache, compiled by transformers): tokens/s vs the GPU's bandwidth
#    (first call = compilation, printed as the warm-up)
# 4. PPO speed, batch 64 × 24 tokens (goal ≤ 1.5 s per update) and batch 16 × 12 tokens
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LOG=${OUT:-/tmp/gpu-check}
mkdir -p "$LOG"
step() { echo; echo "=== $1 ($(date +%H:%M:%S))"; }
run() { local name=$1 limit=$2; shift 2; timeout "$limit" "$@" > "$LOG/$name.log" 2>&1; local rc=$?
        tail -n "${TAIL:-15}" "$LOG/$name.log"; echo "[$name: exit $rc]"; }

step "1. device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
"$PY" - <<'EOF'
import sys, torch
sys.path.insert(0, "bench")
from machine import describe
print("CPU:", describe())
print("torch", torch.__version__, "cuda available:", torch.cuda.is_available())
if not torch.cuda.is_available():
    sys.exit("no CUDA device: nothing to check here")
print("GPU:", torch.cuda.get_device_name(), "bf16:", torch.cuda.is_bf16_supported())
from rlhf_demo.models.loading import load_model
b = load_model("default")
print("default model on", b.device, b.dtype)
EOF
[ $? -eq 0 ] || exit 1

step "2. tests on CUDA"
run tests 240 "$PY" -m pytest tests/test_decoding.py tests/test_ppo_loop.py tests/test_ppo_math.py tests/test_decoding_batch.py tests/test_trunk.py tests/test_dpo.py \
    tests/test_reward_model.py -x -q -p no:cacheprovider

step "3. playground decoding on CUDA vs bandwidth"
run decode 150 "$PY" bench/decode_bandwidth.py --device cuda --tokens 64 --reps 5
run decode_bench_generate 90 "$PY" bench/bench_generate.py --tokens 64 --reps 5

step "4. PPO speed on CUDA"
run ppo_b64 150 "$PY" bench/bench_ppo_speed.py --workload b64x24 --updates 4
TAIL=6 run ppo_b16 90 "$PY" bench/bench_ppo_speed.py --workload b16 --updates 4

step "done; logs in $LOG"
