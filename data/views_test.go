package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// within checks a frequency against an expected probability, absolute
// tolerance tol.
func within(t *testing.T, what string, count, n int, p, tol float64) {
	t.Helper()
	f := float64(count) / float64(n)
	if math.Abs(f-p) > tol {
		t.Errorf("%s: frequency %.4f, want %.4f ± %.3f", what, f, p, tol)
	} else {
		t.Logf("%s: frequency %.4f (want %.4f)", what, f, p)
	}
}

func constImage(w, h int, v uint8) *Image {
	m := NewImage(w, h, 1)
	for i := range m.Pix {
		m.Pix[i] = v
	}
	return m
}

func overlaps(b Block) bool {
	return b.X < b.X2+b.BX && b.X2 < b.X+b.BX && b.Y < b.Y2+b.BY && b.Y2 < b.Y+b.BY
}

// TestDistortStatistics draws the distortion many times on 224×224 views and
// checks branch frequencies (within 2% of 30/5/30/35), the block count law of
// in/out-painting, every block size and position range of spec 3.2, and that
// the pixels changed are exactly the ones the blocks say.
func TestDistortStatistics(t *testing.T) {
	const n = 20000
	a := DefaultAugment()
	r := rand.New(rand.NewPCG(11, 12))
	base := constImage(224, 224, 200)
	counts := map[string]int{}
	var inpaintBlocks [11]int
	inpaintDraws, overlapping, swapBlocks := 0, 0, 0
	for i := range n {
		m := base.Clone()
		d := Distort(r, m, a)
		counts[d.Branch]++
		switch d.Branch {
		case BranchInpaint:
			inpaintDraws++
			inpaintBlocks[len(d.Blocks)]++
			for _, b := range d.Blocks {
				if b.BX < 10 || b.BX > 70 || b.BY < 10 || b.BY > 70 || b.X < 3 || b.X > 224-b.BX-3 || b.Y < 3 || b.Y > 224-b.BY-3 {
					t.Fatalf("in-paint block %+v out of range", b)
				}
			}
			if i%50 == 0 { // pixel check: zero exactly inside the union of blocks
				for x := 0; x < 224; x++ {
					for y := 0; y < 224; y++ {
						in := false
						for _, b := range d.Blocks {
							in = in || (x >= b.X && x < b.X+b.BX && y >= b.Y && y < b.Y+b.BY)
						}
						if v := m.Pix[x*224+y]; (v == 0) != in {
							t.Fatalf("pixel row %d col %d = %d, in block %v", x, y, v, in)
						}
					}
				}
			}
		case BranchOutpaint:
			if len(d.Blocks) < 1 || len(d.Blocks) > 10 {
				t.Fatalf("out-paint with %d windows", len(d.Blocks))
			}
			for _, b := range d.Blocks {
				if b.BX < 154 || b.BX > 174 || b.BY < 154 || b.BY > 174 || b.X < 3 || b.X > 224-b.BX-3 || b.Y < 3 || b.Y > 224-b.BY-3 {
					t.Fatalf("out-paint window %+v out of range", b)
				}
			}
			// Corners are never inside a window: always black.
			if m.Pix[0] != 0 || m.Pix[224*224-1] != 0 || m.Pix[112*224+112] != 200 {
				t.Fatal("out-paint must black out the border and keep the centre")
			}
		case BranchSwap:
			if len(d.Blocks) != 10 {
				t.Fatalf("swap with %d pairs, want 10", len(d.Blocks))
			}
			for _, b := range d.Blocks {
				swapBlocks++
				if overlaps(b) {
					overlapping++
				}
				if b.BX < 10 || b.BX > 15 || b.BY < 10 || b.BY > 15 {
					t.Fatalf("swap block %+v out of range", b)
				}
				for _, c := range [][2]int{{b.X, b.Y}, {b.X2, b.Y2}} {
					if c[0] < 3 || c[0] > 224-b.BX-3 || c[1] < 3 || c[1] > 224-b.BY-3 {
						t.Fatalf("swap block %+v out of range", b)
					}
				}
			}
		case BranchNone:
			if !bytes.Equal(m.Pix, base.Pix) {
				t.Fatal("identity branch changed the image")
			}
		}
	}
	within(t, "in-painting", counts[BranchInpaint], n, 0.30, 0.02)
	within(t, "out-painting", counts[BranchOutpaint], n, 0.05, 0.02)
	within(t, "patch swap", counts[BranchSwap], n, 0.30, 0.02)
	within(t, "identity", counts[BranchNone], n, 0.35, 0.02)
	// Block count k: P(k) = 0.9^(k-1)·0.1 for k < 10, P(10) = 0.9^9.
	within(t, "in-paint 1 block", inpaintBlocks[1], inpaintDraws, 0.1, 0.02)
	within(t, "in-paint 10 blocks", inpaintBlocks[10], inpaintDraws, math.Pow(0.9, 9), 0.02)
	// The official overlap test always passes, so overlapping swaps happen.
	if overlapping == 0 {
		t.Error("no overlapping swap in the faithful mode")
	}
	t.Logf("overlapping swap pairs: %d of %d", overlapping, swapBlocks)
}

