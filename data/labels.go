package data

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Tasks of a labelled data set.
const (
	TaskMultiLabel   = "multilabel"   // several independent 0/1 labels per image (ChestX-ray14: 14, Shenzhen: 1); BCE in the official code
	TaskMultiClass   = "multiclass"   // one class index per image
	TaskSegmentation = "segmentation" // one binary mask per image
)

// Column separators of labelled list files.
const (
	ListSpaces = "spaces" // "<file> <label> <label> ..." (ChestX-ray14's lists: Python's str.split())
	ListComma  = "comma"  // "<file>,<label>,..." (Shenzhen's lists: str.split(','))
)

// LabeledEntry is one row of a labelled list.
type LabeledEntry struct {
	File   string    // image path relative to the data root
	Labels []float32 // multi-label targets, each 0 or 1; nil for a multi-class row
	Class  int       // class index of a multi-class row; -1 for a multi-label row
	Masks  []string  // mask paths relative to the data root (segmentation lists)
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// listLines calls fn for every non-blank line of r with its 1-based number and
// its columns, split as format says (fields trimmed of white space). A UTF-8
// byte order mark at the start of the file is dropped, and Windows line ends
// are accepted.
func listLines(r io.Reader, name, format string, fn func(line int, cols []string) error) error {
	if format != ListSpaces && format != ListComma {
		return fmt.Errorf("data: list %s: format must be %s or %s, got %q", name, ListSpaces, ListComma, format)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, utf8BOM)
		}
		s := strings.TrimSpace(string(text))
		if s == "" {
			continue
		}
		var cols []string
		if format == ListSpaces {
			cols = strings.Fields(s)
		} else {
			cols = strings.Split(s, ",")
			for i := range cols {
				cols[i] = strings.TrimSpace(cols[i])
			}
		}
		if err := fn(line, cols); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("data: list %s: %w", name, err)
	}
	return nil
}

