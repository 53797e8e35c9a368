package model

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// DecoderBlock is smp 0.1.3's DecoderBlock without attention: nearest 2x
// upsampling, concatenation with the skip, then two Conv3x3-BN-ReLU
// (keys conv1.0 / conv1.1 and conv2.0 / conv2.1).
type DecoderBlock struct {
	Conv1 *Conv2d
	Bn1   *BatchNorm
	Conv2 *Conv2d
	Bn2   *BatchNorm
}

// Decoder is smp's UnetDecoder with center=False (Identity).
type Decoder struct{ Blocks []*DecoderBlock }

// newDecoder builds the blocks from the encoder's channels: block i takes
// in[i] + skip[i] channels, where in = [enc[5], dec[0..3]] and
// skip = [enc[4], enc[3], enc[2], enc[1], 0] (the input f0 is never a skip).
func newDecoder(s scope, enc [6]int64, dec []int) *Decoder {
	in := []int64{enc[5], int64(dec[0]), int64(dec[1]), int64(dec[2]), int64(dec[3])}
	skip := []int64{enc[4], enc[3], enc[2], enc[1], 0}
	d := &Decoder{}
	for i := range 5 {
		bs := s.sub(fmt.Sprintf("blocks.%d", i))
		out := int64(dec[i])
		d.Blocks = append(d.Blocks, &DecoderBlock{
			Conv1: newConv2d(bs.sub("conv1.0"), in[i]+skip[i], out, 3, 1, 1, false, kaimingUniformFanIn),
			Bn1:   newBatchNorm(bs.sub("conv1.1"), out),
			Conv2: newConv2d(bs.sub("conv2.0"), out, out, 3, 1, 1, false, kaimingUniformFanIn),
			Bn2:   newBatchNorm(bs.sub("conv2.1"), out),
		})
	}
	return d
}

// forward runs the decoder on f1..f5; it does not drop them.
func (d *Decoder) forward(f [5]*ts.Tensor, m Mode) *ts.Tensor {
	x := f[4]
	owned := false
	for i, b := range d.Blocks {
		sz := torch.Size(x)
		// F.interpolate(scale_factor=2, mode="nearest"): out = floor(in*2).
		up := torch.Must(x.UpsampleNearest2d([]int64{sz[2] * 2, sz[3] * 2}, []float64{2}, []float64{2}, owned))
		if i < 4 {
			skip := f[3-i]
			cat := torch.Must(ts.Cat([]ts.Tensor{*up, *skip}, 1))
			torch.Drop(up)
			up = cat
		}
		c := b.Conv1.forward(up)
		torch.Drop(up)
		h := relu(b.Bn1.forward(c, m))
		torch.Drop(c)
		c = b.Conv2.forward(h)
		torch.Drop(h)
		x = relu(b.Bn2.forward(c, m))
		torch.Drop(c)
		owned = true
	}
	return x
}

// UNet is smp.Unet(arch, encoder_weights=None, decoder_channels, classes,
// activation) with keys encoder.*, decoder.*, segmentation_head.0.*.
type UNet struct {
	Encoder    *ResNet
	Decoder    *Decoder
	Head       *Conv2d // segmentation_head.0: Conv3x3(dec[4] -> classes), bias, xavier_uniform
	Activation string  // sigmoid or identity
}

func newUNet(s scope, c Config) (*UNet, error) {
	enc, err := EncoderChannels(c.Arch)
	if err != nil {
		return nil, err
	}
	e, err := newResNet(s.sub("encoder"), c.Arch)
	if err != nil {
		return nil, err
	}
	u := &UNet{Encoder: e, Activation: c.Activation}
	u.Decoder = newDecoder(s.sub("decoder"), enc, c.DecoderChannels)
	u.Head = newConv2d(s.sub("segmentation_head.0"), int64(c.DecoderChannels[4]), int64(c.OutChannels), 3, 1, 1, true, xavierUniform)
	return u, nil
}

// decode runs decoder and head on the encoder stages (not dropped) and
// returns the activated mask [N, classes, H, W].
func (u *UNet) decode(f [5]*ts.Tensor, m Mode) *ts.Tensor {
	d := u.Decoder.forward(f, m)
	y := u.Head.forward(d)
	torch.Drop(d)
	if u.Activation == "sigmoid" {
		y = torch.Must(y.Sigmoid(true))
	}
	return y
}

// Forward returns the U-Net output [N, classes, H, W] for x [N, 3, H, W]
// (H and W multiples of 32).
func (u *UNet) Forward(x *ts.Tensor, m Mode) (mask *ts.Tensor, err error) {
	defer torch.Catch("model: unet forward", &err)
	f := u.Encoder.forward(x, m)
	defer torch.Drop(f[:]...)
	return u.decode(f, m), nil
}

// Features returns the encoder's global-average-pooled last stage [N, C]:
// what a classifier built on the encoder sees (the `features` of encoder.onnx).
func (u *UNet) Features(x *ts.Tensor, m Mode) (feat *ts.Tensor, err error) {
	defer torch.Catch("model: encoder forward", &err)
	f := u.Encoder.forward(x, m)
	defer torch.Drop(f[:]...)
	return pool(f[4]), nil
}

// pool is avgpool + flatten: [N, C, h, w] -> [N, C].
func pool(x *ts.Tensor) *ts.Tensor {
	p := torch.Must(x.AdaptiveAvgPool2d([]int64{1, 1}, false))
	return torch.Must(p.Flatten(1, -1, true))
}

// NewUNet builds a standalone U-Net whose keys are smp's bare names
// (encoder.*, decoder.*, segmentation_head.*), initialised from seed.
func NewUNet(c Config, seed uint64) (*UNet, *Params, error) {
	ps := NewParams()
	u, err := newUNet(scope{ps: ps, rng: newRNG(seed, "unet")}, c)
	if err != nil {
		ps.Drop()
		return nil, nil, err
	}
	return u, ps, nil
}
