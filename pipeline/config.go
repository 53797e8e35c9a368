package pipeline

import (
	"dira/data"
	"dira/model"
)

// Config is everything one run needs. Its YAML form is what `dira config
// defaults` prints and what the run folder's config.yaml holds.
type Config struct {
	Run    RunConfig     `yaml:"run" mapstructure:"run" doc:"where and how the run executes"`
	Data   data.Config   `yaml:"data" mapstructure:"data" doc:"images, views and the restoration distortion"`
	Model  model.Config  `yaml:"model" mapstructure:"model" doc:"networks (architecture fields: fixed for the life of a run)"`
	MoCo   MoCoConfig    `yaml:"moco" mapstructure:"moco" doc:"instance discrimination (MoCo-v2)"`
	Losses LossConfig    `yaml:"losses" mapstructure:"losses" doc:"loss weights, DiRA Eq. (4): L = l_dis*L_dis + l_res*L_res + l_adv*L_adv"`
	Stages []StageConfig `yaml:"stages" mapstructure:"stages" doc:"stages run in order; a completed stage is skipped on re-run"`
}

// RunConfig names the run and the machine resources it uses.
type RunConfig struct {
	Name      string `yaml:"name" mapstructure:"name" doc:"run name; the run folder is <output_dir>/<name>"`
	OutputDir string `yaml:"output_dir" mapstructure:"output_dir" doc:"folder that holds run folders"`
	Seed      uint64 `yaml:"seed" mapstructure:"seed" doc:"seed of every random draw (weights, queue, data order, augmentations)"`
	Threads   int    `yaml:"threads" mapstructure:"threads" doc:"libtorch intra-op threads"`
	Device    string `yaml:"device" mapstructure:"device" doc:"training device: cpu (libtorch here is CPU-only)"`
}

// MoCoConfig holds the MoCo-v2 settings (spec 2.2).
type MoCoConfig struct {
	QueueSize     int     `yaml:"queue_size" mapstructure:"queue_size" doc:"negative keys in the queue, K; a multiple of every training stage's batch_size"`
	Momentum      float64 `yaml:"momentum" mapstructure:"momentum" doc:"key encoder momentum m in theta_k = m*theta_k + (1-m)*theta_q"`
	Temperature   float64 `yaml:"temperature" mapstructure:"temperature" doc:"InfoNCE temperature T (official --moco-t 0.2)"`
	GhostBNGroups int     `yaml:"ghost_bn_groups" mapstructure:"ghost_bn_groups" doc:"batch-norm groups per batch, emulating the official per-GPU BN and shuffle-BN (4 GPUs)"`
}

// LossConfig holds the loss weights (official --contrastive_weight,
// --mse_weight, --adv_weight).
type LossConfig struct {
	ContrastiveWeight float64 `yaml:"contrastive_weight" mapstructure:"contrastive_weight" doc:"weight of the InfoNCE term, lambda_dis"`
	MSEWeight         float64 `yaml:"mse_weight" mapstructure:"mse_weight" doc:"weight of the restoration MSE term, lambda_res"`
	AdvWeight         float64 `yaml:"adv_weight" mapstructure:"adv_weight" doc:"weight of the generator's LSGAN term, lambda_adv (adversarial stage)"`
}

// Stage kinds. warmup is the official mode "dir", adversarial is "dira", moco
// is "di" (the MoCo-v2 baseline), export writes the ONNX and .pth artifacts.
const (
	StageWarmup      = "warmup"
	StageAdversarial = "adversarial"
	StageMoCo        = "moco"
	StageExport      = "export"
)

// StageKinds lists the stage names a config may use.
var StageKinds = []string{StageWarmup, StageAdversarial, StageMoCo, StageExport}

