package export

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

// numpy runs testdata/quant.py MODE with req on stdin and decodes its
// answer into out.
func numpy(t *testing.T, mode string, req, out any) {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", "testdata/quant.py", mode)
	cmd.Stdin = strings.NewReader(string(in))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("quant.py %s: %v\n%s", mode, err, stderr.String())
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("quant.py %s: %v", mode, err)
	}
}

// TestActivationParamsByHand: cases worked out on paper.
func TestActivationParamsByHand(t *testing.T) {
	for _, tc := range []struct {
		name       string
		rmin, rmax float32
		scale      float32
		zp         uint8
	}{
		{"relu_output", 0, 127.5, 0.5, 0},
		{"positive_range_widened_to_zero", 2, 127.5, 0.5, 0},
		{"negative_only", -127.5, -3, 0.5, 255},
		{"symmetric", -63.75, 63.75, 0.5, 128}, // 63.75/0.5 = 127.5 rounds to even 128
		{"all_zero", 0, 0, 1, 0},
		{"image_range", 0, 1, 1.0 / 255, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := activationParams(tc.rmin, tc.rmax)
			if p.Scale != tc.scale || p.ZeroPoint != tc.zp {
				t.Errorf("activationParams(%g, %g) = %+v, want scale %g zero point %d", tc.rmin, tc.rmax, p, tc.scale, tc.zp)
			}
		})
	}
	// Ties round to even: with scale 0.5, x/scale is exact.
	p := qparams{Scale: 0.5, ZeroPoint: 0}
	for x, want := range map[float32]uint8{1.25: 2, 1.75: 4, 0.25: 0, 0.75: 2, -3: 0, 200: 255, 63.25: 126, 63.75: 128} {
		if got := p.quantize(x); got != want {
			t.Errorf("quantize(%g) with scale 0.5 = %d, want %d", x, got, want)
		}
	}
	// Every 8-bit pixel value k/255 survives the input's quantization.
	in := activationParams(0, 1)
	for k := range 256 {
		x := float32(k) / 255
		if q := in.quantize(x); int(q) != k || math.Abs(float64(in.dequantize(q)-x)) > 1e-7 {
			t.Fatalf("pixel %d/255 quantizes to %d, back to %g", k, q, in.dequantize(q))
		}
	}
}

// TestActivationParamsMatchNumpy: scales, zero points and QuantizeLinear of
// values spread over each range (ties included) equal numpy's.
func TestActivationParamsMatchNumpy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ranges := [][2]float32{{0, 1}, {0, 6.1}, {-1.3, 2.9}, {-0.02, 0.5}, {-5, -1}, {0.3, 0.31}, {-63.75, 63.75}, {0, 0}}
	for range 30 {
		a, b := float32(r.NormFloat64()*3), float32(r.NormFloat64()*3)
		ranges = append(ranges, [2]float32{min(a, b), max(a, b)})
	}
	x := []float32{0, 1.25, 1.75, -0.5, 63.25, 63.75, 1e-8, -1e-8, 1000, -1000}
	for range 200 {
		x = append(x, float32(r.NormFloat64()*4))
	}
	var want struct {
		Scale     []float32
		ZeroPoint []int `json:"zero_point"`
		Q         [][]int
	}
	numpy(t, "qparams", map[string]any{"ranges": ranges, "x": x}, &want)
	mismatches := 0
	for i, rg := range ranges {
		p := activationParams(rg[0], rg[1])
		if p.Scale != want.Scale[i] || int(p.ZeroPoint) != want.ZeroPoint[i] {
			t.Errorf("range %v: scale %g zero point %d, numpy %g %d", rg, p.Scale, p.ZeroPoint, want.Scale[i], want.ZeroPoint[i])
		}
		for j, v := range x {
			if got := int(p.quantize(v)); got != want.Q[i][j] {
				mismatches++
				if mismatches < 5 {
					t.Errorf("range %v: quantize(%g) = %d, numpy %d", rg, v, got, want.Q[i][j])
				}
			}
		}
	}
	t.Logf("%d ranges x %d values: %d mismatches with numpy", len(ranges), len(x), mismatches)
}

