package data

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"dira/internal/npy"
)

// classifyCases mirrors testdata/classify/cases.json, written by
// testdata/gen_classify.py from torchvision 0.14.1 and Pillow 9.4.
type classifyCases struct {
	Torchvision string `json:"torchvision"`
	Cases       []struct {
		Name      string               `json:"name"`
		Input     string               `json:"input"`
		Ops       [][2]json.RawMessage `json:"ops"`
		Angle     float64              `json:"angle"`
		Outputs   []string             `json:"outputs"`
		Normalize string               `json:"normalize"`
		Tensor    string               `json:"tensor"`
	} `json:"cases"`
}

// tensorTolerance is the largest difference allowed from torchvision's
// normalised float32 tensors.
const tensorTolerance = 1e-6

func runClassifyOps(t *testing.T, m *Image, ops [][2]json.RawMessage, angle float64) []*Image {
	t.Helper()
	imgs := []*Image{m}
	for _, op := range ops {
		var name string
		var args []float64
		if err := json.Unmarshal(op[0], &name); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(op[1], &args); err != nil {
			t.Fatal(err)
		}
		var next []*Image
		for _, im := range imgs {
			switch name {
			case "resize":
				next = append(next, Resize(im, int(args[0]), int(args[1])))
			case "resize_shorter":
				next = append(next, ResizeShorter(im, int(args[0])))
			case "center_crop":
				next = append(next, CenterCrop(im, int(args[0]), int(args[1])))
			case "ten_crop":
				ten, err := TenCrop(im, int(args[0]), int(args[1]))
				if err != nil {
					t.Fatal(err)
				}
				next = append(next, ten[:]...)
			case "rotate":
				next = append(next, Rotate(im, args[0], Interpolation(args[1])))
			case "random_rotation":
				// RandomRotation(7): nearest, no expansion, black fill, at the drawn angle.
				next = append(next, Rotate(im, angle, Nearest))
			case "hflip":
				next = append(next, FlipH(im))
			default:
				t.Fatalf("unknown op %q", name)
			}
		}
		imgs = next
	}
	return imgs
}

// TestClassifyTransformsMatchTorchvision compares Resize, CenterCrop, TenCrop,
// Rotate (nearest and bilinear) and Normalize with torchvision on PIL images.
func TestClassifyTransformsMatchTorchvision(t *testing.T) {
	dir := filepath.Join("testdata", "classify")
	raw, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g classifyCases
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	worst, worstT, images, tensors := 0, 0.0, 0, 0
	for _, tc := range g.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			in, err := DecodeFile(filepath.Join(dir, tc.Input))
			if err != nil {
				t.Fatal(err)
			}
			got := runClassifyOps(t, in, tc.Ops, tc.Angle)
			if tc.Tensor != "" {
				f, err := os.Open(filepath.Join(dir, tc.Tensor))
				if err != nil {
					t.Fatal(err)
				}
				arr, err := npy.Read(f)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				want := arr.Float32()
				norm, err := ParseNormalization(tc.Normalize)
				if err != nil {
					t.Fatal(err)
				}
				per := 3 * got[0].W * got[0].H
				if len(want) != per*len(got) {
					t.Fatalf("%d values, torchvision %d", per*len(got), len(want))
				}
				buf := make([]float32, per)
				for k, im := range got {
					norm.Put(buf, im)
					for i, v := range buf {
						d := math.Abs(float64(v) - float64(want[k*per+i]))
						worstT = max(worstT, d)
						if d > tensorTolerance {
							t.Fatalf("crop %d value %d: %v, torchvision %v", k, i, v, want[k*per+i])
						}
					}
				}
				tensors++
				return
			}
			if len(got) != len(tc.Outputs) {
				t.Fatalf("%d outputs, torchvision %d", len(got), len(tc.Outputs))
			}
			for k, fn := range tc.Outputs {
				want, err := DecodeFile(filepath.Join(dir, fn))
				if err != nil {
					t.Fatal(err)
				}
				d := maxAbsDiff(t, got[k].RGB(), want.RGB())
				worst = max(worst, d)
				if d > goldenTolerance {
					t.Errorf("output %d: max |diff| = %d/255 > %d/255", k, d, goldenTolerance)
				}
				images++
			}
		})
	}
	t.Logf("torchvision %s: %d images, max |diff| %d/255; %d normalised tensors, max |diff| %.3g", g.Torchvision, images, worst, tensors, worstT)
}

// TestClassifyTransformModes: output counts and sizes of the three modes,
// and properties of the random train mode.
func TestClassifyTransformModes(t *testing.T) {
	img := DrawRadiograph(96, 1, 4)
	base := ClassifyTransform{Crop: 56, Resize: 64, TenCrop: true, Augment: DefaultClassifyAugment(), Normalize: NormImageNet}
	for _, tc := range []struct {
		mode  string
		crops int
	}{{ModeTrain, 1}, {ModeValid, 1}, {ModeTest, 10}} {
		tr := base
		tr.Mode = tc.mode
		out, err := tr.Apply(rand.New(rand.NewPCG(1, 2)), img)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != tc.crops || tr.Crops() != tc.crops {
			t.Fatalf("%s: %d crops (Crops() %d), want %d", tc.mode, len(out), tr.Crops(), tc.crops)
		}
		for _, o := range out {
			if o.W != 56 || o.H != 56 {
				t.Fatalf("%s: crop %dx%d, want 56x56", tc.mode, o.W, o.H)
			}
		}
	}
	// Validation is deterministic: the center crop of the squashed resize.
	v := base
	v.Mode = ModeValid
	a, _ := v.Apply(rand.New(rand.NewPCG(1, 2)), img)
	b, _ := v.Apply(rand.New(rand.NewPCG(9, 9)), img)
	if maxAbsDiff(t, a[0], b[0]) != 0 || maxAbsDiff(t, a[0], CenterCrop(Resize(img, 64, 64), 56, 56)) != 0 {
		t.Fatal("valid mode is not Resize((64, 64)) + CenterCrop(56)")
	}
	// Train: different draws give different crops; rotation leaves the corners
	// black only when the angle is large enough to uncover them.
	tr := base
	tr.Mode = ModeTrain
	r := rand.New(rand.NewPCG(3, 4))
	distinct := 0
	prev, _ := tr.Apply(r, img)
	for range 10 {
		cur, err := tr.Apply(r, img)
		if err != nil {
			t.Fatal(err)
		}
		if maxAbsDiff(t, cur[0], prev[0]) > 0 {
			distinct++
		}
		prev = cur
	}
	if distinct < 9 {
		t.Fatalf("only %d of 10 train draws differ", distinct)
	}
	noRot := tr
	noRot.Augment.RotateDegrees, noRot.Augment.FlipP = 0, 0
	noRot.Augment.CropScale = []float64{1, 1}
	noRot.Augment.CropRatio = []float64{1, 1}
	full, _ := noRot.Apply(r, img)
	if maxAbsDiff(t, full[0], Resize(img, 56, 56)) != 0 {
		t.Fatal("train mode with the whole-image crop, no flip, no rotation is not a plain resize")
	}
	bad := tr
	bad.Augment.RotateInterpolation = "cubic"
	if _, err := bad.Apply(r, img); err == nil {
		t.Fatal("unknown interpolation accepted")
	}
	if _, err := TenCrop(img, 97, 10); err == nil {
		t.Fatal("ten crop larger than the image accepted")
	}
}
