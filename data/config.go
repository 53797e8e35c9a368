package data

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
)

// Source kinds accepted in Config.Source.
const (
	SourceSynthetic = "synthetic"
	SourceList      = "list"
	SourceFolder    = "folder"
)

// Bad-image policies accepted in Config.BadImages.
const (
	BadImagesSkip = "skip"
	BadImagesFail = "fail"
)

// Config is the data section of a run configuration (YAML key "data"). Every
// field's comment is its one-line documentation, also returned by FieldDocs.
type Config struct {
	// Where images come from: synthetic (built-in drawn radiographs), list (list files under root) or folder (every image under root).
	Source string `yaml:"source" mapstructure:"source"`
	// Folder holding the images; list entries are joined onto it (list and folder sources).
	Root string `yaml:"root" mapstructure:"root"`
	// Training list file, one "<file> <labels...>" line per image as in ChestX-ray14 (list source).
	TrainList string `yaml:"train_list" mapstructure:"train_list"`
	// Validation list file in the same format (list source); empty: no validation set.
	ValList string `yaml:"val_list" mapstructure:"val_list"`
	// File name endings, case-insensitive, that the folder source picks up.
	Extensions []string `yaml:"extensions" mapstructure:"extensions"`
	// Fraction (0 to <1) of folder images held out for validation, chosen by a hash of each relative path.
	ValFraction float64 `yaml:"val_fraction" mapstructure:"val_fraction"`
	// Built-in synthetic chest-radiograph source (source: synthetic).
	Synthetic SyntheticConfig `yaml:"synthetic" mapstructure:"synthetic"`
	// Side length in pixels of both views and the target (torchvision RandomResizedCrop size); a multiple of 32.
	ImageSize int `yaml:"image_size" mapstructure:"image_size"`
	// Goroutines decoding and augmenting ahead of training (count); results do not depend on it.
	Workers int `yaml:"workers" mapstructure:"workers"`
	// Finished batches queued ahead of the training step (count); bounds the loader's memory.
	Prefetch int `yaml:"prefetch" mapstructure:"prefetch"`
	// What to do with an image that cannot be read: skip (count it, fill the batch with the next good image) or fail (stop with an error naming the file).
	BadImages string `yaml:"bad_images" mapstructure:"bad_images"`
	// Largest fraction (0 to 1) of an epoch's images that bad_images: skip may leave out; one more stops the run with an error saying how many were skipped (1 = no limit).
	MaxSkippedFraction float64 `yaml:"max_skipped_fraction" mapstructure:"max_skipped_fraction"`
	// Restoration is not a config key: the training stage sets it from its
	// kind (true for warmup and adversarial, modes dir/dira: distorted views
	// plus the restoration target; false for moco, mode di: two undistorted
	// views, no target).
	Restoration bool `yaml:"-" mapstructure:"-"`
	// View augmentation and restoration distortion (DiRA spec 3.1, 3.2).
	Augment AugmentConfig `yaml:"augment" mapstructure:"augment"`
}

// SyntheticConfig configures the built-in synthetic source.
type SyntheticConfig struct {
	// Number of synthetic training images (count).
	TrainCount int `yaml:"train_count" mapstructure:"train_count"`
	// Number of synthetic validation images (count), drawn apart from the training ones.
	ValCount int `yaml:"val_count" mapstructure:"val_count"`
	// Side length of each synthetic image in pixels (ChestX-ray14 images are 1024).
	Size int `yaml:"size" mapstructure:"size"`
	// Seed of the synthetic images; image i is the same for a given seed, whatever else changes.
	Seed uint64 `yaml:"seed" mapstructure:"seed"`
}

