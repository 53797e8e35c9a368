package export

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"
	"google.golang.org/protobuf/proto"

	"dira/export/onnxpb"
	"dira/infer"
	"dira/internal/torch"
	"dira/internal/torch/torchtest"
	"dira/model"
)

// TestFoldBN: Conv then eval-mode BatchNorm in libtorch equals one Conv with
// foldBN's weights and bias, with and without a conv bias.
func TestFoldBN(t *testing.T) {
	torchtest.Pin(t)
	const out, in, k = 4, 3, 3
	x := RandomInput(2, 8, 8, 1) // [2,3,8,8]
	w := RandomInput(out, k, k, 2).Data[:out*in*k*k]
	for i := range w {
		w[i] -= 0.5
	}
	gamma := []float32{0.5, 1.5, -0.7, 1}
	beta := []float32{0.1, -0.2, 0.3, 0}
	mean := []float32{0.3, -0.1, 0.05, 2}
	variance := []float32{0.2, 1.7, 0.9, 0.01}
	tensor := func(v []float32, shape ...int64) *ts.Tensor {
		tt, err := ts.NewTensorFromData(v, shape)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	for _, tc := range []struct {
		name string
		bias []float32
	}{{"no_bias", nil}, {"bias", []float32{0.2, -0.4, 0.6, -0.8}}} {
		t.Run(tc.name, func(t *testing.T) {
			torchtest.Pin(t)
			xt, wt := tensor(x.Data, x.Shape...), tensor(w, out, in, k, k)
			bt := ts.None
			if tc.bias != nil {
				bt = tensor(tc.bias, out)
			}
			conv := ts.MustConv2d(xt, wt, bt, []int64{1, 1}, []int64{1, 1}, []int64{1, 1}, 1)
			want := ts.MustBatchNorm(conv, tensor(gamma, out), tensor(beta, out), tensor(mean, out), tensor(variance, out), false, 0.1, bnEps, false)
			fw, fb := foldBN(w, out, tc.bias, gamma, beta, mean, variance, bnEps)
			got := ts.MustConv2d(xt, tensor(fw, out, in, k, k), tensor(fb, out), []int64{1, 1}, []int64{1, 1}, []int64{1, 1}, 1)
			d, scale := maxAbsDiff(torch.Float32s(got), torch.Float32s(want))
			within(t, "folded conv vs conv+BN", d, scale, 1e-6*scale) // float32 rounding of outputs up to ~50
		})
	}
}

// TestRuntimeMatchesGo is the export round trip: each ONNX file in ONNX
// Runtime against the Go forward (eval mode) on the same batch.
func TestRuntimeMatchesGo(t *testing.T) {
	torchtest.Pin(t)
	for _, c := range []netCase{small, resnet50} {
		t.Run(c.name, func(t *testing.T) {
			torchtest.Pin(t)
			e := fixture(t, c)
			for _, a := range []struct {
				kind Kind
				path string
				want []int64
			}{
				{KindEncoder, e.encoderONNX, []int64{int64(c.batch), int64(encoderChannels(t, c.cfg.Arch))}},
				{KindUNet, e.unetONNX, []int64{int64(c.batch), int64(c.cfg.OutChannels), int64(c.size), int64(c.size)}},
			} {
				chk, err := Verify(a.path, e.u, a.kind, e.input, infer.SessionOptions{Threads: 2})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(chk.Shape, a.want) {
					t.Errorf("%s: shape %v, want %v", a.kind, chk.Shape, a.want)
				}
				within(t, c.name+" "+string(a.kind)+" ORT vs Go", chk.MaxAbsDiff, chk.MaxAbs, Tolerance)
			}
			// The batch dimension is dynamic: one image runs too.
			one := infer.Tensor{Shape: []int64{1, 3, int64(c.size), int64(c.size)}, Data: e.input.Data[:3*c.size*c.size]}
			chk, err := Verify(e.encoderONNX, e.u, KindEncoder, one, infer.SessionOptions{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			within(t, c.name+" encoder, batch 1", chk.MaxAbsDiff, chk.MaxAbs, Tolerance)
		})
	}
}

func encoderChannels(t *testing.T, arch string) int64 {
	ch, err := model.EncoderChannels(arch)
	if err != nil {
		t.Fatal(err)
	}
	return ch[5]
}

// TestCheckerAccepts: Debian's onnx 1.12 checker (full_check, i.e. with
// shape inference) accepts both files; they declare IR 8, opset 17, the
// named dynamic-batch input/output and the metadata.
func TestCheckerAccepts(t *testing.T) {
	torchtest.Pin(t)
	for _, c := range []netCase{small, resnet50} {
		t.Run(c.name, func(t *testing.T) {
			torchtest.Pin(t)
			e := fixture(t, c)
			var got map[string]struct {
				IRVersion int               `json:"ir_version"`
				Opsets    map[string]int    `json:"opsets"`
				Inputs    map[string][]any  `json:"inputs"`
				Outputs   map[string][]any  `json:"outputs"`
				Metadata  map[string]string `json:"metadata"`
				Ops       []string          `json:"ops"`
			}
			python(t, &got, "onnx", e.encoderONNX, e.unetONNX)
			size := float64(c.size)
			unetOps := []string{"Add", "Concat", "Conv", "MaxPool", "Relu", "Resize"}
			if c.cfg.Activation == "sigmoid" {
				unetOps = append(unetOps, "Sigmoid")
			}
			for file, want := range map[string]struct {
				out  string
				dims []any
				ops  []string
			}{
				"encoder.onnx": {FeaturesName, []any{"N", float64(encoderChannels(t, c.cfg.Arch))},
					[]string{"Add", "Conv", "Flatten", "GlobalAveragePool", "MaxPool", "Relu"}},
				"unet.onnx": {MaskName, []any{"N", float64(c.cfg.OutChannels), size, size}, unetOps},
			} {
				g, ok := got[file]
				if !ok {
					t.Fatalf("no report for %s", file)
				}
				if g.IRVersion != 8 || g.Opsets[""] != 17 {
					t.Errorf("%s: IR %d, opsets %v; want IR 8, opset 17", file, g.IRVersion, g.Opsets)
				}
				if in := g.Inputs[InputName]; !slices.Equal(in, []any{"N", 3.0, size, size}) {
					t.Errorf("%s: input %v", file, g.Inputs)
				}
				if out := g.Outputs[want.out]; !slices.Equal(out, want.dims) {
					t.Errorf("%s: outputs %v, want %s %v", file, g.Outputs, want.out, want.dims)
				}
				if !slices.Equal(g.Ops, want.ops) {
					t.Errorf("%s: ops %v, want %v", file, g.Ops, want.ops)
				}
				for k, v := range map[string]string{"stage": "adversarial", "epoch": "3", "config_hash": "cafe01", "input_range": InputRange, "arch": c.cfg.Arch} {
					if g.Metadata[k] != v {
						t.Errorf("%s: metadata %s = %q, want %q", file, k, g.Metadata[k], v)
					}
				}
			}
		})
	}
}

// TestResizeAttributes: the U-Net's upsampling is written as torch 1.13's
// exporter writes F.interpolate(scale_factor=2, mode="nearest").
func TestResizeAttributes(t *testing.T) {
	torchtest.Pin(t)
	e := fixture(t, small)
	b, err := os.ReadFile(e.unetONNX)
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var resizes int
	for _, n := range m.GetGraph().GetNode() {
		if n.GetOpType() != "Resize" {
			continue
		}
		resizes++
		attrs := map[string]string{}
		for _, a := range n.GetAttribute() {
			attrs[a.GetName()] = string(a.GetS())
		}
		want := map[string]string{"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
		for k, v := range want {
			if attrs[k] != v {
				t.Errorf("%s: %s = %q, want %q", n.GetName(), k, attrs[k], v)
			}
		}
		if len(n.GetInput()) != 3 || n.GetInput()[2] != "decoder.upsample_scales" {
			t.Errorf("%s: inputs %q", n.GetName(), n.GetInput())
		}
	}
	if resizes != 5 {
		t.Errorf("%d Resize nodes, want 5 (one per decoder block)", resizes)
	}
	for _, in := range m.GetGraph().GetInitializer() {
		if in.GetName() == "decoder.upsample_scales" {
			if got := len(in.GetRawData()); got != 16 || !bytes.Equal(in.GetRawData()[8:], []byte{0, 0, 0, 0x40, 0, 0, 0, 0x40}) {
				t.Errorf("scales raw data %x, want float32 [1 1 2 2]", in.GetRawData())
			}
		}
	}
}

func TestOptionsErrors(t *testing.T) {
	torchtest.Pin(t)
	e := fixture(t, small)
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"zero", Options{}, "height must be a positive multiple of 32, got 0"},
		{"odd_width", Options{Height: 64, Width: 65}, "width must be a positive multiple of 32, got 65"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			torchtest.Pin(t)
			var buf bytes.Buffer
			err := WriteEncoder(&buf, e.u, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes despite the error", buf.Len())
			}
		})
	}
	noDecoder := &model.UNet{Encoder: e.u.Encoder}
	if err := WriteUNet(&bytes.Buffer{}, noDecoder, Options{Height: 64, Width: 64}); err == nil || !strings.Contains(err.Error(), "no decoder") {
		t.Errorf("U-Net without decoder: %v", err)
	}
}

// TestVerifyNamesBadFile: a truncated or missing ONNX file is an error that
// names it.
func TestVerifyNamesBadFile(t *testing.T) {
	torchtest.Pin(t)
	e := fixture(t, small)
	b, err := os.ReadFile(e.encoderONNX)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated.onnx")
	if err := os.WriteFile(truncated, b[:len(b)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{truncated, filepath.Join(dir, "missing.onnx")} {
		_, err := Verify(path, e.u, KindEncoder, e.input, infer.SessionOptions{})
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Verify(%s): error %v does not name the file", filepath.Base(path), err)
		}
	}
	if _, err := Verify(e.encoderONNX, e.u, "decoder", e.input, infer.SessionOptions{}); err == nil || !strings.Contains(err.Error(), "unknown model kind") {
		t.Errorf("unknown kind: %v", err)
	}
}
