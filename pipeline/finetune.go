package pipeline

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"dira/data"
)

// The downstream kinds: fine-tuning a classifier (classify) or a segmenter
// (segment) from several initialisations, with the protocol of DiRA's
// benchmark code (BenchmarkTransferLearning, Version1): Adam, early stopping
// on the validation loss, the best-validation checkpoint tested, trials and
// label fractions.
const (
	StageClassify = "classify"
	StageSegment  = "segment"
)

// InitRandom is the initialisation with no pre-training.
const InitRandom = "random"

// FineTune holds what both downstream kinds have.
type FineTune struct {
	Data                 data.LabeledConfig `yaml:"data" mapstructure:"data" doc:"the labelled images of the task (their own source, splits and transforms)"`
	Inits                []string           `yaml:"inits" mapstructure:"inits" doc:"initialisations compared: random, a training stage of this run (warmup, adversarial, moco: its checkpoint), or a file (a dira .ckpt; encoder.pth, unet.pth, an official DiRA, torchvision or smp .pth)"`
	Checkpoint           string             `yaml:"checkpoint" mapstructure:"checkpoint" doc:"last or best checkpoint of a stage initialisation"`
	Trials               int                `yaml:"trials" mapstructure:"trials" doc:"independent trials per initialisation (seeds run.seed+0, +1, ...); results report mean and population std"`
	Epochs               int                `yaml:"epochs" mapstructure:"epochs" doc:"most epochs per trial (early stopping usually ends sooner)"`
	BatchSize            int                `yaml:"batch_size" mapstructure:"batch_size" doc:"images per step"`
	LR                   float64            `yaml:"lr" mapstructure:"lr" doc:"Adam learning rate (betas 0.9, 0.999; no weight decay, as official)"`
	Patience             int                `yaml:"patience" mapstructure:"patience" doc:"stop after more than this many epochs without a lower validation loss"`
	CheckpointEverySteps int                `yaml:"checkpoint_every_steps" mapstructure:"checkpoint_every_steps" doc:"also write the trial's last.ckpt every N steps; 0 = only at epoch ends"`
	LogEverySteps        int                `yaml:"log_every_steps" mapstructure:"log_every_steps" doc:"write a metrics.jsonl line every N steps"`
	Export               bool               `yaml:"export" mapstructure:"export" doc:"export the best trial (lowest validation loss) as ONNX, checked in ONNX Runtime"`
	Tolerance            float64            `yaml:"tolerance" mapstructure:"tolerance" doc:"export: max abs difference allowed between ONNX Runtime and the Go forward"`
}

// FineTuneOf returns the shared settings of a downstream kind.
func FineTuneOf(s StageSettings) (*FineTune, bool) {
	switch st := s.(type) {
	case *ClassifyStage:
		return &st.FineTune, true
	case *SegmentStage:
		return &st.FineTune, true
	}
	return nil, false
}

// ClassifyStage fine-tunes the encoder with a new linear head into a
// classifier: multi-label (sigmoid + BCE, ChestX-ray14's 14 labels) or
// multi-class (softmax + cross-entropy).
type ClassifyStage struct {
	FineTune    `yaml:",inline" mapstructure:",squash"`
	LinearProbe bool `yaml:"linear_probe" mapstructure:"linear_probe" doc:"train only the head: the encoder frozen, its batch norm in eval mode (beyond the official full fine-tuning)"`
}

// Kind is "classify".
func (*ClassifyStage) Kind() string { return StageClassify }

// SegmentStage fine-tunes the whole U-Net (encoder and decoder from the
// initialisation, the segmentation head new) into a binary segmenter.
type SegmentStage struct {
	FineTune `yaml:",inline" mapstructure:",squash"`
	Loss     string `yaml:"loss" mapstructure:"loss" doc:"dice (soft Dice, official) or bce_dice (BCE + soft Dice)"`
}

// Kind is "segment".
func (*SegmentStage) Kind() string { return StageSegment }

// defaultClassify is main_classification.py's defaults: Adam 2e-4, batch 32,
// patience 10 (ReduceLROnPlateau patience 5), one trial, ImageNet
// normalisation, ten-crop test; 1000 epochs as its --num_epoch (early stopping
// ends sooner).
func defaultClassify() StageSettings {
	d := data.DefaultLabeledConfig()
	return &ClassifyStage{FineTune: FineTune{Data: d, Inits: []string{InitRandom}, Checkpoint: "best", Trials: 1,
		Epochs: 1000, BatchSize: 32, LR: 2e-4, Patience: 10, LogEverySteps: 10, Export: true, Tolerance: 1e-4}}
}

