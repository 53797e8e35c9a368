#!/usr/bin/env bash
# Side-by-side training-step benchmark: dira (Go, gotch, libtorch 1.13) and
# PyTorch 1.13 (Debian python3-torch) doing the same work on the same machine,
# one after the other, same thread count.
# Usage: bench/step.sh [threads] [all|precision]
#   all (default): memory over 100 steps, then the fp32 DiRA step with the
#                  allocator as each runs, tuned on both sides, default on both.
#   precision:     the DiRA step in fp32 and bf16 (run.precision / torch.autocast)
#                  for dira and PyTorch, and PyTorch bf16 with channels-last
#                  layout, with GFLOP/s from the step's FLOP count.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
what=${2:-all}
go build -o bin/bench-step ./bench/step
echo "== $(nproc) cores, $threads threads, $(date -u +%F)"
if [ "$what" = precision ]; then
	# ROUNDS rounds (default 2), each running the five variants back to back,
	# STEPS timed steps each (default 5) after one warm-up step.
	/usr/bin/python3 bench/step.py flops | head -1
	gflop=$(/usr/bin/python3 bench/step.py flops | tail -1)
	for round in $(seq "${ROUNDS:-2}"); do
		echo "-- round $round"
		for p in fp32 bf16; do
			bin/bench-step -mode dira -threads "$threads" -steps "${STEPS:-5}" -precision "$p" -flops "$gflop"
			STEPS=${STEPS:-5} PRECISION=$p FLOPS=$gflop THREADS=$threads /usr/bin/python3 bench/step.py dira
		done
		STEPS=${STEPS:-5} CHANNELS_LAST=1 PRECISION=bf16 FLOPS=$gflop THREADS=$threads /usr/bin/python3 bench/step.py dira
	done
	exit 0
fi
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
