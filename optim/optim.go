package optim

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// SGD is torch.optim.SGD(params, lr, momentum, weight_decay) with dampening 0
// and no Nesterov, written on tensors so its state (the momentum buffers) can
// be checkpointed and resumed exactly: gotch exposes libtorch's optimisers
// but not their state.
//
//	d = grad + weight_decay * p
//	buf = d                      on the first step
//	buf = momentum * buf + d     after
//	p  -= lr * buf
type SGD struct {
	Params      []*ts.Tensor
	LR          float64
	Momentum    float64
	WeightDecay float64
	Bufs        []*ts.Tensor // nil until the first step
}

// Step applies one update from the parameters' gradients; parameters without a
// gradient are skipped, as in PyTorch. The update runs in libtorch in one call
// (internal/torch.SGDStep), op for op as torch.optim.SGD.
func (o *SGD) Step() error {
	if o.Bufs == nil && o.Momentum != 0 {
		o.Bufs = make([]*ts.Tensor, len(o.Params))
	}
	bufs := o.Bufs
	if bufs == nil {
		bufs = make([]*ts.Tensor, len(o.Params))
	}
	if err := torch.SGDStep(o.Params, bufs, o.LR, o.Momentum, o.WeightDecay); err != nil {
		return fmt.Errorf("sgd step: %w", err)
	}
	return nil
}

// ZeroGrad fills the gradients with zeros, as PyTorch 1.13's zero_grad(),
// in one libtorch call.
func ZeroGrad(params []*ts.Tensor) error { return torch.ZeroGrad(params) }

// Adam is torch.optim.Adam(params, lr, betas, eps=1e-8, weight_decay=0,
// amsgrad=False), single-tensor algorithm of PyTorch 1.13:
//
//	m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
//	p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
type Adam struct {
	Params       []*ts.Tensor
	LR           float64
	Beta1, Beta2 float64
	Eps          float64
	Steps        int64
	M, V         []*ts.Tensor // nil until the first step
}

// Step applies one Adam update.
func (o *Adam) Step() (err error) {
	defer torch.Catch("adam step", &err)
	if o.M == nil {
		o.M = make([]*ts.Tensor, len(o.Params))
		o.V = make([]*ts.Tensor, len(o.Params))
		for i, p := range o.Params {
			o.M[i] = torch.Must(p.ZerosLike(false))
			o.V[i] = torch.Must(p.ZerosLike(false))
		}
	}
	o.Steps++
	bc1 := 1 - math.Pow(o.Beta1, float64(o.Steps))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.Steps))
	// One libtorch call for every parameter (glue.cpp), the same ops as
	// m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
	// p += (m / (sqrt(v)/sqrt(bc2) + eps)) * (-lr/bc1).
	torch.Check(torch.AdamStep(o.Params, o.M, o.V, o.Beta1, o.Beta2, 1/math.Sqrt(bc2), o.Eps, -o.LR/bc1))
	return nil
}

// LR returns the generator learning rate of an epoch (0-based) out of
// epochs, as the official adjust_learning_rate: cosine
// lr*0.5*(1+cos(pi*e/E)) with --cos, else x0.1 at each milestone passed.
func LR(base float64, schedule string, milestones []int, epoch, epochs int) float64 {
	switch schedule {
	case "cosine":
		return base * 0.5 * (1 + math.Cos(math.Pi*float64(epoch)/float64(epochs)))
	case "step":
		lr := base
		for _, m := range milestones {
			if epoch >= m {
				lr *= 0.1
			}
		}
		return lr
	case "constant":
		return base
	}
	panic(fmt.Sprintf("optim: unknown schedule %q", schedule))
}
