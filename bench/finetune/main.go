// Command finetune measures dira's fine-tuning step for docs/benchmarks.md; it
// is a benchmark, not a test. bench/finetune.sh runs it beside
// bench/finetune.py (PyTorch 1.13 doing the same work) and prints both.
//
// The step is the classify stage's (stages/classify.go): a ResNet-50 with a
// new 14-label head, sigmoid + BCE, Adam, on random 224x224 images, batch 8
// (or a segment stage's with -task segment: the U-Net, soft Dice loss).
package main

import (
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
	"dira/model"
	"dira/optim"
)

func main() {
	task := flag.String("task", "classify", "classify or segment")
	steps := flag.Int("steps", 5, "timed steps (after 1 warm-up step)")
	threads := flag.Int("threads", 2, "libtorch threads")
	batch := flag.Int("batch", 8, "images per step")
	flag.Parse()
	defer torch.Pin()()
	torch.SetThreads(*threads)
	torch.TuneAllocator() // as `dira run` does
	if err := run(*task, *steps, *batch); err != nil {
		fmt.Fprintln(os.Stderr, "finetune:", err)
		os.Exit(1)
	}
}

func run(task string, steps, n int) (err error) {
	defer torch.Catch(task, &err)
	cfg := model.DefaultConfig()
	var ps *model.Params
	var loss func(x, y *ts.Tensor) *ts.Tensor
	size := int64(224)
	switch task {
	case "classify":
		c, p, err := model.NewClassifier(cfg, 14, "fc.0", 1)
		if err != nil {
			return err
		}
		ps = p
		loss = func(x, y *ts.Tensor) *ts.Tensor {
			logits, err := c.Forward(x, model.Mode{Train: true})
			torch.Check(err)
			defer torch.Drop(logits)
			pr := torch.Must(logits.Sigmoid(false))
			defer torch.Drop(pr)
			return torch.Must(pr.BinaryCrossEntropy(y, ts.None, 1, false))
		}
	case "segment":
		u, p, err := model.NewUNet(cfg, 1)
		if err != nil {
			return err
		}
		ps = p
		loss = func(x, y *ts.Tensor) *ts.Tensor {
			m, err := u.Forward(x, model.Mode{Train: true})
			torch.Check(err)
			defer torch.Drop(m)
			return torch.Must(m.MseLoss(y, 1, false)) // the Dice ratio is a few scalar ops more
		}
	default:
		return fmt.Errorf("unknown task %q", task)
	}
	defer ps.Drop()
	adam := &optim.Adam{Params: ps.Trainable(), LR: 2e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	var times []time.Duration
	for s := 0; s <= steps; s++ {
		x := torch.Must(ts.Rand([]int64{int64(n), 3, size, size}, gotch.Float, gotch.CPU))
		shape := []int64{int64(n), 14}
		if task == "segment" {
			shape = []int64{int64(n), 1, size, size}
		}
		y := torch.Must(ts.Rand(shape, gotch.Float, gotch.CPU))
		start := time.Now()
		torch.Check(optim.ZeroGrad(adam.Params))
		l := loss(x, y)
		torch.Backward(l)
		torch.Check(adam.Step())
		if s > 0 {
			times = append(times, time.Since(start))
		}
		torch.Drop(l, x, y)
	}
	var total time.Duration
	for _, t := range times {
		total += t
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("go finetune-%s resnet50 224 batch %d: %.3f img/s (mean of %d steps, %.2f s/step), peak RSS %d MB\n",
		task, n, float64(n*len(times))/total.Seconds(), len(times), total.Seconds()/float64(len(times)), ru.Maxrss/1024)
	return nil
}
