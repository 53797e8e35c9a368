package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// goldenCases mirrors testdata/golden/cases.json, written by testdata/gen_golden.py
// from torchvision 0.14.1 and Pillow 9.4 (Debian bookworm).
type goldenCases struct {
	Torchvision string `json:"torchvision"`
	Pillow      string `json:"pillow"`
	Cases       []struct {
		Name   string               `json:"name"`
		Input  string               `json:"input"`
		Ops    [][2]json.RawMessage `json:"ops"`
		Output string               `json:"output"`
	} `json:"cases"`
}

// goldenTolerance is the largest allowed difference per 8-bit sample (1/255).
const goldenTolerance = 1

func applyGoldenOp(t *testing.T, m *Image, op string, args []float64) *Image {
	t.Helper()
	switch op {
	case "resized_crop":
		a := make([]int, len(args))
		for i, v := range args {
			a[i] = int(v)
		}
		return ResizedCrop(m, a[0], a[1], a[2], a[3], a[4], a[5])
	case "brightness":
		return AdjustBrightness(m, args[0])
	case "contrast":
		return AdjustContrast(m, args[0])
	case "saturation":
		return AdjustSaturation(m, args[0])
	case "hue":
		return AdjustHue(m, args[0])
	case "blur":
		return GaussianBlur(m, args[0])
	case "hflip":
		return FlipH(m)
	}
	t.Fatalf("unknown golden op %q", op)
	return nil
}

// TestGoldenTorchvision runs every fixed-parameter case of the golden through our
// transforms and compares with torchvision's output. The gray input goes through
// the one-channel fast path while torchvision processed it as RGB, so those cases
// also check that the fast path equals the three-channel computation.
func TestGoldenTorchvision(t *testing.T) {
	dir := filepath.Join("testdata", "golden")
	raw, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenCases
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("cases.json has no cases")
	}
	worst := 0
	for _, tc := range g.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			m, err := DecodeFile(filepath.Join(dir, tc.Input))
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range tc.Ops {
				var name string
				var args []float64
				if err := json.Unmarshal(op[0], &name); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(op[1], &args); err != nil {
					t.Fatal(err)
				}
				m = applyGoldenOp(t, m, name, args)
			}
			want, err := DecodeFile(filepath.Join(dir, tc.Output))
			if err != nil {
				t.Fatal(err)
			}
			d := maxAbsDiff(t, m.RGB(), want.RGB())
			worst = max(worst, d)
			if d > goldenTolerance {
				t.Errorf("max |diff| = %d/255 > %d/255", d, goldenTolerance)
			}
		})
	}
	t.Logf("torchvision %s / Pillow %s: %d cases, max |diff| %d/255", g.Torchvision, g.Pillow, len(g.Cases), worst)
}

func maxAbsDiff(t *testing.T, a, b *Image) int {
	t.Helper()
	if a.W != b.W || a.H != b.H || a.C != b.C {
		t.Fatalf("size %dx%dx%d, want %dx%dx%d", a.W, a.H, a.C, b.W, b.H, b.C)
	}
	d := 0
	for i := range a.Pix {
		v := int(a.Pix[i]) - int(b.Pix[i])
		d = max(d, v, -v)
	}
	return d
}
