package data

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestResizeNearestCV(t *testing.T) {
	src := NewImage(6, 3, 1)
	for i := range src.Pix {
		src.Pix[i] = uint8(i)
	}
	// 6 -> 4 columns: floor(x * 1.5) = 0, 1, 3, 4; 3 -> 5 rows: floor(y * 0.6) = 0, 0, 1, 1, 2.
	out := ResizeNearestCV(src, 4, 5)
	want := []uint8{0, 1, 3, 4, 0, 1, 3, 4, 6, 7, 9, 10, 6, 7, 9, 10, 12, 13, 15, 16}
	if !slices.Equal(out.Pix, want) {
		t.Fatalf("got %v, want %v", out.Pix, want)
	}
}

func TestReflect101(t *testing.T) {
	got := []int{}
	for i := -4; i < 9; i++ {
		got = append(got, reflect101(i, 5))
	}
	if want := []int{4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0}; !slices.Equal(got, want) {
		t.Fatalf("reflect101 = %v, want %v", got, want)
	}
}

// TestSegmentLUTsAndFilterMatchReference runs albumentations 0.4.3's uint8
// brightness/contrast and gamma tables and scipy's gaussian_filter in
// /usr/bin/python3 (numpy, scipy) and compares.
func TestSegmentLUTsAndFilterMatchReference(t *testing.T) {
	type bc struct{ Alpha, Beta float64 }
	bcs := []bc{{1, 0}, {0.8, 0.2}, {1.2, -0.2}, {1.13, 0.07}, {0.93, -0.11}}
	gammas := []float64{0.8, 0.95, 1.0, 1.07, 1.2}
	field := make([]float64, 13*9)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range field {
		field[i] = r.Float64()*2 - 1
	}
	in, _ := json.Marshal(map[string]any{"bc": bcs, "gamma": gammas, "field": field})
	var want struct {
		BC     [][]int     `json:"bc"`
		Gamma  [][]int     `json:"gamma"`
		Filter [][]float64 `json:"filter"`
	}
	pythonJSON(t, `
import json
import numpy as np
from scipy.ndimage import gaussian_filter
req = json.loads('''`+string(in)+`''')
out = {"bc": [], "gamma": [], "filter": []}
for c in req["bc"]:
    lut = np.arange(0, 256).astype("float32")
    if c["Alpha"] != 1:
        lut *= c["Alpha"]
    if c["Beta"] != 0:
        lut += c["Beta"] * 255
    out["bc"].append(np.clip(lut, 0, 255).astype(np.uint8).tolist())
for g in req["gamma"]:
    table = (np.arange(0, 256.0 / 255, 1.0 / 255) ** (1.0 / (g + 1e-7))) * 255
    out["gamma"].append(table.astype(np.uint8).tolist())
f = np.array(req["field"]).reshape(9, 13)
for sigma in [0.7, 2.0, 6.0]:
    out["filter"].append(gaussian_filter(f, sigma).ravel().tolist())
print(json.dumps(out))`, &want)
	for i, c := range bcs {
		if got := brightnessContrastLUT(c.Alpha, c.Beta); !slices.Equal(lutInts(got), want.BC[i]) {
			t.Errorf("brightness/contrast %+v: LUT differs from albumentations 0.4.3", c)
		}
	}
	for i, g := range gammas {
		if got := gammaLUT(g); !slices.Equal(lutInts(got), want.Gamma[i]) {
			t.Errorf("gamma %v: LUT differs from albumentations 0.4.3", g)
		}
	}
	worst := 0.0
	for i, sigma := range []float64{0.7, 2.0, 6.0} {
		got := gaussianFilter(field, 13, 9, sigma)
		for j := range got {
			worst = max(worst, math.Abs(got[j]-want.Filter[i][j]))
		}
	}
	if worst > 1e-12 {
		t.Errorf("gaussian filter: max |diff| vs scipy %.3g > 1e-12", worst)
	}
	t.Logf("LUTs equal; gaussian_filter max |diff| %.3g", worst)
}

func lutInts(l *[256]uint8) []int {
	out := make([]int, 256)
	for i, v := range l {
		out[i] = int(v)
	}
	return out
}

// ramp is a smooth test image: value 2x+y (x, y < 64), so that one pixel of
// misalignment changes it by at most 3 levels.
func ramp(size int) *Image {
	m := NewImage(size, size, 1)
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			m.Pix[y*size+x] = uint8(min(2*x+y, 255))
		}
	}
	return m
}

func lungMask(size int) *Image {
	m := NewImage(size, size, 1)
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			dx, dy := float64(x-size/3), float64(y-size/2)
			dx2 := float64(x - 2*size/3)
			if dx*dx/40+dy*dy/200 < 1 || dx2*dx2/40+dy*dy/200 < 1 {
				m.Pix[y*size+x] = 255
			}
		}
	}
	return m
}