// StageConfig is one entry of Config.Stages. Training fields are ignored by
// the export stage and export fields by training stages.
type StageConfig struct {
	Name                 string              `yaml:"name" mapstructure:"name" doc:"stage kind: warmup, adversarial, moco or export"`
	Epochs               int                 `yaml:"epochs" mapstructure:"epochs" doc:"passes over the training set"`
	StepsPerEpoch        int                 `yaml:"steps_per_epoch" mapstructure:"steps_per_epoch" doc:"cap on steps per epoch; 0 = the whole training set"`
	BatchSize            int                 `yaml:"batch_size" mapstructure:"batch_size" doc:"images per step (total over the emulated GPUs)"`
	Optimizer            OptimizerConfig     `yaml:"optimizer" mapstructure:"optimizer" doc:"SGD of the U-Net and heads"`
	DiscOptimizer        DiscOptimizerConfig `yaml:"disc_optimizer" mapstructure:"disc_optimizer" doc:"Adam of the discriminator (adversarial stage)"`
	InitFrom             string              `yaml:"init_from" mapstructure:"init_from" doc:"adversarial: start from the previous stage's last or best checkpoint"`
	CheckpointEverySteps int                 `yaml:"checkpoint_every_steps" mapstructure:"checkpoint_every_steps" doc:"also write last.ckpt every N steps; 0 = only at epoch ends"`
	LogEverySteps        int                 `yaml:"log_every_steps" mapstructure:"log_every_steps" doc:"write a metrics.jsonl line every N steps"`
	ValidationMovesKeys  bool                `yaml:"validation_moves_keys" mapstructure:"validation_moves_keys" doc:"true reproduces the official bug: validation momentum-updates the key encoder and enqueues keys"`
	From                 string              `yaml:"from" mapstructure:"from" doc:"export: the training stage whose checkpoint is exported"`
	Checkpoint           string              `yaml:"checkpoint" mapstructure:"checkpoint" doc:"export: last or best checkpoint of that stage"`
	Tolerance            float64             `yaml:"tolerance" mapstructure:"tolerance" doc:"export: max abs difference allowed between ONNX Runtime and the Go forward"`
}

// OptimizerConfig is the generator's SGD (spec 4.4).
type OptimizerConfig struct {
	LR          float64 `yaml:"lr" mapstructure:"lr" doc:"base learning rate"`
	Momentum    float64 `yaml:"momentum" mapstructure:"momentum" doc:"SGD momentum"`
	WeightDecay float64 `yaml:"weight_decay" mapstructure:"weight_decay" doc:"L2 weight decay on all parameters (BN and biases included, as official)"`
	Schedule    string  `yaml:"schedule" mapstructure:"schedule" doc:"cosine (per epoch, official --cos), step (x0.1 at milestones) or constant"`
	Milestones  []int   `yaml:"milestones" mapstructure:"milestones" doc:"epochs where the step schedule multiplies lr by 0.1"`
}

// DiscOptimizerConfig is the discriminator's Adam, constant learning rate.
type DiscOptimizerConfig struct {
	LR    float64 `yaml:"lr" mapstructure:"lr" doc:"Adam learning rate"`
	Beta1 float64 `yaml:"beta1" mapstructure:"beta1" doc:"Adam beta1"`
	Beta2 float64 `yaml:"beta2" mapstructure:"beta2" doc:"Adam beta2"`
}

// Default is the official DiRA configuration on the built-in synthetic data,
// with no stages: a config file lists the stages it wants.
func Default() Config {
	return Config{
		Run:    RunConfig{Name: "dira", OutputDir: "runs", Seed: 0, Threads: 2, Device: "cpu"},
		Data:   data.DefaultConfig(),
		Model:  model.DefaultConfig(),
		MoCo:   MoCoConfig{QueueSize: 65536, Momentum: 0.999, Temperature: 0.2, GhostBNGroups: 4},
		Losses: LossConfig{ContrastiveWeight: 1, MSEWeight: 10, AdvWeight: 0.001},
		Stages: []StageConfig{},
	}
}

// DefaultStage is the official setting of a stage kind: batch 256 and 1200
// epochs for warmup and moco, batch 16 and 400 epochs for adversarial
// (README commands), SGD 0.03/0.9/1e-4 with the cosine schedule, Adam 2e-4
// (0.5, 0.999) for the discriminator.
func DefaultStage(name string) StageConfig {
	s := StageConfig{
		Name:          name,
		Epochs:        1200,
		BatchSize:     256,
		Optimizer:     OptimizerConfig{LR: 0.03, Momentum: 0.9, WeightDecay: 1e-4, Schedule: "cosine", Milestones: []int{120, 160}},
		DiscOptimizer: DiscOptimizerConfig{LR: 2e-4, Beta1: 0.5, Beta2: 0.999},
		LogEverySteps: 10,
	}
	switch name {
	case StageAdversarial:
		s.Epochs, s.BatchSize, s.InitFrom = 400, 16, "last"
	case StageExport:
		s.Epochs, s.BatchSize = 0, 0
		s.From, s.Checkpoint, s.Tolerance = StageAdversarial, "best", 1e-4
	}
	return s
}

// IsTraining reports whether the stage kind trains networks.
func (s StageConfig) IsTraining() bool { return s.Name != StageExport }
