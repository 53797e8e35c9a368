package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// Param is one state_dict entry.
type Param struct {
	Name   string
	T      *ts.Tensor
	Buffer bool // running statistics, num_batches_tracked, queue: saved but not trained
	Frozen bool // a parameter that receives no gradient (the MoCo key network)
}

// Params is an ordered state_dict: registration order is PyTorch's
// module-definition order, so key lists compare line by line.
type Params struct {
	list   []*Param
	byName map[string]*Param
}

// NewParams returns an empty store.
func NewParams() *Params { return &Params{byName: map[string]*Param{}} }

// Names lists the keys in order.
func (p *Params) Names() []string {
	out := make([]string, len(p.list))
	for i, q := range p.list {
		out[i] = q.Name
	}
	return out
}

// List returns the entries in order.
func (p *Params) List() []*Param { return p.list }

// Get returns the entry named name, or nil.
func (p *Params) Get(name string) *Param { return p.byName[name] }

// Trainable returns the tensors that receive gradients, in order.
func (p *Params) Trainable() []*ts.Tensor {
	var out []*ts.Tensor
	for _, q := range p.list {
		if !q.Buffer && !q.Frozen {
			out = append(out, q.T)
		}
	}
	return out
}

// Count is the number of trainable scalars whose name starts with prefix.
func (p *Params) Count(prefix string) int64 {
	var n int64
	for _, q := range p.list {
		if !q.Buffer && strings.HasPrefix(q.Name, prefix) {
			n += numel(q.T.MustSize())
		}
	}
	return n
}

// Drop frees every tensor of the store.
func (p *Params) Drop() {
	for _, q := range p.list {
		q.T.MustDrop()
	}
	p.list, p.byName = nil, map[string]*Param{}
}

func (p *Params) add(q *Param) *ts.Tensor {
	name := q.Name
	if _, dup := p.byName[name]; dup {
		panic(fmt.Sprintf("model: parameter %q registered twice", name))
	}
	p.list = append(p.list, q)
	p.byName[name] = q
	return q.T
}

// SetData copies values into the named entry; the shape must match exactly.
// It is how weights from a checkpoint or the Python reference are loaded.
func (p *Params) SetData(name string, shape []int64, values []float32) error {
	q := p.byName[name]
	if q == nil {
		return fmt.Errorf("model: no parameter %q", name)
	}
	have := q.T.MustSize()
	if !slices.Equal(have, shape) {
		return fmt.Errorf("model: parameter %q: shape %v, got %v: %w", name, have, shape, ErrShapeMismatch)
	}
	src := ts.MustOfSlice(values)
	defer src.MustDrop()
	if q.T.DType() != gotch.Float {
		conv := src.MustTotype(q.T.DType(), false)
		defer conv.MustDrop()
		src = conv
	}
	var view *ts.Tensor
	if len(shape) == 0 {
		view = src.MustSqueeze(false) // gotch cannot view to an empty shape
	} else {
		view = src.MustView(shape, false)
	}
	defer view.MustDrop()
	torch.NoGrad(func() { q.T.Copy_(view) })
	return nil
}

// Float32 returns a copy of the named entry's values and its shape.
func (p *Params) Float32(name string) ([]float32, []int64, error) {
	q := p.byName[name]
	if q == nil {
		return nil, nil, fmt.Errorf("model: no parameter %q", name)
	}
	return Values(q.T), q.T.MustSize(), nil
}

// Values copies a tensor's elements (any float or integer dtype) to float32.
func Values(t *ts.Tensor) []float32 {
	src := t
	if t.DType() != gotch.Float {
		src = t.MustTotype(gotch.Float, false)
		defer src.MustDrop()
	}
	c := src.MustContiguous(false)
	defer c.MustDrop()
	out := make([]float32, c.Numel())
	c.MustCopyData(out, uint(len(out)))
	return out
}

// ErrShapeMismatch reports a tensor whose shape differs from the network's.
var ErrShapeMismatch = fmt.Errorf("shape mismatch")

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// scope registers parameters under a key prefix and draws their initial
// values from a seeded generator, so a network is identical for a given seed
// whatever libtorch's own generator state is.
type scope struct {
	ps     *Params
	prefix string
	rng    *rand.Rand
	frozen bool
}

func (s scope) sub(name string) scope {
	if s.prefix != "" {
		name = s.prefix + "." + name
	}
	return scope{ps: s.ps, prefix: name, rng: s.rng, frozen: s.frozen}
}

func (s scope) key(name string) string {
	if s.prefix == "" {
		return name
	}
	return s.prefix + "." + name
}

// param registers a trainable tensor with the given values.
func (s scope) param(name string, shape []int64, values []float32) *ts.Tensor {
	t := ts.MustOfSlice(values).MustView(shape, true)
	if !s.frozen {
		t = t.MustSetRequiresGrad(true, true)
	}
	return s.ps.add(&Param{Name: s.key(name), T: t, Frozen: s.frozen})
}

// buffer registers a non-trainable tensor.
func (s scope) buffer(name string, t *ts.Tensor) *ts.Tensor {
	return s.ps.add(&Param{Name: s.key(name), T: t, Buffer: true})
}

func (s scope) fill(n int64, v float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func (s scope) normal(n int64, std float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(s.rng.NormFloat64() * std)
	}
	return out
}

func (s scope) uniform(n int64, bound float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32((2*s.rng.Float64() - 1) * bound)
	}
	return out
}

// Fans as torch.nn.init._calculate_fan_in_and_fan_out.
func fans(shape []int64) (fanIn, fanOut float64) {
	recept := int64(1)
	for _, d := range shape[2:] {
		recept *= d
	}
	return float64(shape[1] * recept), float64(shape[0] * recept)
}

// Init schemes (torch.nn.init names).
type initKind int

const (
	kaimingNormalFanOut initKind = iota // torchvision ResNet convs
	kaimingUniformFanIn                 // smp initialize_decoder convs
	xavierUniform                       // smp initialize_head
	torchDefault                        // nn.Conv2d / nn.Linear reset_parameters: kaiming_uniform(a=sqrt(5))
	normal002                           // DiRA weights_init_normal: N(0, 0.02)
)

func (s scope) initWeight(shape []int64, k initKind) []float32 {
	fanIn, fanOut := fans(shape)
	n := numel(shape)
	switch k {
	case kaimingNormalFanOut:
		return s.normal(n, math.Sqrt(2/fanOut))
	case kaimingUniformFanIn:
		return s.uniform(n, math.Sqrt(2)*math.Sqrt(3/fanIn))
	case xavierUniform:
		return s.uniform(n, math.Sqrt(6/(fanIn+fanOut)))
	case torchDefault:
		return s.uniform(n, 1/math.Sqrt(fanIn))
	case normal002:
		return s.normal(n, 0.02)
	}
	panic("model: unknown init")
}
