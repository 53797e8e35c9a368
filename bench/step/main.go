// Command step measures dira's training step for docs/benchmarks.md; it is a
// benchmark, not a test. bench/step.sh runs it beside bench/step.py (PyTorch
// 1.13 doing the same work) and prints both.
//
//	go run ./bench/step -mode dira   one DiRA adversarial step: ResNet-50 U-Net,
//	                                 224x224, batch 8, 4 ghost-BN groups with
//	                                 shuffle-BN, key encoder, queue 65536, LSGAN
//	                                 discriminator step; images/s and peak RSS
//	                                 (-precision bf16: run.precision bf16, the
//	                                 forwards and losses under CPU autocast;
//	                                 -flops F: also GFLOP/s for F GFLOP per image)
//	go run ./bench/step -mode memory 100 forward+backward+SGD steps of the
//	                                 ResNet-18 U-Net at 64x64; RSS every 10 steps
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
	"dira/model"
	"dira/optim"
	"dira/pipeline"
	"dira/stages"
)

func main() {
	mode := flag.String("mode", "dira", "dira or memory")
	steps := flag.Int("steps", 5, "timed steps (dira mode, after 1 warm-up step)")
	threads := flag.Int("threads", 2, "libtorch threads")
	tune := flag.Bool("tune-allocator", true, "set glibc's malloc thresholds as dira run does")
	precision := flag.String("precision", "fp32", "run.precision of the dira step: fp32 or bf16")
	flops := flag.Float64("flops", 0, "GFLOP per image of the dira step (bench/step.py flops counts them); 0 = do not report GFLOP/s")
	flag.Parse()
	defer torch.Pin()()
	torch.SetThreads(*threads)
	if *tune {
		torch.TuneAllocator() // as `dira run` does
	}
	var err error
	switch *mode {
	case "dira":
		err = diraStep(*steps, *precision, *flops)
	case "memory":
		err = memory()
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "step:", err)
		os.Exit(1)
	}
}

func randn(shape ...int64) *ts.Tensor {
	return torch.Must(ts.Rand(shape, gotch.Float, gotch.CPU))
}

// diraStep: the adversarial stage's step as stages.Pretrain runs it.
func diraStep(steps int, precision string, gflopPerImage float64) (err error) {
	defer torch.Catch("dira step", &err)
	const n, size, groups = 8, 224, 4
	cfg := model.DefaultConfig()
	m, err := model.NewMoCo(cfg, 65536, true, 1)
	if err != nil {
		return err
	}
	dps := model.NewParams()
	disc := model.NewDiscriminator(dps, cfg.Discriminator, 1)
	step := &stages.Objective{
		MoCo: m, Disc: disc,
		SGD:    &optim.SGD{Params: m.Params.Trainable(), LR: 0.03, Momentum: 0.9, WeightDecay: 1e-4},
		Adam:   &optim.Adam{Params: dps.Trainable(), LR: 2e-4, Beta1: 0.5, Beta2: 0.999, Eps: 1e-8},
		Losses: pipeline.Default().Losses, Momentum: 0.999, Temperature: 0.2, Groups: groups,
		Precision: precision,
	}
	r := rand.New(rand.NewPCG(1, 2))
	var times []time.Duration
	for s := 0; s <= steps; s++ {
		q, k, target := randn(n, 3, size, size), randn(n, 3, size, size), randn(n, 1, size, size)
		var perm []int64
		for _, p := range r.Perm(n) {
			perm = append(perm, int64(p))
		}
		start := time.Now()
		if _, bad, err := step.Step(q, k, target, perm); err != nil || bad != "" {
			return fmt.Errorf("step %d: %v (non-finite: %q)", s, err, bad)
		}
		if s > 0 {
			times = append(times, time.Since(start))
		}
		torch.Drop(q)
		torch.Drop(k)
		torch.Drop(target)
	}
	var total time.Duration
	for _, t := range times {
		total += t
	}
	imgPerS := float64(n*len(times)) / total.Seconds()
	gflops := ""
	if gflopPerImage > 0 {
		gflops = fmt.Sprintf(", %.0f GFLOP/s", imgPerS*gflopPerImage)
	}
	fmt.Printf("go dira-step %s resnet50 224 batch %d: %.3f img/s (mean of %d steps, %.2f s/step), peak RSS %d MB%s\n",
		precision, n, imgPerS, len(times), total.Seconds()/float64(len(times)), peakRSSMB(), gflops)
	return nil
}

// memory: 100 steps of the ResNet-18 U-Net forward+backward+SGD, RSS logged.
func memory() (err error) {
	defer torch.Catch("memory", &err)
	cfg := model.DefaultConfig()
	cfg.Arch = "resnet18"
	u, ps, err := model.NewUNet(cfg, 1)
	if err != nil {
		return err
	}
	sgd := &optim.SGD{Params: ps.Trainable(), LR: 0.01, Momentum: 0.9, WeightDecay: 1e-4}
	x, target := randn(8, 3, 64, 64), randn(8, 1, 64, 64)
	var rss []string
	start := time.Now()
	for s := 1; s <= 100; s++ {
		torch.Check(optim.ZeroGrad(sgd.Params))
		y, err := u.Forward(x, model.Mode{Train: true, Groups: 2})
		if err != nil {
			return err
		}
		loss := torch.Must(y.MseLoss(target, 1, false))
		torch.Backward(loss)
		if err := sgd.Step(); err != nil {
			return err
		}
		torch.Drop(y)
		torch.Drop(loss)
		if s%10 == 0 {
			rss = append(rss, fmt.Sprintf("%d:%d", s, currentRSSMB()))
		}
	}
	fmt.Printf("go memory resnet18-unet 64x64 batch 8: %.1f img/s; RSS MB by step %s\n", 800/time.Since(start).Seconds(), strings.Join(rss, " "))
	return nil
}

func peakRSSMB() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss / 1024
}

func currentRSSMB() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	var size, res int64
	fmt.Sscan(string(b), &size, &res)
	return res * int64(os.Getpagesize()) / (1 << 20)
}