func TestSwapContent(t *testing.T) {
	// A gradient image, so every block has distinct content.
	m := NewImage(224, 224, 1)
	for i := range m.Pix {
		m.Pix[i] = uint8(i*7 + i/224*3)
	}
	for _, reject := range []bool{false, true} {
		r := rand.New(rand.NewPCG(3, 4))
		seen := 0
		for seen < 20 {
			orig := m.Clone()
			got := m.Clone()
			d := swapPatches(r, got, reject)
			// Replay the swaps on the original with the recorded blocks.
			want := orig.Clone()
			for _, b := range d.Blocks {
				if b.Skipped {
					if !reject || !overlaps(Block{X: b.X, Y: b.Y, BX: b.BX + 1, BY: b.BY + 1, X2: b.X2, Y2: b.Y2}) {
						t.Fatalf("pair %+v skipped wrongly (reject %v)", b, reject)
					}
					continue
				}
				if reject && overlaps(b) {
					t.Fatalf("overlapping pair %+v swapped with swap_reject_overlap", b)
				}
				copyBlock(want, orig, b.X, b.Y, b.X2, b.Y2, b.BX, b.BY)
				copyBlock(want, orig, b.X2, b.Y2, b.X, b.Y, b.BX, b.BY)
			}
			if !bytes.Equal(got.Pix, want.Pix) {
				t.Fatal("swap result differs from copying every block from the pre-swap image")
			}
			seen++
		}
	}
}

func TestDistortScaledSizes(t *testing.T) {
	for _, size := range []int{32, 96, 320} {
		r := rand.New(rand.NewPCG(uint64(size), 1))
		lo, hi := scaled(10, size), scaled(70, size)
		for range 3000 {
			m := constImage(size, size, 9)
			d := Distort(r, m, DefaultAugment())
			for _, b := range d.Blocks {
				if b.X < 3 || b.Y < 3 || b.X+b.BX > size-3 || b.Y+b.BY > size-3 {
					t.Fatalf("size %d: block %+v leaves the 3-pixel margin", size, b)
				}
				if d.Branch == BranchInpaint && (b.BX < lo || b.BX > hi) {
					t.Fatalf("size %d: in-paint block %+v outside [%d, %d]", size, b, lo, hi)
				}
			}
		}
	}
	if scaled(70, 224) != 70 || scaled(10, 112) != 5 {
		t.Error("scaled must keep 224 exact and halve for 112")
	}
}

