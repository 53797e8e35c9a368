package export

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	"dira/data"
	"dira/export/onnxpb"
	"dira/infer"
)

// Calibration methods: how QuantizeInt8 turns the values an activation took
// on the calibration images into the range it quantizes.
const (
	// CalibMinMax takes the smallest and largest value seen.
	CalibMinMax = "minmax"
	// CalibPercentile drops the (100-Percentile)/2 percent most extreme
	// values on each side (a 2048-bin histogram per tensor over the min-max
	// range, interpolated within the bin): outliers no longer stretch the
	// 256 levels over a range most values never reach.
	CalibPercentile = "percentile"
)

// Calibration defaults.
const (
	DefaultCalibrationCount = 32
	DefaultPercentile       = 99.99
	defaultCalibrationBatch = 4
	histogramBins           = 2048
)

// QuantOptions tunes QuantizeInt8.
type QuantOptions struct {
	// Method is CalibMinMax (the default when empty) or CalibPercentile.
	Method string
	// Percentile is CalibPercentile's coverage in percent, in (50, 100];
	// 0 means DefaultPercentile (99.99).
	Percentile float64
	// Count is how many images of the calibration source are used, from
	// its start; 0 means DefaultCalibrationCount (32), capped at the
	// source's size.
	Count int
	// Batch is the number of images per ONNX Runtime call while
	// calibrating; 0 means 4. Every intermediate tensor of the batch is
	// returned at once, so memory grows with it (about 100 MB per image for
	// the ResNet-50 U-Net at 224x224).
	Batch int
	// Session is where the calibration runs (threads; the device is
	// always the CPU).
	Session infer.SessionOptions
	// KeepFloat names nodes to leave in float besides the ones QuantizeInt8
	// always leaves (the layer that produces a graph output).
	KeepFloat []string
	// InputRange is the range of the graph input, fixed rather than
	// calibrated; the zero value means [0,1], dira's input range (InputRange),
	// whose uint8 quantization (scale 1/255) is exact for 8-bit images.
	InputRange [2]float32
}

func (o QuantOptions) withDefaults() (QuantOptions, error) {
	if o.Method == "" {
		o.Method = CalibMinMax
	}
	switch o.Method {
	case CalibMinMax:
		o.Percentile = 0
	case CalibPercentile:
		if o.Percentile == 0 {
			o.Percentile = DefaultPercentile
		}
		if !(o.Percentile > 50 && o.Percentile <= 100) {
			return o, fmt.Errorf("calibration percentile must be in (50, 100], got %g", o.Percentile)
		}
	default:
		return o, fmt.Errorf("unknown calibration method %q (want %s or %s)", o.Method, CalibMinMax, CalibPercentile)
	}
	if o.Count < 0 || o.Batch < 0 {
		return o, fmt.Errorf("calibration count and batch must be >= 0, got %d and %d", o.Count, o.Batch)
	}
	if o.Count == 0 {
		o.Count = DefaultCalibrationCount
	}
	if o.Batch == 0 {
		o.Batch = defaultCalibrationBatch
	}
	if o.InputRange == [2]float32{} {
		o.InputRange = [2]float32{0, 1}
	}
	if !(o.InputRange[0] < o.InputRange[1]) {
		return o, fmt.Errorf("input range %v is empty", o.InputRange)
	}
	return o, nil
}

// QuantSummary says what QuantizeInt8 did.
type QuantSummary struct {
	Method     string  `json:"method"`
	Percentile float64 `json:"percentile,omitempty"`
	// Images is the number of calibration images used.
	Images int `json:"images"`
	// InputRange is the fixed range of the graph input.
	InputRange [2]float32 `json:"input_range"`
	// Quantized counts the nodes that run on quantized inputs, by op type.
	Quantized map[string]int `json:"quantized_nodes"`
	// Float names the Conv/Add/Concat/MaxPool/Resize nodes left in float.
	Float []string `json:"float_nodes"`
	// FoldedReLUs is the number of ReLUs dropped after a quantized Conv or
	// Add (the uint8 output with zero point 0 clips at 0 itself).
	FoldedReLUs int `json:"folded_relus"`
	// Tensors is the number of activation tensors quantized.
	Tensors int `json:"quantized_tensors"`
	// RaisedWeightScales counts output channels whose weight scale was
	// raised so that their bias fits in int32 (normally 0).
	RaisedWeightScales int `json:"raised_weight_scales,omitempty"`
}

