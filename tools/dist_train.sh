#!/usr/bin/env bash
# Train on several processes of one or more machines with torchrun.
#   bash tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]
# Across machines, run it on each with NNODES, NODE_RANK, MASTER_ADDR and PORT set.
# If a process dies, torchrun stops the others at once (none is left waiting in a
# collective) and exits non-zero; its "Root Cause" summary names the rank and the exit
# code or signal. exec passes that exit code on (docs/hardening.md).
# On CPU-only machines the processes talk over gloo (set env_cfg.dist_cfg.backend='gloo').
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 CONFIG NUM_PROCS [train.py args...]" >&2
    exit 2
fi
config=$1
nproc=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
exec env PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" \
    "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$nproc" \
    "$here/train.py" "$config" --launcher pytorch "$@"