// AugmentConfig holds the parameters of the two views and of the restoration
// distortion. The defaults are the official DiRA values.
type AugmentConfig struct {
	// RandomResizedCrop area range as a fraction of the image area ([min, max]).
	CropScale []float64 `yaml:"crop_scale" mapstructure:"crop_scale"`
	// RandomResizedCrop aspect-ratio range, width/height ([min, max]; drawn log-uniformly).
	CropRatio []float64 `yaml:"crop_ratio" mapstructure:"crop_ratio"`
	// Probability of applying ColorJitter to a view.
	JitterP float64 `yaml:"jitter_p" mapstructure:"jitter_p"`
	// ColorJitter brightness strength: factor drawn from [max(0, 1-b), 1+b].
	Brightness float64 `yaml:"brightness" mapstructure:"brightness"`
	// ColorJitter contrast strength: factor drawn from [max(0, 1-c), 1+c].
	Contrast float64 `yaml:"contrast" mapstructure:"contrast"`
	// ColorJitter saturation strength: factor drawn from [max(0, 1-s), 1+s] (no effect on gray images).
	Saturation float64 `yaml:"saturation" mapstructure:"saturation"`
	// ColorJitter hue strength: shift drawn from [-h, h] in turns, h <= 0.5 (no effect on gray images).
	Hue float64 `yaml:"hue" mapstructure:"hue"`
	// Probability of applying the Gaussian blur to a view.
	BlurP float64 `yaml:"blur_p" mapstructure:"blur_p"`
	// Gaussian blur radius (PIL's sigma) range in pixels ([min, max], drawn uniformly).
	BlurSigma []float64 `yaml:"blur_sigma" mapstructure:"blur_sigma"`
	// Probability of flipping a view left to right.
	FlipP float64 `yaml:"flip_p" mapstructure:"flip_p"`
	// Probability of the in-painting distortion (up to 10 zeroed blocks).
	InpaintP float64 `yaml:"inpaint_p" mapstructure:"inpaint_p"`
	// Probability of the out-painting distortion (all zero but up to 10 kept windows).
	OutpaintP float64 `yaml:"outpaint_p" mapstructure:"outpaint_p"`
	// Probability of the patch-swap distortion (10 block swaps); the rest of the probability leaves the view undistorted.
	SwapP float64 `yaml:"swap_p" mapstructure:"swap_p"`
	// Flip the restoration target with view 1; false reproduces the official code, whose target is never flipped.
	FlipTarget bool `yaml:"flip_target" mapstructure:"flip_target"`
	// Skip patch swaps whose blocks overlap; false reproduces the official code, whose overlap test is always true.
	SwapRejectOverlap bool `yaml:"swap_reject_overlap" mapstructure:"swap_reject_overlap"`
}

// DefaultConfig returns the official DiRA data settings on the built-in
// synthetic source, so that a configuration with no data section runs anywhere.
func DefaultConfig() Config {
	return Config{
		Source:      SourceSynthetic,
		Extensions:  []string{".png", ".jpg", ".jpeg"},
		ValFraction: 0.1,
		Synthetic: SyntheticConfig{
			TrainCount: 512,
			ValCount:   64,
			Size:       256,
			Seed:       1,
		},
		ImageSize: 224,
		Workers:   4,
		Prefetch:  2,
		BadImages: BadImagesSkip,
		// A few corrupt files in a large set are normal; a tenth of the set
		// means the wrong folder, a broken mount or a wrong list.
		MaxSkippedFraction: 0.1,
		Restoration:        true,
		Augment:            DefaultAugment(),
	}
}

// DefaultAugment returns the official DiRA augmentation parameters (spec 3.1,
// 3.2): RandomResizedCrop(scale (0.2, 1), ratio (3/4, 4/3)), ColorJitter(0.4, 0.4,
// 0.4, 0.1) with p=0.8, GaussianBlur σ∈[0.1, 2] with p=0.5, flip p=0.5, and the
// distortion branches 30% in-paint, 5% out-paint, 30% swap, 35% none.
func DefaultAugment() AugmentConfig {
	return AugmentConfig{
		CropScale:  []float64{0.2, 1.0},
		CropRatio:  []float64{3.0 / 4.0, 4.0 / 3.0},
		JitterP:    0.8,
		Brightness: 0.4,
		Contrast:   0.4,
		Saturation: 0.4,
		Hue:        0.1,
		BlurP:      0.5,
		BlurSigma:  []float64{0.1, 2.0},
		FlipP:      0.5,
		InpaintP:   0.30,
		OutpaintP:  0.05,
		SwapP:      0.30,
	}
}