// QuantizeInt8 returns a statically quantized copy of the float model m in
// ONNX's QDQ form: QuantizeLinear/DequantizeLinear pairs around the
// operators, which ONNX Runtime fuses into integer kernels (QLinearConv,
// QLinearAdd, QLinearConcat; MaxPool and nearest Resize on uint8), while the
// file stays a standard ONNX graph with m's float32 input and output. m is
// not changed.
//
//   - Conv weights: int8, symmetric, one scale per output channel
//     (DequantizeLinear axis 0); biases int32 at input scale x weight scale.
//   - Activations: uint8, one scale and zero point per tensor, from ranges
//     calibrated on the first opts.Count images of calib (opts.Method); the
//     graph input uses the fixed opts.InputRange. MaxPool and Resize outputs
//     share their input's parameters (they only move values).
//   - A ReLU after a quantized Conv or Add is dropped: its range starts at
//     0, so the zero point is 0 and quantization clips negatives.
//   - Left in float: the layer that produces a graph output (the U-Net's
//     segmentation head; the encoder's pooling and flatten, which read the
//     dequantized last stage) and opts.KeepFloat.
//
// Calibration runs ONNX Runtime on the CPU (which must be started,
// infer.Start) on a temporary copy of m whose graph outputs include every
// tensor to be quantized. Images are read from calib and preprocessed as
// `dira infer` does (infer.Preprocess) at m's input size.
func QuantizeInt8(m *onnxpb.ModelProto, calib data.Source, opts QuantOptions) (*onnxpb.ModelProto, QuantSummary, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, QuantSummary{}, fmt.Errorf("export: quantize: %w", err)
	}
	name := m.GetGraph().GetName()
	h, w, err := imageInput(m)
	if err != nil {
		return nil, QuantSummary{}, fmt.Errorf("export: quantize %s: %w", name, err)
	}
	if calib == nil || calib.Len() == 0 {
		return nil, QuantSummary{}, fmt.Errorf("export: quantize %s: no calibration images", name)
	}
	p, err := planQuant(m.GetGraph(), opts.KeepFloat)
	if err != nil {
		return nil, QuantSummary{}, fmt.Errorf("export: quantize %s: %w", name, err)
	}
	n := min(opts.Count, calib.Len())
	ranges, err := calibrate(m, p.calibrate, calib, n, h, w, opts)
	if err != nil {
		return nil, QuantSummary{}, fmt.Errorf("export: quantize %s: calibrate: %w", name, err)
	}
	for _, in := range p.inputs {
		ranges[in] = opts.InputRange
	}
	q, sum, err := p.rewrite(m, ranges)
	if err != nil {
		return nil, QuantSummary{}, fmt.Errorf("export: quantize %s: %w", name, err)
	}
	sum.Method, sum.Percentile, sum.Images, sum.InputRange = opts.Method, opts.Percentile, n, opts.InputRange
	setMetadata(q, "precision", "int8")
	setMetadata(q, "calibration", calibrationNote(sum))
	return q, sum, nil
}

func calibrationNote(s QuantSummary) string {
	m := s.Method
	if s.Method == CalibPercentile {
		m += " " + strconv.FormatFloat(s.Percentile, 'g', -1, 64)
	}
	return fmt.Sprintf("%s on %d images; uint8 activations, int8 per-channel weights (QDQ)", m, s.Images)
}

// imageInput checks that m has one float32 input [N,3,H,W] with fixed H and
// W, as dira's exports, and returns H and W.
func imageInput(m *onnxpb.ModelProto) (h, w int, err error) {
	ins := graphInputs(m.GetGraph())
	if len(ins) != 1 {
		return 0, 0, fmt.Errorf("model has %d inputs, want one image input", len(ins))
	}
	tt := ins[0].GetType().GetTensorType()
	dims := tt.GetShape().GetDim()
	if tt.GetElemType() != int32(onnxpb.TensorProto_FLOAT) || len(dims) != 4 || dims[1].GetDimValue() != 3 || dims[2].GetDimValue() <= 0 || dims[3].GetDimValue() <= 0 {
		return 0, 0, fmt.Errorf("input %q is not float32 [N,3,H,W] with fixed H and W (an RGB image batch)", ins[0].GetName())
	}
	return int(dims[2].GetDimValue()), int(dims[3].GetDimValue()), nil
}

