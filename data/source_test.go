package data

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadList(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []ListEntry
		wantErr  string
	}{
		{"chestxray14", "00000001_000.png 0 1 0\n00000001_001.png 1 0 0\n",
			[]ListEntry{{"00000001_000.png", []uint8{0, 1, 0}}, {"00000001_001.png", []uint8{1, 0, 0}}}, ""},
		{"crlf_tabs_blank_lines", "a.png\t0 1\r\n\r\n  \nsub/b.png 1  1\r\n",
			[]ListEntry{{"a.png", []uint8{0, 1}}, {"sub/b.png", []uint8{1, 1}}}, ""},
		{"no_labels", "a.png\nb.png\n", []ListEntry{{"a.png", []uint8{}}, {"b.png", []uint8{}}}, ""},
		{"empty", "", nil, ""},
		{"bad_label", "a.png 0 1\nb.png 0 x\n", nil, "train.txt:2: label 2 of \"b.png\": \"x\" is not an integer"},
		{"label_too_big", "a.png 0 300\n", nil, "train.txt:1: label 2"},
		{"label_count", "a.png 0 1\n\nc.png 0\n", nil, "train.txt:3: 1 labels, want 2 as on line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadList(strings.NewReader(tc.in), "train.txt")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// repoRoot walks up from the test's working directory to the folder holding
// go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// TestOfficialLists parses the official ChestX-ray14 split (DiRA's train and
// val lists and the official test list), kept in configs/lists/.
func TestOfficialLists(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "configs", "lists", "chestxray14")
	for _, tc := range []struct {
		file string
		n    int
	}{{"Xray14_train_official.txt", 75312}, {"Xray14_val_official.txt", 11212}, {"Xray14_test_official.txt", 25596}} {
		t.Run(tc.file, func(t *testing.T) {
			s, err := NewListSource("/images", filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() != tc.n {
				t.Errorf("%d entries, want %d", s.Len(), tc.n)
			}
			for i, e := range s.Entries {
				if len(e.Labels) != 14 || !strings.HasSuffix(e.File, ".png") {
					t.Fatalf("entry %d: %v", i, e)
				}
				for _, l := range e.Labels {
					if l > 1 {
						t.Fatalf("entry %d: label %d is not 0/1", i, l)
					}
				}
			}
			if got := s.Name(0); got != filepath.Join("/images", s.Entries[0].File) {
				t.Errorf("Name(0) = %q", got)
			}
		})
	}
}

func writePNG(t *testing.T, path string, m *Image) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFolderSource(t *testing.T) {
	root := t.TempDir()
	m := DrawRadiograph(32, 1, 0)
	for _, f := range []string{"b.png", "a/c.PNG", "a/deep/d.jpg", ".hidden/e.png", "a/.f.png", "notes.txt"} {
		writePNG(t, filepath.Join(root, f), m)
	}
	s, err := NewFolderSource(root, []string{".png", ".jpg"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(s.Files, ","), "a/c.PNG,a/deep/d.jpg,b.png"; got != want {
		t.Errorf("files %s, want %s", got, want)
	}
	if _, err := s.Load(0); err != nil {
		t.Error(err)
	}
	if _, err := NewFolderSource(root, []string{".tif"}); err == nil || !strings.Contains(err.Error(), root) {
		t.Errorf("no-match error %v should name %s", err, root)
	}

	// Split: deterministic, roughly the fraction, stable when files are added.
	var many []string
	for i := range 2000 {
		many = append(many, fmt.Sprintf("p%04d/img%d.png", i/10, i))
	}
	all := &FolderSource{Root: root, Files: many}
	tr, va := all.Split(0.1)
	if tr.Len()+va.Len() != 2000 || va.Len() < 150 || va.Len() > 250 {
		t.Errorf("split %d/%d, want about 1800/200", tr.Len(), va.Len())
	}
	more := &FolderSource{Root: root, Files: append(append([]string(nil), many...), "extra/x.png")}
	_, va2 := more.Split(0.1)
	inVal := map[string]bool{}
	for _, f := range va2.Files {
		inVal[f] = true
	}
	for _, f := range va.Files {
		if !inVal[f] {
			t.Fatalf("%s left validation when a file was added", f)
		}
	}
}

func TestOpenSources(t *testing.T) {
	root := t.TempDir()
	m := DrawRadiograph(32, 1, 0)
	for i := range 20 {
		writePNG(t, filepath.Join(root, fmt.Sprintf("img%02d.png", i)), m)
	}
	list := filepath.Join(root, "train.txt")
	os.WriteFile(list, []byte("img00.png 1\nimg01.png 0\nimg02.png 1\n"), 0o644)

	c := DefaultConfig()
	c.Synthetic.TrainCount, c.Synthetic.ValCount = 5, 3
	tr, va, err := OpenSources(c)
	if err != nil || tr.Len() != 5 || va.Len() != 3 {
		t.Fatalf("synthetic: %v %v %v", tr, va, err)
	}
	if tr.Name(0) == va.Name(0) {
		t.Error("synthetic validation images must differ from training ones")
	}

	c = DefaultConfig()
	c.Source, c.Root, c.TrainList = SourceList, root, list
	tr, va, err = OpenSources(c)
	if err != nil || tr.Len() != 3 || va != nil {
		t.Fatalf("list: %v %v %v", tr, va, err)
	}
	if l := tr.(*ListSource).Labels(2); len(l) != 1 || l[0] != 1 {
		t.Errorf("labels %v", l)
	}

	c = DefaultConfig()
	c.Source, c.Root, c.ValFraction = SourceFolder, root, 0.3
	tr, va, err = OpenSources(c)
	if err != nil || va == nil || tr.Len()+va.Len() != 20 {
		t.Fatalf("folder: %v %v %v", tr, va, err)
	}
}

func TestSynthetic(t *testing.T) {
	s := NewSynthetic(4, 96, 7, 0)
	a, _ := s.Load(1)
	b, _ := NewSynthetic(10, 96, 7, 0).Load(1)
	c, _ := s.Load(2)
	if !bytes.Equal(a.Pix, b.Pix) {
		t.Error("image 1 differs between two sources with the same seed")
	}
	if bytes.Equal(a.Pix, c.Pix) {
		t.Error("images 1 and 2 are equal")
	}
	if a.C != 1 || a.W != 96 || a.H != 96 {
		t.Errorf("shape %dx%dx%d", a.W, a.H, a.C)
	}
	if _, err := s.Load(4); err == nil {
		t.Error("index out of range accepted")
	}
	// Anatomy, on average over images: lung fields darker than the mediastinum
	// and than the abdomen, air outside the body darkest.
	mean := func(m *Image, x0, y0, x1, y1 float64) float64 {
		sum, n := 0, 0
		for y := int(y0 * float64(m.H)); y < int(y1*float64(m.H)); y++ {
			for x := int(x0 * float64(m.W)); x < int(x1*float64(m.W)); x++ {
				sum += int(m.Pix[y*m.W+x])
				n++
			}
		}
		return float64(sum) / float64(n)
	}
	var lung, mediastinum, abdomen, air float64
	for i := range 8 {
		m := DrawRadiograph(128, 3, uint64(i))
		lung += mean(m, 0.27, 0.35, 0.35, 0.5) + mean(m, 0.66, 0.35, 0.74, 0.5)
		mediastinum += 2 * mean(m, 0.47, 0.3, 0.53, 0.5)
		abdomen += 2 * mean(m, 0.3, 0.9, 0.7, 0.97)
		air += 2 * mean(m, 0, 0, 0.03, 0.1)
	}
	if !(air < lung && lung+40 < mediastinum && lung+40 < abdomen) {
		t.Errorf("mean gray levels: air %.0f, lung %.0f, mediastinum %.0f, abdomen %.0f", air/16, lung/16, mediastinum/16, abdomen/16)
	}
}
