package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
)

// LabeledBatch is one batch of fine-tuning tensors, row-major float32.
type LabeledBatch struct {
	Epoch int
	Index int // batch number within the epoch
	N     int // images in the batch
	Crops int // crops per image: 10 for the ten-crop test transform, else 1
	H, W  int
	// Images holds [N·Crops, 3, H, W] inputs; the crops of one image are
	// consecutive, as the official test loop's samples.view(-1, c, h, w).
	// Normalised as the configuration says.
	Images []float32
	Labels []float32 // [N, len(Classes)] multi-label 0/1 targets; nil for other tasks
	Class  []int64   // [N] class indices (multi-class); nil for other tasks
	Masks  []float32 // [N, 1, H, W] 0/1 masks (segmentation); nil for other tasks
	// Classes names the label columns (multi-label) or the classes (multi-class).
	Classes []string
	Names   []string // LabeledSource.Name of each image
	Indices []int    // source index of each image
	Skipped []Skip   // bad images passed over while filling this batch
	// Next is the position after this batch: EpochFrom(ctx, epoch, b.Next)
	// continues the epoch exactly where this batch ends.
	Next Position
}

// labeledSample is one transformed example.
type labeledSample struct {
	crops  []*Image
	mask   *Image
	labels []float32
	class  int
}

// LabeledLoader turns a LabeledSource into batches for one split, with the
// transforms of the DiRA benchmark code: classification train, valid or test
// (ten crops) transforms; segmentation resize, augmentation (train, and
// validation when segment.augment_val) and scaling. It has Loader's
// guarantees: batches depend only on (seed, epoch, position), memory is
// bounded, bad images are skipped and counted or stop the epoch, as
// configured.
type LabeledLoader struct {
	src     LabeledSource
	cfg     LabeledConfig
	split   string
	targets Targets
	crops   int
	norm    Normalization
	ct      ClassifyTransform
	p       *packer[labeledSample, *LabeledBatch]
}