// graphInputs lists the graph inputs that are not initializers (IR >= 4
// allows initializers to be listed as inputs too).
func graphInputs(g *onnxpb.GraphProto) []*onnxpb.ValueInfoProto {
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	var out []*onnxpb.ValueInfoProto
	for _, in := range g.GetInput() {
		if !inits[in.GetName()] {
			out = append(out, in)
		}
	}
	return out
}

// quantizable lists, per op type QuantizeInt8 runs on integers, the inputs
// that carry activations (all of them for Concat, -1).
var quantizable = map[string][]int{
	"Conv":    {0},
	"Add":     {0, 1},
	"Concat":  {-1},
	"MaxPool": {0},
	"Resize":  {0},
}

// passThrough ops only move values: their output keeps the input's
// quantization parameters, which ONNX Runtime requires to drop their Q/DQ
// and run them on uint8.
var passThrough = map[string]bool{"MaxPool": true, "Resize": true}

// activationInputs returns the indexes of n's inputs that carry
// activations when n is quantized.
func activationInputs(n *onnxpb.NodeProto) []int {
	idx := quantizable[n.GetOpType()]
	if len(idx) == 1 && idx[0] == -1 {
		idx = nil
		for i := range n.GetInput() {
			idx = append(idx, i)
		}
	}
	return idx
}

// quantPlan is what QuantizeInt8 decided for a graph before calibrating.
type quantPlan struct {
	g *onnxpb.GraphProto
	// quant holds the nodes that run on quantized inputs.
	quant map[*onnxpb.NodeProto]bool
	// folded maps a quantized Conv or Add to the ReLU dropped after it.
	folded  map[*onnxpb.NodeProto]*onnxpb.NodeProto
	dropped map[*onnxpb.NodeProto]bool
	// values holds the tensors that are quantized: a QuantizeLinear after
	// their producer, a DequantizeLinear before each consumer.
	values map[string]bool
	// sameAs maps a pass-through output to the tensor whose parameters it
	// takes.
	sameAs map[string]string
	// inputs are the graph inputs among values (fixed range);
	// calibrate the other values whose ranges are measured, in graph order.
	inputs, calibrate []string
	float             []string
	inits             map[string]*onnxpb.TensorProto
}

