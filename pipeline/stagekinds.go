package pipeline

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gopkg.in/yaml.v3"
)

// A config's stages list is a tagged union: each entry's name is its kind,
// and the kind decides which keys the entry may hold, with that kind's own
// defaults. A key of another kind is refused by its YAML path
// ("stages[2].optimizer: not a key of an export stage"). A new kind is one
// settings type here plus one file in package stages.

// Stage kinds. warmup is the official mode "dir", adversarial is "dira", moco
// is "di" (the MoCo-v2 baseline), export writes the ONNX and .pth artifacts.
const (
	StageWarmup      = "warmup"
	StageAdversarial = "adversarial"
	StageMoCo        = "moco"
	StageExport      = "export"
)

// StageSettings is one stages entry: its kind and that kind's settings. The
// concrete types are *WarmupStage, *AdversarialStage, *MoCoStage,
// *ExportStage, *ClassifyStage and *SegmentStage.
type StageSettings interface {
	// Kind is the entry's name: the stage kind, and its folder in the run.
	Kind() string
	// problems checks the settings against the whole config (c.Stages[i] is
	// this stage); each error starts with its YAML path.
	problems(c Config, i int) []error
}

// stageKind describes one kind: its YAML name, one line of documentation,
// and its official defaults.
type stageKind struct {
	name, doc string
	defaults  func() StageSettings
}

var stageKinds = []stageKind{
	{StageWarmup, "DiRA warm-up (official mode dir): MoCo-v2 instance discrimination + U-Net restoration",
		func() StageSettings { return &WarmupStage{Training: defaultTraining(256, 1200)} }},
	{StageAdversarial, "DiRA joint stage (official mode dira): warm-up losses + the patch discriminator (LSGAN)",
		func() StageSettings {
			return &AdversarialStage{Training: defaultTraining(16, 400), InitFrom: "last",
				DiscOptimizer: DiscOptimizerConfig{LR: 2e-4, Beta1: 0.5, Beta2: 0.999}}
		}},
	{StageMoCo, "MoCo-v2 baseline (official mode di): instance discrimination only, no decoder",
		func() StageSettings { return &MoCoStage{Training: defaultTraining(256, 1200)} }},
	{StageExport, "encoder and U-Net as ONNX (checked in ONNX Runtime) and PyTorch .pth files",
		func() StageSettings {
			return &ExportStage{From: StageAdversarial, Checkpoint: "best", Tolerance: 1e-4,
				Precision: "fp32", CalibrationCount: 32, CalibrationMethod: "minmax"}
		}},
	{StageClassify, "downstream: fine-tune classifiers from each initialisation, test (AUC), compare, export the best",
		defaultClassify},
	{StageSegment, "downstream: fine-tune U-Net segmenters from each initialisation, test (Dice, IoU), compare, export the best",
		defaultSegment},
}

// StageKinds lists the stage kinds a config may use, in documentation order.
func StageKinds() []string {
	out := make([]string, len(stageKinds))
	for i, k := range stageKinds {
		out[i] = k.name
	}
	return out
}

// NewStage returns the official defaults of a stage kind.
func NewStage(kind string) (StageSettings, error) {
	for _, k := range stageKinds {
		if k.name == kind {
			return k.defaults(), nil
		}
	}
	return nil, fmt.Errorf("must be one of %v, got %q", StageKinds(), kind)
}

func kindDoc(kind string) string {
	for _, k := range stageKinds {
		if k.name == kind {
			return k.doc
		}
	}
	return ""
}

// Stages is the stages list of a config.
type Stages []StageSettings

// MarshalYAML writes each entry as its kind's settings with name first.
func (s Stages) MarshalYAML() (any, error) {
	var list yaml.Node
	list.Kind = yaml.SequenceNode
	for _, st := range s {
		var n yaml.Node
		if err := n.Encode(st); err != nil {
			return nil, err
		}
		name := []*yaml.Node{{Kind: yaml.ScalarNode, Value: "name"}, {Kind: yaml.ScalarNode, Value: st.Kind()}}
		n.Content = append(name, n.Content...)
		list.Content = append(list.Content, &n)
	}
	return &list, nil
}

