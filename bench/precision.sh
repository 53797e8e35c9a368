#!/usr/bin/env bash
# Fidelity of run.precision bf16: the pre-training stages of configs/demo.yaml
# (warmup + adversarial, then export of the adversarial stage's best
# checkpoint) run once in fp32 and once in bf16 from the same seed; prints the
# per-epoch losses of both and their relative differences, and what the
# export stage measured for the bf16-trained model (ONNX Runtime vs the Go
# forward). Usage: bench/precision.sh [workdir [config]]   (default: a
# temporary folder, and configs/demo.yaml without its classification stage;
# bench/precision-resnet50.yaml is the ResNet-50 224 run)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}
mkdir -p "$work"
go build -o bin/dira ./cmd/dira
config=${2:-}
if [ -z "$config" ]; then
	# The demo without its classification stage.
	config=$work/demo-pretrain.yaml
	sed '/^  - name: classify/,$d' configs/demo.yaml >"$config"
fi
for p in fp32 bf16; do
	rm -rf "${work:?}/$p"
	bin/dira run "$config" --set run.precision=$p --run-dir "$work/$p" >"$work/$p.log" 2>&1 ||
		{ tail -20 "$work/$p.log"; exit 1; }
done
/usr/bin/python3 - "$work" <<'EOF'
import glob, json, os, sys
work = sys.argv[1]

def epochs(p, stage):
    out = []
    with open(os.path.join(work, p, stage, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "epoch":
                out.append(dict(r["train"], val_loss=r["val_loss"]))
    return out

worst = {}
for stage in ("warmup", "adversarial"):
    a, b = epochs("fp32", stage), epochs("bf16", stage)
    print("%s: %d epochs; per epoch fp32 / bf16 (relative difference)" % (stage, len(a)))
    for i, (x, y) in enumerate(zip(a, b)):
        cells = []
        for k in sorted(x):
            rel = abs(y[k] - x[k]) / abs(x[k])
            worst[(stage, k)] = max(worst.get((stage, k), 0), rel)
            cells.append("%s %.4f/%.4f (%.2f%%)" % (k, x[k], y[k], 100 * rel))
        print("  epoch %d: %s" % (i, ", ".join(cells)))
for (stage, k), rel in sorted(worst.items()):
    print("largest relative difference %s %s: %.2f%%" % (stage, k, 100 * rel))
for rep in sorted(glob.glob(os.path.join(work, "bf16", "export", "**", "export-report.json"), recursive=True)):
    r = json.load(open(rep))
    print("bf16-trained export (%s, epoch %d): passed %s, tolerance %g" % (r["stage"], r["epoch"], r["passed"], r["tolerance"]))
    for c in r["checks"]:
        print("  %s %s: max |ORT - Go| %.3g (max |output| %.3g)" % (c["file"], c["output"], c["max_abs_diff"], c["max_abs_output"]))
EOF
