package export

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	"dira/model"
)

func names(ns ...string) StateDict {
	sd := make(StateDict, len(ns))
	for i, n := range ns {
		sd[i] = Tensor{Name: n, Shape: []int64{1}, F32: []float32{float32(i)}}
	}
	return sd
}

// TestKeyRules: the README snippets' stripping (spec 2.4) on the layouts
// DiRA files come in.
func TestKeyRules(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
	smp := []string{
		"encoder.conv1.weight", "encoder.bn1.num_batches_tracked",
		"encoder.layer1.0.downsample.1.running_mean",
		"decoder.blocks.0.conv1.0.weight", "decoder.blocks.4.conv2.1.bias",
		"segmentation_head.0.weight", "segmentation_head.0.bias",
	}
	torchvision := []string{"conv1.weight", "bn1.num_batches_tracked", "layer1.0.downsample.1.running_mean"}
	prefixed := func(p string, ns []string) []string {
		out := make([]string, len(ns))
		for i, n := range ns {
			out[i] = p + n
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		in      []string
		encoder []string // nil: want encErr
		encErr  string
		unet    []string
		unetErr string
	}{
		{name: "smp_unet", in: smp, encoder: torchvision, unet: smp},
		{name: "dira_unet_with_projection",
			in:      append(prefixed("backbone.", smp), "fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias"),
			encoder: torchvision, unet: smp},
		{name: "ddp_module", in: prefixed("module.backbone.", smp), encoder: torchvision, unet: smp},
		{name: "torchvision_resnet", in: append(slices.Clone(torchvision), "fc.weight", "fc.bias"),
			encoder: torchvision, unetErr: "no encoder.conv1.weight"},
		{name: "training_checkpoint", in: append(prefixed("encoder_q.backbone.", smp), "queue", "encoder_q.fc.0.weight"),
			encErr: "no conv1.weight after stripping", unetErr: "strip the training model's prefix"},
		{name: "collision", in: []string{"encoder.conv1.weight", "conv1.weight"},
			encErr: `"encoder.conv1.weight" and "conv1.weight" both become "conv1.weight"`, unet: []string{"encoder.conv1.weight", "conv1.weight"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.LockOSThread() // subtests run on their own goroutines
			sd := names(tc.in...)
			enc, err := sd.Encoder()
			check(t, "Encoder", enc, err, tc.encoder, tc.encErr)
			un, err := sd.UNet()
			check(t, "UNet", un, err, tc.unet, tc.unetErr)
		})
	}
}

func check(t *testing.T, what string, got StateDict, err error, want []string, wantErr string) {
	t.Helper()
	if want == nil {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: error %v, want %q", what, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if !slices.Equal(got.Names(), want) {
		t.Errorf("%s: keys\n%q\nwant\n%q", what, got.Names(), want)
	}
}

// TestFromParams: a standalone U-Net's store copies with its own names, and
// the training model's query U-Net (encoder_q.backbone.*) gives the same
// names, shapes and dtypes once its prefix is stripped.
func TestFromParams(t *testing.T) {
	runtime.LockOSThread() // gotch: grad mode and the error slot are per OS thread
	cfg := smallConfig()
	_, ups, err := model.NewUNet(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer ups.Drop()
	unet, err := FromParams(ups, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unet.Names(), ups.Names()) {
		t.Fatalf("names differ from the model's")
	}
	nbt, _ := unet.Get("encoder.bn1.num_batches_tracked")
	if nbt.DType != Int64 || len(nbt.Shape) != 0 || !slices.Equal(nbt.I64, []int64{0}) {
		t.Errorf("num_batches_tracked: %v %v %v, want 0-d int64 0", nbt.DType, nbt.Shape, nbt.I64)
	}
	w, _ := unet.Get("decoder.blocks.0.conv1.0.weight")
	if want := model.Values(ups.Get("decoder.blocks.0.conv1.0.weight").T); w.DType != Float32 || !slices.Equal(w.F32, want) {
		t.Errorf("decoder weight not copied")
	}

	moco, err := model.NewMoCo(cfg, 16, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer moco.Params.Drop()
	q, err := FromParams(moco.Params, "encoder_q.backbone.")
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
	if _, err := FromParams(moco.Params, "module.encoder_q."); err == nil || !strings.Contains(err.Error(), `no parameter starts with "module.encoder_q."`) {
		t.Errorf("wrong prefix: %v", err)
	}
}