// planQuant decides which nodes and tensors of g are quantized.
func planQuant(g *onnxpb.GraphProto, keepFloat []string) (*quantPlan, error) {
	p := &quantPlan{
		g: g, quant: map[*onnxpb.NodeProto]bool{}, folded: map[*onnxpb.NodeProto]*onnxpb.NodeProto{},
		dropped: map[*onnxpb.NodeProto]bool{}, values: map[string]bool{}, sameAs: map[string]string{},
		inits: map[string]*onnxpb.TensorProto{},
	}
	for _, t := range g.GetInitializer() {
		p.inits[t.GetName()] = t
	}
	consumers := map[string][]*onnxpb.NodeProto{}
	producer := map[string]*onnxpb.NodeProto{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			if in != "" {
				consumers[in] = append(consumers[in], n)
			}
		}
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	outputs := map[string]bool{}
	for _, o := range g.GetOutput() {
		outputs[o.GetName()] = true
	}
	graphIn := map[string]bool{}
	for _, in := range graphInputs(g) {
		graphIn[in.GetName()] = true
	}
	producesOutput := func(n *onnxpb.NodeProto) bool {
		return slices.ContainsFunc(n.GetOutput(), func(o string) bool { return outputs[o] })
	}
	// outputLayer: n produces a graph output, or feeds only single-input
	// activations that do (the segmentation head and its sigmoid).
	outputLayer := func(n *onnxpb.NodeProto) bool {
		if producesOutput(n) {
			return true
		}
		cs := consumers[n.GetOutput()[0]]
		if len(cs) == 0 {
			return false
		}
		for _, c := range cs {
			switch c.GetOpType() {
			case "Sigmoid", "Relu", "Softmax", "Identity":
			default:
				return false
			}
			if !producesOutput(c) {
				return false
			}
		}
		return true
	}
	keep := map[string]bool{}
	for _, k := range keepFloat {
		keep[k] = true
	}
	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if _, ok := quantizable[op]; !ok || n.GetDomain() != "" {
			continue
		}
		switch {
		case keep[n.GetName()], outputLayer(n), len(n.GetOutput()) != 1:
			p.float = append(p.float, n.GetName())
			continue
		case op == "Conv":
			w := p.inits[n.GetInput()[1]]
			if w == nil || len(w.GetDims()) != 4 || (len(n.GetInput()) > 2 && n.GetInput()[2] != "" && p.inits[n.GetInput()[2]] == nil) {
				p.float = append(p.float, n.GetName())
				continue
			}
		}
		p.quant[n] = true
	}
	for k := range keep {
		if !slices.ContainsFunc(g.GetNode(), func(n *onnxpb.NodeProto) bool { return n.GetName() == k }) {
			return nil, fmt.Errorf("keep-float node %q is not in the graph", k)
		}
	}
	// Walk in graph order so that calibrate lists tensors deterministically.
	seen := map[string]bool{}
	addValue := func(v string) {
		if seen[v] {
			return
		}
		seen[v] = true
		p.values[v] = true
		switch {
		case graphIn[v]:
			p.inputs = append(p.inputs, v)
		case p.sameAs[v] == "":
			p.calibrate = append(p.calibrate, v)
		}
	}
	for _, n := range g.GetNode() {
		if !p.quant[n] {
			continue
		}
		for _, i := range activationInputs(n) {
			x := n.GetInput()[i]
			if x == "" || p.inits[x] != nil {
				return nil, fmt.Errorf("node %s: input %d (%q) is not an activation", n.GetName(), i, x)
			}
			addValue(x)
		}
		out := n.GetOutput()[0]
		if op := n.GetOpType(); op == "Conv" || op == "Add" {
			if cs := consumers[out]; len(cs) == 1 && cs[0].GetOpType() == "Relu" && !outputs[out] && !producesOutput(cs[0]) {
				p.folded[n] = cs[0]
				p.dropped[cs[0]] = true
				out = cs[0].GetOutput()[0]
			}
		}
		if passThrough[n.GetOpType()] {
			p.sameAs[out] = n.GetInput()[0]
		}
		addValue(out)
	}
	if len(p.quant) == 0 {
		return nil, errors.New("nothing to quantize: no Conv, Add, Concat, MaxPool or Resize outside the output layer")
	}
	return p, nil
}

