#!/usr/bin/env bash
# Regenerate the shipped example runs (rlhf_demo/assets/example-*) with today's presets, then the
# π* frontier data (rlhf_demo/assets/pi_star.json). On a 2-core CPU: PPO ≈ 5 min, DPO ≈ 3 min,
# reward model ≈ 2 min, best-of-N distillation ≈ 5 min, π* ≈ 3 min. Each run is trained into WORK first and copied into the package
# only when it finished, so a failed run never replaces a shipped one.
#
#   bash scripts/make_examples.sh [ppo] [dpo] [reward] [bon] [pi_star]     (no argument: all five)
#
# Set LOCK=/tmp/rlhf-cpu.lock to run every heavy step under flock (shared machines).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${WORK:-/tmp/rlhf-examples}
ASSETS=rlhf_demo/assets
run() { if [ -n "${LOCK:-}" ]; then flock "$LOCK" "$@"; else "$@"; fi; }
steps=("$@"); [ ${#steps[@]} -eq 0 ] && steps=(ppo dpo reward bon pi_star)

ship() {  # ship NAME: copy WORK/NAME into ASSETS/example-NAME (no checkpoint bookkeeping, no process file)
  local name=$1 src="$WORK/$1" dst="$ASSETS/example-$1"
  grep -q '"finished"\|"stopped"' "$src/summary.json" || { echo "example $name did not finish: not shipped"; exit 1; }
  rm -rf "$dst.new"; cp -r "$src" "$dst.new"
  rm -f "$dst.new/process.json" "$dst.new/policy/checkpoint.json" "$dst.new/policy/training_args.bin"
  chmod -R a+rX "$dst.new"                       # peft writes its safetensors 0600
  rm -rf "$dst"; mv "$dst.new" "$dst"
  du -sh "$dst"
}

for step in "${steps[@]}"; do
  case $step in
    ppo)      rm -rf "$WORK/ppo"
              run "$PY" -m rlhf_demo train --algo ppo --preset quick-cpu --seed 0 --eval-at-start --out "$WORK/ppo"
              ship ppo ;;
    dpo)      rm -rf "$WORK/dpo"
              run "$PY" -m rlhf_demo train --algo dpo --preset quick-cpu --seed 0 --out "$WORK/dpo"
              ship dpo ;;
    reward)   rm -rf "$WORK/reward"
              run "$PY" -m rlhf_demo train --algo reward --preset quick-cpu --seed 0 --out "$WORK/reward"
              ship reward ;;
    bon)      rm -rf "$WORK/bon"
              run "$PY" -m rlhf_demo train --algo bon --preset quick-cpu --seed 0 --eval-at-start --out "$WORK/bon"
              ship bon ;;
    pi_star)  run "$PY" bench/ppo_frontier.py --n 128 --json "$ASSETS/pi_star.json" ;;
    *)        echo "unknown step: $step (ppo, dpo, reward, bon, pi_star)"; exit 2 ;;
  esac
done
