package pipeline

import (
	"dira/data"
	"dira/model"
)

// Config is everything one run needs. Its YAML form is what `dira config
// defaults` prints and what the run folder's config.yaml holds.
type Config struct {
	Run    RunConfig    `yaml:"run" mapstructure:"run" doc:"where and how the run executes"`
	Data   data.Config  `yaml:"data" mapstructure:"data" doc:"images, views and the restoration distortion"`
	Model  model.Config `yaml:"model" mapstructure:"model" doc:"networks (architecture fields: fixed for the life of a run)"`
	MoCo   MoCoConfig   `yaml:"moco" mapstructure:"moco" doc:"instance discrimination (MoCo-v2)"`
	Losses LossConfig   `yaml:"losses" mapstructure:"losses" doc:"loss weights, DiRA Eq. (4): L = l_dis*L_dis + l_res*L_res + l_adv*L_adv"`
	Stages Stages       `yaml:"stages" mapstructure:"stages" doc:"stages run in order; a completed stage is skipped on re-run"`
}

// RunConfig names the run and the machine resources it uses.
type RunConfig struct {
	Name      string `yaml:"name" mapstructure:"name" doc:"run name; the run folder is <output_dir>/<name>"`
	OutputDir string `yaml:"output_dir" mapstructure:"output_dir" doc:"folder that holds run folders"`
	Seed      uint64 `yaml:"seed" mapstructure:"seed" doc:"seed of every random draw (weights, queue, data order, augmentations)"`
	Threads   int    `yaml:"threads" mapstructure:"threads" doc:"libtorch intra-op threads"`
	Device    string `yaml:"device" mapstructure:"device" doc:"training device: cpu (libtorch here is CPU-only)"`
	Precision string `yaml:"precision" mapstructure:"precision" doc:"training arithmetic: fp32 (faithful), bf16 (autocast to bfloat16 for convolutions and matrix products; weights, optimiser state, queue and BN statistics stay fp32) or fp16 (CUDA builds only, with dynamic loss scaling)"`
}

// The values of run.precision.
const (
	PrecisionFP32 = "fp32"
	PrecisionBF16 = "bf16"
	PrecisionFP16 = "fp16"
)

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
		Run:    RunConfig{Name: "dira", OutputDir: "runs", Seed: 0, Threads: 2, Device: "cpu", Precision: PrecisionFP32},
		Data:   data.DefaultConfig(),
		Model:  model.DefaultConfig(),
		MoCo:   MoCoConfig{QueueSize: 65536, Momentum: 0.999, Temperature: 0.2, GhostBNGroups: 4},
		Losses: LossConfig{ContrastiveWeight: 1, MSEWeight: 10, AdvWeight: 0.001},
		Stages: Stages{},
	}
}

// DataFor is the data settings a stage of kind sees: the config's, with the
// restoration target (official modes dir and dira) unless the kind is moco
// (mode di: two undistorted views, no target). Restoration is derived, never
// a user key, so it cannot contradict the stage.
func (c Config) DataFor(kind string) data.Config {
	d := c.Data
	d.Restoration = kind != StageMoCo
	return d
}
