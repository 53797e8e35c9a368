#!/usr/bin/env bash
# Side-by-side training-step benchmark: dira (Go, gotch, libtorch 1.13) and
# PyTorch 1.13 (Debian python3-torch) doing the same work on the same machine,
# one after the other, same thread count. Usage: bench/step.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
go build -o bin/bench-step ./bench/step
echo "== $(nproc) cores, $threads threads, $(date -u +%F)"
bin/bench-step -mode memory -threads "$threads"
THREADS=$threads /usr/bin/python3 bench/step.py memory
bin/bench-step -mode dira -threads "$threads"
THREADS=$threads /usr/bin/python3 bench/step.py dira
