package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"google.golang.org/protobuf/proto"

	"dira/export/onnxpb"
	"dira/infer"
	"dira/internal/torch"
	"dira/model"
)

// ProbabilitiesName is the output of classifier.onnx.
const ProbabilitiesName = "probabilities"

// The kinds of the fine-tuned models, as their "model" metadata says.
const (
	KindClassifier Kind = "classifier" // image -> probabilities
	KindSegmenter  Kind = "segmenter"  // image -> mask
)

// Normalization is the input normalisation a fine-tuned model was trained
// with, applied inside its graph as (x - mean) / std so that it takes images
// in [0,1] like the pre-training exports. Name "none" (zero Std) skips it.
type Normalization struct {
	Name      string
	Mean, Std [3]float32
}

func (n Normalization) none() bool { return n.Std == [3]float32{} }

// FineTunedOptions describes classifier.onnx or segmenter.onnx.
type FineTunedOptions struct {
	Options
	Normalization Normalization
	// Labels names the classifier's outputs, in order (written as a JSON
	// list in the "labels" metadata; dira infer heads predictions.csv with
	// them).
	Labels []string
	// MultiClass: softmax over the outputs; otherwise one sigmoid per label.
	MultiClass bool
	// ResizeSize and ResizeShorter are the classifier's evaluation transform
	// before the model: resize to ResizeSize x ResizeSize (or its shorter side
	// to ResizeSize), then center crop Height x Width. 0: resize to the input
	// size directly.
	ResizeSize    int
	ResizeShorter bool
	// Task is the training task ("multilabel", "multiclass", "segmentation").
	Task string
}

// WriteClassifier writes classifier.onnx: input "image" float32 [N,3,H,W] in
// [0,1], the normalisation, the encoder (BatchNorm folded), global average
// pooling, the head as Gemm, then Sigmoid (multi-label) or Softmax over the
// classes (multi-class): output "probabilities" float32 [N,C]. The metadata
// carries the label names, the normalisation and the evaluation transform.
func WriteClassifier(w io.Writer, c *model.Classifier, o FineTunedOptions) error {
	m, err := buildFineTuned(o, KindClassifier, func(g *graph, x string) (*onnxpb.ValueInfoProto, error) {
		if len(o.Labels) != c.Classes {
			return nil, fmt.Errorf("%d label names for %d classes", len(o.Labels), c.Classes)
		}
		f := g.encoder(c.Encoder, x)
		pooled := g.node("GlobalAveragePool", "encoder.avgpool", []string{f[4]})
		flat := g.node("Flatten", "flatten", []string{pooled}, attrInt("axis", 1))
		wShape := torch.Size(c.FC.Weight)
		gemm := g.node("Gemm", c.HeadKey, []string{flat,
			g.initializer(c.HeadKey+".weight", wShape, torch.Float32s(c.FC.Weight)),
			g.initializer(c.HeadKey+".bias", []int64{wShape[0]}, torch.Float32s(c.FC.Bias))},
			attrInt("transB", 1))
		if o.MultiClass {
			g.node("Softmax", ProbabilitiesName, []string{gemm}, attrInt("axis", 1))
		} else {
			g.node("Sigmoid", ProbabilitiesName, []string{gemm})
		}
		return valueInfo(ProbabilitiesName, "N", int64(c.Classes)), nil
	}, c.Encoder.Arch)
	if err != nil {
		return err
	}
	return marshal(w, m)
}

// WriteSegmenter writes segmenter.onnx: input "image" float32 [N,3,H,W] in
// [0,1], the normalisation (none by default, as the benchmark's
// segmentation), the U-Net, output "mask" float32 [N,1,H,W] after the sigmoid.
func WriteSegmenter(w io.Writer, u *model.UNet, o FineTunedOptions) error {
	m, err := buildFineTuned(o, KindSegmenter, func(g *graph, x string) (*onnxpb.ValueInfoProto, error) {
		if u.Decoder == nil || u.Head == nil || u.Activation != "sigmoid" {
			return nil, errors.New("the segmenter is a U-Net with a sigmoid head")
		}
		f := g.encoder(u.Encoder, x)
		d := g.decoder(u.Decoder, f)
		h := g.conv("segmentation_head.0", "segmentation_head.0", d, u.Head, nil)
		g.node("Sigmoid", MaskName, []string{h})
		classes := torch.Size(u.Head.Weight)[0]
		return valueInfo(MaskName, "N", classes, int64(o.Height), int64(o.Width)), nil
	}, u.Encoder.Arch)
	if err != nil {
		return err
	}
	return marshal(w, m)
}

