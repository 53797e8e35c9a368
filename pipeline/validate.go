package pipeline

import (
	"errors"
	"fmt"
	"math"
	"slices"
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

	seen := map[string]int{}
	for i, s := range c.Stages {
		p := fmt.Sprintf("stages[%d]", i)
		if !slices.Contains(StageKinds, s.Name) {
			bad(p+".name", "must be one of %v, got %q", StageKinds, s.Name)
			continue
		}
		if j, dup := seen[s.Name]; dup {
			bad(p+".name", "stage %q is already stages[%d]; each stage kind runs once per run", s.Name, j)
		}
		seen[s.Name] = i
		if s.IsTraining() {
			errs = append(errs, c.trainingStageProblems(p, s)...)
		} else {
			errs = append(errs, exportStageProblems(p, s, c.Stages[:i])...)
		}
		if s.Name == StageAdversarial {
			if _, ok := seen[StageWarmup]; !ok && s.InitFrom != "" && s.InitFrom != "none" {
				bad(p+".init_from", "is %q but no warmup stage runs before it; set init_from: none or list warmup first", s.InitFrom)
			}
		}
	}
	return errs
}

func (c Config) trainingStageProblems(p string, s StageConfig) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{p, key}, args...)...))
	}
	if s.Epochs < 1 {
		bad("epochs", "must be >= 1, got %d", s.Epochs)
	}
	if s.StepsPerEpoch < 0 {
		bad("steps_per_epoch", "must be >= 0, got %d", s.StepsPerEpoch)
	}
	if s.BatchSize < 1 {
		bad("batch_size", "must be >= 1, got %d", s.BatchSize)
	} else {
		if c.MoCo.QueueSize > 0 && c.MoCo.QueueSize%s.BatchSize != 0 {
			// The official enqueue asserts K % B == 0 (spec 2.2 step 4).
			errs = append(errs, fmt.Errorf("moco.queue_size: must be a multiple of %s.batch_size (%d), got %d", p, s.BatchSize, c.MoCo.QueueSize))
		}
		if c.MoCo.GhostBNGroups > 0 && s.BatchSize%c.MoCo.GhostBNGroups != 0 {
			errs = append(errs, fmt.Errorf("%s.batch_size: must be a multiple of moco.ghost_bn_groups (%d), got %d", p, c.MoCo.GhostBNGroups, s.BatchSize))
		}
	}
	o := s.Optimizer
	if !(o.LR > 0) || math.IsInf(o.LR, 0) {
		bad("optimizer.lr", "must be > 0, got %g", o.LR)
	}
	if o.Momentum < 0 || o.Momentum >= 1 {
		bad("optimizer.momentum", "must be in [0, 1), got %g", o.Momentum)
	}
	if o.WeightDecay < 0 {
		bad("optimizer.weight_decay", "must be >= 0, got %g", o.WeightDecay)
	}
	if !slices.Contains([]string{"cosine", "step", "constant"}, o.Schedule) {
		bad("optimizer.schedule", "must be cosine, step or constant, got %q", o.Schedule)
	}
	for j, m := range o.Milestones {
		if m < 1 || (j > 0 && m <= o.Milestones[j-1]) {
			bad(fmt.Sprintf("optimizer.milestones[%d]", j), "must be increasing epochs >= 1, got %d", m)
		}
	}
	if s.Name == StageAdversarial {
		d := s.DiscOptimizer
		if !(d.LR > 0) {
			bad("disc_optimizer.lr", "must be > 0, got %g", d.LR)
		}
		if d.Beta1 < 0 || d.Beta1 >= 1 {
			bad("disc_optimizer.beta1", "must be in [0, 1), got %g", d.Beta1)
		}
		if d.Beta2 < 0 || d.Beta2 >= 1 {
			bad("disc_optimizer.beta2", "must be in [0, 1), got %g", d.Beta2)
		}
		if !slices.Contains([]string{"last", "best", "none"}, s.InitFrom) {
			bad("init_from", "must be last, best or none, got %q", s.InitFrom)
		}
	}
	if s.CheckpointEverySteps < 0 {
		bad("checkpoint_every_steps", "must be >= 0, got %d", s.CheckpointEverySteps)
	}
	if s.LogEverySteps < 1 {
		bad("log_every_steps", "must be >= 1, got %d", s.LogEverySteps)
	}
	return errs
}

func exportStageProblems(p string, s StageConfig, before []StageConfig) []error {
	var errs []error
	found := false
	for _, b := range before {
		if b.Name == s.From && b.IsTraining() {
			found = true
		}
	}
	if !found {
		errs = append(errs, fmt.Errorf("%s.from: must name a training stage listed before it, got %q", p, s.From))
	}
	if s.Checkpoint != "last" && s.Checkpoint != "best" {
		errs = append(errs, fmt.Errorf("%s.checkpoint: must be last or best, got %q", p, s.Checkpoint))
	}
	if !(s.Tolerance > 0) {
		errs = append(errs, fmt.Errorf("%s.tolerance: must be > 0, got %g", p, s.Tolerance))
	}
	return errs
}
