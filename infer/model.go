package infer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Kind says what an exported model computes.
type Kind string

const (
	// KindEncoder maps images to pooled features [N,C] (encoder.onnx,
	// output "features").
	KindEncoder Kind = "encoder"
	// KindUNet maps images to masks [N,K,H,W] (unet.onnx, output "mask";
	// also a fine-tuned segmenter.onnx).
	KindUNet Kind = "unet"
	// KindClassifier maps images to class probabilities [N,C]
	// (classifier.onnx, output "probabilities").
	KindClassifier Kind = "classifier"
)

// Model is an exported dira model opened for batched runs over images:
// one float32 input [N,3,H,W] with fixed H and W, and either a "features"
// output [N,C] or a "mask" output [N,K,H,W].
type Model struct {
	*Session
	Kind          Kind
	Input, Output string
	Height, Width int
	// Channels is C of the features or probabilities, or K of the mask.
	Channels int
	// Labels names a classifier's outputs (its "labels" metadata), in
	// order; "class_<i>" when the model does not say.
	Labels []string
	// ResizeSize and ResizeShorter are a classifier's evaluation transform
	// (its "eval_resize" metadata): resize, then center crop Height x
	// Width. 0: resize to the input size directly.
	ResizeSize    int
	ResizeShorter bool
}

// OpenModel opens the ONNX model at path and checks that it has the shape
// of dira's exports; every error names the file.
func OpenModel(path string, opts SessionOptions) (*Model, error) {
	s, err := NewSession(path, opts)
	if err != nil {
		return nil, err
	}
	m, err := describe(s)
	if err != nil {
		s.Close()
		return nil, err
	}
	return m, nil
}

func describe(s *Session) (*Model, error) {
	ins := s.Inputs()
	if len(ins) != 1 {
		return nil, fmt.Errorf("infer: model %s has %d inputs, want one image input [N,3,H,W]", s.path, len(ins))
	}
	in := ins[0]
	if sh := in.Shape; !in.Float || len(sh) != 4 || sh[1] != 3 || sh[2] <= 0 || sh[3] <= 0 {
		return nil, fmt.Errorf("infer: model %s: input %s, want float32 [N,3,H,W] with fixed H and W (an image batch as dira exports it)",
			s.path, shapeString(in))
	}
	m := &Model{Session: s, Input: in.Name, Height: int(in.Shape[2]), Width: int(in.Shape[3])}
	outs := s.Outputs()
	pick := func(name string) (TensorInfo, bool) {
		for _, o := range outs {
			if o.Name == name {
				return o, true
			}
		}
		if len(outs) == 1 {
			return outs[0], true
		}
		return TensorInfo{}, false
	}
	if o, ok := pick("probabilities"); ok && o.Name == "probabilities" && len(o.Shape) == 2 && o.Float {
		m.Kind, m.Output, m.Channels = KindClassifier, o.Name, int(o.Shape[1])
		if err := m.classifierMetadata(); err != nil {
			return nil, err
		}
	} else if o, ok := pick("features"); ok && len(o.Shape) == 2 && o.Float {
		m.Kind, m.Output, m.Channels = KindEncoder, o.Name, int(o.Shape[1])
	} else if o, ok := pick("mask"); ok && len(o.Shape) == 4 && o.Float {
		m.Kind, m.Output, m.Channels = KindUNet, o.Name, int(o.Shape[1])
	} else {
		var got []string
		for _, o := range outs {
			got = append(got, shapeString(o))
		}
		return nil, fmt.Errorf("infer: model %s: outputs %s; want \"features\" float32 [N,C] (encoder), \"probabilities\" float32 [N,C] (classifier) or \"mask\" float32 [N,K,H,W] (U-Net)",
			s.path, strings.Join(got, ", "))
	}
	return m, nil
}

// shapeString renders "name float32 [N,3,224,224]" with N for dynamic dims.
func shapeString(t TensorInfo) string {
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		if d < 0 {
			dims[i] = "?"
			if i == 0 {
				dims[i] = "N"
			}
		} else {
			dims[i] = fmt.Sprint(d)
		}
	}
	typ := "float32"
	if !t.Float {
		typ = "non-float32"
	}
	return fmt.Sprintf("%q %s [%s]", t.Name, typ, strings.Join(dims, ","))
}

// classifierMetadata reads a classifier's label names and evaluation
// transform from its metadata (written by export.WriteClassifier).
func (m *Model) classifierMetadata() error {
	meta, err := m.Metadata()
	if err != nil {
		return err
	}
	if l := meta["labels"]; l != "" {
		if err := json.Unmarshal([]byte(l), &m.Labels); err != nil {
			return fmt.Errorf("infer: model %s: labels metadata %q: %w", m.path, l, err)
		}
	}
	if len(m.Labels) != m.Channels {
		m.Labels = make([]string, m.Channels)
		for i := range m.Labels {
			m.Labels[i] = fmt.Sprintf("class_%d", i)
		}
	}
	if r := meta["eval_resize"]; r != "" {
		n, err := strconv.Atoi(r)
		if err != nil || n < 0 || n > 1<<15 {
			return fmt.Errorf("infer: model %s: eval_resize metadata %q is not a size", m.path, r)
		}
		m.ResizeSize = n
	}
	m.ResizeShorter = meta["eval_resize_shorter"] == "true"
	return nil
}
