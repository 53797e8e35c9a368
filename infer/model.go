package infer

import (
	"encoding/json"
	"fmt"
	"os"
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
	// FixedBatch is N when the model takes batches of exactly N images
	// (its input's first dimension is a number, not a name); 0 when any
	// batch size goes. Run then runs batches of FixedBatch and pads the
	// last one.
	FixedBatch int
	// Labels names a classifier's outputs (its "labels" metadata), in
	// order; "class_<i>" when the model does not say.
	Labels []string
	// ResizeSize and ResizeShorter are a classifier's evaluation transform
	// (its "eval_resize" metadata): resize, then center crop Height x
	// Width. 0: resize to the input size directly.
	ResizeSize    int
	ResizeShorter bool
}

// Bounds on the models OpenModel accepts, checked on what the file declares
// before ONNX Runtime loads it: an image input of at most MaxInputPixels
// per image (8192 x 8192, the data package's pixel limit), and outputs of
// at most MaxOutputValues per image.
const (
	MaxInputPixels  = 1 << 26
	MaxOutputValues = 1 << 26
	// MaxBatchBytes bounds one batch's input tensor (batch x 3 x H x W
	// float32): Run refuses a larger batch at the start.
	MaxBatchBytes = 1 << 30
)

// OpenModel opens the ONNX model at path and checks that it has the shape
// of dira's exports, and sizes dira can run, before ONNX Runtime loads it;
// every error names the file.
func OpenModel(path string, opts SessionOptions) (*Model, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("infer: open %s: %w", path, err)
	}
	mi, err := InspectFile(path)
	if err != nil {
		return nil, err
	}
	m, err := describe(path, mi)
	if err != nil {
		return nil, err
	}
	if m.Session, err = newSession(path, mi, opts); err != nil {
		return nil, err
	}
	if m.Kind == KindClassifier {
		if err := m.classifierMetadata(); err != nil {
			m.Session.Close()
			return nil, err
		}
	}
	return m, nil
}

// describe checks a model's declared inputs and outputs against dira's
// export layout and the bounds above.
func describe(path string, mi ModelInfo) (*Model, error) {
	ins := mi.Inputs
	if len(ins) != 1 {
		return nil, fmt.Errorf("infer: model %s has %d inputs, want one image input [N,3,H,W]", path, len(ins))
	}
	in := ins[0]
	if sh := in.Shape; !in.Float || len(sh) != 4 || sh[1] != 3 || sh[2] <= 0 || sh[3] <= 0 {
		return nil, fmt.Errorf("infer: model %s: input %s, want float32 [N,3,H,W] with fixed H and W (an image batch as dira exports it)",
			path, shapeString(in))
	}
	if h, w := in.Shape[2], in.Shape[3]; h > MaxInputPixels/w {
		return nil, fmt.Errorf("infer: model %s: input %s is %d pixels per image, more than the %d dira runs a model on",
			path, shapeString(in), h*w, int64(MaxInputPixels))
	}
	m := &Model{Input: in.Name, Height: int(in.Shape[2]), Width: int(in.Shape[3])}
	if in.Shape[0] > 0 {
		m.FixedBatch = int(in.Shape[0])
	}
	outs := mi.Outputs
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
	var o TensorInfo
	if p, ok := pick("probabilities"); ok && p.Name == "probabilities" && len(p.Shape) == 2 && p.Float {
		o, m.Kind = p, KindClassifier
	} else if f, ok := pick("features"); ok && len(f.Shape) == 2 && f.Float {
		o, m.Kind = f, KindEncoder
	} else if k, ok := pick("mask"); ok && len(k.Shape) == 4 && k.Float {
		o, m.Kind = k, KindUNet
	} else {
		var got []string
		for _, o := range outs {
			got = append(got, shapeString(o))
		}
		return nil, fmt.Errorf("infer: model %s: outputs %s; want \"features\" float32 [N,C] (encoder), \"probabilities\" float32 [N,C] (classifier) or \"mask\" float32 [N,K,H,W] (U-Net)",
			path, strings.Join(got, ", "))
	}
	m.Output, m.Channels = o.Name, int(o.Shape[1])
	if m.Kind == KindClassifier && (m.Channels < 1 || m.Channels > maxClasses) {
		return nil, fmt.Errorf("infer: model %s: output %s, want a fixed class count from 1 to %d", path, shapeString(o), maxClasses)
	}
	per := int64(1)
	for _, d := range o.Shape[1:] {
		if d > 0 && per <= MaxOutputValues {
			per *= d
		}
	}
	if per > MaxOutputValues {
		return nil, fmt.Errorf("infer: model %s: output %s is more than %d values per image", path, shapeString(o), int64(MaxOutputValues))
	}
	return m, nil
}

// maxClasses bounds a classifier's class count (each gets a label and a
// column of predictions.csv).
const maxClasses = 1 << 16

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
