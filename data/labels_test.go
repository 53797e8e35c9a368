package data

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadLabelList(t *testing.T) {
	for _, tc := range []struct {
		name, format, in string
		labels           int
		want             []LabeledEntry
		wantErr          string
	}{
		{"chestxray14", ListSpaces, "a.png 0 1 0\nb.png 1 1 0\n", 3,
			[]LabeledEntry{{File: "a.png", Labels: []float32{0, 1, 0}, Class: -1}, {File: "b.png", Labels: []float32{1, 1, 0}, Class: -1}}, ""},
		{"shenzhen", ListComma, "CHNCXR_0001_0.png,0\nCHNCXR_0002_1.png,1\n", 1,
			[]LabeledEntry{{File: "CHNCXR_0001_0.png", Labels: []float32{0}, Class: -1}, {File: "CHNCXR_0002_1.png", Labels: []float32{1}, Class: -1}}, ""},
		{"bom_crlf_blank", ListSpaces, "\ufeffa.png 1\r\n\r\n  \nb.png 0\r\n", 1,
			[]LabeledEntry{{File: "a.png", Labels: []float32{1}, Class: -1}, {File: "b.png", Labels: []float32{0}, Class: -1}}, ""},
		{"bom_comma", ListComma, "\ufeffa.png, 1\n", 1, []LabeledEntry{{File: "a.png", Labels: []float32{1}, Class: -1}}, ""},
		{"too_many", ListSpaces, "a.png 0 1\nb.png 0 1 1\n", 2, nil, "list.txt:2: 4 columns, want a file name and 2 labels"},
		{"too_few", ListComma, "a.png\n", 1, nil, "list.txt:1: 1 columns"},
		{"not_binary", ListSpaces, "a.png 0\nb.png 2\n", 1, nil, `list.txt:2: label 1 of "b.png" is "2", want 0 or 1`},
		{"not_integer", ListSpaces, "a.png x\n", 1, nil, `label 1 of "a.png" is "x"`},
		{"format", "tabs", "a.png 0\n", 1, nil, `format must be spaces or comma, got "tabs"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadLabelList(strings.NewReader(tc.in), "list.txt", tc.format, tc.labels)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d entries, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i].File != tc.want[i].File || !slices.Equal(got[i].Labels, tc.want[i].Labels) || got[i].Class != -1 {
					t.Errorf("entry %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestReadClassAndMaskLists(t *testing.T) {
	got, err := ReadClassList(strings.NewReader("a.png 2\nb.png 0\n"), "c.txt", ListSpaces, 3)
	if err != nil || len(got) != 2 || got[0].Class != 2 || got[1].Class != 0 || got[0].Labels != nil {
		t.Fatalf("class list: %+v, %v", got, err)
	}
	if _, err := ReadClassList(strings.NewReader("a.png 3\n"), "c.txt", ListSpaces, 3); err == nil || !strings.Contains(err.Error(), "c.txt:1") {
		t.Errorf("class out of range: %v", err)
	}
	m, err := ReadMaskList(strings.NewReader("\ufeffimg/a.png left/a.png right/a.png\nimg/b.png left/b.png right/b.png\n"), "m.txt", ListSpaces)
	if err != nil || len(m) != 2 || m[0].File != "img/a.png" || !slices.Equal(m[1].Masks, []string{"left/b.png", "right/b.png"}) {
		t.Fatalf("mask list: %+v, %v", m, err)
	}
	if _, err := ReadMaskList(strings.NewReader("a.png m.png\nb.png\n"), "m.txt", ListSpaces); err == nil || !strings.Contains(err.Error(), "m.txt:2") {
		t.Errorf("short mask line: %v", err)
	}
}

func TestReadClassFolders(t *testing.T) {
	root := t.TempDir()
	m := DrawRadiograph(32, 1, 0)
	for _, f := range []string{"normal/b.png", "normal/a.png", "abnormal/x/c.png", "abnormal/.hidden.png", ".git/d.png", "abnormal/notes.txt"} {
		writePNG(t, filepath.Join(root, f), m)
	}
	e, classes, err := ReadClassFolders(root, []string{".png"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(classes, []string{"abnormal", "normal"}) {
		t.Fatalf("classes %v", classes)
	}
	var got []string
	for _, x := range e {
		got = append(got, x.File+":"+string(rune('0'+x.Class)))
	}
	if want := "abnormal/x/c.png:0,normal/a.png:1,normal/b.png:1"; strings.Join(got, ",") != want {
		t.Fatalf("entries %v, want %s", got, want)
	}
	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadClassFolders(root, []string{".png"}); err == nil || !strings.Contains(err.Error(), `class "empty"`) {
		t.Errorf("empty class folder: %v", err)
	}
}

// TestPairMasks: Montgomery's layout (left and right lung masks in two
// folders, same file names) merges by union; a mask with another extension
// pairs by stem; a missing mask or a mask of another size is a bad image
// named by file.
func TestPairMasks(t *testing.T) {
	root := t.TempDir()
	img := DrawRadiograph(32, 1, 0)
	half := func(left bool) *Image {
		m := NewImage(32, 32, 1)
		for y := 8; y < 24; y++ {
			for x := 0; x < 32; x++ {
				if (x < 16) == left {
					m.Pix[y*32+x] = 200 // any non-zero value is foreground
				}
			}
		}
		return m
	}
	writePNG(t, filepath.Join(root, "CXR_png", "MCUCXR_0001_0.png"), img)
	writePNG(t, filepath.Join(root, "CXR_png", "MCUCXR_0002_1.png"), img)
	writePNG(t, filepath.Join(root, "CXR_png", "MCUCXR_0003_0.png"), img)
	writePNG(t, filepath.Join(root, "CXR_png", "MCUCXR_0004_0.png"), img)
	writePNG(t, filepath.Join(root, "leftMask", "MCUCXR_0001_0.png"), half(true))
	writePNG(t, filepath.Join(root, "rightMask", "MCUCXR_0001_0.png"), half(false))
	writePNG(t, filepath.Join(root, "leftMask", "MCUCXR_0002_1.gif.png"), half(true)) // another stem: no match
	writePNG(t, filepath.Join(root, "rightMask", "MCUCXR_0002_1.png"), half(false))
	writePNG(t, filepath.Join(root, "leftMask", "MCUCXR_0003_0.jpg"), half(true))
	writePNG(t, filepath.Join(root, "rightMask", "MCUCXR_0003_0.png"), half(false))
	writePNG(t, filepath.Join(root, "leftMask", "MCUCXR_0004_0.png"), NewImage(16, 32, 1))
	writePNG(t, filepath.Join(root, "rightMask", "MCUCXR_0004_0.png"), half(false))
	entries, err := PairMasks(root, "CXR_png", []string{"leftMask", "rightMask"}, []string{".png", ".jpg"})
	if err != nil {
		t.Fatal(err)
	}
	s := &LabeledList{Root: root, Task: TaskSegmentation, Entries: entries}
	if s.Len() != 4 {
		t.Fatalf("%d images, want 4", s.Len())
	}
	ex, err := s.LoadExample(0)
	if err != nil {
		t.Fatal(err)
	}
	fg := 0
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			v := ex.Mask.Pix[y*32+x]
			want := uint8(0)
			if y >= 8 && y < 24 {
				want = 255
			}
			if v != want {
				t.Fatalf("union mask at (%d,%d) = %d, want %d", x, y, v, want)
			}
			if v == 255 {
				fg++
			}
		}
	}
	if _, err := s.LoadExample(1); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "leftMask", "MCUCXR_0002_1.png")) ||
		!strings.Contains(err.Error(), "MCUCXR_0002_1.png") {
		t.Errorf("missing mask: err %v, want one naming the image and the missing mask file", err)
	}
	if _, err := s.LoadExample(2); err != nil {
		t.Errorf("mask matched by stem (.jpg name): %v", err)
	}
	if _, err := s.LoadExample(3); err == nil || !strings.Contains(err.Error(), "is 16x32 but image") {
		t.Errorf("mask of another size: %v", err)
	}
	if _, err := PairMasks(root, "CXR_png", nil, []string{".png"}); err == nil {
		t.Error("no mask folder accepted")
	}
}

func TestLabeledListSubset(t *testing.T) {
	s := &LabeledList{Root: "/r", Task: TaskMultiLabel}
	for i := range 10 {
		s.Entries = append(s.Entries, LabeledEntry{File: string(rune('a'+i)) + ".png", Class: -1})
	}
	idx, err := LabelSubset(s.Len(), 50, OfficialLabelSeed)
	if err != nil {
		t.Fatal(err)
	}
	sub := s.Subset(idx)
	if sub.Len() != 5 || sub.Name(0) != filepath.Join("/r", s.Entries[idx[0]].File) {
		t.Fatalf("subset %d entries, first %s", sub.Len(), sub.Name(0))
	}
}