// Training holds what every training kind (warmup, adversarial, moco) has.
type Training struct {
	Epochs               int             `yaml:"epochs" mapstructure:"epochs" doc:"passes over the training set"`
	StepsPerEpoch        int             `yaml:"steps_per_epoch" mapstructure:"steps_per_epoch" doc:"cap on steps per epoch; 0 = the whole training set"`
	BatchSize            int             `yaml:"batch_size" mapstructure:"batch_size" doc:"images per step (total over the emulated GPUs)"`
	Optimizer            OptimizerConfig `yaml:"optimizer" mapstructure:"optimizer" doc:"SGD of the U-Net and heads"`
	CheckpointEverySteps int             `yaml:"checkpoint_every_steps" mapstructure:"checkpoint_every_steps" doc:"also write last.ckpt every N steps; 0 = only at epoch ends"`
	LogEverySteps        int             `yaml:"log_every_steps" mapstructure:"log_every_steps" doc:"write a metrics.jsonl line every N steps"`
	ValidationMovesKeys  bool            `yaml:"validation_moves_keys" mapstructure:"validation_moves_keys" doc:"true reproduces the official bug: validation momentum-updates the key encoder and enqueues keys"`
}

// defaultTraining is the official SGD 0.03/0.9/1e-4 with the cosine schedule
// (README commands), with the kind's batch size and epochs.
func defaultTraining(batch, epochs int) Training {
	return Training{
		Epochs:        epochs,
		BatchSize:     batch,
		Optimizer:     OptimizerConfig{LR: 0.03, Momentum: 0.9, WeightDecay: 1e-4, Schedule: "cosine", Milestones: []int{120, 160}},
		LogEverySteps: 10,
	}
}

// TrainingOf returns the training settings of a training kind.
func TrainingOf(s StageSettings) (*Training, bool) {
	switch st := s.(type) {
	case *WarmupStage:
		return &st.Training, true
	case *AdversarialStage:
		return &st.Training, true
	case *MoCoStage:
		return &st.Training, true
	}
	return nil, false
}

// WarmupStage is DiRA's warm-up (official mode "dir").
type WarmupStage struct {
	Training `yaml:",inline" mapstructure:",squash"`
}

// Kind is "warmup".
func (*WarmupStage) Kind() string { return StageWarmup }

func (s *WarmupStage) problems(c Config, i int) []error { return s.Training.problems(c, i) }

// MoCoStage is the MoCo-v2 baseline (official mode "di").
type MoCoStage struct {
	Training `yaml:",inline" mapstructure:",squash"`
}

// Kind is "moco".
func (*MoCoStage) Kind() string { return StageMoCo }

func (s *MoCoStage) problems(c Config, i int) []error { return s.Training.problems(c, i) }

// AdversarialStage is DiRA's joint stage (official mode "dira").
type AdversarialStage struct {
	Training      `yaml:",inline" mapstructure:",squash"`
	DiscOptimizer DiscOptimizerConfig `yaml:"disc_optimizer" mapstructure:"disc_optimizer" doc:"Adam of the discriminator"`
	InitFrom      string              `yaml:"init_from" mapstructure:"init_from" doc:"start from the warmup stage's last or best checkpoint (official: last), or none"`
}

// Kind is "adversarial".
func (*AdversarialStage) Kind() string { return StageAdversarial }

func (s *AdversarialStage) problems(c Config, i int) []error {
	errs := s.Training.problems(c, i)
	p := fmt.Sprintf("stages[%d]", i)
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{p, key}, args...)...))
	}
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
	switch s.InitFrom {
	case "last", "best":
		if !slices.ContainsFunc(c.Stages[:i], func(b StageSettings) bool { return b.Kind() == StageWarmup }) {
			bad("init_from", "is %q but no warmup stage runs before it; set init_from: none or list warmup first", s.InitFrom)
		}
	case "none":
	default:
		bad("init_from", "must be last, best or none, got %q", s.InitFrom)
	}
	return errs
}

