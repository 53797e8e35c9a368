package data

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"
)

// TestSyntheticUnchanged pins the pre-training synthetic images: the demo's
// golden losses depend on them, and the labelled source is built on the same
// drawing code. The hash was taken before the labelled source was added.
func TestSyntheticUnchanged(t *testing.T) {
	h := sha256.New()
	for _, size := range []int{48, 64, 96, 256} {
		for _, seed := range []uint64{1, 2, 7} {
			for i := uint64(0); i < 6; i++ {
				h.Write(DrawRadiograph(size, seed, i).Pix)
			}
		}
	}
	const want = "367080f26c576c3abf56e537e07b9466bec3efeb92245c7aa882d514665dafa3"
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("synthetic pre-training images changed: sha256 %s, want %s", got, want)
	}
}

func newLabeledSynthetic(task string, n int) *LabeledSynthetic {
	return &LabeledSynthetic{N: n, Size: 64, Seed: 3, Task: task, Findings: slices.Clone(SyntheticFindings), Prevalence: 0.4}
}

// TestLabeledSyntheticFindings: labels follow the prevalence, images are
// deterministic, an image without findings equals the pre-training image, and
// each finding changes the image where it should.
func TestLabeledSyntheticFindings(t *testing.T) {
	s := newLabeledSynthetic(TaskMultiLabel, 400)
	counts := make([]int, len(s.Findings))
	for i := 0; i < s.N; i++ {
		for k, p := range s.Present(i) {
			if p {
				counts[k]++
			}
		}
	}
	for k, c := range counts {
		if f := float64(c) / float64(s.N); f < 0.32 || f > 0.48 {
			t.Errorf("%s: prevalence %.2f, want about 0.4", s.Findings[k], f)
		}
	}
	clean, withFinding := 0, 0
	for i := 0; i < 40; i++ {
		a, _ := s.LoadExample(i)
		b, _ := s.LoadExample(i)
		if !slices.Equal(a.Image.Pix, b.Image.Pix) || !slices.Equal(a.Labels, b.Labels) {
			t.Fatalf("image %d differs between two loads", i)
		}
		base := DrawRadiograph(s.Size, s.Seed, uint64(i))
		same := slices.Equal(a.Image.Pix, base.Pix)
		none := !slices.Contains(a.Labels, 1)
		if none != same {
			t.Fatalf("image %d: labels %v but equal to the plain radiograph: %v", i, a.Labels, same)
		}
		if none {
			clean++
		} else {
			withFinding++
		}
	}
	if clean == 0 || withFinding == 0 {
		t.Fatalf("%d clean and %d abnormal images among 40", clean, withFinding)
	}
	// Every finding alone brightens the image on average (denser tissue).
	for k, name := range s.Findings {
		one := &LabeledSynthetic{N: 1, Size: 64, Seed: 3, Task: TaskMultiLabel, Findings: []string{name}, Prevalence: 0.999999}
		found := 0
		for i := 0; i < 20; i++ {
			one.Offset = i
			ex, _ := one.LoadExample(0)
			if ex.Labels[0] != 1 {
				continue
			}
			found++
			base := DrawRadiograph(64, 3, uint64(i))
			diff := 0
			for j := range base.Pix {
				diff += int(ex.Image.Pix[j]) - int(base.Pix[j])
			}
			if diff <= 0 {
				t.Errorf("finding %d (%s), image %d: mean change %d, want brighter", k, name, i, diff)
			}
		}
		if found < 15 {
			t.Errorf("%s: present in %d of 20 images at prevalence ~1", name, found)
		}
	}
}

func TestLabeledSyntheticMultiClass(t *testing.T) {
	s := newLabeledSynthetic(TaskMultiClass, 300)
	counts := make([]int, len(s.Findings)+1)
	for i := 0; i < s.N; i++ {
		n := 0
		for _, p := range s.Present(i) {
			if p {
				n++
			}
		}
		if n > 1 {
			t.Fatalf("image %d shows %d findings, want at most one", i, n)
		}
		if i < 30 {
			ex, _ := s.LoadExample(i)
			if ex.Labels != nil || ex.Class < 0 || ex.Class > len(s.Findings) {
				t.Fatalf("image %d: class %d labels %v", i, ex.Class, ex.Labels)
			}
			counts[ex.Class]++
		}
	}
	if counts[0] == 0 || counts[0] == 30 {
		t.Fatalf("class counts %v over 30 images", counts)
	}
	if got := s.Targets().Classes; len(got) != 5 || got[0] != "none" {
		t.Fatalf("classes %v", got)
	}
}

func TestLabeledSyntheticMasks(t *testing.T) {
	s := newLabeledSynthetic(TaskSegmentation, 10)
	for i := 0; i < s.N; i++ {
		ex, err := s.LoadExample(i)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ex.Image.Pix, DrawRadiograph(64, 3, uint64(i)).Pix) {
			t.Fatalf("segmentation image %d differs from the plain radiograph", i)
		}
		fg, inLung, outLung := 0, 0.0, 0.0
		nIn, nOut := 0, 0
		for j, v := range ex.Mask.Pix {
			switch v {
			case 255:
				fg++
				inLung += float64(ex.Image.Pix[j])
				nIn++
			case 0:
				outLung += float64(ex.Image.Pix[j])
				nOut++
			default:
				t.Fatalf("mask %d has value %d", i, v)
			}
		}
		if f := float64(fg) / float64(len(ex.Mask.Pix)); f < 0.1 || f > 0.45 {
			t.Errorf("mask %d covers %.2f of the image, want a lung-sized fraction", i, f)
		}
		// The lungs are dark: the masked region is darker than the rest.
		if inLung/float64(nIn) >= outLung/float64(nOut) {
			t.Errorf("mask %d: mean inside %.1f not below mean outside %.1f", i, inLung/float64(nIn), outLung/float64(nOut))
		}
		// Both lungs: foreground on each half of the image.
		left, right := 0, 0
		for y := 0; y < 64; y++ {
			for x := 0; x < 64; x++ {
				if ex.Mask.Pix[y*64+x] == 255 {
					if x < 32 {
						left++
					} else {
						right++
					}
				}
			}
		}
		if left == 0 || right == 0 {
			t.Errorf("mask %d: %d pixels left, %d right; want both lungs", i, left, right)
		}
	}
}
