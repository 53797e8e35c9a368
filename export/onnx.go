package export

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"google.golang.org/protobuf/proto"

	"dira/export/onnxpb"
	"dira/internal/torch"
	"dira/model"
)

// The ONNX versions written: IR 8 with the default-domain opset 17 is what
// both torch 1.13's exporter and Debian's onnx 1.12 checker handle
// (toolchain.md, "ONNX from Go").
const (
	irVersion = 8
	opset     = 17
)

// Graph input and output names (architecture.md, "Artifacts and key layout").
const (
	InputName    = "image"
	FeaturesName = "features"
	MaskName     = "mask"
)

// InputRange is the metadata value stating what the models expect: pixels
// scaled to [0,1] and no mean/std normalisation, as in pre-training (spec 3.1).
const InputRange = "[0,1], no normalisation"

// Options describes one exported model: its fixed spatial input size and the
// metadata written into it.
type Options struct {
	// Height and Width of the input image in pixels; multiples of 32 (the
	// encoder downsamples five times). The batch dimension stays dynamic ("N").
	Height, Width int
	// Stage is the pipeline stage whose weights these are ("adversarial").
	Stage string
	// Epoch is the epoch those weights were saved at.
	Epoch int
	// ConfigHash identifies the resolved run configuration.
	ConfigHash string
}

func (o Options) check() error {
	var errs []error
	if o.Height <= 0 || o.Height%32 != 0 {
		errs = append(errs, fmt.Errorf("height must be a positive multiple of 32, got %d", o.Height))
	}
	if o.Width <= 0 || o.Width%32 != 0 {
		errs = append(errs, fmt.Errorf("width must be a positive multiple of 32, got %d", o.Width))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("export: options: %w", err)
	}
	return nil
}

// WriteEncoder writes the ONNX model of u's encoder: input "image" float32
// [N,3,H,W], output "features" float32 [N,C], the global-average-pooled last
// stage (C = 2048 for resnet50), what u.Features computes in eval mode.
// Decoder, segmentation head and projection head are not in it.
//
// The graph is built from u's structure and current weights: torchvision's
// ResNet as Conv (BatchNorm folded in, eval mode), Relu, MaxPool 3x3/2 pad 1
// and Add, then GlobalAveragePool and Flatten.
func WriteEncoder(w io.Writer, u *model.UNet, opts Options) error {
	m, err := buildModel(u, opts, KindEncoder)
	if err != nil {
		return err
	}
	return marshal(w, m)
}

// WriteUNet writes the ONNX model of the whole U-Net: input "image" float32
// [N,3,H,W], output "mask" float32 [N,classes,H,W] after the head's
// activation, what u.Forward computes in eval mode. The decoder's nearest x2
// upsampling is Resize(mode=nearest, coordinate_transformation_mode=asymmetric,
// nearest_mode=floor, scales [1,1,2,2]), as torch 1.13 exports
// F.interpolate(scale_factor=2); skips join by Concat on channels.
func WriteUNet(w io.Writer, u *model.UNet, opts Options) error {
	m, err := buildModel(u, opts, KindUNet)
	if err != nil {
		return err
	}
	return marshal(w, m)
}

func marshal(w io.Writer, m *onnxpb.ModelProto) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("export: encode %s model: %w", m.GetGraph().GetName(), err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("export: write %s model: %w", m.GetGraph().GetName(), err)
	}
	return nil
}

