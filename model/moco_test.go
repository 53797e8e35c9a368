package model

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
	"dira/internal/torch/torchtest"
)

// TestMoCoStepMatchesPyTorch runs one DiRA_MoCo forward (ResNet-18 U-Net,
// MLP head, K=64, one ghost group) on a fixed batch with the same weights and
// queue as the PyTorch reference, and compares logits, loss, restoration, the
// momentum-updated key weights, and the queue and pointer after the enqueue.
func TestMoCoStepMatchesPyTorch(t *testing.T) {
	torchtest.Pin(t)
	dir := reference(t, "moco")
	weights := readNPZ(t, filepath.Join(dir, "weights.npz"))
	in := readNPZ(t, filepath.Join(dir, "input.npz"))
	want := readNPZ(t, filepath.Join(dir, "outputs.npz"))

	cfg := DefaultConfig()
	cfg.Arch = "resnet18"
	m, err := NewMoCo(cfg, 64, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Params.Drop()
	// The official key network is a whole U-Net; ours has no key decoder.
	keyDecoder := func(name string) bool {
		return strings.HasPrefix(name, "encoder_k.backbone.decoder.") || strings.HasPrefix(name, "encoder_k.backbone.segmentation_head.")
	}
	for name := range weights {
		if m.Params.Get(name) == nil && !keyDecoder(name) {
			t.Fatalf("reference key %s has no place in model.MoCo", name)
		}
	}
	loadInto(t, m.Params, weights, keyDecoder)

	imQ, imK := refTensor(t, in["im_q"]), refTensor(t, in["im_k"])
	defer torch.Drop(imQ, imK)
	out, err := m.Forward(imQ, imK, Mode{Train: true, Groups: 1}, 0.99, 0.2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Drop()
	checkClose(t, "logits", out.Logits, want["logits"])
	checkClose(t, "restoration", out.Rec, want["rec"])

	labels := ts.MustZeros([]int64{4}, gotch.Int64, gotch.CPU)
	loss := out.Logits.MustCrossEntropyLoss(labels, ts.None, 1, -100, 0, false)
	checkClose(t, "InfoNCE loss", loss.MustView([]int64{1}, false), want["loss"])
	torch.Drop(labels, loss)

	checkClose(t, "key conv1 after momentum update", m.Params.Get("encoder_k.backbone.encoder.conv1.weight").T, want["k_conv1_after"])
	checkClose(t, "key fc.2 after momentum update", m.Params.Get("encoder_k.fc.2.weight").T, want["k_fc2_after"])

	if err := m.Enqueue(out.Keys); err != nil {
		t.Fatal(err)
	}
	checkClose(t, "queue after enqueue", m.Queue, want["queue_after"])
	if got, w := m.QueuePtr.Int64Values()[0], want["ptr_after"].Data.([]int64)[0]; got != w {
		t.Fatalf("queue_ptr = %d, want %d", got, w)
	}
	// Only query parameters train.
	for _, p := range m.Params.List() {
		if strings.HasPrefix(p.Name, "encoder_k.") && !p.Buffer && p.T.MustRequiresGrad() {
			t.Fatalf("key parameter %s requires grad", p.Name)
		}
	}
}

// TestMoCoShuffleIsUndone: with one ghost group a key permutation must not
// change the keys (shuffle-BN permutes, normalises, un-permutes).
func TestMoCoShuffleIsUndone(t *testing.T) {
	torchtest.Pin(t)
	cfg := DefaultConfig()
	cfg.Arch = "resnet18"
	m, err := NewMoCo(cfg, 16, false, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Params.Drop()
	x := ts.MustRand([]int64{4, 3, 64, 64}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	a, err := m.Forward(x, x, Mode{Train: true}, 1, 0.2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Drop()
	b, err := m.Forward(x, x, Mode{Train: true}, 1, 0.2, []int64{2, 0, 3, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Drop()
	d := maxDiff(t, "keys", a.Keys, npyOf(b.Keys))
	if d > 1e-5 {
		t.Fatalf("shuffled keys differ by %g", d)
	}
	if a.Rec != nil {
		t.Fatal("mode di (no restoration) produced a restoration")
	}
}
