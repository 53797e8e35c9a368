package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
	"dira/statedict"
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
			n += numel(torch.Size(q.T))
		}
	}
	return n
}

// Drop frees every tensor of the store.
func (p *Params) Drop() {
	for _, q := range p.list {
		torch.Drop(q.T)
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

// SetData copies values into the named entry; the shape must match exactly
// (a 0-d entry also takes shape [1]). Tests use it to load reference weights;
// loading a state dict goes through statedict.Load (Assign).
func (p *Params) SetData(name string, shape []int64, values []float32) (err error) {
	defer torch.Catch("model: set "+name, &err)
	q := p.byName[name]
	if q == nil {
		return fmt.Errorf("model: no parameter %q", name)
	}
	have := torch.Size(q.T)
	if !slices.Equal(have, shape) && !(len(have) == 0 && slices.Equal(shape, []int64{1})) {
		return fmt.Errorf("model: parameter %q: shape %v, got %v: %w", name, have, shape, ErrShapeMismatch)
	}
	src := torch.FromFloat32(values, have)
	defer torch.Drop(src)
	torch.CopyInto(q.T, src) // converts to the entry's dtype (int64 counters)
	return nil
}

// ShapeOf is the named entry's shape (statedict.Target).
func (p *Params) ShapeOf(name string) ([]int64, bool) {
	q := p.byName[name]
	if q == nil {
		return nil, false
	}
	return torch.Size(q.T), true
}

// Assign copies a state-dict tensor into the named entry (statedict.Target);
// statedict.Load has checked the name and shape.
func (p *Params) Assign(name string, t statedict.Tensor) (err error) {
	defer torch.Catch("model: assign "+name, &err)
	q := p.byName[name]
	if q == nil {
		return fmt.Errorf("model: no parameter %q", name)
	}
	shape := torch.Size(q.T)
	var src *ts.Tensor
	if t.DType == statedict.Int64 {
		src = torch.FromInt64(t.I64, shape)
	} else {
		src = torch.FromFloat32(t.F32, shape)
	}
	defer torch.Drop(src)
	torch.CopyInto(q.T, src)
	return nil
}

// Float32 returns a copy of the named entry's values and its shape.
func (p *Params) Float32(name string) (v []float32, shape []int64, err error) {
	defer torch.Catch("model: read "+name, &err)
	q := p.byName[name]
	if q == nil {
		return nil, nil, fmt.Errorf("model: no parameter %q", name)
	}
	return torch.Float32s(q.T), torch.Size(q.T), nil
}

// StateDict copies the entries whose names start with prefix, with the prefix
// removed, into a state dict: float tensors as float32, integer ones
// (num_batches_tracked, queue_ptr) as int64. The training model names its
// U-Net "encoder_q.backbone." (MoCo), so StateDict("encoder_q.backbone.")
// gives smp's bare keys, what the official code saves as unet.pth.
func (p *Params) StateDict(prefix string) (sd statedict.StateDict, err error) {
	defer torch.Catch("model: state dict", &err)
	for _, q := range p.list {
		name, ok := strings.CutPrefix(q.Name, prefix)
		if !ok {
			continue
		}
		t, err := tensorOf(name, q.T)
		if err != nil {
			return nil, err
		}
		sd = append(sd, t)
	}
	if len(sd) == 0 {
		return nil, fmt.Errorf("model: no parameter starts with %q", prefix)
	}
	return sd, nil
}

// TensorOf copies one libtorch tensor into a state-dict entry named name.
func TensorOf(name string, t *ts.Tensor) (st statedict.Tensor, err error) {
	defer torch.Catch("model: copy "+name, &err)
	return tensorOf(name, t)
}

func tensorOf(name string, t *ts.Tensor) (statedict.Tensor, error) {
	st := statedict.Tensor{Name: name, Shape: torch.Size(t)}
	switch typ := torch.TypeOf(t); typ {
	case torch.Float32:
		st.F32 = torch.Float32s(t)
	case torch.Int64:
		st.DType, st.I64 = statedict.Int64, torch.Int64s(t)
	default:
		return st, fmt.Errorf("model: %s: dtype %v (want float32 or int64)", name, typ)
	}
	return st, nil
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
	t := torch.FromFloat32(values, shape)
	if !s.frozen {
		t = torch.SetRequiresGrad(t, true)
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