// NewLabeledLoader returns a loader of src for split (SplitTrain, SplitVal or
// SplitTest) with the settings of cfg, drawing every random number from seed.
// As in the official engines, only the training split is shuffled by default,
// and no split drops its last, incomplete batch; options change that.
func NewLabeledLoader(src LabeledSource, cfg LabeledConfig, split string, batchSize int, seed uint64, opts ...Option) (*LabeledLoader, error) {
	var errs []error
	if src == nil || src.Len() == 0 {
		errs = append(errs, errors.New("data: labeled loader: empty source"))
	}
	if batchSize < 1 {
		errs = append(errs, fmt.Errorf("data: labeled loader: batch size must be >= 1, got %d", batchSize))
	}
	if split != SplitTrain && split != SplitVal && split != SplitTest {
		errs = append(errs, fmt.Errorf("data: labeled loader: split must be train, val or test, got %q", split))
	}
	// Check the fields the loader uses; the source fields were used to build src.
	c := cfg
	c.Source, c.Synthetic = SourceSynthetic, DefaultLabeledConfig().Synthetic
	for _, err := range c.Validate("data") {
		errs = append(errs, fmt.Errorf("data: labeled loader: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	targets := src.Targets()
	if targets.Task != cfg.Task {
		return nil, fmt.Errorf("data: labeled loader: source holds task %s, config says %s", targets.Task, cfg.Task)
	}
	o := loaderOptions{shuffle: split == SplitTrain, dropLast: false}
	for _, opt := range opts {
		opt(&o)
	}
	l := &LabeledLoader{src: src, cfg: cfg, split: split, targets: targets, crops: 1}
	l.norm, _ = ParseNormalization(cfg.Normalization)
	if cfg.Task != TaskSegmentation {
		mode := map[string]string{SplitTrain: ModeTrain, SplitVal: ModeValid, SplitTest: ModeTest}[split]
		l.ct = ClassifyTransform{Mode: mode, Crop: cfg.ImageSize, Resize: cfg.ResizeSize, Shorter: cfg.ResizeShorter,
			TenCrop: cfg.TenCrop, Augment: cfg.Classify, Normalize: l.norm}
		l.crops = l.ct.Crops()
	}
	l.p = &packer[labeledSample, *LabeledBatch]{
		n:        src.Len(),
		name:     src.Name,
		load:     l.sample,
		newBatch: l.newBatch,
		add:      l.add,
		finish:   l.finish,
		batch:    batchSize,
		seed:     seed,
		shuffle:  o.shuffle,
		dropLast: o.dropLast,
		workers:  cfg.Workers,
		prefetch: cfg.Prefetch,
		failFast: cfg.BadImages == BadImagesFail,
		// LabeledConfig has no skip limit yet: the skip policy may leave
		// out every image.
		maxSkipped: src.Len(),
	}
	return l, nil
}

// Targets returns what the batches carry.
func (l *LabeledLoader) Targets() Targets { return l.targets }

// Crops is the number of crops per image in a batch (10 for the ten-crop test
// transform, else 1); average the network's outputs over them.
func (l *LabeledLoader) Crops() int { return l.crops }

// BatchesPerEpoch is the number of batches in an epoch when no image is
// skipped.
func (l *LabeledLoader) BatchesPerEpoch() int {
	return batchesPerEpoch(l.src.Len(), l.p.batch, l.p.dropLast)
}

// Skipped returns every image skipped so far, over all epochs, in the order met.
func (l *LabeledLoader) Skipped() []Skip { return l.p.skips() }

// sample loads and transforms example index.
func (l *LabeledLoader) sample(epoch, index int) (labeledSample, error) {
	ex, err := l.src.LoadExample(index)
	if err != nil {
		return labeledSample{}, err
	}
	r := SampleRNG(l.p.seed, epoch, index)
	s := labeledSample{labels: ex.Labels, class: ex.Class}
	switch l.cfg.Task {
	case TaskSegmentation:
		if ex.Mask == nil {
			return labeledSample{}, fmt.Errorf("data: %s: no mask", l.src.Name(index))
		}
		size := l.cfg.ImageSize
		img := ResizeNearestCV(ex.Image, size, size)
		mask := ResizeNearestCV(ex.Mask, size, size)
		if l.split == SplitTrain || (l.split == SplitVal && l.cfg.Segment.AugmentVal) {
			img, mask, _ = AugmentSegment(r, img, mask, l.cfg.Segment)
		}
		s.crops, s.mask = []*Image{img}, mask
	default:
		if l.cfg.Task == TaskMultiLabel && len(ex.Labels) != len(l.targets.Classes) {
			return labeledSample{}, fmt.Errorf("data: %s: %d labels, want %d", l.src.Name(index), len(ex.Labels), len(l.targets.Classes))
		}
		if l.cfg.Task == TaskMultiClass && (ex.Class < 0 || ex.Class >= len(l.targets.Classes)) {
			return labeledSample{}, fmt.Errorf("data: %s: class %d outside [0, %d)", l.src.Name(index), ex.Class, len(l.targets.Classes))
		}
		s.crops, err = l.ct.Apply(r, ex.Image)
		if err != nil {
			return labeledSample{}, fmt.Errorf("data: %s: %w", l.src.Name(index), err)
		}
	}
	return s, nil
}

func (l *LabeledLoader) newBatch(epoch, number int) *LabeledBatch {
	size := l.cfg.ImageSize
	n, hw := l.p.batch, size*size
	b := &LabeledBatch{Epoch: epoch, Index: number, N: n, Crops: l.crops, H: size, W: size, Classes: l.targets.Classes,
		Images: make([]float32, n*l.crops*3*hw)}
	switch l.cfg.Task {
	case TaskMultiLabel:
		b.Labels = make([]float32, n*len(l.targets.Classes))
	case TaskMultiClass:
		b.Class = make([]int64, n)
	case TaskSegmentation:
		b.Masks = make([]float32, n*hw)
	}
	return b
}

func (l *LabeledLoader) add(b *LabeledBatch, index int, s labeledSample) int {
	i := len(b.Names)
	hw := b.H * b.W
	for k, c := range s.crops {
		dst := b.Images[((i*b.Crops)+k)*3*hw : ((i*b.Crops)+k+1)*3*hw]
		if l.cfg.Task == TaskSegmentation {
			PutSegmentImage(dst, c, l.norm.Name == NormImageNet.Name)
		} else {
			l.norm.Put(dst, c)
		}
	}
	switch l.cfg.Task {
	case TaskMultiLabel:
		copy(b.Labels[i*len(b.Classes):], s.labels)
	case TaskMultiClass:
		b.Class[i] = int64(s.class)
	case TaskSegmentation:
		PutMask(b.Masks[i*hw:(i+1)*hw], s.mask)
	}
	b.Names = append(b.Names, l.src.Name(index))
	b.Indices = append(b.Indices, index)
	return len(b.Names)
}

func (l *LabeledLoader) finish(b *LabeledBatch, skipped []Skip, next Position, size int, partial bool) {
	b.Skipped, b.Next = skipped, next
	if !partial {
		return
	}
	hw := b.H * b.W
	b.N = size
	b.Images = b.Images[:size*b.Crops*3*hw]
	if b.Labels != nil {
		b.Labels = b.Labels[:size*len(b.Classes)]
	}
	if b.Class != nil {
		b.Class = b.Class[:size]
	}
	if b.Masks != nil {
		b.Masks = b.Masks[:size*hw]
	}
}

// LabeledEpoch is one pass over a split in progress. Call Next until it
// returns io.EOF (or an error), and Close when done, also on early exit.
type LabeledEpoch struct{ s *stream[*LabeledBatch] }

// Epoch starts epoch number epoch from its beginning.
func (l *LabeledLoader) Epoch(ctx context.Context, epoch int) *LabeledEpoch {
	return l.EpochFrom(ctx, epoch, Position{})
}

// EpochFrom starts epoch number epoch at position from, a LabeledBatch.Next
// of an earlier run of the same epoch, or the zero Position.
func (l *LabeledLoader) EpochFrom(ctx context.Context, epoch int, from Position) *LabeledEpoch {
	return &LabeledEpoch{l.p.run(ctx, epoch, from)}
}

// Next returns the epoch's next batch, io.EOF after the last one, or the
// error that stopped the epoch (a bad image under the fail policy, or the
// context's cancellation).
func (e *LabeledEpoch) Next() (*LabeledBatch, error) { return e.s.next() }

// Close stops the epoch's goroutines and waits for them. It is safe to call
// more than once.
func (e *LabeledEpoch) Close() { e.s.close() }

// OpenLabeled builds the training, validation and test sources that cfg
// describes, with the label fraction applied to the splits cfg.LabelSplits
// names. val and test are nil when the configuration has none. Call
// cfg.Validate first for messages that name the YAML keys.
func OpenLabeled(cfg LabeledConfig) (train, val, test LabeledSource, err error) {
	splits := []SplitConfig{cfg.Train, cfg.Val, cfg.Test}
	names := []string{SplitTrain, SplitVal, SplitTest}
	out := make([]LabeledSource, 3)
	switch cfg.Source {
	case SourceSynthetic:
		s := cfg.Synthetic
		counts := []int{s.TrainCount, s.ValCount, s.TestCount}
		offset := 0
		for k, n := range counts {
			if n > 0 {
				out[k] = &LabeledSynthetic{N: n, Size: s.Size, Seed: s.Seed, Offset: offset, Task: cfg.Task,
					Findings: slices.Clone(s.Findings), Prevalence: s.Prevalence}
			}
			offset += n
		}
	case SourceList, SourceFolder:
		var classes []string
		for k, sp := range splits {
			if sp.empty() {
				continue
			}
			l, err := openSplit(cfg, sp)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("data: %s split: %w", names[k], err)
			}
			if cfg.Task == TaskMultiClass && cfg.Source == SourceFolder {
				if classes == nil {
					classes = l.Classes
				} else if !slices.Equal(classes, l.Classes) {
					return nil, nil, nil, fmt.Errorf("data: %s split: class folders %v differ from the training split's %v", names[k], l.Classes, classes)
				}
			}
			out[k] = l
		}
	default:
		return nil, nil, nil, fmt.Errorf("data: unknown source %q (want synthetic, list or folder)", cfg.Source)
	}
	if out[0] == nil {
		return nil, nil, nil, errors.New("data: no training split")
	}
	if cfg.LabelPercent < 100 {
		for k, name := range names {
			if out[k] == nil || !slices.Contains(cfg.LabelSplits, name) {
				continue
			}
			idx, err := LabelSubset(out[k].Len(), cfg.LabelPercent, cfg.LabelSeed)
			if err != nil {
				return nil, nil, nil, err
			}
			if len(idx) == 0 {
				return nil, nil, nil, fmt.Errorf("data: %s split: %v%% of %d images keeps none", name, cfg.LabelPercent, out[k].Len())
			}
			out[k] = Subset(out[k], idx)
		}
	}
	return out[0], out[1], out[2], nil
}

// openSplit reads one split of a list or folder source.
func openSplit(cfg LabeledConfig, sp SplitConfig) (*LabeledList, error) {
	l := &LabeledList{Root: cfg.Root, Task: cfg.Task}
	var err error
	switch {
	case cfg.Source == SourceList:
		switch cfg.Task {
		case TaskMultiLabel:
			l.Entries, err = readListFile(sp.List, func(f io.Reader, name string) ([]LabeledEntry, error) {
				return ReadLabelList(f, name, cfg.ListFormat, cfg.Classes)
			})
		case TaskMultiClass:
			l.Entries, err = readListFile(sp.List, func(f io.Reader, name string) ([]LabeledEntry, error) {
				return ReadClassList(f, name, cfg.ListFormat, cfg.Classes)
			})
		default:
			l.Entries, err = readListFile(sp.List, func(f io.Reader, name string) ([]LabeledEntry, error) {
				return ReadMaskList(f, name, cfg.ListFormat)
			})
		}
	case cfg.Task == TaskMultiClass:
		dir := sp.Images
		if cfg.Root != "" && !filepath.IsAbs(dir) {
			dir = filepath.Join(cfg.Root, dir)
		}
		l.Root = dir
		l.Entries, l.Classes, err = ReadClassFolders(dir, cfg.Extensions)
	case cfg.Task == TaskSegmentation:
		l.Entries, err = PairMasks(cfg.Root, sp.Images, sp.Masks, cfg.Extensions)
	default:
		return nil, fmt.Errorf("data: no %s layout for source %s", cfg.Task, cfg.Source)
	}
	if err != nil {
		return nil, err
	}
	if len(cfg.ClassNames) > 0 && cfg.Task != TaskSegmentation {
		if l.Classes != nil && !slices.Equal(l.Classes, cfg.ClassNames) {
			return nil, fmt.Errorf("data: class_names %v differ from the class folders %v", cfg.ClassNames, l.Classes)
		}
		l.Classes = slices.Clone(cfg.ClassNames)
	}
	if l.Classes == nil && cfg.Source == SourceList && cfg.Task != TaskSegmentation {
		// Number the configured classes, so that every split names the same
		// ones even when a split lacks the highest class.
		for i := range cfg.Classes {
			l.Classes = append(l.Classes, fmt.Sprint(i))
		}
	}
	return l, nil
}
