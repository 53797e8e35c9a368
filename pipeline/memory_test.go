package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dira/internal/torch/torchtest"
	"dira/model"
)

// TestParamCountsMatchTheModel: the estimate's parameter counts are those
// of the networks package model builds, for every encoder, with and
// without restoration (no decoder), with odd widths.
func TestParamCountsMatchTheModel(t *testing.T) {
	torchtest.Pin(t)
	for _, tc := range []struct {
		arch        string
		decoder     []int
		hidden, out int
		mlp         bool
		oc, discIn  int
		restoration bool
	}{
		{"resnet18", []int{32, 16, 16, 8, 8}, 64, 32, true, 1, 1, true},
		{"resnet18", []int{32, 16, 16, 8, 8}, 0, 16, false, 1, 1, false},
		{"resnet34", []int{24, 20, 12, 10, 6}, 0, 16, false, 3, 3, true},
		{"resnet50", []int{256, 128, 64, 32, 16}, 0, 128, true, 1, 1, true},
		{"resnet101", nil, 100, 7, true, 2, 2, false},
	} {
		restoration := tc.restoration
		c := model.DefaultConfig()
		c.Arch, c.DecoderChannels, c.OutChannels = tc.arch, tc.decoder, tc.oc
		c.Projection = model.ProjectionConfig{MLP: tc.mlp, HiddenDim: tc.hidden, OutDim: tc.out}
		c.Discriminator.InChannels = tc.discIn
		m, err := model.NewMoCo(c, 16, restoration, 1)
		if err != nil {
			t.Fatal(err)
		}
		ps := model.NewParams()
		model.NewDiscriminator(ps, c.Discriminator, 1)
		wantQ, wantK, wantD := m.Params.Count("encoder_q."), m.Params.Count("encoder_k."), ps.Count("")
		m.Params.Drop()
		ps.Drop()
		cfg := Default()
		cfg.Model = c
		q, k, d := paramCounts(cfg.modelShape(), restoration)
		if q != wantQ || k != wantK || d != wantD {
			t.Errorf("%s restoration=%v: estimate query %d key %d disc %d, model %d %d %d", tc.arch, restoration, q, k, d, wantQ, wantK, wantD)
		}
	}
}

// TestEstimateMemory: the formula's terms for a small config, worked out
// by hand, and the largest stage decides.
func TestEstimateMemory(t *testing.T) {
	cfg, err := Load(writeConfig(t, goodConfig), []string{"data.workers=2", "data.prefetch=1", "data.synthetic.size=100"})
	if err != nil {
		t.Fatal(err)
	}
	est := cfg.EstimateMemory()
	if len(est) != 2 || est[0].Stage != StageWarmup || est[1].Stage != StageAdversarial {
		t.Fatalf("estimates %+v", est)
	}
	w := est[0]
	// The parameter counts are checked against the model in
	// TestParamCountsMatchTheModel; here the terms follow from them.
	q, k, _ := paramCounts(cfg.modelShape(), true)
	if w.Weights != 4*(q+k) || w.Gradients != 4*q || w.Optimizer != 4*q {
		t.Errorf("weights/gradients/optimizer %d %d %d, want %d %d %d", w.Weights, w.Gradients, w.Optimizer, 4*(q+k), 4*q, 4*q)
	}
	if w.Queue != 4*64*128 {
		t.Errorf("queue %d, want %d", w.Queue, 4*64*128)
	}
	const b, s, v = 8, 64, 7
	if want := int64(4*b*v*s*s*3 + (b+4)*v*s*s + 2*100*100); w.Data != want {
		t.Errorf("data %d, want %d", w.Data, want)
	}
	maps := int64(v*s*s + 64*32*32 + 64*16*16 + 128*8*8 + 256*4*4 + 512*2*2 +
		256*4*4 + 128*8*8 + 64*16*16 + 32*32*32 + 16*64*64 + 1*64*64)
	if w.Activations != 4*b*maps {
		t.Errorf("activations %d, want %d", w.Activations, 4*b*maps)
	}
	a := est[1]
	if _, _, d := paramCounts(cfg.modelShape(), true); a.Weights-w.Weights != 4*d || a.Optimizer-w.Optimizer != 8*d {
		t.Errorf("the adversarial stage does not add the discriminator: %+v vs %+v", a, w)
	}
	if err := cfg.CheckMemory(a.Total()); err != nil {
		t.Errorf("fits exactly: %v", err)
	}
	err = cfg.CheckMemory(a.Total() - 1)
	if err == nil || !strings.Contains(err.Error(), "stage adversarial needs at least "+gb(a.Total())) || !strings.Contains(err.Error(), "activations") {
		t.Errorf("one byte short: %v", err)
	}
}

// TestCheckMemoryRefusesWhatCannotFit: configs within every bound whose
// smallest possible footprint exceeds the machine are refused, saying how
// much they need and how much there is.
func TestCheckMemoryRefusesWhatCannotFit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sets    []string
		machine int64
	}{
		{"image_size", []string{"data.image_size=4096", "stages[0].batch_size=64", "moco.queue_size=64"}, 64 << 30},
		{"decoder", []string{"model.decoder_channels=[4096,4096,4096,4096,4096]"}, 8 << 30},
		{"queue", []string{"moco.queue_size=1048576", "model.projection.out_dim=65536"}, 64 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(writeConfig(t, goodConfig), tc.sets)
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("within the bounds, yet: %v", err)
			}
			err = cfg.CheckMemory(tc.machine)
			if err == nil || !strings.Contains(err.Error(), "needs at least") || !strings.Contains(err.Error(), gb(tc.machine)+" is available") {
				t.Fatalf("err = %v", err)
			}
			t.Log(err)
		})
	}
	cfg, _ := Load(writeConfig(t, goodConfig), nil)
	if err := cfg.CheckMemory(1 << 30); err != nil {
		t.Errorf("the small config on 1 GiB: %v", err)
	}
	if err := cfg.CheckMemory(0); err != nil {
		t.Errorf("unknown memory: %v", err)
	}
}

func TestAvailableMemory(t *testing.T) {
	dir := t.TempDir()
	info := filepath.Join(dir, "meminfo")
	os.WriteFile(info, []byte("MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n"), 0o644)
	if got := memAvailable(info); got != 8000000*1024 {
		t.Errorf("MemAvailable %d", got)
	}
	mx, cur := filepath.Join(dir, "memory.max"), filepath.Join(dir, "memory.current")
	os.WriteFile(mx, []byte("max\n"), 0o644)
	if got := cgroupRoom(mx, cur); got != 0 {
		t.Errorf("no limit: %d", got)
	}
	os.WriteFile(mx, []byte(fmt.Sprintln(4<<30)), 0o644)
	os.WriteFile(cur, []byte(fmt.Sprintln(1<<30)), 0o644)
	if got := cgroupRoom(mx, cur); got != 3<<30 {
		t.Errorf("limit 4 GiB, 1 GiB used: %d", got)
	}
	if got := AvailableMemory(); got <= 0 {
		t.Errorf("this machine: %d", got)
	} else {
		t.Logf("this machine: %s available", gb(got))
	}
}