// defaultSegment is main_segmentation.py's defaults: Adam 1e-3 with the
// cosine schedule, batch 32, 200 epochs, patience 20, soft Dice loss, no
// normalisation.
func defaultSegment() StageSettings {
	d := data.DefaultLabeledConfig()
	d.Task = data.TaskSegmentation
	d.Normalization = data.NormNone.Name
	d.TenCrop = false
	return &SegmentStage{FineTune: FineTune{Data: d, Inits: []string{InitRandom}, Checkpoint: "best", Trials: 1,
		Epochs: 200, BatchSize: 32, LR: 1e-3, Patience: 20, LogEverySteps: 10, Export: true, Tolerance: 1e-4}, Loss: "dice"}
}

func (s *ClassifyStage) problems(c Config, i int) []error {
	errs := s.FineTune.problems(c, i)
	if t := s.Data.Task; t != data.TaskMultiLabel && t != data.TaskMultiClass {
		errs = append(errs, fmt.Errorf("stages[%d].data.task: must be multilabel or multiclass for a classify stage, got %q (segmentation is the segment stage)", i, t))
	}
	return errs
}

func (s *SegmentStage) problems(c Config, i int) []error {
	errs := s.FineTune.problems(c, i)
	if s.Data.Task != data.TaskSegmentation {
		errs = append(errs, fmt.Errorf("stages[%d].data.task: must be segmentation for a segment stage, got %q", i, s.Data.Task))
	}
	if s.Loss != "dice" && s.Loss != "bce_dice" {
		errs = append(errs, fmt.Errorf("stages[%d].loss: must be dice or bce_dice, got %q", i, s.Loss))
	}
	return errs
}

func (s *FineTune) problems(c Config, i int) []error {
	p := fmt.Sprintf("stages[%d]", i)
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{p, key}, args...)...))
	}
	errs = append(errs, s.Data.Validate(p+".data")...)
	if len(s.Inits) == 0 {
		bad("inits", "must name at least one initialisation (random, a training stage, or a file)")
	}
	seen := map[string]bool{}
	for j, init := range s.Inits {
		key := fmt.Sprintf("inits[%d]", j)
		if seen[init] {
			bad(key, "%q is listed twice", init)
		}
		seen[init] = true
		switch {
		case init == InitRandom:
		case slices.ContainsFunc(c.Stages[:i], func(b StageSettings) bool { _, ok := TrainingOf(b); return ok && b.Kind() == init }):
		case slices.Contains([]string{StageWarmup, StageAdversarial, StageMoCo}, init):
			bad(key, "is stage %s, which this config does not run before stages[%d]; list it first or name its checkpoint file", init, i)
		default:
			if fi, err := os.Stat(init); err != nil || !fi.Mode().IsRegular() {
				bad(key, "must be random, a training stage listed before this one, or an existing file; %q is none", init)
			} else if !strings.HasSuffix(init, ".ckpt") && !strings.HasSuffix(init, ".pth") && !strings.HasSuffix(init, ".pt") && !strings.HasSuffix(init, ".tar") {
				bad(key, "file %q: want a dira .ckpt or a PyTorch .pth/.pt/.pth.tar", init)
			}
		}
	}
	if s.Checkpoint != "last" && s.Checkpoint != "best" {
		bad("checkpoint", "must be last or best, got %q", s.Checkpoint)
	}
	if s.Trials < 1 || s.Trials > 1000 {
		bad("trials", "must be in [1, 1000], got %d", s.Trials)
	}
	if s.Epochs < 1 {
		bad("epochs", "must be >= 1, got %d", s.Epochs)
	}
	if s.BatchSize < 1 {
		bad("batch_size", "must be >= 1, got %d", s.BatchSize)
	}
	if !(s.LR > 0) || math.IsInf(s.LR, 0) {
		bad("lr", "must be > 0, got %g", s.LR)
	}
	if s.Patience < 0 {
		bad("patience", "must be >= 0, got %d", s.Patience)
	}
	if s.CheckpointEverySteps < 0 {
		bad("checkpoint_every_steps", "must be >= 0, got %d", s.CheckpointEverySteps)
	}
	if s.LogEverySteps < 1 {
		bad("log_every_steps", "must be >= 1, got %d", s.LogEverySteps)
	}
	if !(s.Tolerance > 0) {
		bad("tolerance", "must be > 0, got %g", s.Tolerance)
	}
	// Early stopping needs a validation split and the metrics a test split.
	if d := s.Data; d.Source == data.SourceSynthetic {
		if d.Synthetic.ValCount < 1 {
			bad("data.synthetic.val_count", "must be >= 1: early stopping watches the validation loss")
		}
		if d.Synthetic.TestCount < 1 {
			bad("data.synthetic.test_count", "must be >= 1: the trials are scored on the test split")
		}
	} else {
		if d.Val.List == "" && d.Val.Images == "" {
			bad("data.val", "must be set: early stopping watches the validation loss")
		}
		if d.Test.List == "" && d.Test.Images == "" {
			bad("data.test", "must be set: the trials are scored on the test split")
		}
	}
	if s.Data.ImageSize%32 != 0 {
		bad("data.image_size", "must be a multiple of 32 (the encoder halves it five times), got %d", s.Data.ImageSize)
	}
	return errs
}
