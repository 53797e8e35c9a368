package transfer_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"dira/export"
	"dira/internal/torch/torchtest"
	"dira/model"
	"dira/transfer"
)

// TestExportedUNetImports: the unet.pth `dira export` writes (export.WritePTH,
// smp's bare keys) reads back with the same keys, shapes and values, and
// imports into the training model's query U-Net.
func TestExportedUNetImports(t *testing.T) {
	torchtest.Pin(t)
	cfg := model.DefaultConfig()
	cfg.Arch = "resnet18"
	cfg.DecoderChannels = []int{64, 32, 16, 16, 8}
	_, ps, err := model.NewUNet(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Drop()
	sd, err := ps.StateDict("")
	if err != nil {
		t.Fatal(err)
	}
	un, err := transfer.UNet.StateDict(sd)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "unet.pth")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := export.WritePTH(f, un); err != nil {
		t.Fatal(err)
	}
	f.Close()

	got, err := transfer.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Names(), un.Names()) {
		t.Fatalf("keys read back differ")
	}
	for i, w := range un {
		g := got.StateDict[i]
		if !slices.Equal(g.Shape, w.Shape) || !slices.Equal(g.F32, w.F32) || !slices.Equal(g.I64, w.I64) {
			t.Fatalf("%s: shape %v, want %v, or values differ", w.Name, g.Shape, w.Shape)
		}
	}
	m, err := model.NewMoCo(cfg, 16, true, 9)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Params.Drop()
	rep, err := transfer.ImportMoCo(got, m)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Layout != transfer.LayoutUNet || rep.Loaded != len(un) {
		t.Errorf("report %+v, want all %d U-Net tensors loaded", rep, len(un))
	}
	w, _, _ := ps.Float32("decoder.blocks.2.conv1.0.weight")
	if g, _, _ := m.Params.Float32("encoder_q.backbone.decoder.blocks.2.conv1.0.weight"); !slices.Equal(g, w) {
		t.Error("decoder weight not imported")
	}
}
