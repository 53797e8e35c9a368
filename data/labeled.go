package data

import (
	"fmt"
	"path/filepath"
)

// Example is one decoded, labelled image, before any transform.
type Example struct {
	Image  *Image
	Mask   *Image    // segmentation: gray, every pixel 0 or 255, the size of Image; nil otherwise
	Labels []float32 // multi-label targets; nil otherwise
	Class  int       // multi-class index; -1 otherwise
}

// LabeledSource is an indexed collection of labelled images. Implementations
// must be safe for concurrent LoadExample calls.
type LabeledSource interface {
	Len() int
	// Name identifies image i in batches and errors (a file path for files).
	Name(i int) string
	// LoadExample decodes image i with its target. Errors name the file.
	LoadExample(i int) (Example, error)
	// Targets says what the examples carry.
	Targets() Targets
}

// Targets describes what the examples of a LabeledSource carry.
type Targets struct {
	Task    string   // TaskMultiLabel, TaskMultiClass or TaskSegmentation
	Classes []string // label names (multi-label) or class names (multi-class); nil for segmentation
}

// LabeledList is a LabeledSource over LabeledEntry rows whose paths are
// relative to Root: a labelled list, a folder-per-class layout or images
// paired with masks.
type LabeledList struct {
	Root    string
	Task    string // TaskMultiLabel, TaskMultiClass or TaskSegmentation
	Entries []LabeledEntry
	Classes []string // class names, when known
}

// Len implements LabeledSource.
func (s *LabeledList) Len() int { return len(s.Entries) }

// Name implements LabeledSource: the image's path.
func (s *LabeledList) Name(i int) string { return s.path(s.Entries[i].File) }

func (s *LabeledList) path(p string) string {
	if s.Root == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.Root, p)
}

// LoadExample implements LabeledSource. A segmentation example's masks are
// converted to gray as PIL's convert('L') does and merged by union (a pixel
// is foreground, 255, when it is above 0 in any mask, the official rule
// mask[mask > 0] = 255); a missing mask, or one whose size differs from the
// image's, is an error naming both files.
func (s *LabeledList) LoadExample(i int) (Example, error) {
	e := s.Entries[i]
	img, err := DecodeFile(s.path(e.File))
	if err != nil {
		return Example{}, err
	}
	ex := Example{Image: img, Labels: e.Labels, Class: e.Class}
	if s.Task != TaskSegmentation {
		return ex, nil
	}
	if len(e.Masks) == 0 {
		return Example{}, fmt.Errorf("data: image %s: no mask", s.path(e.File))
	}
	union := NewImage(img.W, img.H, 1)
	for _, mp := range e.Masks {
		m, err := DecodeFile(s.path(mp))
		if err != nil {
			return Example{}, fmt.Errorf("data: mask of image %s: %w", s.path(e.File), err)
		}
		if m.W != img.W || m.H != img.H {
			return Example{}, fmt.Errorf("data: mask %s is %dx%d but image %s is %dx%d", s.path(mp), m.W, m.H, s.path(e.File), img.W, img.H)
		}
		for j, v := range m.Gray().Pix {
			if v > 0 {
				union.Pix[j] = 255
			}
		}
	}
	ex.Mask = union
	return ex, nil
}

// Targets implements LabeledSource. Without class names, labels or classes
// are named by number: as many as the first entry's labels (multi-label) or
// the largest class index plus one (multi-class).
func (s *LabeledList) Targets() Targets {
	t := Targets{Task: s.Task, Classes: s.Classes}
	if t.Classes != nil || s.Task == TaskSegmentation || len(s.Entries) == 0 {
		return t
	}
	n := len(s.Entries[0].Labels)
	if s.Task == TaskMultiClass {
		for _, e := range s.Entries {
			n = max(n, e.Class+1)
		}
	}
	for i := range n {
		t.Classes = append(t.Classes, fmt.Sprint(i))
	}
	return t
}

// Subset returns the list restricted to the entries at idx, in that order.
func (s *LabeledList) Subset(idx []int) *LabeledList {
	out := &LabeledList{Root: s.Root, Task: s.Task, Classes: s.Classes, Entries: make([]LabeledEntry, len(idx))}
	for i, j := range idx {
		out.Entries[i] = s.Entries[j]
	}
	return out
}

// subset is a LabeledSource restricted to some of another's indices.
type subset struct {
	src LabeledSource
	idx []int
}

// Subset returns src restricted to the indices idx, in that order (the
// label-fraction subset of LabelSubset, for instance).
func Subset(src LabeledSource, idx []int) LabeledSource {
	if l, ok := src.(*LabeledList); ok {
		return l.Subset(idx)
	}
	return &subset{src: src, idx: idx}
}

func (s *subset) Len() int                           { return len(s.idx) }
func (s *subset) Name(i int) string                  { return s.src.Name(s.idx[i]) }
func (s *subset) LoadExample(i int) (Example, error) { return s.src.LoadExample(s.idx[i]) }
func (s *subset) Targets() Targets                   { return s.src.Targets() }