// ExportStage writes the artifacts of a training stage's checkpoint.
type ExportStage struct {
	From       string  `yaml:"from" mapstructure:"from" doc:"the training stage whose checkpoint is exported"`
	Checkpoint string  `yaml:"checkpoint" mapstructure:"checkpoint" doc:"last or best checkpoint of that stage"`
	Tolerance  float64 `yaml:"tolerance" mapstructure:"tolerance" doc:"max abs difference allowed between ONNX Runtime and the Go forward"`
	// Precision adds reduced-precision copies of the ONNX models, as
	// `dira export --precision` does; the fp32 files are always written.
	Precision         string `yaml:"precision" mapstructure:"precision" doc:"also write the ONNX models at this precision: fp32 (only the fp32 files), int8 (static QDQ, calibrated) or fp16 (for GPUs), with a report comparing them with fp32"`
	Calibration       string `yaml:"calibration" mapstructure:"calibration" doc:"images for int8 calibration and the report's held-out comparison: a folder, an image or a list file (needed for int8; fp16 uses synthetic radiographs without it)"`
	CalibrationCount  int    `yaml:"calibration_count" mapstructure:"calibration_count" doc:"int8: the first this many calibration images set the activation ranges; the next 16 are held out for the report"`
	CalibrationMethod string `yaml:"calibration_method" mapstructure:"calibration_method" doc:"int8: minmax (smallest and largest value seen) or percentile (99.99, outliers dropped)"`
}

// Kind is "export".
func (*ExportStage) Kind() string { return StageExport }

func (s *ExportStage) problems(c Config, i int) []error {
	var errs []error
	p := fmt.Sprintf("stages[%d]", i)
	if !slices.ContainsFunc(c.Stages[:i], func(b StageSettings) bool { _, ok := TrainingOf(b); return ok && b.Kind() == s.From }) {
		errs = append(errs, fmt.Errorf("%s.from: must name a training stage listed before it, got %q", p, s.From))
	}
	if s.Checkpoint != "last" && s.Checkpoint != "best" {
		errs = append(errs, fmt.Errorf("%s.checkpoint: must be last or best, got %q", p, s.Checkpoint))
	}
	if !(s.Tolerance > 0) {
		errs = append(errs, fmt.Errorf("%s.tolerance: must be > 0, got %g", p, s.Tolerance))
	}
	if !slices.Contains([]string{"fp32", "int8", "fp16"}, s.Precision) {
		errs = append(errs, fmt.Errorf("%s.precision: must be fp32, int8 or fp16, got %q", p, s.Precision))
	}
	if s.Precision == "int8" && s.Calibration == "" {
		errs = append(errs, fmt.Errorf("%s.calibration: precision int8 needs calibration images (a folder, an image or a list file, like the images the model will see)", p))
	}
	if s.CalibrationCount < 1 || s.CalibrationCount > maxCalibrationImages {
		errs = append(errs, fmt.Errorf("%s.calibration_count: must be in [1, %d], got %d", p, maxCalibrationImages, s.CalibrationCount))
	}
	if s.CalibrationMethod != "minmax" && s.CalibrationMethod != "percentile" {
		errs = append(errs, fmt.Errorf("%s.calibration_method: must be minmax or percentile, got %q", p, s.CalibrationMethod))
	}
	return errs
}

// maxCalibrationImages bounds calibration_count: the calibration keeps a
// histogram per activation and runs every image through ONNX Runtime.
const maxCalibrationImages = 10000

func (s Training) problems(c Config, i int) []error {
	var errs []error
	p := fmt.Sprintf("stages[%d]", i)
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
	if s.CheckpointEverySteps < 0 {
		bad("checkpoint_every_steps", "must be >= 0, got %d", s.CheckpointEverySteps)
	}
	if s.LogEverySteps < 1 {
		bad("log_every_steps", "must be >= 1, got %d", s.LogEverySteps)
	}
	return errs
}

// stageProblems checks the stages list as a whole, then each entry.
func (c Config) stageProblems() []error {
	var errs []error
	seen := map[string]int{}
	for i, s := range c.Stages {
		p := fmt.Sprintf("stages[%d]", i)
		if j, dup := seen[s.Kind()]; dup {
			errs = append(errs, fmt.Errorf("%s.name: stage %q is already stages[%d]; each stage kind runs once per run", p, s.Kind(), j))
		}
		seen[s.Kind()] = i
		errs = append(errs, s.problems(c, i)...)
	}
	return errs
}

var errNoName = errors.New("must be a mapping with a name (the stage kind)")
