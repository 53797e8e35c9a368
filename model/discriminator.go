package model

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// Discriminator is DiRA's patch discriminator (spec 4.1, from PyTorch-GAN's
// context encoder): five 3x3 convs with padding 1 and strides 2,2,2,1,1;
// LeakyReLU(0.2) after the first four, InstanceNorm2d (affine=False, no running
// stats) after convs 2-4, no sigmoid. Keys model.{0,2,5,8,11}. For a 224 input
// the output is [N, 1, 28, 28]; for any H, W it is [N, 1, H/8, W/8].
type Discriminator struct {
	Convs [5]*Conv2d
}

var discKeys = [5]int{0, 2, 5, 8, 11}

// NewDiscriminator builds the discriminator under the key prefix "model":
// conv weights N(0, 0.02) (weights_init_normal), biases PyTorch's default.
func NewDiscriminator(ps *Params, c DiscConfig, seed uint64) *Discriminator {
	s := scope{ps: ps, rng: newRNG(seed, "discriminator")}.sub("model")
	chans := [6]int64{int64(c.InChannels), 64, 128, 256, 512, 1}
	strides := [5]int64{2, 2, 2, 1, 1}
	d := &Discriminator{}
	for i := range 5 {
		d.Convs[i] = newConv2d(s.sub(fmt.Sprint(discKeys[i])), chans[i], chans[i+1], 3, strides[i], 1, true, normal002)
	}
	return d
}

// Forward returns the patch scores [N, 1, H/8, W/8] for images x [N, C, H, W].
func (d *Discriminator) Forward(x *ts.Tensor) (y *ts.Tensor, err error) {
	defer torch.Catch("model: discriminator forward", &err)
	h := d.Convs[0].forward(x)
	h = leakyReLU(h, 0.2)
	for i := 1; i < 4; i++ {
		c := d.Convs[i].forward(h)
		torch.Drop(h)
		n := torch.Must(ts.InstanceNorm(c, ts.None, ts.None, ts.None, ts.None, true, 0.1, 1e-5, false))
		torch.Drop(c)
		h = leakyReLU(n, 0.2)
	}
	y = d.Convs[4].forward(h)
	torch.Drop(h)
	return y, nil
}
