#!/usr/bin/env bash
# All five benchmarks of issue #3, one after another, at their default sizes: AMI throughput,
# screen-pop latency (with the daemon's memory), the same during a 1,000-recording transcription
# backlog (with the workers' memory), ticket store scaling, and transcription throughput.
# About 25 minutes on a 2-core machine (the 10^6-ticket stores are built once and cached).
# Each prints its table and JSON; both are also kept under bench/results/<time>/.
#   bash bench/run_all.sh            # everything
#   bash bench/run_all.sh --quick    # small sizes, a couple of minutes (what CI runs, roughly)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${CTI_BRIDGE_VENV:-$REPO/.venv}/bin/python
OUT=$REPO/bench/results/$(date +%Y%m%dT%H%M%S)
mkdir -p "$OUT"

run() {
    local name=$1
    shift
    echo "== $name: $*"
    "$PY" "$REPO/bench/$1" "${@:2}" | tee "$OUT/$name.txt"
    echo
}

if [[ ${1:-} == --quick ]]; then
    run ami_throughput ami_throughput.py --calls 200 --concurrency 20
    run screenpop_latency screenpop_latency.py --tickets 10000 --rates 1,10 --seconds 5
    run screenpop_during_backlog screenpop_latency.py --tickets 10000 --rates 5 --seconds 10 --backlog 20
    run store_scale store_scale.py --sizes 1000,10000 --ops 500
    run transcription transcription.py --files 6
else
    run ami_throughput ami_throughput.py --calls 2000
    run screenpop_latency screenpop_latency.py
    run screenpop_during_backlog screenpop_latency.py --rates 10 --seconds 60 --backlog 1000 --workers 2
    run store_scale store_scale.py
    run transcription transcription.py
fi
echo "Saved in $OUT"