// TestQuantizeWeightsMatchNumpy: per-channel symmetric int8 weights equal
// numpy's, ties (a channel with max |w| 127, scale 1) round to even, an
// all-zero channel gets scale 1, and dequantized weights are within half a
// step of the originals.
func TestQuantizeWeightsMatchNumpy(t *testing.T) {
	const out, per = 6, 27
	r := rand.New(rand.NewPCG(3, 4))
	w := make([]float32, out*per)
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.1 * float64(1+i/per))
	}
	ties := []float32{127, 2.5, -2.5, 3.5, -3.5, 0.5, -0.5, 126.5}
	copy(w[per:], ties) // channel 1: max |w| = 127, so w/scale is w itself
	for i := 2 * per; i < 3*per; i++ {
		w[i] = 0 // channel 2: all zero
	}
	q, scales, err := quantizeWeights(w, out)
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Scale []float32
		Q     []int
	}
	numpy(t, "weights", map[string]any{"w": w, "out": out}, &want)
	if !slices.Equal(scales, want.Scale) {
		t.Errorf("scales %v, numpy %v", scales, want.Scale)
	}
	for i := range q {
		if int(q[i]) != want.Q[i] {
			t.Errorf("weight %d (%g): %d, numpy %d", i, w[i], q[i], want.Q[i])
		}
	}
	if got := q[per : per+len(ties)]; !slices.Equal(got, []int8{127, 2, -2, 4, -4, 0, 0, 126}) {
		t.Errorf("ties quantize to %v", got)
	}
	if scales[1] != 1 || scales[2] != 1 {
		t.Errorf("scales of the tie and zero channels: %g, %g; want 1, 1", scales[1], scales[2])
	}
	var worst float64
	for i, v := range w {
		s := scales[i/per]
		worst = math.Max(worst, math.Abs(float64(q[i])*float64(s)-float64(v))/float64(s))
	}
	if worst > 0.5+1e-6 {
		t.Errorf("dequantized weights are up to %.3g steps away, want <= 0.5", worst)
	}
	if _, _, err := quantizeWeights([]float32{1, float32(math.NaN())}, 1); err == nil || !strings.Contains(err.Error(), "non-finite") {
		t.Errorf("NaN weight: %v", err)
	}
}

// TestQuantizeBias: bias at input scale x weight scale, ties to even, and a
// bias too large for int32 raises its channel's weight scale instead of
// saturating.
func TestQuantizeBias(t *testing.T) {
	q, ws, raised := quantizeBias([]float32{0.5, -0.75, 2.5e-3}, 0.25, []float32{0.5, 1, 0.01})
	// 0.5/0.125 = 4, -0.75/0.25 = -3, 2.5e-3/2.5e-3 = 1
	if !slices.Equal(q, []int32{4, -3, 1}) || len(raised) != 0 || !slices.Equal(ws, []float32{0.5, 1, 0.01}) {
		t.Errorf("got %v %v %v", q, ws, raised)
	}
	q, _, _ = quantizeBias([]float32{0.3125, 0.4375}, 0.125, []float32{1, 1}) // 2.5 -> 2, 3.5 -> 4
	if !slices.Equal(q, []int32{2, 4}) {
		t.Errorf("ties: %v, want [2 4]", q)
	}
	q, ws, raised = quantizeBias([]float32{1000}, 1e-4, []float32{1e-6})
	if !slices.Equal(raised, []int{0}) || ws[0] <= 1e-6 {
		t.Fatalf("overflowing bias: raised %v, scale %g", raised, ws[0])
	}
	back := float64(q[0]) * float64(float32(1e-4)*ws[0])
	if math.Abs(back-1000)/1000 > 1e-6 {
		t.Errorf("overflowing bias comes back as %g, want 1000", back)
	}
}