// buildFineTuned builds a fine-tuned model's graph: the input, the
// normalisation, then body.
func buildFineTuned(o FineTunedOptions, kind Kind, body func(g *graph, x string) (*onnxpb.ValueInfoProto, error), arch string) (m *onnxpb.ModelProto, err error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("export: build %s graph: %v", kind, r)
		}
	}()
	g := &graph{g: &onnxpb.GraphProto{Name: proto.String("dira_" + string(kind))}}
	g.g.Input = []*onnxpb.ValueInfoProto{valueInfo(InputName, "N", int64(3), int64(o.Height), int64(o.Width))}
	x := InputName
	if !o.Normalization.none() {
		n := o.Normalization
		mean := g.initializer("normalize.mean", []int64{1, 3, 1, 1}, n.Mean[:])
		std := g.initializer("normalize.std", []int64{1, 3, 1, 1}, n.Std[:])
		x = g.node("Div", "normalize.div", []string{g.node("Sub", "normalize.sub", []string{x, mean}), std})
	}
	out, err := body(g, x)
	if err != nil {
		return nil, fmt.Errorf("export: %s: %w", kind, err)
	}
	g.g.Output = []*onnxpb.ValueInfoProto{out}
	labels, _ := json.Marshal(o.Labels)
	norm := o.Normalization.Name
	if !o.Normalization.none() {
		norm = fmt.Sprintf("%s: (x - %v) / %v per channel, inside the graph", norm, o.Normalization.Mean, o.Normalization.Std)
	}
	meta := [][2]string{
		{"model", string(kind)},
		{"task", o.Task},
		{"arch", arch},
		{"stage", o.Stage},
		{"epoch", strconv.Itoa(o.Epoch)},
		{"config_hash", o.ConfigHash},
		{"input_range", "[0,1]"},
		{"input_size", fmt.Sprintf("%dx%d", o.Height, o.Width)},
		{"normalization", norm},
	}
	if kind == KindClassifier {
		meta = append(meta, [2]string{"labels", string(labels)},
			[2]string{"eval_resize", strconv.Itoa(o.ResizeSize)}, [2]string{"eval_resize_shorter", strconv.FormatBool(o.ResizeShorter)})
	}
	props := make([]*onnxpb.StringStringEntryProto, len(meta))
	for i, kv := range meta {
		props[i] = &onnxpb.StringStringEntryProto{Key: proto.String(kv[0]), Value: proto.String(kv[1])}
	}
	doc := fmt.Sprintf("dira fine-tuned %s %s: image [N,3,H,W] in [0,1] -> %s", arch, kind, out.GetName())
	return &onnxpb.ModelProto{
		IrVersion:     proto.Int64(irVersion),
		OpsetImport:   []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		ProducerName:  proto.String("dira"),
		DocString:     proto.String(doc),
		Graph:         g.g,
		MetadataProps: props,
	}, nil
}

// Normalize applies (x - mean) / std per channel to images [N,3,H,W] in
// float32, op for op as the graph's Sub and Div do.
func (n Normalization) Normalize(x infer.Tensor) infer.Tensor {
	if n.none() {
		return x
	}
	out := infer.Tensor{Shape: slices.Clone(x.Shape), Data: make([]float32, len(x.Data))}
	plane := int(x.Shape[2] * x.Shape[3])
	for i, v := range x.Data {
		c := (i / plane) % 3
		out.Data[i] = (v - n.Mean[c]) / n.Std[c]
	}
	return out
}

// VerifyFineTuned runs the ONNX file at path in ONNX Runtime and the Go
// forward of the same network in eval mode on x: the classifier's
// probabilities, or the segmenter's mask. net is a *model.Classifier or a
// *model.UNet.
func VerifyFineTuned(path string, net any, o FineTunedOptions, x infer.Tensor, opts infer.SessionOptions) (Check, error) {
	out := MaskName
	if _, ok := net.(*model.Classifier); ok {
		out = ProbabilitiesName
	}
	return verify(path, out, x, opts, func() (infer.Tensor, error) {
		return fineTunedForward(net, o, o.Normalization.Normalize(x))
	})
}

// fineTunedForward is the Go side of VerifyFineTuned (eval mode, no autograd).
func fineTunedForward(net any, o FineTunedOptions, x infer.Tensor) (y infer.Tensor, err error) {
	defer torch.Catch("", &err)
	in := torch.FromFloat32(x.Data, x.Shape)
	defer torch.Drop(in)
	var out *ts.Tensor
	torch.NoGrad(func() {
		switch n := net.(type) {
		case *model.Classifier:
			logits, ferr := n.Forward(in, model.Eval)
			torch.Check(ferr)
			defer torch.Drop(logits)
			if o.MultiClass {
				out = torch.Must(logits.Softmax(1, gotch.Float, false))
			} else {
				out = torch.Must(logits.Sigmoid(false))
			}
		case *model.UNet:
			var ferr error
			out, ferr = n.Forward(in, model.Eval)
			torch.Check(ferr)
		default:
			torch.Fail("verify: %T is not a fine-tuned network", net)
		}
	})
	defer torch.Drop(out)
	return infer.Tensor{Shape: torch.Size(out), Data: torch.Float32s(out)}, nil
}
