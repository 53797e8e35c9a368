package export

import (
	"fmt"
	"math"
	"os"

	"google.golang.org/protobuf/proto"

	"dira/data"
	"dira/export/onnxpb"
	"dira/infer"
)

// ImageFiles is a data.Source of image files given by path, decoded as
// package data does (PNG or JPEG, 8/16-bit, gray/RGB/alpha): the
// calibration and held-out images WriteQuantized takes.
type ImageFiles []string

// Len implements data.Source.
func (f ImageFiles) Len() int { return len(f) }

// Name implements data.Source: the path.
func (f ImageFiles) Name(i int) string { return f[i] }

// Load implements data.Source.
func (f ImageFiles) Load(i int) (*data.Image, error) { return data.DecodeFile(f[i]) }

// span is images [lo, hi) of a source.
type span struct {
	src    data.Source
	lo, hi int
}

func (s span) Len() int                           { return s.hi - s.lo }
func (s span) Name(i int) string                  { return s.src.Name(s.lo + i) }
func (s span) Load(i int) (*data.Image, error)    { return s.src.Load(s.lo + i) }
func sub(src data.Source, lo, hi int) data.Source { return span{src, lo, hi} }

// loadBatch decodes images [lo, hi) of src and preprocesses them as `dira
// infer` does (infer.Preprocess): one [hi-lo,3,h,w] batch.
func loadBatch(src data.Source, lo, hi, h, w int) (infer.Tensor, error) {
	plane := 3 * h * w
	x := infer.Tensor{Shape: []int64{int64(hi - lo), 3, int64(h), int64(w)}, Data: make([]float32, (hi-lo)*plane)}
	for i := lo; i < hi; i++ {
		img, err := src.Load(i)
		if err != nil {
			return x, fmt.Errorf("image %s: %w", src.Name(i), err)
		}
		copy(x.Data[(i-lo)*plane:], infer.Preprocess(img, h, w))
	}
	return x, nil
}

// rangeStat accumulates what calibration sees of one tensor.
type rangeStat struct {
	min, max float32
	hist     []uint64 // histogramBins bins over [min, max] (percentile only)
	total    uint64
}

func (r *rangeStat) observe(v []float32) error {
	for _, x := range v {
		if x != x || math.IsInf(float64(x), 0) {
			return fmt.Errorf("non-finite value %v", x)
		}
		r.min = min(r.min, x)
		r.max = max(r.max, x)
	}
	return nil
}

func (r *rangeStat) count(v []float32) {
	width := float64(r.max-r.min) / float64(len(r.hist))
	for _, x := range v {
		i := 0
		if width > 0 {
			i = min(int(float64(x-r.min)/width), len(r.hist)-1)
		}
		r.hist[i]++
	}
	r.total += uint64(len(v))
}

// percentileRange drops (100-p)/2 percent of the values on each side: the
// histogram is walked in from each end to the bin where the dropped count is
// reached, interpolating linearly inside it.
func (r *rangeStat) percentileRange(p float64) (lo, hi float32) {
	cut := float64(r.total) * (100 - p) / 200
	width := float64(r.max-r.min) / float64(len(r.hist))
	edge := func(order func(int) int, from float64, dir float64) float64 {
		var cum float64
		for k := range r.hist {
			i := order(k)
			c := float64(r.hist[i])
			if cum+c >= cut && c > 0 {
				return from + dir*width*(float64(k)+(cut-cum)/c)
			}
			cum += c
		}
		return from + dir*width*float64(len(r.hist))
	}
	n := len(r.hist)
	lo = float32(edge(func(k int) int { return k }, float64(r.min), 1))
	hi = float32(edge(func(k int) int { return n - 1 - k }, float64(r.max), -1))
	return max(lo, r.min), min(hi, r.max)
}

// calibrate runs m, with values added to its graph outputs, on the first n
// images of src and returns each value's range under opts.Method.
func calibrate(m *onnxpb.ModelProto, values []string, src data.Source, n, h, w int, opts QuantOptions) (map[string][2]float32, error) {
	aug := proto.Clone(m).(*onnxpb.ModelProto)
	have := map[string]bool{}
	for _, o := range aug.GetGraph().GetOutput() {
		have[o.GetName()] = true
	}
	for _, v := range values {
		if !have[v] {
			aug.Graph.Output = append(aug.Graph.Output, &onnxpb.ValueInfoProto{
				Name: proto.String(v),
				Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
					ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
				}}},
			})
		}
	}
	f, err := os.CreateTemp("", "dira-calibration-*.onnx")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	err = marshal(f, aug)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	so := opts.Session
	so.Device, so.OptimizedModelPath, so.ProfilePrefix = infer.DeviceCPU, "", ""
	s, err := infer.NewSession(f.Name(), so)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	input := s.InputNames()[0]

	stats := make(map[string]*rangeStat, len(values))
	for _, v := range values {
		stats[v] = &rangeStat{min: float32(math.Inf(1)), max: float32(math.Inf(-1))}
	}
	pass := func(fn func(v string, x []float32) error) error {
		for lo := 0; lo < n; lo += opts.Batch {
			hi := min(lo+opts.Batch, n)
			x, err := loadBatch(src, lo, hi, h, w)
			if err != nil {
				return err
			}
			res, err := s.Run(map[string]infer.Tensor{input: x})
			if err != nil {
				return err
			}
			for _, v := range values {
				t, ok := res[v]
				if !ok {
					return fmt.Errorf("ONNX Runtime returned no tensor %s", v)
				}
				if err := fn(v, t.Data); err != nil {
					return fmt.Errorf("tensor %s on images %d-%d: %w", v, lo, hi-1, err)
				}
			}
		}
		return nil
	}
	if err := pass(func(v string, x []float32) error { return stats[v].observe(x) }); err != nil {
		return nil, err
	}
	if opts.Method == CalibPercentile {
		for _, st := range stats {
			st.hist = make([]uint64, histogramBins)
		}
		if err := pass(func(v string, x []float32) error { stats[v].count(x); return nil }); err != nil {
			return nil, err
		}
	}
	ranges := make(map[string][2]float32, len(values))
	for v, st := range stats {
		if opts.Method == CalibPercentile {
			lo, hi := st.percentileRange(opts.Percentile)
			ranges[v] = [2]float32{lo, hi}
		} else {
			ranges[v] = [2]float32{st.min, st.max}
		}
	}
	return ranges, nil
}