// ReadLabelList parses a multi-label list: every non-blank line is a file
// name followed by exactly labels integer columns, each 0 or 1, separated as
// format says. The official reader (dataloader.py ChestXray14Dataset) keeps
// the first labels columns of each line and silently ignores the rest; here a
// line with another column count is an error naming the file and the line, as
// is a label other than 0 or 1.
func ReadLabelList(r io.Reader, name, format string, labels int) ([]LabeledEntry, error) {
	if labels < 1 {
		return nil, fmt.Errorf("data: list %s: label count must be >= 1, got %d", name, labels)
	}
	var out []LabeledEntry
	err := listLines(r, name, format, func(line int, cols []string) error {
		if len(cols) != labels+1 {
			return fmt.Errorf("data: list %s:%d: %d columns, want a file name and %d labels", name, line, len(cols), labels)
		}
		e := LabeledEntry{File: cols[0], Labels: make([]float32, labels), Class: -1}
		for j, s := range cols[1:] {
			v, err := strconv.Atoi(s)
			if err != nil || (v != 0 && v != 1) {
				return fmt.Errorf("data: list %s:%d: label %d of %q is %q, want 0 or 1", name, line, j+1, e.File, s)
			}
			e.Labels[j] = float32(v)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// ReadClassList parses a multi-class list: every non-blank line is a file
// name and one class index in [0, classes).
func ReadClassList(r io.Reader, name, format string, classes int) ([]LabeledEntry, error) {
	if classes < 2 {
		return nil, fmt.Errorf("data: list %s: class count must be >= 2, got %d", name, classes)
	}
	var out []LabeledEntry
	err := listLines(r, name, format, func(line int, cols []string) error {
		if len(cols) != 2 {
			return fmt.Errorf("data: list %s:%d: %d columns, want a file name and a class index", name, line, len(cols))
		}
		v, err := strconv.Atoi(cols[1])
		if err != nil || v < 0 || v >= classes {
			return fmt.Errorf("data: list %s:%d: class of %q is %q, want an integer in [0, %d)", name, line, cols[0], cols[1], classes)
		}
		out = append(out, LabeledEntry{File: cols[0], Class: v})
		return nil
	})
	return out, err
}

// ReadMaskList parses a segmentation list: every non-blank line is an image
// file followed by one or more mask files (merged by union when several, as
// Montgomery's left and right lung masks). Every line must name the same
// number of masks.
func ReadMaskList(r io.Reader, name, format string) ([]LabeledEntry, error) {
	var out []LabeledEntry
	want, first := 0, 0
	err := listLines(r, name, format, func(line int, cols []string) error {
		if len(cols) < 2 {
			return fmt.Errorf("data: list %s:%d: %d columns, want an image and at least one mask", name, line, len(cols))
		}
		if want == 0 {
			want, first = len(cols), line
		} else if len(cols) != want {
			return fmt.Errorf("data: list %s:%d: %d columns, want %d as on line %d", name, line, len(cols), want, first)
		}
		out = append(out, LabeledEntry{File: cols[0], Class: -1, Masks: slices.Clone(cols[1:])})
		return nil
	})
	return out, err
}

// readListFile opens path and parses it with parse.
func readListFile(path string, parse func(io.Reader, string) ([]LabeledEntry, error)) ([]LabeledEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: list: %w", err)
	}
	defer f.Close()
	e, err := parse(f, path)
	if err != nil {
		return nil, err
	}
	if len(e) == 0 {
		return nil, fmt.Errorf("data: list %s: no entries", path)
	}
	return e, nil
}

// ReadClassFolders lists a folder-per-class layout, as torchvision's
// ImageFolder reads it: every sub-folder of root is a class, classes are
// numbered in lexical order of their names, and each class's images (files
// ending in one of exts, searched recursively, hidden files skipped) are
// listed in lexical order. It returns the entries (paths relative to root)
// and the class names.
func ReadClassFolders(root string, exts []string) ([]LabeledEntry, []string, error) {
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, fmt.Errorf("data: class folders: %w", err)
	}
	var classes []string
	for _, d := range dirs {
		if d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			classes = append(classes, d.Name())
		}
	}
	slices.Sort(classes)
	if len(classes) < 2 {
		return nil, nil, fmt.Errorf("data: class folders %s: %d class sub-folders, want at least 2", root, len(classes))
	}
	var out []LabeledEntry
	for ci, c := range classes {
		var files []string
		err := filepath.WalkDir(filepath.Join(root, c), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() || !hasExt(d.Name(), exts) {
				return nil
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("data: class folders %s: %w", root, err)
		}
		if len(files) == 0 {
			return nil, nil, fmt.Errorf("data: class folders %s: class %q has no files ending in %s", root, c, strings.Join(exts, ", "))
		}
		slices.Sort(files)
		for _, f := range files {
			out = append(out, LabeledEntry{File: f, Class: ci})
		}
	}
	return out, classes, nil
}

// PairMasks lists the images in imageDir (files ending in one of exts, not
// recursive, lexical order) and pairs each with the file of the same name in
// every mask folder; when a mask folder has no file of that name, a file with
// the same name up to the extension (one of exts) is taken, and two such
// candidates are an error. Paths in the result are relative to root (or
// absolute when root is empty). An image with no mask in some folder is kept,
// pointing at the mask file it lacks: loading it fails naming that file, and
// the bad-image policy decides (skip or fail).
func PairMasks(root, imageDir string, maskDirs []string, exts []string) ([]LabeledEntry, error) {
	if len(maskDirs) == 0 {
		return nil, fmt.Errorf("data: masks for %s: no mask folder", imageDir)
	}
	join := func(p string) string {
		if root == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(root, p)
	}
	ents, err := os.ReadDir(join(imageDir))
	if err != nil {
		return nil, fmt.Errorf("data: image folder: %w", err)
	}
	var images []string
	for _, e := range ents {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") && hasExt(e.Name(), exts) {
			images = append(images, e.Name())
		}
	}
	if len(images) == 0 {
		return nil, fmt.Errorf("data: image folder %s: no files ending in %s", join(imageDir), strings.Join(exts, ", "))
	}
	slices.Sort(images)
	// Index each mask folder by full name and by stem.
	type index struct {
		names map[string]bool
		stems map[string][]string
	}
	idx := make([]index, len(maskDirs))
	for k, d := range maskDirs {
		ents, err := os.ReadDir(join(d))
		if err != nil {
			return nil, fmt.Errorf("data: mask folder: %w", err)
		}
		idx[k] = index{names: map[string]bool{}, stems: map[string][]string{}}
		for _, e := range ents {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			idx[k].names[e.Name()] = true
			if hasExt(e.Name(), exts) {
				s := stem(e.Name())
				idx[k].stems[s] = append(idx[k].stems[s], e.Name())
			}
		}
	}
	out := make([]LabeledEntry, len(images))
	for i, im := range images {
		e := LabeledEntry{File: filepath.Join(imageDir, im), Class: -1, Masks: make([]string, len(maskDirs))}
		for k, d := range maskDirs {
			switch c := idx[k].stems[stem(im)]; {
			case idx[k].names[im], len(c) == 0:
				e.Masks[k] = filepath.Join(d, im) // when absent, loading fails naming the expected file
			case len(c) == 1:
				e.Masks[k] = filepath.Join(d, c[0])
			case len(c) > 1:
				return nil, fmt.Errorf("data: masks for %s: %s holds %d candidates (%s)", filepath.Join(join(imageDir), im), join(d), len(c), strings.Join(c, ", "))
			}
		}
		out[i] = e
	}
	return out, nil
}

func stem(name string) string { return strings.TrimSuffix(name, filepath.Ext(name)) }