// buildModel builds the graph of kind from u. A panic while walking the
// network (a malformed model.UNet) comes back as an error.
func buildModel(u *model.UNet, opts Options, kind Kind) (m *onnxpb.ModelProto, err error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if u == nil || u.Encoder == nil {
		return nil, errors.New("export: no network")
	}
	if kind == KindUNet && (u.Decoder == nil || u.Head == nil) {
		return nil, errors.New("export: the network has no decoder or head to export as a U-Net")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("export: build %s graph: %v", kind, r)
		}
	}()

	g := &graph{g: &onnxpb.GraphProto{Name: proto.String("dira_" + string(kind))}}
	g.g.Input = []*onnxpb.ValueInfoProto{valueInfo(InputName, "N", int64(3), int64(opts.Height), int64(opts.Width))}
	f := g.encoder(u.Encoder, InputName)
	switch kind {
	case KindEncoder:
		pooled := g.node("GlobalAveragePool", "encoder.avgpool", []string{f[4]})
		g.node("Flatten", FeaturesName, []string{pooled}, attrInt("axis", 1))
		ch, err := model.EncoderChannels(u.Encoder.Arch)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		g.g.Output = []*onnxpb.ValueInfoProto{valueInfo(FeaturesName, "N", ch[5])}
	case KindUNet:
		d := g.decoder(u.Decoder, f)
		classes := torch.Size(u.Head.Weight)[0]
		switch u.Activation {
		case "sigmoid":
			h := g.conv("segmentation_head.0", "segmentation_head.0", d, u.Head, nil)
			g.node("Sigmoid", MaskName, []string{h})
		case "identity":
			g.conv("segmentation_head.0", MaskName, d, u.Head, nil)
		default:
			return nil, fmt.Errorf("export: unknown head activation %q", u.Activation)
		}
		g.g.Output = []*onnxpb.ValueInfoProto{valueInfo(MaskName, "N", classes, int64(opts.Height), int64(opts.Width))}
	default:
		return nil, fmt.Errorf("export: unknown model kind %q", kind)
	}

	meta := []struct{ k, v string }{
		{"model", string(kind)},
		{"arch", u.Encoder.Arch},
		{"stage", opts.Stage},
		{"epoch", strconv.Itoa(opts.Epoch)},
		{"config_hash", opts.ConfigHash},
		{"input_range", InputRange},
		{"input_size", fmt.Sprintf("%dx%d", opts.Height, opts.Width)},
	}
	props := make([]*onnxpb.StringStringEntryProto, len(meta))
	for i, kv := range meta {
		props[i] = &onnxpb.StringStringEntryProto{Key: proto.String(kv.k), Value: proto.String(kv.v)}
	}
	doc := "DiRA " + u.Encoder.Arch + " encoder: image [N,3,H,W] in [0,1], no normalisation -> features [N,C] (global-average-pooled last stage)"
	if kind == KindUNet {
		doc = "DiRA " + u.Encoder.Arch + " U-Net: image [N,3,H,W] in [0,1], no normalisation -> mask [N,classes,H,W] after the head's " + u.Activation
	}
	return &onnxpb.ModelProto{
		IrVersion:     proto.Int64(irVersion),
		OpsetImport:   []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		ProducerName:  proto.String("dira"),
		DocString:     proto.String(doc),
		Graph:         g.g,
		MetadataProps: props,
	}, nil
}

// graph accumulates nodes and initializers. Node names follow the PyTorch
// module paths (encoder.layer1.0.conv1), and each node's single output has
// the node's name, so a graph viewer reads like the state_dict.
type graph struct{ g *onnxpb.GraphProto }

func (g *graph) node(op, name string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	g.g.Node = append(g.g.Node, &onnxpb.NodeProto{
		OpType:    proto.String(op),
		Name:      proto.String(name),
		Input:     inputs,
		Output:    []string{name},
		Attribute: attrs,
	})
	return name
}

func (g *graph) initializer(name string, shape []int64, data []float32) string {
	g.g.Initializer = append(g.g.Initializer, floatTensor(name, shape, data))
	return name
}

// conv adds Conv with bn folded in (bn may be nil) named name, whose output
// is out.
func (g *graph) conv(name, out, x string, c *model.Conv2d, bn *model.BatchNorm) string {
	shape := torch.Size(c.Weight)
	w := torch.Float32s(c.Weight)
	var b []float32
	if c.Bias != nil {
		b = torch.Float32s(c.Bias)
	}
	if bn != nil {
		w, b = foldBN(w, shape[0], b, torch.Float32s(bn.Weight), torch.Float32s(bn.Bias),
			torch.Float32s(bn.RunningMean), torch.Float32s(bn.RunningVar), bnEps)
	}
	inputs := []string{x, g.initializer(name+".weight", shape, w)}
	if b != nil {
		inputs = append(inputs, g.initializer(name+".bias", []int64{shape[0]}, b))
	}
	k, s, p := shape[2], c.Stride, c.Padding
	g.g.Node = append(g.g.Node, &onnxpb.NodeProto{
		OpType: proto.String("Conv"),
		Name:   proto.String(name),
		Input:  inputs,
		Output: []string{out},
		Attribute: []*onnxpb.AttributeProto{
			attrInts("dilations", 1, 1),
			attrInt("group", 1),
			attrInts("kernel_shape", k, shape[3]),
			attrInts("pads", p, p, p, p),
			attrInts("strides", s, s),
		},
	})
	return out
}

func (g *graph) relu(x string) string { return g.node("Relu", x+".relu", []string{x}) }

