#!/usr/bin/env bash
# Run N sweeper workers on one Optuna study, one trial at a time each: one per GPU, or N CPU
# processes when there is no GPU. The study's n_trials counts the whole study, whoever ran its
# trials: the workers together bring it up to n_trials (a study that already has them runs
# nothing and says so; raise n_trials to run more).
#
#   scripts/sweep_workers.sh 2 hparams_search=digits_lr_bs hydra.sweeper.n_trials=8   # a new study: 8 trials
#   scripts/sweep_workers.sh 2 hparams_search=digits_lr_bs hydra.sweeper.n_trials=24  # after 16: 8 more
#   scripts/sweep_workers.sh 4 hparams_search=digits_lr_bs trainer=gpu      # 4 GPUs, 4 trials at once
#   DLRECIPE_STORAGE=file:$HOME/.sweepdb scripts/sweep_workers.sh 2 hparams_search=digits_lr_bs
# A database URL with a password goes in $DLRECIPE_STORAGE (the URL, or file:<a file holding
# it>), never on the command line: workers show and save it as user:***@host. A worker killed
# mid-trial: run the script again, and its trial runs again with the same parameters.
#
# Each worker gets CUDA_VISIBLE_DEVICES=<i> (when GPUs exist) and its own sampler seed, and
# logs to $LOG_DIR/worker_<i>.log (default outputs/sweep_workers/<date>_<time>/; the script
# prints each log's path). Python: the project's .venv/bin/python, or PYTHON=/path/to/python;
# neither there is one line and exit 2. For many machines, point hydra.sweeper.storage at a
# PostgreSQL URL and start this script (or one worker per SLURM task) on each machine.
#
# A usage mistake (or one that every worker reports, exit 2) is one line on stderr and exit 2.
set -euo pipefail
usage="usage: $0 N hparams_search=<name> [overrides...]"
fail() { echo "error: $1 ($usage)" >&2; exit 2; }
[[ $# -ge 1 ]] || fail "give N, the number of workers, and hparams_search=<name>"
[[ "$1" =~ ^[0-9]+$ && "$1" -ge 1 ]] || fail "N='$1' must be a whole number of workers >= 1"
n=$1
shift
[[ $# -ge 1 ]] || fail "no overrides: give hparams_search=<name> (the sweep the workers share)"
sweeps=0
for arg in "$@"; do [[ "$arg" == hparams_search=* || "$arg" == hydra/sweeper=* ]] && sweeps=1; done
((sweeps)) || fail "no hparams_search=<name> among the overrides: without a sweep every worker would train the same run"
here="$(cd "$(dirname "$0")/.." && pwd)"
# No silent fallback to the system python: it may lack dlrecipe, or be another version of it.
if [[ -n "${PYTHON:-}" ]]; then
  python=$PYTHON
  [[ -x "$python" ]] || fail "PYTHON=$python is not an executable python; point it at one that has dlrecipe installed"
else
  python="$here/.venv/bin/python"
  [[ -x "$python" ]] || fail "no project venv at $python: run 'make venv', or set PYTHON=/path/to/python that has dlrecipe installed"
fi
gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
fi
seed_base=${SEED_BASE:-$RANDOM}
logs="${LOG_DIR:-outputs/sweep_workers/$(date +%Y-%m-%d_%H-%M-%S)}"
mkdir -p "$logs" 2>/dev/null || fail "LOG_DIR='$logs' cannot be created; point LOG_DIR at a writable directory"
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
mistakes=0
for i in "${!pids[@]}"; do
  code=0
  wait "${pids[$i]}" || code=$?
  if ((code == 2)); then
    mistakes=$((mistakes + 1))  # the worker refused the input: its one line says why
  elif ((code != 0)); then
    echo "worker $i failed; see $logs/worker_$i.log" >&2
    status=1
  fi
done
if ((mistakes == n)); then  # the same mistake in every worker: show it once
  grep -h -m1 '^error:' "$logs/worker_0.log" >&2 || echo "error: see $logs/worker_0.log" >&2
  exit 2
elif ((mistakes > 0)); then
  echo "$mistakes worker(s) refused their input; see the 'error:' line in $logs/worker_*.log" >&2
  status=1
fi
echo "all $n workers done; logs in $logs"
exit $status
