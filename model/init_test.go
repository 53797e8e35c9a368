package model

import (
	"math"
	"testing"

	"dira/internal/torch/torchtest"
)

// TestInitialisation checks each part's initial weights against the scheme of
// spec 2.1 and 4.1 by their statistics: kaiming_normal(fan_out) encoder
// convs, BN 1/0 with running stats 0/1, kaiming_uniform(fan_in, relu)
// decoder convs, xavier_uniform head with bias 0, PyTorch-default Linear,
// N(0, 0.02) discriminator weights with default-uniform biases.
func TestInitialisation(t *testing.T) {
	torchtest.Pin(t)
	cfg := DefaultConfig()
	cfg.Arch = "resnet18"
	_, ps, err := NewUNet(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Drop()
	_, pps, _ := NewProjection(cfg, 7)
	defer pps.Drop()
	dps := NewParams()
	defer dps.Drop()
	NewDiscriminator(dps, cfg.Discriminator, 7)

	stats := func(p *Params, name string) (mean, std, maxAbs float64, shape []int64) {
		v, shape, err := p.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			mean += float64(x)
			maxAbs = math.Max(maxAbs, math.Abs(float64(x)))
		}
		mean /= float64(len(v))
		for _, x := range v {
			std += (float64(x) - mean) * (float64(x) - mean)
		}
		return mean, math.Sqrt(std / float64(len(v))), maxAbs, shape
	}
	near := func(what string, got, want, rel float64) {
		if math.Abs(got-want) > rel*math.Abs(want) {
			t.Errorf("%s = %.5g, want %.5g (±%.0f%%)", what, got, want, rel*100)
		}
	}
	// Encoder conv: N(0, sqrt(2/fan_out)), fan_out = 128*3*3.
	_, std, _, _ := stats(ps, "encoder.layer2.0.conv1.weight")
	near("encoder conv std", std, math.Sqrt(2.0/(128*9)), 0.05)
	for name, want := range map[string]float64{"encoder.bn1.weight": 1, "encoder.bn1.bias": 0, "encoder.bn1.running_mean": 0, "encoder.bn1.running_var": 1, "decoder.blocks.0.conv1.1.weight": 1} {
		m, s, _, _ := stats(ps, name)
		if m != want || s != 0 {
			t.Errorf("%s: mean %g std %g, want all %g", name, m, s, want)
		}
	}
	// Decoder conv: U(±sqrt(6/fan_in)), std = bound/sqrt(3).
	_, std, maxAbs, shape := stats(ps, "decoder.blocks.1.conv1.0.weight")
	bound := math.Sqrt(6 / float64(shape[1]*9))
	near("decoder conv std", std, bound/math.Sqrt(3), 0.05)
	if maxAbs > bound {
		t.Errorf("decoder conv |w| %g > bound %g", maxAbs, bound)
	}
	// Head: xavier_uniform, bias 0.
	_, _, maxAbs, shape = stats(ps, "segmentation_head.0.weight")
	if xb := math.Sqrt(6 / float64(shape[1]*9+shape[0]*9)); maxAbs > xb {
		t.Errorf("head |w| %g > xavier bound %g", maxAbs, xb)
	}
	if m, s, _, _ := stats(ps, "segmentation_head.0.bias"); m != 0 || s != 0 {
		t.Errorf("head bias not zero")
	}
	// Linear: U(±1/sqrt(fan_in)) for weight and bias.
	_, std, maxAbs, _ = stats(pps, "fc.0.weight")
	near("fc.0 weight std", std, 1/math.Sqrt(512)/math.Sqrt(3), 0.05)
	if maxAbs > 1/math.Sqrt(512) {
		t.Errorf("fc.0 |w| %g > 1/sqrt(512)", maxAbs)
	}
	// Discriminator: weights N(0, 0.02); biases U(±1/sqrt(fan_in)).
	_, std, _, _ = stats(dps, "model.8.weight")
	near("discriminator weight std", std, 0.02, 0.05)
	if _, _, maxAbs, _ := stats(dps, "model.8.bias"); maxAbs == 0 || maxAbs > 1/math.Sqrt(256*9) {
		t.Errorf("discriminator bias max %g, want PyTorch's default uniform within 1/sqrt(2304)", maxAbs)
	}
}
