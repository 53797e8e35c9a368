package model

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"

	"dira/internal/npy"
	"dira/internal/torch"
	"dira/internal/torch/torchtest"
)

var update = flag.Bool("update", false, "regenerate the key-list goldens with testdata/reference.py")

// tolerance is the max abs difference allowed against PyTorch (issue 3).
const tolerance = 1e-4

func TestMain(m *testing.M) {
	flag.Parse()
	torch.SetThreads(2)
	os.Exit(m.Run())
}

// reference runs testdata/reference.py with Debian's python3-torch.
func reference(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("/usr/bin/python3", append([]string{"testdata/reference.py", args[0], dir}, args[1:]...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference.py %v: %v\n%s", args, err, out)
	}
	return dir
}

func readNPZ(t *testing.T, path string) map[string]npy.Array {
	t.Helper()
	m, err := npy.ReadNPZFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func shape64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

// loadInto copies every array whose name is in ps; it fails on a shape
// mismatch and returns the names ps has that the arrays lack.
func loadInto(t *testing.T, ps *Params, arrays map[string]npy.Array, skip func(string) bool) {
	t.Helper()
	seen := map[string]bool{}
	for name, a := range arrays {
		if ps.Get(name) == nil {
			if skip != nil && skip(name) {
				continue
			}
			continue
		}
		seen[name] = true
		if err := ps.SetData(name, shape64(a.Shape), a.Float32()); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range ps.Names() {
		if !seen[n] {
			t.Fatalf("no reference value for %s", n)
		}
	}
}

func refTensor(t *testing.T, a npy.Array) *ts.Tensor {
	t.Helper()
	x, err := ts.NewTensorFromData(a.Float32(), shape64(a.Shape))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// maxDiff compares a tensor with a reference array (shape and values).
func maxDiff(t *testing.T, what string, got *ts.Tensor, want npy.Array) float64 {
	t.Helper()
	if !slices.Equal(got.MustSize(), shape64(want.Shape)) {
		t.Fatalf("%s: shape %v, want %v", what, got.MustSize(), want.Shape)
	}
	g, w := torch.Float32s(got), want.Float32()
	var m float64
	for i := range g {
		m = math.Max(m, math.Abs(float64(g[i])-float64(w[i])))
	}
	return m
}

func checkClose(t *testing.T, what string, got *ts.Tensor, want npy.Array) {
	t.Helper()
	d := maxDiff(t, what, got, want)
	t.Logf("%s: max |diff| = %.3g (tolerance %g)", what, d, tolerance)
	if !(d <= tolerance) {
		t.Errorf("%s: max |diff| %.3g > %g", what, d, tolerance)
	}
}

func keyLines(ps *Params) []string {
	var out []string
	for _, p := range ps.List() {
		sz := p.T.MustSize()
		parts := make([]string, len(sz))
		for i, d := range sz {
			parts[i] = fmt.Sprint(d)
		}
		out = append(out, fmt.Sprintf("%s [%s]", p.Name, strings.Join(parts, ", ")))
	}
	return out
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestKeysMatchPyTorch(t *testing.T) {
	torchtest.Pin(t)
	if *update {
		cmd := exec.Command("/usr/bin/python3", "testdata/reference.py", "keys", "testdata")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	cfg := DefaultConfig()
	for _, tc := range []struct {
		golden string
		build  func() *Params
	}{
		{"unet_resnet18_keys.golden", func() *Params {
			c := cfg
			c.Arch = "resnet18"
			_, ps, err := NewUNet(c, 1)
			if err != nil {
				t.Fatal(err)
			}
			return ps
		}},
		{"unet_resnet50_keys.golden", func() *Params { _, ps, _ := NewUNet(cfg, 1); return ps }},
		{"projection_resnet50_keys.golden", func() *Params { _, ps, _ := NewProjection(cfg, 1); return ps }},
		{"discriminator_keys.golden", func() *Params { ps := NewParams(); NewDiscriminator(ps, cfg.Discriminator, 1); return ps }},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			torchtest.Pin(t)
			ps := tc.build()
			defer ps.Drop()
			got, want := keyLines(ps), readLines(t, filepath.Join("testdata", tc.golden))
			for i := 0; i < max(len(got), len(want)); i++ {
				var g, w string
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if g != w {
					t.Fatalf("key %d: got %q, PyTorch has %q", i, g, w)
				}
			}
		})
	}
}

func TestParameterCounts(t *testing.T) {
	torchtest.Pin(t)
	cfg := DefaultConfig()
	s, err := Summarize(cfg, 224, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"encoder": 23508032, "decoder": 9012928, "segmentation_head": 145,
		"projection head (MLP)": 4458624, "discriminator": 1554433, "U-Net total": 32521105,
	}
	for _, p := range s.Parts {
		if w, ok := want[p.Name]; ok {
			if p.Params != w {
				t.Errorf("%s: %d parameters, want %d", p.Name, p.Params, w)
			}
			delete(want, p.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("summary lacks %v", want)
	}
	wantShapes := [][]int64{{1, 3, 224, 224}, {1, 64, 112, 112}, {1, 256, 56, 56}, {1, 512, 28, 28}, {1, 1024, 14, 14}, {1, 2048, 7, 7}}
	for i, sh := range s.StageShapes {
		if !slices.Equal(sh, wantShapes[i]) {
			t.Errorf("stage %d shape %v, want %v", i, sh, wantShapes[i])
		}
	}
}

// forwardCase compares U-Net, encoder features, projection and discriminator
// outputs with PyTorch for one arch and size, in eval and train mode.
func forwardCase(t *testing.T, arch string, size, n int) {
	torchtest.Pin(t)
	dir := reference(t, "forward", arch, fmt.Sprint(size), fmt.Sprint(n))
	weights := readNPZ(t, filepath.Join(dir, "weights.npz"))
	in := readNPZ(t, filepath.Join(dir, "input.npz"))
	want := readNPZ(t, filepath.Join(dir, "outputs.npz"))

	cfg := DefaultConfig()
	cfg.Arch = arch
	u, ups, err := NewUNet(cfg, 9)
	if err != nil {
		t.Fatal(err)
	}
	defer ups.Drop()
	loadInto(t, ups, weights, nil)
	proj, pps, _ := NewProjection(cfg, 9)
	defer pps.Drop()
	loadInto(t, pps, weights, nil)
	dps := NewParams()
	defer dps.Drop()
	disc := NewDiscriminator(dps, cfg.Discriminator, 9)
	loadInto(t, dps, weights, nil)

	x, img := refTensor(t, in["x"]), refTensor(t, in["img"])
	defer torch.Drop(x, img)

	withGrad := func(name string, f func() (*ts.Tensor, error)) *ts.Tensor {
		y, err := f()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return y
	}
	mask := withGrad("eval mask", func() (*ts.Tensor, error) { return u.Forward(x, Eval) })
	checkClose(t, arch+" eval mask", mask, want["eval_mask"])
	feat := withGrad("features", func() (*ts.Tensor, error) { return u.Features(x, Eval) })
	checkClose(t, arch+" eval features", feat, want["eval_features"])
	emb := withGrad("projection", func() (*ts.Tensor, error) { return proj.Forward(feat) })
	checkClose(t, arch+" projection", emb, want["eval_projection"])
	d := withGrad("discriminator", func() (*ts.Tensor, error) { return disc.Forward(img) })
	checkClose(t, "discriminator", d, want["disc"])
	torch.Drop(mask, feat, emb, d)

	train := withGrad("train mask", func() (*ts.Tensor, error) { return u.Forward(x, Mode{Train: true}) })
	checkClose(t, arch+" train mask", train, want["train_mask"])
	train.MustDrop()
	var worst float64
	for name, a := range want {
		key, ok := strings.CutPrefix(name, "after_train/")
		if !ok {
			continue
		}
		p := ups.Get(key)
		if p == nil {
			t.Fatalf("no buffer %s", key)
		}
		worst = math.Max(worst, maxDiff(t, key, p.T, a))
	}
	t.Logf("%s running statistics after a train forward: max |diff| = %.3g", arch, worst)
	if worst > tolerance {
		t.Errorf("running statistics differ from PyTorch by %.3g", worst)
	}

	if g2, ok := want["train_mask_groups2"]; ok {
		y := withGrad("ghost groups", func() (*ts.Tensor, error) { return u.Forward(x, Mode{Train: true, Groups: 2}) })
		checkClose(t, arch+" train mask, 2 ghost groups", y, g2)
		y.MustDrop()
		for name, a := range want {
			if key, ok := strings.CutPrefix(name, "after_groups2/"); ok {
				if d := maxDiff(t, key, ups.Get(key).T, a); d > tolerance {
					t.Errorf("%s after ghost-group forward differs by %.3g", key, d)
				}
			}
		}
	}
}

func TestForwardResNet18At64(t *testing.T)  { forwardCase(t, "resnet18", 64, 2) }
func TestForwardResNet50At224(t *testing.T) { forwardCase(t, "resnet50", 224, 2) }

func npyOf(x *ts.Tensor) npy.Array {
	sz := x.MustSize()
	shape := make([]int, len(sz))
	for i, d := range sz {
		shape[i] = int(d)
	}
	return npy.Array{Shape: shape, Data: torch.Float32s(x)}
}