// FieldDocs maps every YAML key of Config, as a dotted path relative to the data
// section ("synthetic.train_count"), to its one-line description.
func (Config) FieldDocs() map[string]string {
	return map[string]string{
		"source":                      "Where images come from: synthetic (built-in drawn radiographs), list (list files under root) or folder (every image under root).",
		"root":                        "Folder holding the images; list entries are joined onto it (list and folder sources).",
		"train_list":                  `Training list file, one "<file> <labels...>" line per image as in ChestX-ray14 (list source).`,
		"val_list":                    "Validation list file in the same format (list source); empty: no validation set.",
		"extensions":                  "File name endings, case-insensitive, that the folder source picks up.",
		"val_fraction":                "Fraction (0 to <1) of folder images held out for validation, chosen by a hash of each relative path.",
		"synthetic":                   "Built-in synthetic chest-radiograph source (source: synthetic).",
		"synthetic.train_count":       "Number of synthetic training images (count).",
		"synthetic.val_count":         "Number of synthetic validation images (count), drawn apart from the training ones.",
		"synthetic.size":              "Side length of each synthetic image in pixels (ChestX-ray14 images are 1024).",
		"synthetic.seed":              "Seed of the synthetic images; image i is the same for a given seed, whatever else changes.",
		"image_size":                  "Side length in pixels of both views and the target (torchvision RandomResizedCrop size); a multiple of 32.",
		"workers":                     "Goroutines decoding and augmenting ahead of training (count); results do not depend on it.",
		"prefetch":                    "Finished batches queued ahead of the training step (count); bounds the loader's memory.",
		"bad_images":                  "What to do with an image that cannot be read: skip (count it, fill the batch with the next good image) or fail (stop with an error naming the file).",
		"max_skipped_fraction":        "Largest fraction (0 to 1) of an epoch's images that bad_images: skip may leave out; one more stops the run with an error saying how many were skipped (1 = no limit).",
		"augment":                     "View augmentation and restoration distortion (DiRA spec 3.1, 3.2).",
		"augment.crop_scale":          "RandomResizedCrop area range as a fraction of the image area ([min, max]).",
		"augment.crop_ratio":          "RandomResizedCrop aspect-ratio range, width/height ([min, max]; drawn log-uniformly).",
		"augment.jitter_p":            "Probability of applying ColorJitter to a view.",
		"augment.brightness":          "ColorJitter brightness strength: factor drawn from [max(0, 1-b), 1+b].",
		"augment.contrast":            "ColorJitter contrast strength: factor drawn from [max(0, 1-c), 1+c].",
		"augment.saturation":          "ColorJitter saturation strength: factor drawn from [max(0, 1-s), 1+s] (no effect on gray images).",
		"augment.hue":                 "ColorJitter hue strength: shift drawn from [-h, h] in turns, h <= 0.5 (no effect on gray images).",
		"augment.blur_p":              "Probability of applying the Gaussian blur to a view.",
		"augment.blur_sigma":          "Gaussian blur radius (PIL's sigma) range in pixels ([min, max], drawn uniformly).",
		"augment.flip_p":              "Probability of flipping a view left to right.",
		"augment.inpaint_p":           "Probability of the in-painting distortion (up to 10 zeroed blocks).",
		"augment.outpaint_p":          "Probability of the out-painting distortion (all zero but up to 10 kept windows).",
		"augment.swap_p":              "Probability of the patch-swap distortion (10 block swaps); the rest of the probability leaves the view undistorted.",
		"augment.flip_target":         "Flip the restoration target with view 1; false reproduces the official code, whose target is never flipped.",
		"augment.swap_reject_overlap": "Skip patch swaps whose blocks overlap; false reproduces the official code, whose overlap test is always true.",
	}
}