// TestPercentileRange: on 0..9999 once each, the 99% range drops 50 values
// on each side; the histogram's answer is within one bin of the exact
// quantiles.
func TestPercentileRange(t *testing.T) {
	v := make([]float32, 10000)
	for i := range v {
		v[i] = float32(i)
	}
	rand.New(rand.NewPCG(5, 6)).Shuffle(len(v), func(i, j int) { v[i], v[j] = v[j], v[i] })
	r := &rangeStat{min: float32(math.Inf(1)), max: float32(math.Inf(-1))}
	if err := r.observe(v[:5000]); err != nil {
		t.Fatal(err)
	}
	if err := r.observe(v[5000:]); err != nil {
		t.Fatal(err)
	}
	r.hist = make([]uint64, histogramBins)
	r.count(v[:5000])
	r.count(v[5000:])
	bin := float64(r.max-r.min) / histogramBins
	sorted := slices.Clone(v)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for _, tc := range []struct{ p, lo, hi float64 }{{99, 50, 9949}, {99.99, 0.5, 9998.5}, {100, 0, 9999}} {
		lo, hi := r.percentileRange(tc.p)
		t.Logf("p %g: [%g, %g], exact about [%g, %g], bin %.3g", tc.p, lo, hi, tc.lo, tc.hi, bin)
		if math.Abs(float64(lo)-tc.lo) > bin || math.Abs(float64(hi)-tc.hi) > bin {
			t.Errorf("percentile %g: [%g, %g], want within %.3g of [%g, %g]", tc.p, lo, hi, bin, tc.lo, tc.hi)
		}
	}
	if err := r.observe([]float32{float32(math.NaN())}); err == nil {
		t.Error("NaN observed without an error")
	}
}

// TestFloat16MatchesNumpy: float16Bits equals numpy's astype(float16) bit
// for bit: normal values, ties, subnormals, underflow to zero, overflow to
// infinity, NaN; float16Value turns the bits back exactly.
func TestFloat16MatchesNumpy(t *testing.T) {
	x := []float32{0, 1, -1, 65504, 65519, 65520, -65536, 1e-8, -1e-8,
		5.960464477539063e-08, 2.9802322387695312e-08, 2.980233e-08, 8.940697e-08, 6.103515625e-05, 6.0975552e-05,
		1 + 1.0/2048, 1 + 3.0/2048, 1 + 1.0/4096, 0.1, 1.0 / 3, 3e38, -3e38}
	r := rand.New(rand.NewPCG(7, 8))
	for range 3000 {
		x = append(x, float32(math.Ldexp(r.Float64()*2-1, r.IntN(50)-30)))
	}
	var want struct{ Bits []uint16 }
	numpy(t, "fp16", map[string]any{"x": x}, &want)
	for i, v := range x {
		if got := float16Bits(v); got != want.Bits[i] {
			t.Errorf("float16(%g) = %#04x, numpy %#04x", v, got, want.Bits[i])
		}
	}
	for _, h := range []uint16{0x0001, 0x03ff, 0x0400, 0x3c00, 0x7bff, 0xfbff, 0x8001} {
		if back := float16Bits(float16Value(h)); back != h {
			t.Errorf("%#04x -> %g -> %#04x", h, float16Value(h), back)
		}
	}
	// JSON has no infinities or NaN, and -0 reaches Python as the integer 0:
	// those by hand.
	if h := float16Bits(float32(math.Copysign(0, -1))); h != 0x8000 {
		t.Errorf("-0 -> %#04x", h)
	}
	if p, n := float16Bits(float32(math.Inf(1))), float16Bits(float32(math.Inf(-1))); p != 0x7c00 || n != 0xfc00 {
		t.Errorf("±Inf -> %#04x %#04x", p, n)
	}
	if h := float16Bits(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN -> %#04x", h)
	}
}
