#!/usr/bin/env bash
# Side-by-side fine-tuning-step benchmark: dira (Go, gotch, libtorch 1.13) and
# PyTorch 1.13 (Debian python3-torch) doing the same step on the same machine,
# one after the other, same thread count, glibc's allocator thresholds set
# for both (dira run sets them itself). Usage: bench/finetune.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
go build -o bin/bench-finetune ./bench/finetune
echo "== $(nproc) cores, $threads threads, $(date -u +%F)"
export MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824
for task in classify segment; do
  bin/bench-finetune -task "$task" -threads "$threads"
  THREADS=$threads /usr/bin/python3 bench/finetune.py "$task"
done
