#!/usr/bin/env bash
# Run N sweeper workers on one Optuna study, one trial at a time each: one per GPU, or N CPU
# processes when there is no GPU. The study's n_trials is shared, so the workers together
# run exactly that many trials.
#
#   scripts/sweep_workers.sh 2 hparams_search=digits_lr_bs hydra.sweeper.n_trials=8
#   scripts/sweep_workers.sh 4 hparams_search=digits_lr_bs trainer=gpu      # 4 GPUs, 4 trials at once
#   DLRECIPE_STORAGE=file:$HOME/.sweepdb scripts/sweep_workers.sh 2 hparams_search=digits_lr_bs
# A database URL with a password goes in $DLRECIPE_STORAGE (the URL, or file:<a file holding
# it>), never on the command line: workers show and save it as user:***@host. A worker killed
# mid-trial: run the script again, and its trial runs again with the same parameters.
#
# Each worker gets CUDA_VISIBLE_DEVICES=<i> (when GPUs exist) and its own sampler seed, and
# logs to <sweep dir>/worker_<i>.log. For many machines, point hydra.sweeper.storage at a
# PostgreSQL URL and start this script (or one worker per SLURM task) on each machine.
set -euo pipefail
if [[ $# -lt 2 || ! "$1" =~ ^[0-9]+$ || "$1" -lt 1 ]]; then
  echo "usage: $0 N hparams_search=<name> [overrides...]" >&2
  exit 2
fi
n=$1
shift
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[[ -x "$python" ]] || python=python3
gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
fi
seed_base=${SEED_BASE:-$RANDOM}
logs="${LOG_DIR:-outputs/sweep_workers/$(date +%Y-%m-%d_%H-%M-%S)}"
mkdir -p "$logs"
pids=()
for ((i = 0; i < n; i++)); do
  if ((gpus > 0)); then
    export CUDA_VISIBLE_DEVICES=$((i % gpus))
  fi
  "$python" -m dlrecipe.train "$@" "hydra.sweeper.sampler.seed=$((seed_base + i))" \
    >"$logs/worker_$i.log" 2>&1 &
  pids+=($!)
  echo "worker $i: pid ${pids[-1]}${CUDA_VISIBLE_DEVICES:+, GPU $CUDA_VISIBLE_DEVICES}, log $logs/worker_$i.log"
done
status=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "worker $i failed; see $logs/worker_$i.log" >&2
    status=1
  fi
done
echo "all $n workers done; logs in $logs"
exit $status
