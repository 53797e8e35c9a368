package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"dira/checkpoint"
	"dira/internal/torch/torchtest"
	"dira/model"
	"dira/transfer"
)

// importConfig is a small run whose networks are the fixtures'
// (transfer/testdata/make_fixtures.py with resnet18): warmup resumes for one
// more epoch of one step.
const importConfig = `
run: {name: imported, seed: 1, threads: 2}
data:
  source: synthetic
  synthetic: {train_count: 16, val_count: 8, size: 64, seed: 1}
  image_size: 64
  workers: 1
model:
  arch: resnet18
  decoder_channels: [64, 32, 16, 16, 8]
  projection: {mlp: true, hidden_dim: 0, out_dim: 128}
moco:
  queue_size: 64
  ghost_bn_groups: 2
stages:
  - {name: warmup, epochs: 4, steps_per_epoch: 1, batch_size: 8, log_every_steps: 1}
`

func officialFixtures(t *testing.T) (files, cfg string) {
	t.Helper()
	files = t.TempDir()
	cmd := exec.Command("/usr/bin/python3", "../../transfer/testdata/make_fixtures.py", files, "resnet18", "64", "64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make_fixtures.py: %v\n%s", err, out)
	}
	cfg = filepath.Join(t.TempDir(), "imported.yaml")
	if err := os.WriteFile(cfg, []byte(importConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return files, cfg
}

// TestImport runs the import tests on one set of fixtures (about 700 MB).
func TestImport(t *testing.T) {
	torchtest.Pin(t)
	files, cfg := officialFixtures(t)
	t.Run("resumes", func(t *testing.T) { importResumes(t, files, cfg) })
	t.Run("layouts", func(t *testing.T) { importLayouts(t, files, cfg) })
}

// importResumes: `dira import checkpoint.pth` writes a warmup checkpoint at
// the file's epoch that `dira run` resumes, with every network tensor equal
// to the file's.
func importResumes(t *testing.T, files, cfg string) {
	torchtest.Pin(t)
	run := filepath.Join(t.TempDir(), "run")
	src := filepath.Join(files, "checkpoint.pth")
	code, stdout, stderr := dira(t, "import", src, "--out", run, "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	t.Logf("%s", stdout)
	for _, want := range []string{"layout dira-checkpoint, epoch 3; 312 tensors loaded", "dropped encoder_k.backbone.{decoder,segmentation_head} (62 keys)", "optimiser state not imported", "stage warmup, epoch 3"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	ck, err := checkpoint.Read(filepath.Join(run, "warmup", "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if m := ck.Meta; m.Stage != "warmup" || m.Epoch != 3 || m.Step != 0 || m.BestEpoch != -1 || !strings.Contains(m.Config, "arch: resnet18") {
		t.Errorf("meta %+v", m)
	}
	m, err := model.NewMoCo(modelConfig(t, cfg), 64, true, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Params.Drop()
	if got := ck.Group("model/").Names(); !slices.Equal(got, m.Params.Names()) {
		t.Fatalf("model/ holds %d tensors, the configured MoCo %d", len(got), len(m.Params.Names()))
	}
	for _, g := range []string{"disc/", "sgd/", "adam_m/"} {
		if n := ck.Group(g).Names(); len(n) != 0 {
			t.Errorf("group %s has %d tensors, want none", g, len(n))
		}
	}
	f, err := transfer.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range f.StateDict {
		name := strings.TrimPrefix(tn.Name, "module.")
		a, ok := ck.Tensors.Get("model/" + name)
		if !ok {
			continue // the official key network's decoder
		}
		if !slices.Equal(a.Float32(), tn.Float32()) {
			t.Fatalf("model/%s differs from the file's %s", name, tn.Name)
		}
	}

	code, _, stderr = dira(t, "import", src, "--out", run, "--config", cfg)
	if code != 1 || !strings.Contains(stderr, "pass --force") {
		t.Errorf("second import: exit %d, stderr %q", code, stderr)
	}

	code, _, stderr = dira(t, "run", cfg, "--run-dir", run)
	if code != 0 {
		t.Fatalf("dira run on the imported checkpoint: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "resuming from") || !strings.Contains(stderr, "(epoch 3, step 0)") {
		t.Errorf("dira run did not resume the import:\n%s", stderr)
	}
	if ck, err := checkpoint.Read(filepath.Join(run, "warmup", "last.ckpt")); err != nil || ck.Meta.Epoch != 4 || ck.Meta.Step != 1 {
		t.Errorf("after one more epoch: %v %+v", err, ck.Meta)
	}
}

// modelConfig is the networks of the config at path.
func modelConfig(t *testing.T, path string) model.Config {
	t.Helper()
	c, err := loadConfig(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Model
}

// importLayouts: the other official layouts land in the right stage with
// the right groups; files that do not fit are refused by key name and
// nothing is written.
func importLayouts(t *testing.T, files, cfg string) {
	torchtest.Pin(t)
	for _, tc := range []struct {
		name  string
		args  []string
		stage string
		says  []string
		disc  bool
	}{
		{"unet.pth", []string{"unet.pth"}, "warmup",
			[]string{"layout unet, no epoch recorded", "initialised fresh from the config seed: encoder_k.fc, encoder_q.fc, queue, queue_ptr", "epoch 0"}, false},
		{"with_discriminator", []string{"checkpoint.pth", "--disc", "D_checkpoint.pth"}, "adversarial",
			[]string{"D_checkpoint.pth: layout discriminator, epoch 3; 10 tensors loaded"}, true},
		{"di_checkpoint.pth", []string{"di_checkpoint.pth"}, "moco", []string{"layout moco-checkpoint, epoch 2"}, false},
		{"resnet50.pth", []string{"resnet50.pth"}, "moco", []string{"layout resnet", "initialised fresh from the config seed: queue, queue_ptr"}, false},
		{"torchvision.pth", []string{"torchvision.pth"}, "warmup", []string{"dropped fc (2 keys)", "encoder_q.backbone.decoder"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			torchtest.Pin(t)
			run := t.TempDir()
			args := []string{"import", "--out", run, "--config", cfg}
			for _, a := range tc.args {
				if strings.HasSuffix(a, ".pth") {
					a = filepath.Join(files, a)
				}
				args = append(args, a)
			}
			code, stdout, stderr := dira(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, w := range tc.says {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			ck, err := checkpoint.Read(filepath.Join(run, tc.stage, "last.ckpt"))
			if err != nil {
				t.Fatal(err)
			}
			if ck.Meta.Stage != tc.stage || len(ck.Group("model/").Names()) == 0 || (len(ck.Group("disc/").Names()) == 10) != tc.disc {
				t.Errorf("stage %s, %d model and %d disc tensors", ck.Meta.Stage, len(ck.Group("model/").Names()), len(ck.Group("disc/").Names()))
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"head_does_not_fit", []string{"smp_classes2.pth"}, 1, "key segmentation_head.0.weight: shape [2 8 3 3]"},
		{"arch_does_not_fit", []string{"checkpoint.pth", "--set", "model.arch=resnet34"}, 1, "missing key encoder_q.backbone.encoder.layer1.2.conv1.weight"},
		{"discriminator_alone", []string{"D_checkpoint.pth"}, 2, "pass it with --disc"},
		{"torchscript", []string{"torchscript.pt"}, 1, "TorchScript"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			torchtest.Pin(t)
			run := filepath.Join(t.TempDir(), "run")
			args := []string{"import", "--out", run, "--config", cfg}
			for _, a := range tc.args {
				if strings.HasSuffix(a, ".pth") || strings.HasSuffix(a, ".pt") {
					a = filepath.Join(files, a)
				}
				args = append(args, a)
			}
			code, _, stderr := dira(t, args...)
			if code != tc.code || !strings.Contains(stderr, tc.says) || !strings.Contains(stderr, files) {
				t.Fatalf("exit %d, stderr %q; want %d, naming the file and saying %q", code, stderr, tc.code, tc.says)
			}
			if _, err := os.Stat(run); !os.IsNotExist(err) {
				t.Errorf("%s was created although the import failed", run)
			}
		})
	}
}
