package model

import (
	"fmt"
	"slices"
)

// Config describes the networks: the U-Net (encoder + decoder + segmentation
// head), the projection head and the discriminator. Every field is an
// architecture field: a checkpoint made with one Config cannot be resumed with
// another.
type Config struct {
	Arch            string           `yaml:"arch" mapstructure:"arch" doc:"encoder: resnet18, resnet34, resnet50 or resnet101 (torchvision structure and names)"`
	DecoderChannels []int            `yaml:"decoder_channels" mapstructure:"decoder_channels" doc:"output channels of the five U-Net decoder blocks (smp 0.1.3 default 256,128,64,32,16)"`
	OutChannels     int              `yaml:"out_channels" mapstructure:"out_channels" doc:"channels of the segmentation head output (1 = grayscale restoration)"`
	Activation      string           `yaml:"activation" mapstructure:"activation" doc:"segmentation head activation: sigmoid or identity"`
	Projection      ProjectionConfig `yaml:"projection" mapstructure:"projection" doc:"projection head on the pooled last encoder stage"`
	Discriminator   DiscConfig       `yaml:"discriminator" mapstructure:"discriminator" doc:"patch discriminator of the adversarial stage"`
}

// ProjectionConfig is the MoCo projection head (the official `fc`).
type ProjectionConfig struct {
	MLP       bool `yaml:"mlp" mapstructure:"mlp" doc:"true: Linear-ReLU-Linear (official --mlp); false: a single Linear"`
	HiddenDim int  `yaml:"hidden_dim" mapstructure:"hidden_dim" doc:"hidden width of the MLP; 0 = the encoder's last-stage channels (2048 for resnet50)"`
	OutDim    int  `yaml:"out_dim" mapstructure:"out_dim" doc:"embedding size fed to InfoNCE (official --moco-dim)"`
}

// DiscConfig is the patch discriminator (spec 4.1).
type DiscConfig struct {
	InChannels int `yaml:"in_channels" mapstructure:"in_channels" doc:"channels of the image the discriminator judges (the 1-channel target or restoration)"`
}

// DefaultConfig is the official DiRA network: smp Unet('resnet50') with a
// sigmoid head, the --mlp projection head to 128 dimensions, and a 1-channel
// discriminator.
func DefaultConfig() Config {
	return Config{
		Arch:            "resnet50",
		DecoderChannels: []int{256, 128, 64, 32, 16},
		OutChannels:     1,
		Activation:      "sigmoid",
		Projection:      ProjectionConfig{MLP: true, HiddenDim: 0, OutDim: 128},
		Discriminator:   DiscConfig{InChannels: 1},
	}
}

// Arches lists the supported encoders.
var Arches = []string{"resnet18", "resnet34", "resnet50", "resnet101"}

// Activations lists the supported segmentation head activations.
var Activations = []string{"sigmoid", "identity"}

// Validate returns every problem of c, each named by its YAML path below path.
func (c Config) Validate(path string) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{path, key}, args...)...))
	}
	if !slices.Contains(Arches, c.Arch) {
		bad("arch", "must be one of %v, got %q", Arches, c.Arch)
	}
	if len(c.DecoderChannels) != 5 {
		bad("decoder_channels", "must list 5 block widths, got %d", len(c.DecoderChannels))
	}
	for i, ch := range c.DecoderChannels {
		if ch < 1 {
			bad(fmt.Sprintf("decoder_channels[%d]", i), "must be >= 1, got %d", ch)
		}
	}
	if c.OutChannels < 1 {
		bad("out_channels", "must be >= 1, got %d", c.OutChannels)
	}
	if !slices.Contains(Activations, c.Activation) {
		bad("activation", "must be one of %v, got %q", Activations, c.Activation)
	}
	if c.Projection.HiddenDim < 0 {
		bad("projection.hidden_dim", "must be >= 0, got %d", c.Projection.HiddenDim)
	}
	if c.Projection.OutDim < 1 {
		bad("projection.out_dim", "must be >= 1, got %d", c.Projection.OutDim)
	}
	if c.Discriminator.InChannels < 1 {
		bad("discriminator.in_channels", "must be >= 1, got %d", c.Discriminator.InChannels)
	}
	return errs
}