// rewrite builds the QDQ model from p and the calibrated ranges.
func (p *quantPlan) rewrite(m *onnxpb.ModelProto, ranges map[string][2]float32) (*onnxpb.ModelProto, QuantSummary, error) {
	sum := QuantSummary{Quantized: map[string]int{}, Float: append([]string{}, p.float...), FoldedReLUs: len(p.folded), Tensors: len(p.values)}
	params := map[string]qparams{}
	for v := range p.values {
		src := v
		for p.sameAs[src] != "" {
			src = p.sameAs[src]
		}
		r, ok := ranges[src]
		if !ok {
			return nil, sum, fmt.Errorf("no calibrated range for tensor %q", src)
		}
		params[v] = activationParams(r[0], r[1])
	}

	q := proto.Clone(m).(*onnxpb.ModelProto)
	g := q.GetGraph()
	names := map[string]bool{}
	for _, n := range g.GetNode() {
		names[n.GetName()] = true
		for _, s := range append(slices.Clone(n.GetInput()), n.GetOutput()...) {
			names[s] = true
		}
	}
	for _, t := range g.GetInitializer() {
		names[t.GetName()] = true
	}
	unique := func(base string) string {
		s := base
		for i := 1; names[s]; i++ {
			s = base + "_" + strconv.Itoa(i)
		}
		names[s] = true
		return s
	}
	var (
		nodes   []*onnxpb.NodeProto
		inits   []*onnxpb.TensorProto
		unused  = map[string]bool{}
		qname   = map[string]string{} // value -> its quantized tensor
		qscale  = map[string]string{}
		qzp     = map[string]string{}
		ioIndex = map[string]int{}
	)
	emitQ := func(v string) {
		pr := params[v]
		qscale[v] = unique(v + "_scale")
		qzp[v] = unique(v + "_zero_point")
		inits = append(inits, floatTensor(qscale[v], nil, []float32{pr.Scale}),
			rawTensor(qzp[v], onnxpb.TensorProto_UINT8, nil, []byte{pr.ZeroPoint}))
		qname[v] = unique(v + "_quantized")
		nodes = append(nodes, &onnxpb.NodeProto{
			OpType: proto.String("QuantizeLinear"), Name: proto.String(unique(v + "_QuantizeLinear")),
			Input: []string{v, qscale[v], qzp[v]}, Output: []string{qname[v]},
		})
	}
	for _, in := range p.inputs {
		emitQ(in)
	}
	for _, orig := range p.g.GetNode() {
		if p.dropped[orig] {
			continue
		}
		n := proto.Clone(orig).(*onnxpb.NodeProto)
		for i, x := range n.GetInput() {
			if x == "" || !p.values[x] {
				continue
			}
			ioIndex[x]++
			dq := unique(x + "_dequantized_" + strconv.Itoa(ioIndex[x]))
			nodes = append(nodes, &onnxpb.NodeProto{
				OpType: proto.String("DequantizeLinear"), Name: proto.String(unique(dq + "_DequantizeLinear")),
				Input: []string{qname[x], qscale[x], qzp[x]}, Output: []string{dq},
			})
			n.Input[i] = dq
		}
		if p.quant[orig] {
			sum.Quantized[n.GetOpType()]++
			if n.GetOpType() == "Conv" {
				xScale := params[orig.GetInput()[0]].Scale
				wn, bn, raised, err := p.quantizeConv(orig, xScale, unique)
				if err != nil {
					return nil, sum, err
				}
				sum.RaisedWeightScales += raised
				inits = append(inits, wn.inits...)
				nodes = append(nodes, wn.node)
				unused[n.Input[1]] = true
				n.Input[1] = wn.node.GetOutput()[0]
				if bn != nil {
					inits = append(inits, bn.inits...)
					nodes = append(nodes, bn.node)
					unused[n.Input[2]] = true
					n.Input[2] = bn.node.GetOutput()[0]
				}
			}
			if r := p.folded[orig]; r != nil {
				n.Output[0] = r.GetOutput()[0]
			}
		}
		nodes = append(nodes, n)
		for _, o := range n.GetOutput() {
			if p.values[o] {
				emitQ(o)
			}
		}
	}
	// Drop the float weights and biases the quantized ones replace, unless
	// a float node still reads them.
	for _, n := range nodes {
		for _, in := range n.GetInput() {
			delete(unused, in)
		}
	}
	var kept []*onnxpb.TensorProto
	for _, t := range g.GetInitializer() {
		if !unused[t.GetName()] {
			kept = append(kept, t)
		}
	}
	g.Node = nodes
	g.Initializer = append(kept, inits...)
	// Initializers listed among the inputs must still exist.
	var ins []*onnxpb.ValueInfoProto
	for _, in := range g.GetInput() {
		if !unused[in.GetName()] {
			ins = append(ins, in)
		}
	}
	g.Input = ins
	return q, sum, nil
}

// dqNode is a DequantizeLinear of a constant with its initializers.
type dqNode struct {
	node  *onnxpb.NodeProto
	inits []*onnxpb.TensorProto
}

