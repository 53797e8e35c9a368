package export

import (
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"dira/infer"
	"dira/internal/atomicfile"
	"dira/internal/torch"
	"dira/model"
	"dira/transfer"
)

// fixtureDir holds the files the tests share (a ResNet-50 U-Net's exports
// are 230 MB; writing them once per run keeps the tests quick).
var fixtureDir string

func TestMain(m *testing.M) {
	torch.SetThreads(2)
	code := func() int {
		lib, err := infer.FindLibrary("", "")
		if err != nil {
			panic(err)
		}
		if err := infer.Start(lib); err != nil {
			panic(err)
		}
		defer infer.Stop()
		fixtureDir, err = os.MkdirTemp("", "dira-export-test-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(fixtureDir)
		return m.Run()
	}()
	os.Exit(code)
}

// netCase is one network the round-trip tests export.
type netCase struct {
	name  string
	cfg   model.Config
	size  int // input height = width
	batch int
}

func smallConfig() model.Config {
	c := model.DefaultConfig()
	c.Arch = "resnet18"
	c.DecoderChannels = []int{64, 32, 16, 16, 8}
	c.OutChannels = 2
	c.Activation = "identity" // the raw head output: differences are not squashed by a sigmoid
	return c
}

var (
	small    = netCase{"resnet18_64", smallConfig(), 64, 2}
	resnet50 = netCase{"resnet50_224", model.DefaultConfig(), 224, 2}
)

// exported is a network with random weights and non-trivial BatchNorm
// statistics, and its four artifacts on disk.
type exported struct {
	netCase
	u                     *model.UNet
	ps                    *model.Params
	encoderONNX, unetONNX string
	encoderPTH, unetPTH   string
	input                 infer.Tensor
}

var fixtures = map[string]*exported{}

// fixture builds (once per test binary) c's network and writes its exports.
func fixture(t *testing.T, c netCase) *exported {
	t.Helper()
	if e, ok := fixtures[c.name]; ok {
		return e
	}
	u, ps, err := model.NewUNet(c.cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	randomizeBatchNorm(t, ps, 11)
	dir := filepath.Join(fixtureDir, c.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &exported{
		netCase: c, u: u, ps: ps,
		encoderONNX: filepath.Join(dir, "encoder.onnx"),
		unetONNX:    filepath.Join(dir, "unet.onnx"),
		encoderPTH:  filepath.Join(dir, "encoder.pth"),
		unetPTH:     filepath.Join(dir, "unet.pth"),
		input:       RandomInput(c.batch, c.size, c.size, 5),
	}
	opts := Options{Height: c.size, Width: c.size, Stage: "adversarial", Epoch: 3, ConfigHash: "cafe01"}
	mustWrite(t, e.encoderONNX, func(w io.Writer) error { return WriteEncoder(w, u, opts) })
	mustWrite(t, e.unetONNX, func(w io.Writer) error { return WriteUNet(w, u, opts) })
	sd, err := ps.StateDict("")
	if err != nil {
		t.Fatal(err)
	}
	enc, err := transfer.Classification.StateDict(sd)
	if err != nil {
		t.Fatal(err)
	}
	un, err := transfer.UNet.StateDict(sd)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, e.encoderPTH, func(w io.Writer) error { return WritePTH(w, enc) })
	mustWrite(t, e.unetPTH, func(w io.Writer) error { return WritePTH(w, un) })
	fixtures[c.name] = e
	return e
}

func mustWrite(t *testing.T, path string, fill func(w io.Writer) error) {
	t.Helper()
	if err := atomicfile.Write(path, 0o644, fill); err != nil {
		t.Fatal(err)
	}
}

// randomizeBatchNorm gives every BatchNorm eval-mode statistics and affine
// parameters away from the identity (weight 1, bias 0, mean 0, var 1), so
// that folding them into the convolutions is exercised, and sets the head's
// bias (zero-initialised in smp).
func randomizeBatchNorm(t *testing.T, ps *model.Params, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	vals := func(n int64, lo, hi float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(lo + (hi-lo)*r.Float64())
		}
		return v
	}
	set := func(name string, v []float32) {
		p := ps.Get(name)
		if err := ps.SetData(name, p.T.MustSize(), v); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range ps.List() {
		base, ok := strings.CutSuffix(p.Name, ".running_mean")
		if !ok {
			continue
		}
		n := p.T.MustSize()[0]
		set(base+".weight", vals(n, 0.5, 1.2))
		set(base+".bias", vals(n, -0.2, 0.2))
		set(base+".running_mean", vals(n, -0.2, 0.2))
		set(base+".running_var", vals(n, 0.5, 2))
		set(base+".num_batches_tracked", []float32{float32(1000 + n)})
	}
	head := ps.Get("segmentation_head.0.bias")
	set(head.Name, vals(head.T.MustSize()[0], -0.1, 0.1))
}

// python runs testdata/check.py with Debian's python3 and decodes its JSON.
func python(t *testing.T, out any, args ...string) {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", append([]string{"testdata/check.py"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("check.py %s: %v\n%s", args[0], err, stderr.String())
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("check.py %s: %v\n%s", args[0], err, b)
	}
}

// within logs a measured difference with its tolerance and fails above it.
func within(t *testing.T, what string, diff, scale, tol float64) {
	t.Helper()
	t.Logf("%s: max |diff| = %.3g (outputs up to %.3g; tolerance %.3g)", what, diff, scale, tol)
	if !(diff <= tol) || math.IsNaN(diff) {
		t.Errorf("%s: max |diff| %.3g > %.3g", what, diff, tol)
	}
}
