#!/usr/bin/env bash
# Generate on several processes of one or more machines with torchrun: clips are sharded over
# the processes and merged into one dataset at the end (same files as one process, same seed).
#   bash tools/dist_generate.sh CONFIG CHECKPOINT NUM_PROCS --tracklets FILE --out-dir DIR [...]
# Across machines, run it on each with NNODES, NODE_RANK, MASTER_ADDR and PORT set.
# If a process dies, torchrun stops the others at once (none is left waiting in a
# collective) and exits non-zero; its "Root Cause" summary names the rank and the exit
# code or signal. exec passes that exit code on (docs/hardening.md).
set -euo pipefail
if [[ $# -lt 3 ]]; then
    echo "usage: $0 CONFIG CHECKPOINT NUM_PROCS --tracklets FILE --out-dir DIR [generate.py args...]" >&2
    exit 2
fi
config=$1
checkpoint=$2
nproc=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
exec env PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" \
    "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$nproc" \
    "$here/generate.py" "$config" "$checkpoint" --launcher pytorch "$@"