// TestSegmentGeometryMovesMaskWithImage: for every geometric step, the mask
// (nearest) and the image (bilinear) are resampled through the same map. Fed
// the same smooth ramp as image and as mask, the two outputs differ by at most
// the ramp's change over one pixel; a mask transformed differently would
// differ by much more. A binary mask stays binary, and each step changes the
// image.
func TestSegmentGeometryMovesMaskWithImage(t *testing.T) {
	a := DefaultSegmentAugment()
	a.ShiftScaleRotateP = 1
	steps := map[string]func(r *rand.Rand, img, mask *Image) (*Image, *Image){
		"elastic": func(r *rand.Rand, img, mask *Image) (*Image, *Image) { return elastic(r, img, mask, a) },
		"grid":    func(r *rand.Rand, img, mask *Image) (*Image, *Image) { return gridDistortion(r, img, mask, a) },
		"optical": func(r *rand.Rand, img, mask *Image) (*Image, *Image) { return opticalDistortion(r, img, mask, a) },
		"crop": func(r *rand.Rand, img, mask *Image) (*Image, *Image) {
			i, m, _ := randomSizedCrop(r, img, mask, a)
			return i, m
		},
		"shift_scale_rotate": func(r *rand.Rand, img, mask *Image) (*Image, *Image) {
			i, m, _ := shiftScaleRotate(r, img, mask, a)
			return i, m
		},
	}
	const size = 64
	src := ramp(size)
	for name, step := range steps {
		t.Run(name, func(t *testing.T) {
			worst, moved := 0, 0
			for seed := uint64(0); seed < 20; seed++ {
				img, msk := step(rand.New(rand.NewPCG(seed, 1)), src, src)
				if img.W != size || img.H != size || msk.W != size || msk.H != size {
					t.Fatalf("sizes %dx%d and %dx%d", img.W, img.H, msk.W, msk.H)
				}
				// Compare away from the border, where reflection can fold the
				// ramp and one pixel spans a larger change.
				for y := 2; y < size-2; y++ {
					for x := 2; x < size-2; x++ {
						d := int(img.Pix[y*size+x]) - int(msk.Pix[y*size+x])
						worst = max(worst, d, -d)
					}
				}
				if !slices.Equal(img.Pix, src.Pix) {
					moved++
				}
				_, bm := step(rand.New(rand.NewPCG(seed, 1)), src, lungMask(size))
				for _, v := range bm.Pix {
					if v != 0 && v != 255 {
						t.Fatalf("seed %d: mask value %d, want 0 or 255", seed, v)
					}
				}
			}
			if worst > 6 {
				t.Errorf("image and mask differ by up to %d levels on a ramp of slope <= 3: the geometry is not shared", worst)
			}
			if moved < 18 {
				t.Errorf("only %d of 20 draws changed the image", moved)
			}
			t.Logf("max |image - mask| on the ramp: %d levels", worst)
		})
	}
	// The map really is the same: moving the mask's draws to another seed breaks the agreement.
	img, _ := elastic(rand.New(rand.NewPCG(1, 1)), src, src, a)
	_, other := elastic(rand.New(rand.NewPCG(2, 1)), src, src, a)
	worst := 0
	for i := range img.Pix {
		d := int(img.Pix[i]) - int(other.Pix[i])
		worst = max(worst, d, -d)
	}
	if worst <= 6 {
		t.Errorf("two different elastic draws agree within %d levels: the test cannot tell maps apart", worst)
	}
}

// TestAugmentSegmentPipeline: the official probabilities, intensity steps
// leave the mask alone, and masks stay binary.
func TestAugmentSegmentPipeline(t *testing.T) {
	a := DefaultSegmentAugment()
	img := DrawRadiograph(64, 1, 1)
	mask := lungMask(64)
	r := rand.New(rand.NewPCG(7, 8))
	counts := map[string]int{}
	const n = 600
	for range n {
		oi, om, info := AugmentSegment(r, img, mask, a)
		for _, v := range om.Pix {
			if v != 0 && v != 255 {
				t.Fatalf("mask value %d after %+v", v, info)
			}
		}
		if info.Intensity != "" {
			counts["intensity"]++
			counts[info.Intensity]++
		}
		if info.Distort != "" {
			counts["distort"]++
			counts[info.Distort]++
		}
		if info.Crop > 0 {
			counts["crop"]++
			if info.Crop < 45 || info.Crop > 64 {
				t.Fatalf("crop side %d outside [round(64*156/224), 64]", info.Crop)
			}
		}
		if info.Flipped || info.Rotated != 0 {
			t.Fatalf("flip or shift-scale-rotate applied with probability 0: %+v", info)
		}
		if info.Distort == "" && info.Crop == 0 && !slices.Equal(om.Pix, mask.Pix) {
			t.Fatalf("mask changed without a geometric step: %+v", info)
		}
		if info == (SegmentInfo{}) && !slices.Equal(oi.Pix, img.Pix) {
			t.Fatal("image changed with no step applied")
		}
	}
	for k, want := range map[string]float64{"intensity": 0.3, "distort": 0.3, "crop": 0.25} {
		if f := float64(counts[k]) / n; math.Abs(f-want) > 0.06 {
			t.Errorf("%s applied to %.2f of samples, want %.2f", k, f, want)
		}
	}
	for _, k := range []string{"brightness_contrast", "gamma", "elastic", "grid", "optical"} {
		if counts[k] == 0 {
			t.Errorf("%s never chosen (%v)", k, counts)
		}
	}
	t.Logf("step counts over %d samples: %v", n, counts)
}

func TestPutSegmentImage(t *testing.T) {
	m := NewImage(2, 1, 3)
	copy(m.Pix, []uint8{0, 128, 255, 10, 20, 30})
	dst := make([]float32, 6)
	PutSegmentImage(dst, m, true)
	// (v/255 - mean)/std in float64, then float32, as MontgomeryDataset.
	want := []float32{float32((0.0/255 - 0.485) / 0.229), float32((10.0/255 - 0.485) / 0.229),
		float32((128.0/255 - 0.456) / 0.224), float32((20.0/255 - 0.456) / 0.224),
		float32((255.0/255 - 0.406) / 0.225), float32((30.0/255 - 0.406) / 0.225)}
	if !slices.Equal(dst, want) {
		t.Fatalf("got %v, want %v", dst, want)
	}
	mask := NewImage(3, 1, 1)
	copy(mask.Pix, []uint8{0, 255, 0})
	mv := make([]float32, 3)
	PutMask(mv, mask)
	if !slices.Equal(mv, []float32{0, 1, 0}) {
		t.Fatalf("mask %v", mv)
	}
}
