package infer

import (
	"context"
	"encoding/csv"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"dira/data"
	"dira/internal/npy"
)

// The models in testdata come from testdata/gen_models.py.

func writeImage(t *testing.T, p string, img image.Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func uniform(w, h int, c color.Color) image.Image {
	m := image.NewRGBA64(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.Set(x, y, c)
		}
	}
	return m
}

// imageSet writes three single-colour images of other sizes than the
// model's (RGB 8-bit, gray 16-bit in a subfolder, gray 8-bit) and one
// corrupt PNG, and returns the folder.
func imageSet(t *testing.T) string {
	dir := t.TempDir()
	writeImage(t, filepath.Join(dir, "a.png"), uniform(40, 24, color.RGBA{200, 100, 50, 255}))
	writeImage(t, filepath.Join(dir, "sub", "b.png"), uniform(32, 32, color.Gray16{0x8080}))
	g := image.NewGray(image.Rect(0, 0, 50, 70))
	for i := range g.Pix {
		g.Pix[i] = 30
	}
	writeImage(t, filepath.Join(dir, "c.png"), g)
	if err := os.WriteFile(filepath.Join(dir, "d.png"), []byte("\x89PNG\r\n\x1a\nbroken"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openModel(t *testing.T, path string) *Model {
	t.Helper()
	startRuntime(t)
	m, err := OpenModel(path, SessionOptions{Device: "cpu", Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func readCSV(t *testing.T, p string) [][]string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestOpenModel(t *testing.T) {
	startRuntime(t)
	m := openModel(t, "testdata/encoder32.onnx")
	if m.Kind != KindEncoder || m.Input != "image" || m.Output != "features" || m.Height != 32 || m.Width != 32 || m.Channels != 3 {
		t.Errorf("encoder: %+v", m)
	}
	u := openModel(t, "testdata/unet32.onnx")
	if u.Kind != KindUNet || u.Output != "mask" || u.Channels != 1 {
		t.Errorf("unet: %+v", u)
	}
	garbage := filepath.Join(t.TempDir(), "model.onnx")
	os.WriteFile(garbage, []byte("not a protobuf at all"), 0o644)
	for _, tc := range []struct{ name, path, want string }{
		{"rank2_input", "testdata/tiny.onnx", `input "x" float32 [N,3], want float32 [N,3,H,W]`},
		{"gray_input", "testdata/gray32.onnx", "[N,1,32,32], want float32 [N,3,H,W] with fixed H and W"},
		{"dynamic_size", "testdata/anysize.onnx", "[N,3,?,?], want"},
		{"huge_input", "testdata/huge.onnx", `input "image" float32 [N,3,100000,100000] is 10000000000 pixels per image, more than the 67108864`},
		{"not_onnx", garbage, "read model"},
		{"missing", "testdata/nope.onnx", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenModel(tc.path, SessionOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to name %s and say %q", err, tc.path, tc.want)
			}
		})
	}
}

func TestListInputs(t *testing.T) {
	dir := imageSet(t)
	ins, err := ListInputs(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range ins {
		names = append(names, in.Name)
	}
	if want := []string{"a.png", "c.png", "d.png", "sub/b.png"}; !slices.Equal(names, want) {
		t.Errorf("folder: %q, want %q", names, want)
	}
	list := filepath.Join(dir, "list.txt")
	os.WriteFile(list, []byte("sub/b.png 0 1\na.png 1 0\n"), 0o644)
	ins, err = ListInputs(list, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 2 || ins[0].Path != filepath.Join(dir, "sub", "b.png") || ins[1].Name != "a.png" {
		t.Errorf("list: %+v", ins)
	}
	if ins, err := ListInputs(filepath.Join(dir, "a.png"), ""); err != nil || len(ins) != 1 {
		t.Errorf("one file: %v %v", ins, err)
	}
	if _, err := ListInputs(filepath.Join(dir, "nope"), ""); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing input: %v", err)
	}
}

// TestRunEncoder: features.npy holds one row per readable image, in input
// order, equal to the model run on Preprocess's output (here the mean of
// each channel in [0,1], which for a single-colour image is its colour).
func TestRunEncoder(t *testing.T) {
	m := openModel(t, "testdata/encoder32.onnx")
	dir := imageSet(t)
	ins, err := ListInputs(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var log strings.Builder
	sum, err := m.Run(context.Background(), ins, out, RunOptions{Batch: 2, BadImages: data.BadImagesSkip, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Images != 3 || len(sum.Skipped) != 1 || !strings.Contains(sum.Skipped[0], "d.png") || sum.Device != "cpu" {
		t.Errorf("summary %+v", sum)
	}
	if !strings.Contains(log.String(), "infer: 4/4 images") || !strings.Contains(log.String(), "skipped") {
		t.Errorf("log:\n%s", log.String())
	}
	f, err := os.Open(filepath.Join(out, "features.npy"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := npy.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{200. / 255, 100. / 255, 50. / 255, 30. / 255, 30. / 255, 30. / 255, 128. / 255, 128. / 255, 128. / 255}
	got := a.Float32()
	if !slices.Equal(a.Shape, []int{3, 3}) {
		t.Fatalf("features shape %v, want [3 3]", a.Shape)
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 { // ONNX Runtime sums in another order
			t.Fatalf("features %v, want %v", got, want)
		}
	}
	rows := readCSV(t, filepath.Join(out, "index.csv"))
	if want := [][]string{{"row", "file"}, {"0", "a.png"}, {"1", "c.png"}, {"2", "sub/b.png"}}; !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("index.csv %q, want %q", rows, want)
	}

	_, err = m.Run(context.Background(), ins, t.TempDir(), RunOptions{Batch: 4, BadImages: data.BadImagesFail})
	if p := filepath.Join(dir, "d.png"); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "--bad-images skip") {
		t.Errorf("fail policy: %v, want an error naming %s", err, p)
	}
}

// TestRunUNet: one PNG per image at the image's own size, 8- or 16-bit,
// and overlays three images wide.
func TestRunUNet(t *testing.T) {
	m := openModel(t, "testdata/unet32.onnx")
	dir := imageSet(t)
	os.Remove(filepath.Join(dir, "d.png"))
	ins, err := ListInputs(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, bits := range []int{8, 16} {
		out := t.TempDir()
		sum, err := m.Run(context.Background(), ins, out, RunOptions{Batch: 3, BadImages: data.BadImagesFail, MaskBits: bits, Overlay: true})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Images != 3 || len(sum.Skipped) != 0 {
			t.Errorf("summary %+v", sum)
		}
		for _, tc := range []struct {
			name string
			w, h int
			mean float64
		}{{"a", 40, 24, 350. / 3 / 255}, {"sub/b", 32, 32, 128. / 255}, {"c", 50, 70, 30. / 255}} {
			f, err := os.Open(filepath.Join(out, "masks", tc.name+".png"))
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(f)
			f.Close()
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
				t.Errorf("%s: mask %v, want the input's %dx%d", tc.name, b, tc.w, tc.h)
			}
			var v float64
			switch g := img.(type) {
			case *image.Gray:
				if bits != 8 {
					t.Errorf("%s: 8-bit mask, want %d", tc.name, bits)
				}
				v = float64(g.Pix[0]) / 255
			case *image.Gray16:
				if bits != 16 {
					t.Errorf("%s: 16-bit mask, want %d", tc.name, bits)
				}
				v = float64(g.Gray16At(tc.w/2, tc.h/2).Y) / 65535
			default:
				t.Fatalf("%s: mask is %T, want gray", tc.name, img)
			}
			if math.Abs(v-tc.mean) > 1.0/float64(int(1)<<bits) {
				t.Errorf("%s: mask value %v, want %v", tc.name, v, tc.mean)
			}
			of, err := os.Open(filepath.Join(out, "overlays", tc.name+".png"))
			if err != nil {
				t.Fatal(err)
			}
			oc, err := png.DecodeConfig(of)
			of.Close()
			if err != nil || oc.Width != 3*tc.w || oc.Height != tc.h {
				t.Errorf("%s: overlay %dx%d %v, want %dx%d", tc.name, oc.Width, oc.Height, err, 3*tc.w, tc.h)
			}
		}
		rows := readCSV(t, filepath.Join(out, "index.csv"))
		if len(rows) != 4 || rows[3][2] != "masks/sub/b.png" {
			t.Errorf("index.csv %q", rows)
		}
	}
}

func TestRunErrors(t *testing.T) {
	m := openModel(t, "testdata/unet32.onnx")
	ins := []Input{{Path: "x/a.png", Name: "a.png"}, {Path: "y/a.jpg", Name: "a.jpg"}}
	for _, tc := range []struct {
		opts RunOptions
		want string
	}{
		{RunOptions{Batch: 0, BadImages: "skip", MaskBits: 8}, "batch must be in [1, 4096], got 0"},
		{RunOptions{Batch: 100000, BadImages: "skip", MaskBits: 8}, "batch must be in [1, 4096], got 100000"},
		{RunOptions{Batch: 1, Workers: -1, BadImages: "skip", MaskBits: 8}, "workers must be in [1, 256] (0: 2), got -1"},
		{RunOptions{Batch: 1, Workers: 100000, BadImages: "skip", MaskBits: 8}, "workers must be in [1, 256] (0: 2), got 100000"},
		{RunOptions{Batch: 1, BadImages: "ignore", MaskBits: 8}, "bad-images policy"},
		{RunOptions{Batch: 1, BadImages: "skip", MaskBits: 12}, "mask bits"},
		{RunOptions{Batch: 1, BadImages: "skip", MaskBits: 8}, "x/a.png and y/a.jpg would both write mask a.png"},
	} {
		if _, err := m.Run(context.Background(), ins, t.TempDir(), tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.opts, err, tc.want)
		}
	}
}

func TestResizeFloat(t *testing.T) {
	src := []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	if got := resizeFloat(src, 4, 4, 4, 4); !slices.Equal(got, src) {
		t.Errorf("same size changed the image")
	}
	// Expected values from PIL: Image.fromarray(a, 'F').resize(size, BILINEAR).
	got := resizeFloat(src, 4, 4, 2, 2)
	for i, w := range []float32{3.5714288, 5.142857, 9.857143, 11.428572} {
		if math.Abs(float64(got[i]-w)) > 1e-5 {
			t.Fatalf("halved %v, want PIL's [3.5714288 5.142857 9.857143 11.428572]", got)
		}
	}
	// numpy.random.RandomState(0).rand(5, 7), 7x5 -> 13x3 (wider, shorter); row 1.
	r := []float32{0.54881352186203, 0.7151893377304077, 0.6027633547782898, 0.5448831915855408, 0.42365479469299316, 0.6458941102027893, 0.4375872015953064,
		0.891772985458374, 0.9636627435684204, 0.3834415078163147, 0.7917250394821167, 0.5288949012756348, 0.5680445432662964, 0.9255966544151306,
		0.07103605568408966, 0.08712930232286453, 0.020218396559357643, 0.832619845867157, 0.7781567573547363, 0.8700121641159058, 0.978618323802948,
		0.7991585731506348, 0.4614793658256531, 0.7805292010307312, 0.11827442795038223, 0.6399210095405579, 0.14335328340530396, 0.9446688890457153,
		0.5218483209609985, 0.4146619439125061, 0.26455560326576233, 0.7742336988449097, 0.4561503231525421, 0.568433940410614, 0.018789799883961678}
	got = resizeFloat(r, 7, 5, 13, 3)
	for i, w := range []float32{0.41522706, 0.39980438, 0.37281474, 0.32848388} {
		if math.Abs(float64(got[13+i]-w)) > 1e-5 {
			t.Fatalf("7x5 -> 13x3 row 1 %v, want PIL's [0.41522706 0.39980438 0.37281474 0.32848388]", got[13:17])
		}
	}
	flat := make([]float32, 7*5)
	for i := range flat {
		flat[i] = 0.25
	}
	for _, v := range resizeFloat(flat, 7, 5, 13, 3) {
		if math.Abs(float64(v)-0.25) > 1e-6 {
			t.Fatalf("a constant image changed: %v", v)
		}
	}
}
