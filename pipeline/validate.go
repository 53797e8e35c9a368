package pipeline

import (
	"errors"
	"fmt"
	"math"

	"dira/internal/torch"
)

// Validate returns every problem of c joined into one error (nil when there is
// none). Each problem is one line that starts with its YAML path, e.g.
// "stages[1].optimizer.lr: must be > 0, got -0.1".
func (c Config) Validate() error {
	return errors.Join(c.Problems()...)
}

// Problems is Validate as a list, one error per problem.
func (c Config) Problems() []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{path}, args...)...))
	}

	if c.Run.Name == "" {
		bad("run.name", "must not be empty")
	}
	if c.Run.OutputDir == "" {
		bad("run.output_dir", "must not be empty")
	}
	if c.Run.Threads < 1 {
		bad("run.threads", "must be >= 1, got %d", c.Run.Threads)
	}
	if c.Run.Device != "cpu" {
		bad("run.device", "must be cpu (training uses Debian's CPU libtorch; inference picks CUDA itself), got %q", c.Run.Device)
	}
	switch c.Run.Precision {
	case PrecisionFP32, PrecisionBF16:
	case PrecisionFP16:
		// float16 autocast and loss scaling are for CUDA tensors: libtorch's
		// CPU autocast has no float16, and a CPU has no fast float16 kernels.
		if !torch.HasCUDA() {
			bad("run.precision", "fp16 needs a CUDA build of libtorch; this libtorch (%s) is CPU-only: use bf16 (CPU autocast to bfloat16) or fp32", torch.Version())
		}
	default:
		bad("run.precision", "must be fp32, bf16 or fp16, got %q", c.Run.Precision)
	}

	errs = append(errs, c.Data.Validate("data")...)
	errs = append(errs, c.Model.Validate("model")...)

	if c.MoCo.QueueSize < 1 {
		bad("moco.queue_size", "must be >= 1, got %d", c.MoCo.QueueSize)
	}
	if c.MoCo.Momentum < 0 || c.MoCo.Momentum > 1 {
		bad("moco.momentum", "must be in [0, 1], got %g", c.MoCo.Momentum)
	}
	if !(c.MoCo.Temperature > 0) {
		bad("moco.temperature", "must be > 0, got %g", c.MoCo.Temperature)
	}
	if c.MoCo.GhostBNGroups < 1 {
		bad("moco.ghost_bn_groups", "must be >= 1, got %d", c.MoCo.GhostBNGroups)
	}
	for _, w := range []struct {
		key string
		v   float64
	}{{"contrastive_weight", c.Losses.ContrastiveWeight}, {"mse_weight", c.Losses.MSEWeight}, {"adv_weight", c.Losses.AdvWeight}} {
		if w.v < 0 || math.IsNaN(w.v) || math.IsInf(w.v, 0) {
			bad("losses."+w.key, "must be a finite number >= 0, got %g", w.v)
		}
	}

	errs = append(errs, c.boundProblems()...)
	return append(errs, c.stageProblems()...)
}
