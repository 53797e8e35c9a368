package export

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"dira/infer"
	"dira/internal/npy"
	"dira/internal/torch/torchtest"
	"dira/statedict"
)

// TestWritePTHLayout: the archive has torch.save's entries in torch's order,
// stored, with data on 64-byte boundaries; torch.load gives back an
// OrderedDict with the same names, dtypes, shapes (0-d included) and values.
func TestWritePTHLayout(t *testing.T) {
	torchtest.Pin(t)
	big := make([]float32, 70000) // a dimension that needs a 4-byte pickle int
	for i := range big {
		big[i] = float32(i) / 7
	}
	sd := statedict.StateDict{
		{Name: "layer1.0.conv1.weight", Shape: []int64{2, 3}, F32: []float32{1, -2, 3.5, 0, 1e-30, -7}},
		{Name: "bn1.num_batches_tracked", Shape: []int64{}, DType: statedict.Int64, I64: []int64{1 << 40}},
		{Name: "five_d", Shape: []int64{1, 2, 1, 2, 1}, F32: []float32{1, 2, 3, 4}},
		{Name: "wide", Shape: []int64{300}, F32: big[:300]}, // 2-byte pickle int
		{Name: "big", Shape: []int64{70000}, F32: big},
		{Name: "counts", Shape: []int64{3}, DType: statedict.Int64, I64: []int64{-1, 0, 1<<31 + 5}},
		{Name: "empty", Shape: []int64{0}, F32: []float32{}},
	}
	var buf bytes.Buffer
	if err := WritePTH(&buf, sd); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range zr.File {
		got = append(got, f.Name)
		if f.Method != zip.Store {
			t.Errorf("%s: method %d, want stored", f.Name, f.Method)
		}
		off, err := f.DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		if off%64 != 0 {
			t.Errorf("%s: data at offset %d, not 64-byte aligned", f.Name, off)
		}
	}
	want := []string{"archive/data.pkl"}
	for i := range sd {
		want = append(want, fmt.Sprintf("archive/data/%d", i))
	}
	want = append(want, "archive/version")
	if !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}

	path := filepath.Join(t.TempDir(), "x.pth")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var loaded struct {
		Type    string `json:"type"`
		Entries []struct {
			Name   string    `json:"name"`
			DType  string    `json:"dtype"`
			Shape  []int64   `json:"shape"`
			Values []float64 `json:"values"`
		} `json:"entries"`
	}
	python(t, &loaded, "load", path)
	if loaded.Type != "collections.OrderedDict" {
		t.Errorf("torch.load gave a %s, want collections.OrderedDict", loaded.Type)
	}
	if len(loaded.Entries) != len(sd) {
		t.Fatalf("torch.load gave %d entries, want %d", len(loaded.Entries), len(sd))
	}
	for i, e := range loaded.Entries {
		w := sd[i]
		wantDType := map[statedict.DType]string{statedict.Float32: "torch.float32", statedict.Int64: "torch.int64"}[w.DType]
		if e.Name != w.Name || e.DType != wantDType || !slices.Equal(e.Shape, w.Shape) {
			t.Errorf("entry %d: %s %s %v, want %s %s %v", i, e.Name, e.DType, e.Shape, w.Name, wantDType, w.Shape)
			continue
		}
		for j, v := range e.Values {
			var wv float64
			if w.DType == statedict.Int64 {
				wv = float64(w.I64[j])
			} else {
				wv = float64(w.F32[j])
			}
			if v != wv {
				t.Errorf("%s[%d] = %g, want %g", e.Name, j, v, wv)
				break
			}
		}
	}
}

func TestWritePTHRejectsShortData(t *testing.T) {
	torchtest.Pin(t)
	var buf bytes.Buffer
	err := WritePTH(&buf, statedict.StateDict{{Name: "w", Shape: []int64{2, 2}, F32: []float32{1, 2, 3}}})
	if err == nil || !strings.Contains(err.Error(), "w: shape [2 2] needs 4 values, has 3") {
		t.Fatalf("error %v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes despite the error", buf.Len())
	}
}

// TestREADMESnippets: the DiRA README's classification snippet loads
// encoder.pth into torchvision's resnet missing exactly fc.weight and
// fc.bias, and that resnet's features (fc = Identity, eval) equal
// encoder.onnx's; its segmentation snippet loads unet.pth into an smp-named
// Unet missing exactly the head it removes, and the full unet.pth in that
// Unet gives unet.onnx's mask.
func TestREADMESnippets(t *testing.T) {
	torchtest.Pin(t)
	for _, c := range []netCase{small, resnet50} {
		t.Run(c.name, func(t *testing.T) {
			torchtest.Pin(t)
			e := fixture(t, c)
			dir := t.TempDir()
			input := filepath.Join(dir, "input.npy")
			mustWrite(t, input, func(w io.Writer) error {
				shape := make([]int, len(e.input.Shape))
				for i, d := range e.input.Shape {
					shape[i] = int(d)
				}
				return npy.Write(w, npy.Array{Shape: shape, Data: e.input.Data})
			})
			dec := make([]string, len(c.cfg.DecoderChannels))
			for i, d := range c.cfg.DecoderChannels {
				dec[i] = fmt.Sprint(d)
			}
			var got struct {
				ClsMissing    []string `json:"classification_missing"`
				ClsUnexpected []string `json:"classification_unexpected"`
				SegMissing    []string `json:"segmentation_missing"`
				SegUnexpected []string `json:"segmentation_unexpected"`
			}
			python(t, &got, "snippets", c.cfg.Arch, strings.Join(dec, ","), fmt.Sprint(c.cfg.OutChannels), c.cfg.Activation,
				e.encoderPTH, e.unetPTH, input, dir)
			for _, k := range []struct {
				what      string
				got, want []string
			}{
				{"classification missing", got.ClsMissing, []string{"fc.bias", "fc.weight"}},
				{"classification unexpected", got.ClsUnexpected, nil},
				{"segmentation missing", got.SegMissing, []string{"segmentation_head.0.bias", "segmentation_head.0.weight"}},
				{"segmentation unexpected", got.SegUnexpected, nil},
			} {
				if !slices.Equal(k.got, k.want) {
					t.Errorf("%s keys %q, want %q", k.what, k.got, k.want)
				}
			}

			for _, o := range []struct{ onnx, output, npy string }{
				{e.encoderONNX, FeaturesName, "features.npy"},
				{e.unetONNX, MaskName, "mask.npy"},
			} {
				s, err := infer.NewSession(o.onnx, infer.SessionOptions{Threads: 2})
				if err != nil {
					t.Fatal(err)
				}
				res, err := s.Run(map[string]infer.Tensor{InputName: e.input})
				s.Close()
				if err != nil {
					t.Fatal(err)
				}
				f, err := os.Open(filepath.Join(dir, o.npy))
				if err != nil {
					t.Fatal(err)
				}
				py, err := npy.Read(f)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				rt := res[o.output]
				if !slices.Equal(shape64(py.Shape), rt.Shape) {
					t.Fatalf("%s: PyTorch shape %v, ONNX %v", o.output, py.Shape, rt.Shape)
				}
				d, scale := maxAbsDiff(rt.Data, py.Float32())
				within(t, c.name+" "+o.output+": PyTorch on the .pth vs ONNX Runtime", d, scale, Tolerance)
			}
		})
	}
}

func shape64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}
