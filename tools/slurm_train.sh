#!/usr/bin/env bash
# Train on a Slurm cluster: one task per GPU, mmengine reads the ranks from Slurm.
#   GPUS=16 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# GPUS_PER_NODE (8), CPUS_PER_TASK (5) and SRUN_ARGS tune the allocation.
set -euo pipefail
if [[ $# -lt 4 ]]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]" >&2
    exit 2
fi
partition=$1
job=$2
config=$3
work_dir=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)
gpus=${GPUS:-8}
per_node=${GPUS_PER_NODE:-8}
# shellcheck disable=SC2086 (SRUN_ARGS holds several words on purpose)
exec env PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" \
    srun --partition="$partition" --job-name="$job" --gres="gpu:$per_node" \
    --ntasks="$gpus" --ntasks-per-node="$per_node" --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$here/train.py" "$config" --work-dir="$work_dir" \
    --launcher=slurm "$@"
