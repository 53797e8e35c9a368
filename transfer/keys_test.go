package transfer

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"dira/internal/torch/torchtest"
)

func prefixed(p string, ns ...string) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = p + n
	}
	return out
}

var (
	smpKeys = []string{
		"encoder.conv1.weight", "encoder.bn1.num_batches_tracked", "encoder.layer1.0.downsample.1.running_mean",
		"decoder.blocks.0.conv1.0.weight", "decoder.blocks.4.conv2.1.bias",
		"segmentation_head.0.weight", "segmentation_head.0.bias",
	}
	tvKeys = []string{"conv1.weight", "bn1.num_batches_tracked", "layer1.0.downsample.1.running_mean"}
	// The full training checkpoint (spec 2.3), abridged.
	trainingKeys = append(append([]string{"module.queue", "module.queue_ptr"},
		prefixed("module.encoder_q.backbone.", smpKeys...)...),
		"module.encoder_q.fc.0.weight", "module.encoder_q.fc.2.bias", "module.encoder_k.backbone.encoder.conv1.weight")
)

// TestRules: the README's recipes (spec 2.4) on each layout DiRA files come
// in, and the loud failure where the README's snippet silently loads nothing.
func TestRules(t *testing.T) {
	torchtest.Pin(t)
	for _, tc := range []struct {
		name    string
		rules   Rules
		in      []string
		want    []string
		wantErr string
	}{
		{"classification_unet_pth", Classification, smpKeys, tvKeys, ""},
		{"classification_ddp_backbone", Classification, append(prefixed("module.backbone.", smpKeys...), "module.fc.0.weight"), tvKeys, ""},
		{"classification_torchvision", Classification, append(slices.Clone(tvKeys), "fc.weight", "fc.bias"), tvKeys, ""},
		{"classification_full_checkpoint", Classification, trainingKeys, nil, `no conv1.weight after stripping (first key "queue")`},
		{"segmentation_unet_pth", Segmentation, smpKeys, smpKeys[:5], ""},
		{"unet_keeps_head", UNet, append(prefixed("backbone.", smpKeys...), "fc.2.bias"), smpKeys, ""},
		{"unet_full_checkpoint", UNet, trainingKeys, nil, "no encoder.conv1.weight after stripping"},
		{"collision", Classification, []string{"encoder.conv1.weight", "conv1.weight"}, nil, `"encoder.conv1.weight" and "conv1.weight" both become "conv1.weight"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			torchtest.Pin(t)
			got, err := tc.rules.Apply(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range got {
				names = append(names, r.To)
				if k, keep := tc.rules.Key(r.From); !keep || k != r.To {
					t.Errorf("Key(%q) = %q, %v; Apply gave %q", r.From, k, keep, r.To)
				}
			}
			if !slices.Equal(names, tc.want) {
				t.Fatalf("keys\n%q\nwant\n%q", names, tc.want)
			}
		})
	}
	_, err := Classification.Apply(trainingKeys)
	if !errors.Is(err, ErrLoadsNothing) {
		t.Errorf("full checkpoint through the classification snippet: %v, want ErrLoadsNothing", err)
	}
}

// TestCheckLoads: strict=False semantics, except that loading nothing fails.
func TestCheckLoads(t *testing.T) {
	torchtest.Pin(t)
	m, err := CheckLoads(append(slices.Clone(tvKeys), "extra"), append(slices.Clone(tvKeys), "fc.weight"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Loaded, tvKeys) || !slices.Equal(m.Missing, []string{"fc.weight"}) || !slices.Equal(m.Unexpected, []string{"extra"}) {
		t.Errorf("match %+v", m)
	}
	renamed := []string{}
	for _, n := range trainingKeys {
		if k, keep := Classification.Key(n); keep {
			renamed = append(renamed, k)
		}
	}
	_, err = CheckLoads(renamed, append(slices.Clone(tvKeys), "fc.weight", "fc.bias"))
	if !errors.Is(err, ErrLoadsNothing) || !strings.Contains(err.Error(), "encoder_q.conv1.weight") {
		t.Errorf("error %v, want ErrLoadsNothing naming encoder_q.conv1.weight", err)
	}
}

func TestDetectLayout(t *testing.T) {
	torchtest.Pin(t)
	for _, tc := range []struct {
		keys []string
		want Layout
	}{
		{trainingKeys, LayoutDiRA},
		{[]string{"module.queue", "module.encoder_q.conv1.weight"}, LayoutMoCo},
		{smpKeys, LayoutUNet},
		{[]string{"conv1.weight", "bn1.weight", "fc.0.weight"}, LayoutResNet},
		{[]string{"module.model.0.weight", "module.model.0.bias"}, LayoutDiscriminator},
	} {
		if got, err := DetectLayout(tc.keys); err != nil || got != tc.want {
			t.Errorf("%q: %v %v, want %v", tc.keys[0], got, err, tc.want)
		}
	}
	if _, err := DetectLayout([]string{"weight", "bias"}); err == nil || !strings.Contains(err.Error(), "weight, bias") {
		t.Errorf("unknown layout: %v", err)
	}
}