// TestCropStatistics checks RandomResizedCrop's draws: boxes inside the image,
// area fraction within scale and aspect within ratio (up to rounding), the
// center-crop fallback, and the mean and spread of the area fraction and the
// mean log aspect against 20000 torchvision 0.14 draws stored in the golden.
func TestCropStatistics(t *testing.T) {
	var g struct {
		CropStats map[string]struct {
			MeanArea      float64 `json:"mean_area"`
			StdArea       float64 `json:"std_area"`
			MeanLogAspect float64 `json:"mean_log_aspect"`
			Draws         int     `json:"draws"`
		} `json:"crop_stats"`
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "golden", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	scale, ratio := [2]float64{0.2, 1}, [2]float64{3.0 / 4, 4.0 / 3}
	for _, sz := range [][2]int{{1024, 1024}, {48, 40}, {300, 500}} {
		w, h := sz[0], sz[1]
		key := fmt.Sprintf("%dx%d", w, h)
		ref, ok := g.CropStats[key]
		if !ok {
			t.Fatalf("golden has no crop statistics for %s", key)
		}
		var sum, sum2, logAspect float64
		n := 20000
		for range n {
			b := RandomCropBox(r, w, h, scale, ratio)
			if b.Top < 0 || b.Left < 0 || b.Top+b.H > h || b.Left+b.W > w || b.W < 1 || b.H < 1 {
				t.Fatalf("%s: box %+v outside the image", key, b)
			}
			f := float64(b.W*b.H) / float64(w*h)
			// Rounding w and h to integers moves the area by up to about one pixel
			// row and column.
			slack := float64(b.W+b.H+1) / float64(w*h)
			if f < 0.2-slack || f > 1+slack {
				t.Fatalf("%s: area fraction %.4f outside [0.2, 1]", key, f)
			}
			la := math.Log(float64(b.W) / float64(b.H))
			if la < math.Log(0.75)-2.0/float64(min(b.W, b.H)) || la > math.Log(4.0/3)+2.0/float64(min(b.W, b.H)) {
				t.Fatalf("%s: aspect %.3f outside [3/4, 4/3]", key, math.Exp(la))
			}
			sum += f
			sum2 += f * f
			logAspect += la
		}
		mean := sum / float64(n)
		std := math.Sqrt(sum2/float64(n) - mean*mean)
		logAspect /= float64(n)
		// Standard errors are about 0.0015 (mean) and 0.001 (spread): 0.01 is a
		// wide margin that still catches a wrong law (e.g. no rejection: 0.6).
		if math.Abs(mean-ref.MeanArea) > 0.01 || math.Abs(std-ref.StdArea) > 0.01 || math.Abs(logAspect-ref.MeanLogAspect) > 0.01 {
			t.Errorf("%s: area mean %.4f std %.4f, log aspect %.4f; torchvision %.4f %.4f %.4f",
				key, mean, std, logAspect, ref.MeanArea, ref.StdArea, ref.MeanLogAspect)
		} else {
			t.Logf("%s: area mean %.4f std %.4f, log aspect %.4f; torchvision %.4f %.4f %.4f",
				key, mean, std, logAspect, ref.MeanArea, ref.StdArea, ref.MeanLogAspect)
		}
	}
	// An image too elongated for any attempt falls back to a centered crop with
	// the extreme ratio.
	b := RandomCropBox(r, 1000, 10, scale, ratio)
	if b != (CropBox{Top: 0, Left: (1000 - 13) / 2, H: 10, W: 13}) {
		t.Errorf("fallback crop %+v", b)
	}
}

// TestViewStatistics checks the probabilities and parameter ranges of the
// view augmentation, and the restoration target.
func TestViewStatistics(t *testing.T) {
	img := DrawRadiograph(96, 1, 1)
	a := DefaultAugment()
	const n = 3000
	jit, blur, flip := 0, 0, 0
	for i := range n {
		s := MakeSample(SampleRNG(1, 0, i), img, 32, a, true)
		for v, info := range s.Info {
			if info.Jitter != nil {
				jit++
				p := info.Jitter
				for _, f := range []float64{p.Brightness, p.Contrast, p.Saturation} {
					if f < 0.6 || f > 1.4 {
						t.Fatalf("jitter factor %v outside [0.6, 1.4]", f)
					}
				}
				if p.Hue < -0.1 || p.Hue > 0.1 {
					t.Fatalf("hue %v outside [-0.1, 0.1]", p.Hue)
				}
				seen := [4]bool{}
				for _, o := range p.Order {
					seen[o] = true
				}
				if seen != [4]bool{true, true, true, true} {
					t.Fatalf("jitter order %v is not a permutation", p.Order)
				}
			}
			if info.Blur != 0 {
				blur++
				if info.Blur < 0.1 || info.Blur > 2 {
					t.Fatalf("blur radius %v outside [0.1, 2]", info.Blur)
				}
			}
			if info.Flipped {
				flip++
			}
			if info.Distort.Branch == "" {
				t.Fatalf("view %d not distorted in restoration mode", v)
			}
		}
		if i%100 == 0 {
			// The target is the clean gray crop of view 1, never flipped by default.
			c := s.Info[0].Crop
			want := ResizedCrop(img, c.Top, c.Left, c.H, c.W, 32, 32).Gray()
			if !bytes.Equal(s.Target.Pix, want.Pix) || s.Target.C != 1 {
				t.Fatal("target is not the clean gray crop of view 1")
			}
		}
	}
	within(t, "jitter", jit, 2*n, 0.8, 0.02)
	within(t, "blur", blur, 2*n, 0.5, 0.02)
	within(t, "flip", flip, 2*n, 0.5, 0.02)
}

func TestSampleModes(t *testing.T) {
	img := DrawRadiograph(64, 1, 2)
	a := DefaultAugment()
	a.FlipP = 1
	a.FlipTarget = true
	s := MakeSample(SampleRNG(1, 0, 0), img, 32, a, true)
	c := s.Info[0].Crop
	want := FlipH(ResizedCrop(img, c.Top, c.Left, c.H, c.W, 32, 32).Gray())
	if !bytes.Equal(s.Target.Pix, want.Pix) {
		t.Error("flip_target: the target must be flipped with view 1")
	}

	// Mode di: no distortion, no target.
	a = DefaultAugment()
	a.InpaintP, a.OutpaintP, a.SwapP = 1, 0, 0 // would always distort
	s = MakeSample(SampleRNG(1, 0, 0), img, 32, a, false)
	if s.Target != nil || s.Info[0].Distort.Branch != "" || s.Info[1].Distort.Branch != "" {
		t.Error("without restoration there must be no target and no distortion")
	}

	// Same stream, same sample.
	s1 := MakeSample(SampleRNG(9, 3, 17), img, 32, DefaultAugment(), true)
	s2 := MakeSample(SampleRNG(9, 3, 17), img, 32, DefaultAugment(), true)
	if !bytes.Equal(s1.Query.Pix, s2.Query.Pix) || !bytes.Equal(s1.Key.Pix, s2.Key.Pix) || !bytes.Equal(s1.Target.Pix, s2.Target.Pix) {
		t.Error("MakeSample is not deterministic for a given stream")
	}
	s3 := MakeSample(SampleRNG(9, 4, 17), img, 32, DefaultAugment(), true)
	if bytes.Equal(s1.Query.Pix, s3.Query.Pix) {
		t.Error("different epochs gave the same view")
	}
}
