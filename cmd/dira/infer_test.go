package main

import (
	"encoding/csv"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"

	"dira/data"
	"dira/export"
	"dira/infer"
	"dira/internal/atomicfile"
	"dira/internal/torch"
	"dira/internal/torch/torchtest"
	"dira/model"
)

// inferFixture is a small U-Net (ResNet-18, decoder 64,32,16,16,8, 64x64)
// exported with package export, and a folder of images of other sizes.
type inferFixture struct {
	u                      *model.UNet
	encoderONNX, unetONNX  string
	images                 string
	sizes                  map[string][2]int // file -> width, height
	garbageModel, grayONNX string
}

func newInferFixture(t *testing.T) *inferFixture {
	t.Helper()
	dir := t.TempDir()
	cfg := model.DefaultConfig()
	cfg.Arch = "resnet18"
	cfg.DecoderChannels = []int{64, 32, 16, 16, 8}
	u, ps, err := model.NewUNet(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ps.Drop)
	f := &inferFixture{u: u, encoderONNX: filepath.Join(dir, "encoder.onnx"), unetONNX: filepath.Join(dir, "unet.onnx"),
		images: filepath.Join(dir, "images"), sizes: map[string][2]int{}}
	opts := export.Options{Height: 64, Width: 64, Stage: "test", Epoch: 1, ConfigHash: "test"}
	for p, w := range map[string]func(io.Writer) error{
		f.encoderONNX: func(w io.Writer) error { return export.WriteEncoder(w, u, opts) },
		f.unetONNX:    func(w io.Writer) error { return export.WriteUNet(w, u, opts) },
	} {
		if err := atomicfile.Write(p, 0o644, w); err != nil {
			t.Fatal(err)
		}
	}
	// Random-noise images: an RGB one larger than the model, a 16-bit gray
	// one smaller and not square, an 8-bit gray one at the model's size.
	r := rand.New(rand.NewPCG(1, 2))
	rgb := image.NewRGBA(image.Rect(0, 0, 90, 70))
	for i := range rgb.Pix {
		rgb.Pix[i] = uint8(r.IntN(256))
		if i%4 == 3 {
			rgb.Pix[i] = 255
		}
	}
	g16 := image.NewGray16(image.Rect(0, 0, 48, 40))
	for y := range 40 {
		for x := range 48 {
			g16.SetGray16(x, y, color.Gray16{uint16(r.IntN(65536))})
		}
	}
	g8 := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range g8.Pix {
		g8.Pix[i] = uint8(r.IntN(256))
	}
	for name, img := range map[string]image.Image{"rgb.png": rgb, "gray16.png": g16, "sub/gray8.png": g8} {
		p := filepath.Join(f.images, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		var buf strings.Builder
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(buf.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		b := img.Bounds()
		f.sizes[name] = [2]int{b.Dx(), b.Dy()}
	}
	f.garbageModel = filepath.Join(dir, "garbage.onnx")
	os.WriteFile(f.garbageModel, []byte("definitely not an ONNX protobuf"), 0o644)
	f.grayONNX, _ = filepath.Abs("../../infer/testdata/gray32.onnx") // input [N,1,32,32]
	return f
}

// goFeatures runs the Go encoder (eval mode) on the same preprocessed input
// infer builds for the files.
func goFeatures(t *testing.T, u *model.UNet, files []string) []float32 {
	t.Helper()
	var x []float32
	for _, p := range files {
		img, err := data.DecodeFile(p)
		if err != nil {
			t.Fatal(err)
		}
		x = append(x, infer.Preprocess(img, 64, 64)...)
	}
	in, err := ts.NewTensorFromData(x, []int64{int64(len(files)), 3, 64, 64})
	if err != nil {
		t.Fatal(err)
	}
	defer in.MustDrop()
	var y *ts.Tensor
	torch.NoGrad(func() { y, err = u.Features(in, model.Eval) })
	if err != nil {
		t.Fatal(err)
	}
	defer y.MustDrop()
	return torch.Float32s(y)
}

// numpyLoad reads a .npy file with Debian's numpy and returns its shape,
// dtype and values.
func numpyLoad(t *testing.T, p string) (shape []int, dtype string, values []float64) {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c",
		`import json, sys, numpy; a = numpy.load(sys.argv[1]); print(json.dumps({"shape": a.shape, "dtype": str(a.dtype), "values": a.ravel().tolist()}))`, p).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy.load(%s): %v\n%s", p, err, out)
	}
	var r struct {
		Shape  []int
		Dtype  string
		Values []float64
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r.Shape, r.Dtype, r.Values
}

func readIndex(t *testing.T, p string) [][]string {
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
	return rows[1:]
}

// TestInferEncoderOnCUDAFallsBack: --device cuda on this machine (no CUDA
// provider, no GPU) runs on the CPU, says why, exits 0; features.npy loads
// with numpy and equals the Go forward on the same preprocessed input.
func TestInferEncoderOnCUDAFallsBack(t *testing.T) {
	torchtest.Pin(t)
	f := newInferFixture(t)
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := dira(t, "infer", "--model", f.encoderONNX, "--input", f.images, "--out", out,
		"--device", "cuda", "--batch", "2", "--threads", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	t.Logf("stderr:\n%sstdout:\n%s", stderr, stdout)
	if !strings.Contains(stderr, "--device cuda: CUDA not used, running on the CPU: loading the CUDA provider") {
		t.Errorf("stderr does not say why CUDA was not used:\n%s", stderr)
	}
	if !strings.Contains(stdout, "infer: 3 images in ") || !strings.Contains(stdout, "images/s on cpu") {
		t.Errorf("final line: %q", stdout)
	}
	rows := readIndex(t, filepath.Join(out, "index.csv"))
	var files []string
	for _, r := range rows {
		files = append(files, filepath.Join(f.images, r[1]))
	}
	if len(files) != 3 || rows[2][1] != "sub/gray8.png" {
		t.Fatalf("index.csv rows %q", rows)
	}
	shape, dtype, got := numpyLoad(t, filepath.Join(out, "features.npy"))
	if len(shape) != 2 || shape[0] != 3 || shape[1] != 512 || dtype != "float32" {
		t.Fatalf("features.npy: %v %s, want [3 512] float32", shape, dtype)
	}
	want := goFeatures(t, f.u, files)
	var diff, scale float64
	for i := range want {
		diff = math.Max(diff, math.Abs(got[i]-float64(want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	t.Logf("features.npy vs Go forward: max |diff| = %.3g (values up to %.3g)", diff, scale)
	if !(diff <= 1e-4) {
		t.Errorf("features.npy differs from the Go forward by %.3g", diff)
	}

	code, _, stderr = dira(t, "infer", "--model", f.encoderONNX, "--input", f.images, "--out", t.TempDir(),
		"--device", "cuda", "--strict-device")
	if code != 1 || !strings.Contains(stderr, "CUDA is not available") || !strings.Contains(stderr, f.encoderONNX) {
		t.Errorf("--strict-device: exit %d, stderr %q; want 1 and a reason naming the model", code, stderr)
	}
}

// TestInferUNetMasks: one valid PNG per image at the image's own size, 8-
// or 16-bit, and overlays.
func TestInferUNetMasks(t *testing.T) {
	torchtest.Pin(t)
	f := newInferFixture(t)
	for _, bits := range []string{"8", "16"} {
		out := t.TempDir()
		code, stdout, stderr := dira(t, "infer", "--model", f.unetONNX, "--input", f.images, "--out", out,
			"--device", "cpu", "--mask-bits", bits, "--overlay", "--threads", "2")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if strings.Contains(stderr, "CUDA not used") || !strings.Contains(stdout, "3 images") {
			t.Errorf("stdout %q stderr %q", stdout, stderr)
		}
		for name, size := range f.sizes {
			mask := filepath.Join(out, "masks", name)
			fh, err := os.Open(mask)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(fh)
			fh.Close()
			if err != nil {
				t.Fatalf("%s is not a valid PNG: %v", mask, err)
			}
			if b := img.Bounds(); b.Dx() != size[0] || b.Dy() != size[1] {
				t.Errorf("%s is %dx%d, want the input's %dx%d", mask, b.Dx(), b.Dy(), size[0], size[1])
			}
			_, is16 := img.(*image.Gray16)
			_, is8 := img.(*image.Gray)
			if (bits == "16" && !is16) || (bits == "8" && !is8) {
				t.Errorf("%s is %T, want a %s-bit gray PNG", mask, img, bits)
			}
			if _, err := os.Stat(filepath.Join(out, "overlays", name)); err != nil {
				t.Error(err)
			}
		}
	}
}

// TestInferErrorsNameTheFile: a corrupt or non-ONNX model, a model whose
// input is not [N,3,H,W], an unreadable image: exit 1, the file named.
func TestInferErrorsNameTheFile(t *testing.T) {
	torchtest.Pin(t)
	f := newInferFixture(t)
	badImages := t.TempDir()
	broken := filepath.Join(badImages, "broken.png")
	os.WriteFile(broken, []byte("\x89PNG\r\n\x1a\ntruncated"), 0o644)
	good, _ := os.ReadFile(filepath.Join(f.images, "rgb.png"))
	os.WriteFile(filepath.Join(badImages, "good.png"), good, 0o644)
	truncated := filepath.Join(t.TempDir(), "truncated.onnx")
	onnxBytes, _ := os.ReadFile(f.encoderONNX)
	os.WriteFile(truncated, onnxBytes[:len(onnxBytes)/3], 0o644)
	pngAsModel := filepath.Join(f.images, "rgb.png")
	for _, tc := range []struct {
		name  string
		args  []string
		names string
		says  string
	}{
		{"garbage_model", []string{"--model", f.garbageModel, "--input", f.images}, f.garbageModel, "read model"},
		{"truncated_model", []string{"--model", truncated, "--input", f.images}, truncated, "read model"},
		{"png_as_model", []string{"--model", pngAsModel, "--input", f.images}, pngAsModel, "read model"},
		{"gray_input", []string{"--model", f.grayONNX, "--input", f.images}, f.grayONNX, "want float32 [N,3,H,W]"},
		{"unreadable_image", []string{"--model", f.encoderONNX, "--input", badImages, "--bad-images", "fail"}, broken, "--bad-images skip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			torchtest.Pin(t)
			code, _, stderr := dira(t, append([]string{"infer", "--out", t.TempDir(), "--device", "cpu"}, tc.args...)...)
			if code != 1 || !strings.Contains(stderr, tc.names) || !strings.Contains(stderr, tc.says) {
				t.Fatalf("exit %d, stderr %q; want 1, naming %s and saying %q", code, stderr, tc.names, tc.says)
			}
		})
	}
	out := t.TempDir()
	code, stdout, stderr := dira(t, "infer", "--model", f.encoderONNX, "--input", badImages, "--out", out, "--device", "cpu", "--bad-images", "skip")
	if code != 0 || !strings.Contains(stderr, "skipped") || !strings.Contains(stderr, broken) || !strings.Contains(stdout, "1 unreadable skipped") {
		t.Errorf("skip: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = dira(t, "infer", "--model", f.encoderONNX, "--input", badImages, "--out", out, "--device", "tpu")
	if code != 2 || !strings.Contains(stderr, "--device must be one of auto, cpu, cuda") {
		t.Errorf("bad device: exit %d, stderr %q", code, stderr)
	}
}