// Validate returns every problem in c, each naming its YAML key under path (the
// prefix of the data section, e.g. "data"), or nil when c is usable. It checks
// that the folders and files a source needs exist.
func (c Config) Validate(path string) []error {
	var errs []error
	bad := func(k, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{yamlKey(path, k)}, args...)...))
	}
	switch c.Source {
	case SourceSynthetic:
		s := c.Synthetic
		if s.TrainCount < 1 {
			bad("synthetic.train_count", "must be >= 1, got %d", s.TrainCount)
		}
		if s.ValCount < 0 {
			bad("synthetic.val_count", "must be >= 0, got %d", s.ValCount)
		}
		if s.Size < 16 {
			bad("synthetic.size", "must be >= 16 pixels, got %d", s.Size)
		}
	case SourceList, SourceFolder:
		if c.Root == "" {
			bad("root", "must be set for source %s (set %s or use %s: synthetic)", c.Source, yamlKey(path, "root"), yamlKey(path, "source"))
		} else if fi, err := os.Stat(c.Root); err != nil || !fi.IsDir() {
			bad("root", "folder %q does not exist (set %s or use %s: synthetic)", c.Root, yamlKey(path, "root"), yamlKey(path, "source"))
		}
		if c.Source == SourceList {
			if c.TrainList == "" {
				bad("train_list", "must be set for source list")
			} else if !isFile(c.TrainList) {
				bad("train_list", "file %q does not exist", c.TrainList)
			}
			if c.ValList != "" && !isFile(c.ValList) {
				bad("val_list", "file %q does not exist", c.ValList)
			}
		} else {
			if len(c.Extensions) == 0 {
				bad("extensions", "must list at least one extension, e.g. [.png]")
			}
			for i, e := range c.Extensions {
				if !strings.HasPrefix(e, ".") || len(e) < 2 {
					bad(fmt.Sprintf("extensions[%d]", i), "must start with a dot, got %q", e)
				}
			}
			if !(c.ValFraction >= 0 && c.ValFraction < 1) {
				bad("val_fraction", "must be in [0, 1), got %v", c.ValFraction)
			}
		}
	default:
		bad("source", "must be one of synthetic, list, folder, got %q", c.Source)
	}
	if c.ImageSize < 32 || c.ImageSize%32 != 0 {
		bad("image_size", "must be a positive multiple of 32, got %d", c.ImageSize)
	}
	if c.Workers < 1 {
		bad("workers", "must be >= 1, got %d", c.Workers)
	}
	if c.Prefetch < 1 {
		bad("prefetch", "must be >= 1, got %d", c.Prefetch)
	}
	if c.BadImages != BadImagesSkip && c.BadImages != BadImagesFail {
		bad("bad_images", "must be skip or fail, got %q", c.BadImages)
	}
	if !(c.MaxSkippedFraction >= 0 && c.MaxSkippedFraction <= 1) {
		bad("max_skipped_fraction", "must be in [0, 1], got %v", c.MaxSkippedFraction)
	}
	for _, e := range c.Augment.validate() {
		bad("augment."+e.key, "%s", e.msg)
	}
	return errs
}

type keyError struct{ key, msg string }

func (a AugmentConfig) validate() []keyError {
	var errs []keyError
	bad := func(k, format string, args ...any) {
		errs = append(errs, keyError{k, fmt.Sprintf(format, args...)})
	}
	checkRange := func(k string, r []float64, lo, hi float64, inclusiveLo bool) {
		if len(r) != 2 {
			bad(k, "must be [min, max], got %d values", len(r))
			return
		}
		if r[0] > r[1] {
			bad(k, "min %v is above max %v", r[0], r[1])
		}
		for _, v := range r {
			if math.IsNaN(v) || v > hi || v < lo || (!inclusiveLo && v == lo) {
				open := "("
				if inclusiveLo {
					open = "["
				}
				bad(k, "values must be in %s%v, %v], got %v", open, lo, hi, r)
				return
			}
		}
	}
	checkRange("crop_scale", a.CropScale, 0, 1, false)
	checkRange("crop_ratio", a.CropRatio, 0, math.Inf(1), false)
	checkRange("blur_sigma", a.BlurSigma, 0, math.Inf(1), false)
	for _, p := range []struct {
		k string
		v float64
	}{{"jitter_p", a.JitterP}, {"blur_p", a.BlurP}, {"flip_p", a.FlipP}, {"inpaint_p", a.InpaintP}, {"outpaint_p", a.OutpaintP}, {"swap_p", a.SwapP}} {
		if !(p.v >= 0 && p.v <= 1) {
			bad(p.k, "must be a probability in [0, 1], got %v", p.v)
		}
	}
	for _, s := range []struct {
		k string
		v float64
	}{{"brightness", a.Brightness}, {"contrast", a.Contrast}, {"saturation", a.Saturation}} {
		if !(s.v >= 0) {
			bad(s.k, "must be >= 0, got %v", s.v)
		}
	}
	if !(a.Hue >= 0 && a.Hue <= 0.5) {
		bad("hue", "must be in [0, 0.5], got %v", a.Hue)
	}
	if sum := a.InpaintP + a.OutpaintP + a.SwapP; sum > 1+1e-9 {
		bad("swap_p", "inpaint_p + outpaint_p + swap_p must be <= 1, got %v", sum)
	}
	return errs
}

func yamlKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// joinErrors joins Validate's list into one error, one problem per line.
func joinErrors(errs []error) error { return errors.Join(errs...) }
