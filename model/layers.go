package model

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// Mode selects how batch normalisation behaves in a forward pass.
type Mode struct {
	// Train uses batch statistics and updates running statistics (PyTorch's
	// module.train()); false uses running statistics (module.eval()).
	Train bool
	// Groups splits the batch into this many equal ghost batches, each
	// normalised with its own statistics, as the official code's 4 GPUs do
	// without SyncBN. Only the first group updates the running statistics:
	// DDP broadcasts rank 0's buffers at every forward, so rank 0's are the
	// ones that survive. 0 or 1 = the whole batch.
	Groups int
}

// Eval is inference mode.
var Eval = Mode{}

// Conv2d is torch.nn.Conv2d (square kernel, dilation 1, groups 1).
type Conv2d struct {
	Weight, Bias    *ts.Tensor // Bias nil when bias=False
	Stride, Padding int64
}

func newConv2d(s scope, in, out, kernel, stride, padding int64, bias bool, weightInit initKind) *Conv2d {
	shape := []int64{out, in, kernel, kernel}
	c := &Conv2d{Stride: stride, Padding: padding}
	c.Weight = s.param("weight", shape, s.initWeight(shape, weightInit))
	if bias {
		var b []float32
		switch weightInit {
		case torchDefault, normal002:
			// PyTorch's default conv bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
			// DiRA's weights_init_normal leaves biases at this default (spec 4.1).
			fanIn, _ := fans(shape)
			b = s.uniform(out, 1/math.Sqrt(fanIn))
		default:
			b = s.fill(out, 0) // smp initialize_decoder / initialize_head: bias 0
		}
		c.Bias = s.param("bias", []int64{out}, b)
	}
	return c
}

func (c *Conv2d) forward(x *ts.Tensor) *ts.Tensor {
	b := c.Bias
	if b == nil {
		b = ts.None
	}
	return torch.Must(ts.Conv2d(x, c.Weight, b, []int64{c.Stride, c.Stride}, []int64{c.Padding, c.Padding}, []int64{1, 1}, 1))
}

// BatchNorm is torch.nn.BatchNorm2d with PyTorch's defaults (eps 1e-5,
// momentum 0.1, affine, tracked running statistics). gotch's own BatchNorm
// initialises the weight Uniform(0,1) and has no num_batches_tracked; this
// one matches PyTorch: weight 1, bias 0, running mean 0, var 1, counter 0.
type BatchNorm struct {
	Weight, Bias, RunningMean, RunningVar, NumBatchesTracked *ts.Tensor
}

const (
	bnEps      = 1e-5
	bnMomentum = 0.1
)

func newBatchNorm(s scope, c int64) *BatchNorm {
	return &BatchNorm{
		Weight:      s.param("weight", []int64{c}, s.fill(c, 1)),
		Bias:        s.param("bias", []int64{c}, s.fill(c, 0)),
		RunningMean: s.buffer("running_mean", torch.Zeros([]int64{c}, gotch.Float)),
		RunningVar:  s.buffer("running_var", torch.Ones([]int64{c}, gotch.Float)),
		// 0-d int64 like PyTorch (gotch cannot build an empty shape directly).
		NumBatchesTracked: s.buffer("num_batches_tracked", torch.FromInt64([]int64{0}, []int64{})),
	}
}

func (bn *BatchNorm) forward(x *ts.Tensor, m Mode) *ts.Tensor {
	if !m.Train {
		return torch.Must(ts.BatchNorm(x, bn.Weight, bn.Bias, bn.RunningMean, bn.RunningVar, false, bnMomentum, bnEps, false))
	}
	one := ts.IntScalar(1)
	torch.Check(torch.InPlace(bn.NumBatchesTracked, func() error { return bn.NumBatchesTracked.AddScalar_(one) }))
	torch.DropScalars(one)
	if m.Groups <= 1 {
		return torch.Must(ts.BatchNorm(x, bn.Weight, bn.Bias, bn.RunningMean, bn.RunningVar, true, bnMomentum, bnEps, false))
	}
	n := torch.Size(x)[0]
	if n%int64(m.Groups) != 0 {
		torch.Check(fmt.Errorf("batch of %d does not split into %d ghost batch-norm groups", n, m.Groups))
	}
	g := n / int64(m.Groups)
	parts := make([]ts.Tensor, m.Groups)
	for i := range parts {
		xi := torch.Must(x.Narrow(0, int64(i)*g, g, false))
		rm, rv := bn.RunningMean, bn.RunningVar
		if i > 0 {
			rm, rv = ts.None, ts.None
		}
		yi := torch.Must(ts.BatchNorm(xi, bn.Weight, bn.Bias, rm, rv, true, bnMomentum, bnEps, false))
		torch.Drop(xi)
		parts[i] = *yi
	}
	y := torch.Must(ts.Cat(parts, 0))
	for i := range parts {
		torch.Drop(&parts[i])
	}
	return y
}

// Linear is torch.nn.Linear with PyTorch's default initialisation.
type Linear struct{ Weight, Bias *ts.Tensor }

func newLinear(s scope, in, out int64) *Linear {
	shape := []int64{out, in}
	return &Linear{
		Weight: s.param("weight", shape, s.initWeight(shape, torchDefault)),
		Bias:   s.param("bias", []int64{out}, s.uniform(out, 1/math.Sqrt(float64(in)))),
	}
}

func (l *Linear) forward(x *ts.Tensor) *ts.Tensor {
	return torch.Must(ts.Linear(x, l.Weight, l.Bias))
}

func relu(x *ts.Tensor) *ts.Tensor {
	torch.Check(torch.InPlace(x, x.Relu_))
	return x
}

func leakyReLU(x *ts.Tensor, slope float64) *ts.Tensor {
	y, err := torch.LeakyReLU(x, slope)
	torch.Check(err)
	torch.Drop(x)
	return y
}
