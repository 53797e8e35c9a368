package model

import (
	"slices"
	"strings"
	"testing"

	"dira/internal/torch"
	"dira/internal/torch/torchtest"
	"dira/statedict"
)

// TestStateDict: a standalone U-Net's store copies with its own names, and
// the training model's query U-Net (encoder_q.backbone.*) gives the same
// names, shapes and dtypes once its prefix is stripped; loading a state dict
// back is strict.
func TestStateDict(t *testing.T) {
	torchtest.Pin(t)
	cfg := DefaultConfig()
	cfg.Arch = "resnet18"
	cfg.DecoderChannels = []int{32, 16, 16, 8, 8}
	_, ups, err := NewUNet(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer ups.Drop()
	unet, err := ups.StateDict("")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unet.Names(), ups.Names()) {
		t.Fatalf("names differ from the model's")
	}
	nbt, _ := unet.Get("encoder.bn1.num_batches_tracked")
	if nbt.DType != statedict.Int64 || len(nbt.Shape) != 0 || !slices.Equal(nbt.I64, []int64{0}) {
		t.Errorf("num_batches_tracked: %v %v %v, want 0-d int64 0", nbt.DType, nbt.Shape, nbt.I64)
	}
	w, _ := unet.Get("decoder.blocks.0.conv1.0.weight")
	if want := torch.Float32s(ups.Get("decoder.blocks.0.conv1.0.weight").T); w.DType != statedict.Float32 || !slices.Equal(w.F32, want) {
		t.Errorf("decoder weight not copied")
	}

	moco, err := NewMoCo(cfg, 16, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer moco.Params.Drop()
	q, err := moco.Params.StateDict("encoder_q.backbone.")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(q.Names(), unet.Names()) {
		t.Fatalf("training model's U-Net keys\n%q\nwant\n%q", q.Names(), unet.Names())
	}
	for i := range q {
		if !slices.Equal(q[i].Shape, unet[i].Shape) || q[i].DType != unet[i].DType {
			t.Errorf("%s: %v %v, standalone %v %v", q[i].Name, q[i].DType, q[i].Shape, unet[i].DType, unet[i].Shape)
		}
	}
	if _, err := moco.Params.StateDict("module.encoder_q."); err == nil || !strings.Contains(err.Error(), `no parameter starts with "module.encoder_q."`) {
		t.Errorf("wrong prefix: %v", err)
	}

	// Round trip: the query U-Net loads into the standalone one, strictly.
	if _, err := statedict.Load(ups, statedict.Identity(q), nil); err != nil {
		t.Fatal(err)
	}
	back, _ := ups.StateDict("")
	for i := range back {
		if !slices.Equal(back[i].F32, q[i].F32) || !slices.Equal(back[i].I64, q[i].I64) {
			t.Fatalf("%s: values differ after loading", back[i].Name)
		}
	}
	_, err = statedict.Load(ups, statedict.Identity(q[1:]), nil)
	if err == nil || !strings.Contains(err.Error(), "missing key encoder.conv1.weight") {
		t.Errorf("a missing key: %v", err)
	}
	bad := slices.Clone(q)
	bad[0].Shape = []int64{1, 2, 3}
	if _, err = statedict.Load(ups, statedict.Identity(bad), nil); err == nil || !strings.Contains(err.Error(), "key encoder.conv1.weight: shape [1 2 3]") {
		t.Errorf("a wrong shape: %v", err)
	}
}
