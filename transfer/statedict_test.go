package transfer

import (
	"slices"
	"strings"
	"testing"

	"dira/statedict"
)

func names(ns ...string) statedict.StateDict {
	sd := make(statedict.StateDict, len(ns))
	for i, n := range ns {
		sd[i] = statedict.Tensor{Name: n, Shape: []int64{1}, F32: []float32{float32(i)}}
	}
	return sd
}

// TestRulesOnStateDicts: the README snippets' stripping (spec 2.4) on the layouts
// DiRA files come in.
func TestRulesOnStateDicts(t *testing.T) {
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
			sd := names(tc.in...)
			enc, err := Classification.StateDict(sd)
			check(t, "Classification", enc, err, tc.encoder, tc.encErr)
			un, err := UNet.StateDict(sd)
			check(t, "UNet", un, err, tc.unet, tc.unetErr)
		})
	}
}

func check(t *testing.T, what string, got statedict.StateDict, err error, want []string, wantErr string) {
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
