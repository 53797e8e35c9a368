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
# dira as it runs (allocator tuned), PyTorch as it comes; then both with
# glibc's thresholds set from the environment, so the allocator is equal.
bin/bench-step -mode dira -threads "$threads"
THREADS=$threads /usr/bin/python3 bench/step.py dira
echo "-- both with MALLOC_MMAP_THRESHOLD_=256MiB MALLOC_TRIM_THRESHOLD_=1GiB"
MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824 bin/bench-step -mode dira -threads "$threads" -tune-allocator=false
MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824 THREADS=$threads /usr/bin/python3 bench/step.py dira
echo "-- both with glibc's defaults"
bin/bench-step -mode dira -threads "$threads" -tune-allocator=false
THREADS=$threads /usr/bin/python3 bench/step.py dira
