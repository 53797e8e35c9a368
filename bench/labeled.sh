#!/usr/bin/env bash
# Is the labelled synthetic data learnable in about a minute? Writes the data
# set with bench/labeled (Go) and trains a ResNet-18 classifier and a small
# U-Net on it with PyTorch 1.13 (Debian python3-torch), each for the given
# number of seconds on 2 threads. Usage: bench/labeled.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go run ./bench/labeled -out "$dir" -size 64 -train 800 -test 300
echo "== $(nproc) cores, 2 threads, $secs s each, $(date -u +%F)"
/usr/bin/python3 bench/labeled.py cls "$secs" "$dir"
/usr/bin/python3 bench/labeled.py seg "$secs" "$dir"