// encoder adds torchvision's ResNet (smp's ResNetEncoder) and returns the
// five stage outputs f1..f5 (H/2 .. H/32), as model.ResNet's forward.
func (g *graph) encoder(r *model.ResNet, x string) [5]string {
	var f [5]string
	f[0] = g.relu(g.conv("encoder.conv1", "encoder.conv1", x, r.Conv1, r.Bn1))
	// dilations is left at its default (1): onnx-go, the second engine the
	// tests run, refuses a MaxPool that states it at all.
	h := g.node("MaxPool", "encoder.maxpool", []string{f[0]},
		attrInt("ceil_mode", 0),
		attrInts("kernel_shape", 3, 3),
		attrInts("pads", 1, 1, 1, 1),
		attrInts("strides", 2, 2))
	for li, blocks := range r.Layers {
		for bi, b := range blocks {
			h = g.block(fmt.Sprintf("encoder.layer%d.%d", li+1, bi), h, b)
		}
		f[li+1] = h
	}
	return f
}

// block is BasicBlock (Conv3 nil) or Bottleneck: convs with ReLU between,
// plus the identity or the downsample branch, then ReLU.
func (g *graph) block(name, x string, b *model.Block) string {
	out := g.relu(g.conv(name+".conv1", name+".conv1", x, b.Conv1, b.Bn1))
	out = g.conv(name+".conv2", name+".conv2", out, b.Conv2, b.Bn2)
	if b.Conv3 != nil {
		out = g.conv(name+".conv3", name+".conv3", g.relu(out), b.Conv3, b.Bn3)
	}
	id := x
	if b.DownConv != nil {
		id = g.conv(name+".downsample", name+".downsample", x, b.DownConv, b.DownBn)
	}
	sum := g.node("Add", name+".add", []string{out, id})
	return g.relu(sum)
}

// decoder adds smp's UnetDecoder (center and attention are Identity): per
// block, nearest x2 upsampling, concat with the skip (f4, f3, f2, f1, none),
// two Conv3x3-BN-ReLU.
func (g *graph) decoder(d *model.Decoder, f [5]string) string {
	scales := g.initializer("decoder.upsample_scales", []int64{4}, []float32{1, 1, 2, 2})
	x := f[4]
	for i, b := range d.Blocks {
		name := "decoder.blocks." + strconv.Itoa(i)
		// Inputs X, roi (empty: unused with asymmetric), scales.
		x = g.node("Resize", name+".upsample", []string{x, "", scales},
			attrString("coordinate_transformation_mode", "asymmetric"),
			attrString("mode", "nearest"),
			attrString("nearest_mode", "floor"))
		if i < 4 {
			x = g.node("Concat", name+".concat", []string{x, f[3-i]}, attrInt("axis", 1))
		}
		x = g.relu(g.conv(name+".conv1", name+".conv1", x, b.Conv1, b.Bn1))
		x = g.relu(g.conv(name+".conv2", name+".conv2", x, b.Conv2, b.Bn2))
	}
	return x
}

// bnEps is torch.nn.BatchNorm2d's default eps, which model.BatchNorm uses.
const bnEps = 1e-5

// foldBN merges an eval-mode BatchNorm into the convolution before it:
//
//	BN(conv(x) + b) = s*(W*x + b - mean) + beta,  s = gamma / sqrt(var + eps)
//	                = (s*W)*x + (beta + s*(b - mean))
//
// w is [out, ...] in C order, b the conv bias (nil = none). The arithmetic is
// float64, rounded once to float32.
func foldBN(w []float32, out int64, b, gamma, beta, mean, variance []float32, eps float64) (fw, fb []float32) {
	per := int64(len(w)) / out
	fw = make([]float32, len(w))
	fb = make([]float32, out)
	for o := range out {
		s := float64(gamma[o]) / math.Sqrt(float64(variance[o])+eps)
		for i := o * per; i < (o+1)*per; i++ {
			fw[i] = float32(float64(w[i]) * s)
		}
		bias := 0.0
		if b != nil {
			bias = float64(b[o])
		}
		fb[o] = float32(float64(beta[o]) + s*(bias-float64(mean[o])))
	}
	return fw, fb
}

func floatTensor(name string, shape []int64, data []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		bits := math.Float32bits(v)
		raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
	}
	return &onnxpb.TensorProto{
		Name:     proto.String(name),
		Dims:     shape,
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		RawData:  raw, // little-endian, as the ONNX spec requires
	}
}

// valueInfo describes a float32 tensor; dims are int64 sizes or a string
// naming a dynamic dimension.
func valueInfo(name string, dims ...any) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		switch d := d.(type) {
		case string:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		case int64:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		default:
			panic(fmt.Sprintf("export: dimension %v of %s is %T", d, name, d))
		}
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
			Shape:    shape,
		}}},
	}
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrInts(name string, vs ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: vs}
}

func attrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}
