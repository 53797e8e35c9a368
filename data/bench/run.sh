#!/usr/bin/env bash
# run.sh compares dira's data pipeline with the official PyTorch one on the same
# images and the same thread count, and prints a table of images per second.
#
#   data/bench/run.sh [IMAGES_DIR]
#
# Environment: THREADS (default "1 2"), ROUNDS (3, alternating Go and PyTorch;
# the median is reported), EPOCHS (3 per measurement), BATCH (25), N (200),
# SIZE (1024), ENCODER (pil: re-save the images with Pillow, as most datasets
# are written; go: keep image/png's encoding).
#
# The images are synthetic 1024x1024 8-bit gray radiographs (ChestX-ray14's
# format), made once by data/bench/genimages and kept in IMAGES_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."

threads=${THREADS:-"1 2"}
rounds=${ROUNDS:-3}
epochs=${EPOCHS:-3}
batch=${BATCH:-25}
n=${N:-200}
size=${SIZE:-1024}
encoder=${ENCODER:-pil}
dir=${1:-${TMPDIR:-/tmp}/dira-bench-images-$n-$size-$encoder}
py=/usr/bin/python3

if [ ! -f "$dir/.complete" ]; then
  go run ./data/bench/genimages -out "$dir" -n "$n" -size "$size"
  if [ "$encoder" = pil ]; then
    "$py" data/bench/torch_loader.py --reencode "$dir"
  fi
  touch "$dir/.complete"
fi
echo "images: $dir ($n, $(du -sh "$dir" | cut -f1)), batch $batch, $epochs epochs per measurement, $rounds rounds"
go test -c -o /tmp/dira-data-bench.test ./data/bench

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

printf '%-8s %12s %12s %8s\n' threads go_img/s torch_img/s ratio
for t in $threads; do
  gos=() tos=()
  for _ in $(seq "$rounds"); do
    g=$(/tmp/dira-data-bench.test -test.run '^$' -test.bench Loader -test.benchtime "${epochs}x" -test.cpu "$t" \
          -images "$dir" -batch "$batch" | awk '/images\/s/ {for (i=1;i<=NF;i++) if ($(i+1)=="images/s") print $i}')
    p=$("$py" data/bench/torch_loader.py --images "$dir" --workers "$t" --batch "$batch" --epochs "$epochs" |
          sed -n 's/.*images\/s=//p')
    gos+=("$g") tos+=("$p")
  done
  gm=$(printf '%s\n' "${gos[@]}" | median)
  tm=$(printf '%s\n' "${tos[@]}" | median)
  printf '%-8s %12.1f %12.1f %7.2fx   (go: %s; torch: %s)\n' "$t" "$gm" "$tm" "$(echo "$gm / $tm" | bc -l)" "${gos[*]}" "${tos[*]}"
done