// quantizeConv quantizes n's weight (per output channel) and bias and
// returns their DequantizeLinear nodes (bias nil when n has none).
func (p *quantPlan) quantizeConv(n *onnxpb.NodeProto, xScale float32, unique func(string) string) (w, b *dqNode, raised int, err error) {
	wt := p.inits[n.GetInput()[1]]
	wv, err := floatValues(wt)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("conv %s: weight %s: %w", n.GetName(), wt.GetName(), err)
	}
	out := int(wt.GetDims()[0])
	qw, scales, err := quantizeWeights(wv, out)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("conv %s: weight %s: %w", n.GetName(), wt.GetName(), err)
	}
	var qb []int32
	if len(n.GetInput()) > 2 && n.GetInput()[2] != "" {
		bt := p.inits[n.GetInput()[2]]
		bv, err := floatValues(bt)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("conv %s: bias %s: %w", n.GetName(), bt.GetName(), err)
		}
		if len(bv) != out {
			return nil, nil, 0, fmt.Errorf("conv %s: bias %s has %d values for %d output channels", n.GetName(), bt.GetName(), len(bv), out)
		}
		var up []int
		qb, scales, up = quantizeBias(bv, xScale, scales)
		for _, c := range up {
			requantizeChannel(qw, wv, out, c, scales[c])
		}
		raised = len(up)
		bscales := make([]float32, out)
		for c := range out {
			bscales[c] = xScale * scales[c]
		}
		raw := make([]byte, 4*out)
		for i, v := range qb {
			putUint32(raw[4*i:], uint32(v))
		}
		base := bt.GetName()
		b = dequantizeConst(unique, base, []int64{int64(out)}, onnxpb.TensorProto_INT32, raw, bscales, make([]byte, 4*out))
	}
	raw := make([]byte, len(qw))
	for i, v := range qw {
		raw[i] = byte(v)
	}
	w = dequantizeConst(unique, wt.GetName(), wt.GetDims(), onnxpb.TensorProto_INT8, raw, scales, make([]byte, out))
	return w, b, raised, nil
}

// dequantizeConst builds DequantizeLinear(q, scales, zero points, axis=0)
// of a quantized constant named after base.
func dequantizeConst(unique func(string) string, base string, dims []int64, typ onnxpb.TensorProto_DataType, raw []byte, scales []float32, zeros []byte) *dqNode {
	qn, sn, zn := unique(base+"_quantized"), unique(base+"_scale"), unique(base+"_zero_point")
	out := unique(base + "_dequantized")
	c := int64(len(scales))
	return &dqNode{
		node: &onnxpb.NodeProto{
			OpType: proto.String("DequantizeLinear"), Name: proto.String(unique(out + "_DequantizeLinear")),
			Input: []string{qn, sn, zn}, Output: []string{out}, Attribute: []*onnxpb.AttributeProto{attrInt("axis", 0)},
		},
		inits: []*onnxpb.TensorProto{
			rawTensor(qn, typ, dims, raw),
			floatTensor(sn, []int64{c}, scales),
			rawTensor(zn, typ, []int64{c}, zeros),
		},
	}
}

// rawTensor is an initializer of any type from its little-endian bytes.
func rawTensor(name string, typ onnxpb.TensorProto_DataType, dims []int64, raw []byte) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(typ)), RawData: raw}
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// floatValues reads a float32 initializer (raw_data or float_data).
func floatValues(t *onnxpb.TensorProto) ([]float32, error) {
	if t.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Errorf("data type %s, want FLOAT", onnxpb.TensorProto_DataType(t.GetDataType()))
	}
	if len(t.GetExternalData()) > 0 {
		return nil, errors.New("external data is not supported")
	}
	n := int64(1)
	for _, d := range t.GetDims() {
		n *= d
	}
	if raw := t.GetRawData(); raw != nil {
		if int64(len(raw)) != 4*n {
			return nil, fmt.Errorf("%d raw bytes for %d values", len(raw), n)
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
		}
		return v, nil
	}
	if int64(len(t.GetFloatData())) != n {
		return nil, fmt.Errorf("%d values for shape %v", len(t.GetFloatData()), t.GetDims())
	}
	return slices.Clone(t.GetFloatData()), nil
}

// setMetadata sets (or replaces) one metadata entry of m.
func setMetadata(m *onnxpb.ModelProto, key, value string) {
	for _, kv := range m.GetMetadataProps() {
		if kv.GetKey() == key {
			kv.Value = proto.String(value)
			return
		}
	}
	m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(key), Value: proto.String(value)})
}
