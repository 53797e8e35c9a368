package data

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Source is an indexed collection of images. Implementations must be safe for
// concurrent Load calls: the loader's workers call Load in parallel.
type Source interface {
	// Len is the number of images.
	Len() int
	// Name identifies image i in batches, errors and run metrics (a file path for
	// file sources).
	Name(i int) string
	// Load decodes image i. Errors name the file.
	Load(i int) (*Image, error)
}

// ListEntry is one line of a ChestX-ray14-style list file.
type ListEntry struct {
	File   string  // image file name, relative to the data root
	Labels []uint8 // the labels after the file name (14 0/1 values in ChestX-ray14)
}

// ReadList parses a list file: one image per line, "<file> <label> <label> ...",
// separated by white space; blank lines are ignored, and so is a UTF-8 byte
// order mark at the start (editors on Windows write one). Every line must
// carry the same number of labels, each an integer in [0, 255]. name (the
// file's path) and the line number prefix every error.
func ReadList(r io.Reader, name string) ([]ListEntry, error) {
	var (
		out    []ListEntry
		nLabel = -1
		first  int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for line := 1; sc.Scan(); line++ {
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, utf8BOM)
		}
		f := strings.Fields(string(text))
		if len(f) == 0 {
			continue
		}
		e := ListEntry{File: f[0], Labels: make([]uint8, len(f)-1)}
		for j, s := range f[1:] {
			v, err := strconv.ParseUint(s, 10, 8)
			if err != nil {
				return nil, fmt.Errorf("data: list %s:%d: label %d of %q: %q is not an integer in [0, 255]", name, line, j+1, e.File, s)
			}
			e.Labels[j] = uint8(v)
		}
		if nLabel < 0 {
			nLabel, first = len(e.Labels), line
		} else if len(e.Labels) != nLabel {
			return nil, fmt.Errorf("data: list %s:%d: %d labels, want %d as on line %d", name, line, len(e.Labels), nLabel, first)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("data: list %s: %w", name, err)
	}
	return out, nil
}

// ReadListFile reads and parses the list file at path; see ReadList.
func ReadListFile(path string) ([]ListEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: list: %w", err)
	}
	defer f.Close()
	return ReadList(f, path)
}

// ListSource serves the images named by a list file, joined onto a root folder,
// as the official DiRA ChestX_ray14 dataset does.
type ListSource struct {
	Root    string
	Entries []ListEntry
}

// NewListSource reads the list file at listPath; images are looked up under root.
// It does not check that the images exist: a missing one fails (or is skipped)
// when loaded.
func NewListSource(root, listPath string) (*ListSource, error) {
	e, err := ReadListFile(listPath)
	if err != nil {
		return nil, err
	}
	if len(e) == 0 {
		return nil, fmt.Errorf("data: list %s: no entries", listPath)
	}
	return &ListSource{Root: root, Entries: e}, nil
}

// Len implements Source.
func (s *ListSource) Len() int { return len(s.Entries) }

// Name implements Source: the image's path.
func (s *ListSource) Name(i int) string { return filepath.Join(s.Root, s.Entries[i].File) }

// Load implements Source.
func (s *ListSource) Load(i int) (*Image, error) { return DecodeFile(s.Name(i)) }

// Labels returns the labels of image i.
func (s *ListSource) Labels(i int) []uint8 { return s.Entries[i].Labels }

// FolderSource serves every image file under a root folder, in lexical order of
// the relative paths.
type FolderSource struct {
	Root  string
	Files []string // paths relative to Root, slash-separated
}

// NewFolderSource walks root recursively and keeps the files whose name ends in
// one of exts (case-insensitive, e.g. ".png"). Hidden files and folders (name
// starting with a dot) are skipped.
func NewFolderSource(root string, exts []string) (*FolderSource, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
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
		return nil, fmt.Errorf("data: folder source %s: %w", root, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("data: folder source %s: no files ending in %s", root, strings.Join(exts, ", "))
	}
	slices.Sort(files)
	return &FolderSource{Root: root, Files: files}, nil
}

func hasExt(name string, exts []string) bool {
	lower := strings.ToLower(name)
	for _, e := range exts {
		if strings.HasSuffix(lower, strings.ToLower(e)) {
			return true
		}
	}
	return false
}

// Split divides the files into a training and a validation source. A file goes
// to validation when the FNV-1a hash of its relative path falls in the lowest
// valFraction of the hash range, so the split of a file does not change when
// other files are added or removed.
func (s *FolderSource) Split(valFraction float64) (train, val *FolderSource) {
	train = &FolderSource{Root: s.Root}
	val = &FolderSource{Root: s.Root}
	limit := uint64(valFraction * (1 << 32))
	for _, f := range s.Files {
		h := fnv.New32a()
		h.Write([]byte(f))
		if uint64(h.Sum32()) < limit {
			val.Files = append(val.Files, f)
		} else {
			train.Files = append(train.Files, f)
		}
	}
	return train, val
}

// Len implements Source.
func (s *FolderSource) Len() int { return len(s.Files) }

// Name implements Source: the image's path.
func (s *FolderSource) Name(i int) string {
	return filepath.Join(s.Root, filepath.FromSlash(s.Files[i]))
}

// Load implements Source.
func (s *FolderSource) Load(i int) (*Image, error) { return DecodeFile(s.Name(i)) }

// OpenSources builds the training and validation sources that cfg describes.
// val is nil when there is no validation set (list source without val_list,
// folder source with val_fraction 0, synthetic source with val_count 0).
// Call cfg.Validate first for messages that name the YAML keys.
func OpenSources(cfg Config) (train, val Source, err error) {
	switch cfg.Source {
	case SourceSynthetic:
		s := cfg.Synthetic
		train = NewSynthetic(s.TrainCount, s.Size, s.Seed, 0)
		if s.ValCount > 0 {
			val = NewSynthetic(s.ValCount, s.Size, s.Seed, s.TrainCount)
		}
		return train, val, nil
	case SourceList:
		tr, err := NewListSource(cfg.Root, cfg.TrainList)
		if err != nil {
			return nil, nil, err
		}
		if cfg.ValList == "" {
			return tr, nil, nil
		}
		va, err := NewListSource(cfg.Root, cfg.ValList)
		if err != nil {
			return nil, nil, err
		}
		return tr, va, nil
	case SourceFolder:
		all, err := NewFolderSource(cfg.Root, cfg.Extensions)
		if err != nil {
			return nil, nil, err
		}
		if cfg.ValFraction <= 0 {
			return all, nil, nil
		}
		tr, va := all.Split(cfg.ValFraction)
		if tr.Len() == 0 {
			return nil, nil, fmt.Errorf("data: folder source %s: val_fraction %v leaves no training image", cfg.Root, cfg.ValFraction)
		}
		if va.Len() == 0 {
			return tr, nil, nil
		}
		return tr, va, nil
	}
	return nil, nil, fmt.Errorf("data: unknown source %q (want synthetic, list or folder)", cfg.Source)
}
