package model

import (
	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// Projection is the MoCo projection head on pooled layer4 features: with MLP,
// Sequential(Linear(C, hidden), ReLU, Linear(hidden, out)) with keys fc.0 and
// fc.2 (official --mlp); without, a single Linear with keys fc.weight/fc.bias.
// No batch norm (MoCo-v2). PyTorch default initialisation.
type Projection struct {
	FC0, FC2 *Linear // FC2 nil without MLP
}

func newProjection(s scope, in int64, c ProjectionConfig) *Projection {
	if !c.MLP {
		return &Projection{FC0: newLinear(s, in, int64(c.OutDim))}
	}
	hidden := int64(c.HiddenDim)
	if hidden == 0 {
		hidden = in
	}
	return &Projection{FC0: newLinear(s.sub("0"), in, hidden), FC2: newLinear(s.sub("2"), hidden, int64(c.OutDim))}
}

// forward maps pooled features [N, C] to embeddings [N, out] (not normalised).
func (p *Projection) forward(x *ts.Tensor) *ts.Tensor {
	h := p.FC0.forward(x)
	if p.FC2 == nil {
		return h
	}
	relu(h)
	y := p.FC2.forward(h)
	torch.Drop(h)
	return y
}

// NewProjection builds a standalone projection head with keys fc.* for the
// configured encoder, initialised from seed.
func NewProjection(c Config, seed uint64) (*Projection, *Params, error) {
	enc, err := EncoderChannels(c.Arch)
	if err != nil {
		return nil, nil, err
	}
	ps := NewParams()
	return newProjection(scope{ps: ps, rng: newRNG(seed, "projection")}.sub("fc"), enc[5], c.Projection), ps, nil
}

// Forward maps pooled features [N, C] to embeddings [N, out_dim].
func (p *Projection) Forward(x *ts.Tensor) (y *ts.Tensor, err error) {
	defer torch.Catch("model: projection forward", &err)
	return p.forward(x), nil
}
