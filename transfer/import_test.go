package transfer

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sugarme/gotch/ts"

	"dira/internal/npy"
	"dira/internal/torch"
	"dira/internal/torch/torchtest"
	"dira/model"
	"dira/statedict"
)

// tolerance is the max |diff| allowed between the imported network and
// PyTorch on the same input (issue 7).
const tolerance = 1e-4

func TestMain(m *testing.M) {
	torch.SetThreads(2)
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
)

// fixtures writes testdata/make_fixtures.py's files (ResNet-18, 64x64, queue
// 64) once per test binary and returns their folder.
func fixtures(t *testing.T) string {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "dira-transfer-test-")
		if fixtureErr == nil {
			fixtureErr = makeFixtures(fixtureDir, "resnet18", "64", "64", "all")
		}
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureDir
}

func makeFixtures(dir string, args ...string) error {
	cmd := exec.Command("/usr/bin/python3", append([]string{"testdata/make_fixtures.py", dir}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return errors.New("make_fixtures.py: " + err.Error() + "\n" + string(out))
	}
	return nil
}

func expected(t *testing.T, dir string) map[string]npy.Array {
	t.Helper()
	m, err := npy.ReadNPZFile(filepath.Join(dir, "expected.npz"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// smallConfig is the fixtures' network: ResNet-18, decoder (64,32,16,16,8),
// sigmoid head, the official MLP projection to 128.
func smallConfig() model.Config {
	c := model.DefaultConfig()
	c.Arch = "resnet18"
	c.DecoderChannels = []int{64, 32, 16, 16, 8}
	return c
}

func read(t *testing.T, path string) *File {
	t.Helper()
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newMoCo(t *testing.T, c model.Config, queue int, restoration bool) *model.MoCo {
	t.Helper()
	m, err := model.NewMoCo(c, queue, restoration, 99)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Params.Drop)
	return m
}

func tensor(t *testing.T, a npy.Array) *ts.Tensor {
	t.Helper()
	shape := make([]int64, len(a.Shape))
	for i, d := range a.Shape {
		shape[i] = int64(d)
	}
	x, err := ts.NewTensorFromData(a.Float32(), shape)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.MustDrop)
	return x
}

// compare checks got against PyTorch's want (same shape) and logs max |diff|.
func compare(t *testing.T, what string, got *ts.Tensor, want npy.Array) {
	t.Helper()
	defer got.MustDrop()
	g := torch.Float32s(got)
	w := want.Float32()
	if len(g) != len(w) {
		t.Fatalf("%s: %d values (shape %v), PyTorch %d (shape %v)", what, len(g), got.MustSize(), len(w), want.Shape)
	}
	var diff, scale float64
	for i := range g {
		d := math.Abs(float64(g[i]) - float64(w[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		diff, scale = math.Max(diff, d), math.Max(scale, math.Abs(float64(w[i])))
	}
	t.Logf("%s: max |diff| = %.3g (values up to %.3g)", what, diff, scale)
	if !(diff <= tolerance) {
		t.Errorf("%s: max |diff| %.3g > %g", what, diff, tolerance)
	}
}

// Forwards of the imported networks, eval mode, no autograd.
func forward(t *testing.T, fn func() (*ts.Tensor, error)) *ts.Tensor {
	t.Helper()
	var y *ts.Tensor
	var err error
	torch.NoGrad(func() { y, err = fn() })
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func embed(t *testing.T, n *model.Net, x *ts.Tensor) *ts.Tensor {
	t.Helper()
	f := forward(t, func() (*ts.Tensor, error) { return n.UNet.Features(x, model.Eval) })
	defer f.MustDrop()
	return forward(t, func() (*ts.Tensor, error) { return n.Proj.Forward(f) })
}

func TestReadFile(t *testing.T) {
	torchtest.Pin(t)
	dir := fixtures(t)
	exp := expected(t, dir)
	zipped := read(t, filepath.Join(dir, "checkpoint.pth"))
	legacy := read(t, filepath.Join(dir, "checkpoint_legacy.pth"))
	cuda := read(t, filepath.Join(dir, "checkpoint_cuda.pth"))
	for _, f := range []*File{zipped, legacy, cuda} {
		if !f.Wrapped || f.Epoch != 3 || f.Arch != "resnet18" {
			t.Errorf("%s: wrapped %v epoch %d arch %q, want true 3 resnet18", f.Path, f.Wrapped, f.Epoch, f.Arch)
		}
		if want := []string{"epoch", "arch", "state_dict", "optimizer", "best_loss"}; !slices.Equal(f.Entries, want) {
			t.Errorf("%s: entries %q, want %q", f.Path, f.Entries, want)
		}
	}
	for _, other := range []*File{legacy, cuda} {
		if !slices.Equal(zipped.Names(), other.Names()) {
			t.Fatalf("%s and %s list different keys", zipped.Path, other.Path)
		}
		for i, a := range zipped.StateDict {
			b := other.StateDict[i]
			if !slices.Equal(a.Shape, b.Shape) || !slices.Equal(a.F32, b.F32) || !slices.Equal(a.I64, b.I64) {
				t.Fatalf("%s differs between %s and %s", a.Name, zipped.Path, other.Path)
			}
		}
	}
	names := zipped.Names()
	if names[0] != "module.queue" || names[1] != "module.queue_ptr" || !strings.HasPrefix(names[2], "module.encoder_q.backbone.encoder.") {
		t.Errorf("keys start %q, want the DDP module's order (own buffers first)", names[:3])
	}
	get := func(name string) statedict.Tensor {
		i := slices.Index(names, name)
		if i < 0 {
			t.Fatalf("no %s", name)
		}
		return zipped.StateDict[i]
	}
	nbt := get("module.encoder_q.backbone.encoder.bn1.num_batches_tracked")
	if len(nbt.Shape) != 0 || !slices.Equal(nbt.I64, []int64{7}) {
		t.Errorf("num_batches_tracked: shape %v values %v, want 0-d [7]", nbt.Shape, nbt.I64)
	}
	if q := get("module.queue"); !slices.Equal(q.Shape, []int64{128, 64}) || !slices.Equal(q.F32, exp["queue"].Float32()) {
		t.Errorf("queue %v differs from numpy's", q.Shape)
	}
	if p := get("module.queue_ptr"); !slices.Equal(p.Shape, []int64{1}) || !slices.Equal(p.I64, []int64{16}) {
		t.Errorf("queue_ptr %v %v, want [1] [16]", p.Shape, p.I64)
	}

	bareUNet := read(t, filepath.Join(dir, "unet.pth"))
	if bareUNet.Wrapped || bareUNet.Epoch != -1 || bareUNet.StateDict[0].Name != "encoder.conv1.weight" {
		t.Errorf("unet.pth: wrapped %v epoch %d first key %q", bareUNet.Wrapped, bareUNet.Epoch, bareUNet.StateDict[0].Name)
	}
}

// TestReadFileErrors: each unreadable file gives an error naming it.
func TestReadFileErrors(t *testing.T) {
	torchtest.Pin(t)
	dir := fixtures(t)
	tmp := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unet, err := os.ReadFile(filepath.Join(dir, "unet.pth"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(tmp, "nope.pth"), "no such file"},
		{"empty", write("empty.pth", nil), "empty file"},
		{"text", write("text.pth", []byte("hello, not a checkpoint\n")), "neither a zip archive nor a pickle"},
		{"truncated_zip", write("truncated.pth", unet[:len(unet)/2]), "not a torch.save file"},
		{"torchscript", filepath.Join(dir, "torchscript.pt"), "TorchScript"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			torchtest.Pin(t)
			_, err := ReadFile(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to name %s and say %q", err, tc.path, tc.want)
			}
		})
	}
}

// TestImportMatchesPyTorch: each official layout imports into the configured
// networks, whose eval outputs then equal PyTorch's within 1e-4.
func TestImportMatchesPyTorch(t *testing.T) {
	torchtest.Pin(t)
	dir := fixtures(t)
	exp := expected(t, dir)
	x := tensor(t, exp["x"])
	cfg := smallConfig()

	t.Run("checkpoint.pth", func(t *testing.T) {
		torchtest.Pin(t)
		m := newMoCo(t, cfg, 64, true)
		rep, err := ImportMoCo(read(t, filepath.Join(dir, "checkpoint.pth")), m)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", strings.Join(rep.Lines(), "\n"))
		if rep.Layout != LayoutDiRA || rep.Epoch != 3 || rep.Loaded != len(m.Params.List()) || rep.Copied != 0 || len(rep.Fresh) != 0 {
			t.Errorf("report %+v: want every entry loaded, nothing fresh", rep)
		}
		if len(rep.Dropped) != 1 || !strings.Contains(rep.Dropped[0], "encoder_k.backbone.{decoder,segmentation_head}") {
			t.Errorf("dropped %q, want the key network's decoder and head", rep.Dropped)
		}
		compare(t, "query U-Net mask", forward(t, func() (*ts.Tensor, error) { return m.Q.UNet.Forward(x, model.Eval) }), exp["q_mask"])
		compare(t, "query projection", embed(t, m.Q, x), exp["q_proj"])
		compare(t, "key projection", embed(t, m.K, x), exp["k_proj"])
		if q := torch.Float32s(m.Queue); !slices.Equal(q, exp["queue"].Float32()) {
			t.Error("queue differs")
		}
		if p := m.QueuePtr.Int64Values(); !slices.Equal(p, []int64{16}) {
			t.Errorf("queue_ptr %v, want [16]", p)
		}
		nbt, _, _ := m.Params.Float32("encoder_q.backbone.encoder.bn1.num_batches_tracked")
		if !slices.Equal(nbt, []float32{7}) {
			t.Errorf("num_batches_tracked %v, want 7", nbt)
		}
	})
	t.Run("unet.pth", func(t *testing.T) {
		torchtest.Pin(t)
		m := newMoCo(t, cfg, 64, true)
		rep, err := ImportMoCo(read(t, filepath.Join(dir, "unet.pth")), m)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", strings.Join(rep.Lines(), "\n"))
		if want := []string{"encoder_k.fc", "encoder_q.fc", "queue", "queue_ptr"}; rep.Layout != LayoutUNet || !slices.Equal(rep.Fresh, want) || rep.Copied == 0 {
			t.Errorf("report %+v: want fresh %q and the key encoder copied", rep, want)
		}
		compare(t, "query U-Net mask", forward(t, func() (*ts.Tensor, error) { return m.Q.UNet.Forward(x, model.Eval) }), exp["q_mask"])
		compare(t, "key encoder (copied from the query)", forward(t, func() (*ts.Tensor, error) { return m.K.UNet.Features(x, model.Eval) }), exp["q_features"])
	})
	t.Run("di_checkpoint.pth", func(t *testing.T) {
		torchtest.Pin(t)
		m := newMoCo(t, cfg, 64, false)
		rep, err := ImportMoCo(read(t, filepath.Join(dir, "di_checkpoint.pth")), m)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Layout != LayoutMoCo || rep.Epoch != 2 || len(rep.Fresh) != 0 {
			t.Errorf("report %+v", rep)
		}
		compare(t, "query resnet + head", embed(t, m.Q, x), exp["di_q_proj"])
		compare(t, "key resnet + head", embed(t, m.K, x), exp["di_k_proj"])
		if q := torch.Float32s(m.Queue); !slices.Equal(q, exp["di_queue"].Float32()) {
			t.Error("queue differs")
		}
	})
	t.Run("resnet50.pth", func(t *testing.T) {
		torchtest.Pin(t)
		m := newMoCo(t, cfg, 64, false)
		rep, err := ImportMoCo(read(t, filepath.Join(dir, "resnet50.pth")), m)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"queue", "queue_ptr"}; rep.Layout != LayoutResNet || !slices.Equal(rep.Fresh, want) || len(rep.Dropped) != 0 {
			t.Errorf("report %+v, want fresh %q only", rep, want)
		}
		compare(t, "query resnet + head", embed(t, m.Q, x), exp["di_q_proj"])
		compare(t, "key resnet + head (copied)", embed(t, m.K, x), exp["di_q_proj"])
	})
	t.Run("torchvision.pth", func(t *testing.T) {
		torchtest.Pin(t)
		m := newMoCo(t, cfg, 64, true)
		rep, err := ImportMoCo(read(t, filepath.Join(dir, "torchvision.pth")), m)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", strings.Join(rep.Lines(), "\n"))
		if len(rep.Dropped) != 1 || !strings.Contains(rep.Dropped[0], "fc.weight [1000 512]") || !slices.Contains(rep.Fresh, "encoder_q.backbone.decoder") {
			t.Errorf("report %+v: want fc dropped, decoder fresh", rep)
		}
		compare(t, "encoder features", forward(t, func() (*ts.Tensor, error) { return m.Q.UNet.Features(x, model.Eval) }), exp["tv_features"])
	})
	t.Run("D_checkpoint.pth", func(t *testing.T) {
		torchtest.Pin(t)
		ps := model.NewParams()
		defer ps.Drop()
		d := model.NewDiscriminator(ps, cfg.Discriminator, 99)
		rep, err := ImportDiscriminator(read(t, filepath.Join(dir, "D_checkpoint.pth")), ps)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Loaded != 10 || rep.Epoch != 3 {
			t.Errorf("report %+v, want 10 tensors, epoch 3", rep)
		}
		img := tensor(t, exp["img"])
		compare(t, "discriminator", forward(t, func() (*ts.Tensor, error) { return d.Forward(img) }), exp["disc"])
	})
}

// TestImportRefuses: files that do not fit the configured networks are
// refused with the offending key names, and the networks are left as they
// were.
func TestImportRefuses(t *testing.T) {
	torchtest.Pin(t)
	dir := fixtures(t)
	resnet34 := smallConfig()
	resnet34.Arch = "resnet34"
	for _, tc := range []struct {
		name, file  string
		cfg         model.Config
		queue       int
		restoration bool
		want        []string
	}{
		{"head_classes", "smp_classes2.pth", smallConfig(), 64, true, []string{"key segmentation_head.0.weight: shape [2 8 3 3]", "[1 8 3 3]"}},
		{"other_arch", "checkpoint.pth", resnet34, 64, true, []string{"missing key encoder_q.backbone.encoder.layer1.2.conv1.weight", "and "}},
		{"queue_size", "checkpoint.pth", smallConfig(), 128, true, []string{"key module.queue: shape [128 64]", "moco.queue_size"}},
		{"no_restoration", "checkpoint.pth", smallConfig(), 64, false, []string{"needs networks with the U-Net decoder"}},
		{"di_into_unet", "di_checkpoint.pth", smallConfig(), 64, true, []string{"needs networks without the U-Net decoder"}},
		{"discriminator", "D_checkpoint.pth", smallConfig(), 64, true, []string{"holds no encoder"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			torchtest.Pin(t)
			m := newMoCo(t, tc.cfg, tc.queue, tc.restoration)
			first := m.Params.List()[2]
			before := torch.Float32s(first.T)
			path := filepath.Join(dir, tc.file)
			_, err := ImportMoCo(read(t, path), m)
			if !errors.Is(err, ErrDoesNotFit) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want ErrDoesNotFit naming %s", err, path)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if !slices.Equal(torch.Float32s(first.T), before) {
				t.Errorf("%s changed although the import failed", first.Name)
			}
		})
	}
	ps := model.NewParams()
	defer ps.Drop()
	model.NewDiscriminator(ps, smallConfig().Discriminator, 1)
	if _, err := ImportDiscriminator(read(t, filepath.Join(dir, "unet.pth")), ps); !errors.Is(err, ErrDoesNotFit) {
		t.Errorf("unet.pth as the discriminator: %v", err)
	}
}

// TestImportResNet50Checkpoint: the official network (ResNet-50, smp's
// decoder, the MLP head to 128) from a full checkpoint.pth; the queue is
// kept small (its size does not change the layout).
func TestImportResNet50Checkpoint(t *testing.T) {
	torchtest.Pin(t)
	dir := t.TempDir()
	if err := makeFixtures(dir, "resnet50", "64", "256", "checkpoint"); err != nil {
		t.Fatal(err)
	}
	exp := expected(t, dir)
	x := tensor(t, exp["x"])
	m := newMoCo(t, model.DefaultConfig(), 256, true)
	rep, err := ImportMoCo(read(t, filepath.Join(dir, "checkpoint.pth")), m)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Loaded != len(m.Params.List()) {
		t.Errorf("loaded %d of %d", rep.Loaded, len(m.Params.List()))
	}
	compare(t, "query U-Net mask", forward(t, func() (*ts.Tensor, error) { return m.Q.UNet.Forward(x, model.Eval) }), exp["q_mask"])
	compare(t, "query projection", embed(t, m.Q, x), exp["q_proj"])
	compare(t, "key projection", embed(t, m.K, x), exp["k_proj"])
}
