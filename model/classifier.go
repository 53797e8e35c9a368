package model

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// Classifier is the downstream classifier of DiRA's benchmark code
// (BenchmarkTransferLearning, models.py ClassificationNet): torchvision's
// ResNet whose fc is a new Linear(C, classes), weights N(0, 0.01) and bias 0.
// Keys are torchvision's (conv1.weight, layer1.0.bn1.running_mean, ...) and
// the head's: fc.0.* when the official model wraps it with a Sigmoid
// (multi-label, Sequential(Linear, Sigmoid)), fc.* otherwise (multi-class).
// Forward returns logits; the caller applies the sigmoid or softmax.
type Classifier struct {
	Encoder *ResNet
	FC      *Linear
	Classes int
	HeadKey string // "fc.0" or "fc"
}

// NewClassifier builds a classifier for classes outputs with the encoder of
// c.Arch, initialised from seed: the encoder as torchvision does, the head
// N(0, 0.01) with bias 0 as the official code re-initialises it.
func NewClassifier(c Config, classes int, headKey string, seed uint64) (*Classifier, *Params, error) {
	if classes < 1 {
		return nil, nil, fmt.Errorf("model: a classifier needs >= 1 class, got %d", classes)
	}
	if headKey != "fc" && headKey != "fc.0" {
		return nil, nil, fmt.Errorf("model: classifier head key must be fc or fc.0, got %q", headKey)
	}
	enc, err := EncoderChannels(c.Arch)
	if err != nil {
		return nil, nil, err
	}
	ps := NewParams()
	s := scope{ps: ps, rng: newRNG(seed, "classifier")}
	r, err := newResNet(s, c.Arch)
	if err != nil {
		ps.Drop()
		return nil, nil, err
	}
	hs := s.sub(headKey)
	in, out := enc[5], int64(classes)
	fc := &Linear{
		Weight: hs.param("weight", []int64{out, in}, hs.normal(out*in, 0.01)),
		Bias:   hs.param("bias", []int64{out}, hs.fill(out, 0)),
	}
	return &Classifier{Encoder: r, FC: fc, Classes: classes, HeadKey: headKey}, ps, nil
}

// Forward returns the logits [N, classes] of x [N, 3, H, W].
func (m *Classifier) Forward(x *ts.Tensor, mode Mode) (logits *ts.Tensor, err error) {
	defer torch.Catch("model: classifier forward", &err)
	p := m.features(x, mode)
	defer torch.Drop(p)
	return m.FC.forward(p), nil
}

// Features returns the pooled encoder output [N, C] the head sees.
func (m *Classifier) Features(x *ts.Tensor, mode Mode) (feat *ts.Tensor, err error) {
	defer torch.Catch("model: classifier encoder", &err)
	return m.features(x, mode), nil
}

// Head maps pooled features [N, C] to logits [N, classes].
func (m *Classifier) Head(feat *ts.Tensor) (logits *ts.Tensor, err error) {
	defer torch.Catch("model: classifier head", &err)
	return m.FC.forward(feat), nil
}

func (m *Classifier) features(x *ts.Tensor, mode Mode) *ts.Tensor {
	f := m.Encoder.forward(x, mode)
	torch.Drop(f[:4]...)
	p := pool(f[4])
	torch.Drop(f[4])
	return p
}
