#!/usr/bin/env bash
# Distributed (Gloo) benchmark for docs/benchmarks.md: package dist's
# all-reduce of the ResNet-50 U-Net's gradient size between 2 processes over
# loopback, and one training step's forward+backward with the gradients
# averaged three ways, against one process with 2 threads doing the same total
# batch. Usage: bench/dist.sh [size] [batch per process]
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-224}
batch=${2:-2}
go build -o bin/bench-dist ./bench/dist
echo "== $(nproc) cores, $(date -u +%F)"
bin/bench-dist -mode allreduce -procs 2 -steps 5
bin/bench-dist -mode step -procs 1 -threads 2 -batch $((2 * batch)) -size "$size" -steps 5
for sync in none flat bucketed; do
  bin/bench-dist -mode step -procs 2 -threads 1 -batch "$batch" -size "$size" -sync "$sync" -steps 5
done
