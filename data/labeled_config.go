package data

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
)

// Split names, as LabeledConfig.LabelSplits spells them.
const (
	SplitTrain = "train"
	SplitVal   = "val"
	SplitTest  = "test"
)

// LabeledConfig is the data section of a fine-tuning run: classification
// (multi-label or multi-class) or segmentation, as the DiRA benchmark code
// (BenchmarkTransferLearning Version1) reads and transforms its data. Every
// field's comment is its one-line documentation, also returned by FieldDocs.
type LabeledConfig struct {
	// What is predicted: multilabel (independent 0/1 labels, ChestX-ray14, Shenzhen), multiclass (one class index) or segmentation (a binary mask).
	Task string `yaml:"task" mapstructure:"task"`
	// Where images come from: synthetic (built-in radiographs with findings and lung masks), list (list files under root) or folder (class sub-folders, or image and mask folders).
	Source string `yaml:"source" mapstructure:"source"`
	// Folder that list entries and relative split folders are joined onto (list and folder sources).
	Root string `yaml:"root" mapstructure:"root"`
	// Training split.
	Train SplitConfig `yaml:"train" mapstructure:"train"`
	// Validation split; empty: none.
	Val SplitConfig `yaml:"val" mapstructure:"val"`
	// Test split; empty: none.
	Test SplitConfig `yaml:"test" mapstructure:"test"`
	// Column separator of list files: spaces (ChestX-ray14) or comma (Shenzhen).
	ListFormat string `yaml:"list_format" mapstructure:"list_format"`
	// Label columns per list line (multilabel: 14 for ChestX-ray14, 1 for Shenzhen) or number of classes (multiclass list); 0 with a class-folder layout.
	Classes int `yaml:"classes" mapstructure:"classes"`
	// Names of the labels or classes, for reports; empty: numbered (class folders name themselves).
	ClassNames []string `yaml:"class_names" mapstructure:"class_names"`
	// File name endings, case-insensitive, of images and masks found in folders.
	Extensions []string `yaml:"extensions" mapstructure:"extensions"`
	// Percentage (0 to 100] of each labelled split kept, chosen as the official anno_percent: random.Random(label_seed).shuffle of the indices, first int(n*percent/100).
	LabelPercent float64 `yaml:"label_percent" mapstructure:"label_percent"`
	// Seed of the label-fraction shuffle (the official code uses 99); independent of the run seed and trial.
	LabelSeed uint64 `yaml:"label_seed" mapstructure:"label_seed"`
	// Splits the label fraction applies to; the official Shenzhen and CheXpert datasets apply it to train, val and test.
	LabelSplits []string `yaml:"label_splits" mapstructure:"label_splits"`
	// Built-in synthetic labelled source (source: synthetic).
	Synthetic LabeledSyntheticConfig `yaml:"synthetic" mapstructure:"synthetic"`
	// Side in pixels of the network input: classification crop_size (224), segmentation resize (224).
	ImageSize int `yaml:"image_size" mapstructure:"image_size"`
	// Classification eval resize before the center or ten crops, in pixels (official 256).
	ResizeSize int `yaml:"resize_size" mapstructure:"resize_size"`
	// Classification eval resize: false squashes to resize_size x resize_size as the official Resize((256, 256)); true resizes the shorter side.
	ResizeShorter bool `yaml:"resize_shorter" mapstructure:"resize_shorter"`
	// Classification test split: true averages ten crops (official test_augment), false uses one center crop.
	TenCrop bool `yaml:"ten_crop" mapstructure:"ten_crop"`
	// Input normalisation: imagenet, chestx-ray (classification only) or none.
	Normalization string `yaml:"normalization" mapstructure:"normalization"`
	// Goroutines decoding and transforming ahead of training (count); results do not depend on it.
	Workers int `yaml:"workers" mapstructure:"workers"`
	// Finished batches queued ahead of the training step (count); bounds the loader's memory.
	Prefetch int `yaml:"prefetch" mapstructure:"prefetch"`
	// What to do with an image (or mask) that cannot be read or does not match: skip (count it) or fail (stop with an error naming the file).
	BadImages string `yaml:"bad_images" mapstructure:"bad_images"`
	// Classification training augmentation.
	Classify ClassifyAugment `yaml:"classify" mapstructure:"classify"`
	// Segmentation augmentation.
	Segment SegmentAugment `yaml:"segment" mapstructure:"segment"`
}

// SplitConfig names the files of one split.
type SplitConfig struct {
	// List file: "<file> <labels...>" (multilabel), "<file> <class>" (multiclass) or "<image> <mask> [<mask>...]" (segmentation) per line (list source).
	List string `yaml:"list" mapstructure:"list"`
	// Folder of class sub-folders (multiclass) or of images (segmentation), relative to root unless absolute (folder source).
	Images string `yaml:"images" mapstructure:"images"`
	// Mask folders of a segmentation folder source, merged by union (e.g. Montgomery's leftMask and rightMask); masks match images by file name.
	Masks []string `yaml:"masks" mapstructure:"masks"`
}

func (s SplitConfig) empty() bool { return s.List == "" && s.Images == "" && len(s.Masks) == 0 }

// LabeledSyntheticConfig configures the built-in labelled synthetic source.
type LabeledSyntheticConfig struct {
	// Number of synthetic training images (count).
	TrainCount int `yaml:"train_count" mapstructure:"train_count"`
	// Number of synthetic validation images (count).
	ValCount int `yaml:"val_count" mapstructure:"val_count"`
	// Number of synthetic test images (count).
	TestCount int `yaml:"test_count" mapstructure:"test_count"`
	// Side length of each synthetic image in pixels.
	Size int `yaml:"size" mapstructure:"size"`
	// Seed of the synthetic images and their findings; image i of a split is the same for a given seed.
	Seed uint64 `yaml:"seed" mapstructure:"seed"`
	// Findings drawn, in label order, from nodule, opacity, effusion, cardiomegaly (multilabel labels, or multiclass classes after class 0 "none").
	Findings []string `yaml:"findings" mapstructure:"findings"`
	// Probability that an image shows each finding (multilabel), or shows any (multiclass: one finding, uniformly chosen).
	Prevalence float64 `yaml:"prevalence" mapstructure:"prevalence"`
}

// ClassifyAugment is the official training augmentation of classification:
// RandomResizedCrop(crop) + RandomHorizontalFlip() + RandomRotation(7).
type ClassifyAugment struct {
	// RandomResizedCrop area range as a fraction of the image area ([min, max]; torchvision default [0.08, 1]).
	CropScale []float64 `yaml:"crop_scale" mapstructure:"crop_scale"`
	// RandomResizedCrop aspect-ratio range, width/height ([min, max]; drawn log-uniformly).
	CropRatio []float64 `yaml:"crop_ratio" mapstructure:"crop_ratio"`
	// Probability of flipping left to right.
	FlipP float64 `yaml:"flip_p" mapstructure:"flip_p"`
	// RandomRotation range in degrees: angle drawn from [-d, d]; 0 disables it.
	RotateDegrees float64 `yaml:"rotate_degrees" mapstructure:"rotate_degrees"`
	// RandomRotation resampling: nearest (torchvision's default, the official code) or bilinear.
	RotateInterpolation string `yaml:"rotate_interpolation" mapstructure:"rotate_interpolation"`
}

// SegmentAugment is the official segmentation augmentation
// (build_transform_segmentation, albumentations 0.4.3) plus two optional
// geometric steps that are off by default.
type SegmentAugment struct {
	// Augment the validation split too, as the official Montgomery and SIIM datasets do; the test split is never augmented.
	AugmentVal bool `yaml:"augment_val" mapstructure:"augment_val"`
	// Probability of OneOf(RandomBrightnessContrast, RandomGamma), each chosen half the time.
	IntensityP float64 `yaml:"intensity_p" mapstructure:"intensity_p"`
	// RandomBrightnessContrast brightness limit: beta in [-l, l] times 255 added.
	BrightnessLimit float64 `yaml:"brightness_limit" mapstructure:"brightness_limit"`
	// RandomBrightnessContrast contrast limit: values multiplied by 1 + [-l, l].
	ContrastLimit float64 `yaml:"contrast_limit" mapstructure:"contrast_limit"`
	// RandomGamma range in percent ([min, max], integers; gamma = draw / 100).
	GammaLimit []float64 `yaml:"gamma_limit" mapstructure:"gamma_limit"`
	// Probability of OneOf(ElasticTransform, GridDistortion, OpticalDistortion), each chosen a third of the time.
	DistortP float64 `yaml:"distort_p" mapstructure:"distort_p"`
	// ElasticTransform alpha: displacement scale in pixels.
	ElasticAlpha float64 `yaml:"elastic_alpha" mapstructure:"elastic_alpha"`
	// ElasticTransform sigma: smoothing of the displacement field in pixels.
	ElasticSigma float64 `yaml:"elastic_sigma" mapstructure:"elastic_sigma"`
	// ElasticTransform alpha_affine: random shift of the affine's three points in pixels.
	ElasticAffine float64 `yaml:"elastic_affine" mapstructure:"elastic_affine"`
	// GridDistortion cells per side.
	GridSteps int `yaml:"grid_steps" mapstructure:"grid_steps"`
	// GridDistortion distort_limit: cell lengths scaled by 1 + [-l, l].
	GridLimit float64 `yaml:"grid_limit" mapstructure:"grid_limit"`
	// OpticalDistortion distort_limit: radial coefficient k drawn from [-l, l].
	OpticalLimit float64 `yaml:"optical_limit" mapstructure:"optical_limit"`
	// OpticalDistortion shift_limit: principal point shift in pixels, drawn from [-l, l] and rounded.
	OpticalShift float64 `yaml:"optical_shift" mapstructure:"optical_shift"`
	// Probability of RandomSizedCrop: a square crop resized back to image_size.
	CropP float64 `yaml:"crop_p" mapstructure:"crop_p"`
	// Smallest RandomSizedCrop side as a fraction of image_size (official 156/224).
	CropMinFraction float64 `yaml:"crop_min_fraction" mapstructure:"crop_min_fraction"`
	// Probability of a left-right flip (commented out in the official code: 0).
	FlipP float64 `yaml:"flip_p" mapstructure:"flip_p"`
	// Probability of ShiftScaleRotate (not in the official pipeline: 0).
	ShiftScaleRotateP float64 `yaml:"shift_scale_rotate_p" mapstructure:"shift_scale_rotate_p"`
	// ShiftScaleRotate shift limit as a fraction of the side.
	ShiftLimit float64 `yaml:"shift_limit" mapstructure:"shift_limit"`
	// ShiftScaleRotate scale limit: scale drawn from 1 + [-l, l].
	ScaleLimit float64 `yaml:"scale_limit" mapstructure:"scale_limit"`
	// ShiftScaleRotate rotation limit in degrees.
	RotateLimit float64 `yaml:"rotate_limit" mapstructure:"rotate_limit"`
}

// DefaultLabeledConfig returns the official settings of multi-label
// classification (ChestX-ray14's) on the built-in synthetic source.
func DefaultLabeledConfig() LabeledConfig {
	return LabeledConfig{
		Task:         TaskMultiLabel,
		Source:       SourceSynthetic,
		ListFormat:   ListSpaces,
		Extensions:   []string{".png", ".jpg", ".jpeg"},
		LabelPercent: 100,
		LabelSeed:    OfficialLabelSeed,
		LabelSplits:  []string{SplitTrain, SplitVal, SplitTest},
		Synthetic: LabeledSyntheticConfig{
			TrainCount: 512,
			ValCount:   64,
			TestCount:  128,
			Size:       256,
			Seed:       1,
			Findings:   slices.Clone(SyntheticFindings),
			Prevalence: 0.35,
		},
		ImageSize:     224,
		ResizeSize:    256,
		TenCrop:       true,
		Normalization: NormImageNet.Name,
		Workers:       4,
		Prefetch:      2,
		BadImages:     BadImagesSkip,
		Classify:      DefaultClassifyAugment(),
		Segment:       DefaultSegmentAugment(),
	}
}

// DefaultClassifyAugment returns build_transform_classification's training
// augmentation: torchvision's RandomResizedCrop defaults, flip p 0.5,
// RandomRotation(7) with nearest resampling.
func DefaultClassifyAugment() ClassifyAugment {
	return ClassifyAugment{
		CropScale:           []float64{0.08, 1.0},
		CropRatio:           []float64{3.0 / 4.0, 4.0 / 3.0},
		FlipP:               0.5,
		RotateDegrees:       7,
		RotateInterpolation: "nearest",
	}
}

// DefaultSegmentAugment returns build_transform_segmentation's augmentation
// with albumentations 0.4.3's defaults for the arguments it leaves out.
func DefaultSegmentAugment() SegmentAugment {
	return SegmentAugment{
		AugmentVal:        true,
		IntensityP:        0.3,
		BrightnessLimit:   0.2,
		ContrastLimit:     0.2,
		GammaLimit:        []float64{80, 120},
		DistortP:          0.3,
		ElasticAlpha:      120,
		ElasticSigma:      120 * 0.05,
		ElasticAffine:     120 * 0.03,
		GridSteps:         5,
		GridLimit:         0.3,
		OpticalLimit:      2,
		OpticalShift:      0.5,
		CropP:             0.25,
		CropMinFraction:   156.0 / 224.0,
		FlipP:             0,
		ShiftScaleRotateP: 0,
		ShiftLimit:        0.0625,
		ScaleLimit:        0.1,
		RotateLimit:       45,
	}
}

// FieldDocs maps every YAML key of LabeledConfig, as a dotted path relative
// to its section ("synthetic.train_count"), to its one-line description.
func (LabeledConfig) FieldDocs() map[string]string {
	return map[string]string{
		"task":                          "What is predicted: multilabel (independent 0/1 labels, ChestX-ray14, Shenzhen), multiclass (one class index) or segmentation (a binary mask).",
		"source":                        "Where images come from: synthetic (built-in radiographs with findings and lung masks), list (list files under root) or folder (class sub-folders, or image and mask folders).",
		"root":                          "Folder that list entries and relative split folders are joined onto (list and folder sources).",
		"train":                         "Training split.",
		"train.list":                    splitDocs["list"],
		"train.images":                  splitDocs["images"],
		"train.masks":                   splitDocs["masks"],
		"val":                           "Validation split; empty: none.",
		"val.list":                      splitDocs["list"],
		"val.images":                    splitDocs["images"],
		"val.masks":                     splitDocs["masks"],
		"test":                          "Test split; empty: none.",
		"test.list":                     splitDocs["list"],
		"test.images":                   splitDocs["images"],
		"test.masks":                    splitDocs["masks"],
		"list_format":                   "Column separator of list files: spaces (ChestX-ray14) or comma (Shenzhen).",
		"classes":                       "Label columns per list line (multilabel: 14 for ChestX-ray14, 1 for Shenzhen) or number of classes (multiclass list); 0 with a class-folder layout.",
		"class_names":                   "Names of the labels or classes, for reports; empty: numbered (class folders name themselves).",
		"extensions":                    "File name endings, case-insensitive, of images and masks found in folders.",
		"label_percent":                 "Percentage (0 to 100] of each labelled split kept, chosen as the official anno_percent: random.Random(label_seed).shuffle of the indices, first int(n*percent/100).",
		"label_seed":                    "Seed of the label-fraction shuffle (the official code uses 99); independent of the run seed and trial.",
		"label_splits":                  "Splits the label fraction applies to; the official Shenzhen and CheXpert datasets apply it to train, val and test.",
		"synthetic":                     "Built-in synthetic labelled source (source: synthetic).",
		"synthetic.train_count":         "Number of synthetic training images (count).",
		"synthetic.val_count":           "Number of synthetic validation images (count).",
		"synthetic.test_count":          "Number of synthetic test images (count).",
		"synthetic.size":                "Side length of each synthetic image in pixels.",
		"synthetic.seed":                "Seed of the synthetic images and their findings; image i of a split is the same for a given seed.",
		"synthetic.findings":            "Findings drawn, in label order, from nodule, opacity, effusion, cardiomegaly (multilabel labels, or multiclass classes after class 0 \"none\").",
		"synthetic.prevalence":          "Probability that an image shows each finding (multilabel), or shows any (multiclass: one finding, uniformly chosen).",
		"image_size":                    "Side in pixels of the network input: classification crop_size (224), segmentation resize (224).",
		"resize_size":                   "Classification eval resize before the center or ten crops, in pixels (official 256).",
		"resize_shorter":                "Classification eval resize: false squashes to resize_size x resize_size as the official Resize((256, 256)); true resizes the shorter side.",
		"ten_crop":                      "Classification test split: true averages ten crops (official test_augment), false uses one center crop.",
		"normalization":                 "Input normalisation: imagenet, chestx-ray (classification only) or none.",
		"workers":                       "Goroutines decoding and transforming ahead of training (count); results do not depend on it.",
		"prefetch":                      "Finished batches queued ahead of the training step (count); bounds the loader's memory.",
		"bad_images":                    "What to do with an image (or mask) that cannot be read or does not match: skip (count it) or fail (stop with an error naming the file).",
		"classify":                      "Classification training augmentation.",
		"classify.crop_scale":           "RandomResizedCrop area range as a fraction of the image area ([min, max]; torchvision default [0.08, 1]).",
		"classify.crop_ratio":           "RandomResizedCrop aspect-ratio range, width/height ([min, max]; drawn log-uniformly).",
		"classify.flip_p":               "Probability of flipping left to right.",
		"classify.rotate_degrees":       "RandomRotation range in degrees: angle drawn from [-d, d]; 0 disables it.",
		"classify.rotate_interpolation": "RandomRotation resampling: nearest (torchvision's default, the official code) or bilinear.",
		"segment":                       "Segmentation augmentation.",
		"segment.augment_val":           "Augment the validation split too, as the official Montgomery and SIIM datasets do; the test split is never augmented.",
		"segment.intensity_p":           "Probability of OneOf(RandomBrightnessContrast, RandomGamma), each chosen half the time.",
		"segment.brightness_limit":      "RandomBrightnessContrast brightness limit: beta in [-l, l] times 255 added.",
		"segment.contrast_limit":        "RandomBrightnessContrast contrast limit: values multiplied by 1 + [-l, l].",
		"segment.gamma_limit":           "RandomGamma range in percent ([min, max], integers; gamma = draw / 100).",
		"segment.distort_p":             "Probability of OneOf(ElasticTransform, GridDistortion, OpticalDistortion), each chosen a third of the time.",
		"segment.elastic_alpha":         "ElasticTransform alpha: displacement scale in pixels.",
		"segment.elastic_sigma":         "ElasticTransform sigma: smoothing of the displacement field in pixels.",
		"segment.elastic_affine":        "ElasticTransform alpha_affine: random shift of the affine's three points in pixels.",
		"segment.grid_steps":            "GridDistortion cells per side.",
		"segment.grid_limit":            "GridDistortion distort_limit: cell lengths scaled by 1 + [-l, l].",
		"segment.optical_limit":         "OpticalDistortion distort_limit: radial coefficient k drawn from [-l, l].",
		"segment.optical_shift":         "OpticalDistortion shift_limit: principal point shift in pixels, drawn from [-l, l] and rounded.",
		"segment.crop_p":                "Probability of RandomSizedCrop: a square crop resized back to image_size.",
		"segment.crop_min_fraction":     "Smallest RandomSizedCrop side as a fraction of image_size (official 156/224).",
		"segment.flip_p":                "Probability of a left-right flip (commented out in the official code: 0).",
		"segment.shift_scale_rotate_p":  "Probability of ShiftScaleRotate (not in the official pipeline: 0).",
		"segment.shift_limit":           "ShiftScaleRotate shift limit as a fraction of the side.",
		"segment.scale_limit":           "ShiftScaleRotate scale limit: scale drawn from 1 + [-l, l].",
		"segment.rotate_limit":          "ShiftScaleRotate rotation limit in degrees.",
	}
}

var splitDocs = map[string]string{
	"list":   `List file: "<file> <labels...>" (multilabel), "<file> <class>" (multiclass) or "<image> <mask> [<mask>...]" (segmentation) per line (list source).`,
	"images": "Folder of class sub-folders (multiclass) or of images (segmentation), relative to root unless absolute (folder source).",
	"masks":  "Mask folders of a segmentation folder source, merged by union (e.g. Montgomery's leftMask and rightMask); masks match images by file name.",
}

// Validate returns every problem in c, each naming its YAML key under path
// (e.g. "finetune.data"), or nil when c is usable. It checks that the files
// and folders a source needs exist.
func (c LabeledConfig) Validate(path string) []error {
	var errs []error
	bad := func(k, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{yamlKey(path, k)}, args...)...))
	}
	taskOK := c.Task == TaskMultiLabel || c.Task == TaskMultiClass || c.Task == TaskSegmentation
	if !taskOK {
		bad("task", "must be one of multilabel, multiclass, segmentation, got %q", c.Task)
	}
	join := func(p string) string {
		if c.Root == "" || strings.HasPrefix(p, "/") {
			return p
		}
		return c.Root + "/" + p
	}
	checkSplit := func(name string, s SplitConfig, required bool) {
		if s.empty() {
			if required {
				bad(name, "must be set for source %s", c.Source)
			}
			return
		}
		switch c.Source {
		case SourceList:
			if s.List == "" {
				bad(name+".list", "must be set for source list")
			} else if !isFile(s.List) {
				bad(name+".list", "file %q does not exist", s.List)
			}
			if s.Images != "" || len(s.Masks) > 0 {
				bad(name, "images and masks are for source folder; source list reads list")
			}
		case SourceFolder:
			if s.List != "" {
				bad(name+".list", "is for source list; source folder reads images (and masks)")
			}
			if s.Images == "" {
				bad(name+".images", "must be set for source folder")
			} else if !isDir(join(s.Images)) {
				bad(name+".images", "folder %q does not exist", join(s.Images))
			}
			if c.Task == TaskSegmentation && len(s.Masks) == 0 {
				bad(name+".masks", "must name at least one mask folder for task segmentation")
			}
			if c.Task != TaskSegmentation && len(s.Masks) > 0 {
				bad(name+".masks", "is for task segmentation")
			}
			for i, m := range s.Masks {
				if !isDir(join(m)) {
					bad(fmt.Sprintf("%s.masks[%d]", name, i), "folder %q does not exist", join(m))
				}
			}
		}
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
		if s.TestCount < 0 {
			bad("synthetic.test_count", "must be >= 0, got %d", s.TestCount)
		}
		if s.Size < 32 {
			bad("synthetic.size", "must be >= 32 pixels, got %d", s.Size)
		}
		if c.Task != TaskSegmentation {
			if len(s.Findings) == 0 {
				bad("synthetic.findings", "must list at least one of %s", strings.Join(SyntheticFindings, ", "))
			}
			seen := map[string]bool{}
			for i, f := range s.Findings {
				if !slices.Contains(SyntheticFindings, f) || seen[f] {
					bad(fmt.Sprintf("synthetic.findings[%d]", i), "must be a distinct one of %s, got %q", strings.Join(SyntheticFindings, ", "), f)
				}
				seen[f] = true
			}
			if !(s.Prevalence > 0 && s.Prevalence < 1) {
				bad("synthetic.prevalence", "must be in (0, 1), got %v", s.Prevalence)
			}
		}
	case SourceList, SourceFolder:
		if c.Root != "" && !isDir(c.Root) {
			bad("root", "folder %q does not exist (set %s or use %s: synthetic)", c.Root, yamlKey(path, "root"), yamlKey(path, "source"))
		}
		if c.Source == SourceFolder && c.Task == TaskMultiLabel {
			bad("source", "folder has no multi-label layout; use a list (or task multiclass with class folders)")
		}
		checkSplit("train", c.Train, true)
		checkSplit("val", c.Val, false)
		checkSplit("test", c.Test, false)
		if c.Source == SourceList && c.ListFormat != ListSpaces && c.ListFormat != ListComma {
			bad("list_format", "must be spaces or comma, got %q", c.ListFormat)
		}
		if c.Source == SourceList && c.Task == TaskMultiLabel && c.Classes < 1 {
			bad("classes", "must be >= 1 label column for a multilabel list, got %d", c.Classes)
		}
		if c.Source == SourceList && c.Task == TaskMultiClass && c.Classes < 2 {
			bad("classes", "must be >= 2 for a multiclass list, got %d", c.Classes)
		}
		if len(c.Extensions) == 0 {
			bad("extensions", "must list at least one extension, e.g. [.png]")
		}
		for i, e := range c.Extensions {
			if !strings.HasPrefix(e, ".") || len(e) < 2 {
				bad(fmt.Sprintf("extensions[%d]", i), "must start with a dot, got %q", e)
			}
		}
	default:
		bad("source", "must be one of synthetic, list, folder, got %q", c.Source)
	}
	if c.Classes < 0 {
		bad("classes", "must be >= 0, got %d", c.Classes)
	}
	if c.Source == SourceList && c.Task != TaskSegmentation && len(c.ClassNames) > 0 && len(c.ClassNames) != c.Classes {
		bad("class_names", "has %d names for %d classes", len(c.ClassNames), c.Classes)
	}
	if !(c.LabelPercent > 0 && c.LabelPercent <= 100) {
		bad("label_percent", "must be in (0, 100], got %v", c.LabelPercent)
	}
	for i, s := range c.LabelSplits {
		if s != SplitTrain && s != SplitVal && s != SplitTest {
			bad(fmt.Sprintf("label_splits[%d]", i), "must be train, val or test, got %q", s)
		}
	}
	if c.ImageSize < 32 || c.ImageSize%32 != 0 {
		bad("image_size", "must be a positive multiple of 32, got %d", c.ImageSize)
	}
	if c.Task != TaskSegmentation && c.ResizeSize < c.ImageSize {
		bad("resize_size", "must be >= image_size %d, got %d", c.ImageSize, c.ResizeSize)
	}
	switch c.Normalization {
	case NormImageNet.Name, NormNone.Name:
	case NormChestXray.Name:
		if c.Task == TaskSegmentation {
			bad("normalization", "must be imagenet or none for segmentation, got %q", c.Normalization)
		}
	default:
		bad("normalization", "must be imagenet, chestx-ray or none, got %q", c.Normalization)
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
	for _, e := range c.Classify.validate() {
		bad("classify."+e.key, "%s", e.msg)
	}
	for _, e := range c.Segment.validate(c.ImageSize) {
		bad("segment."+e.key, "%s", e.msg)
	}
	return errs
}

func (a ClassifyAugment) validate() []keyError {
	var errs []keyError
	bad := func(k, format string, args ...any) { errs = append(errs, keyError{k, fmt.Sprintf(format, args...)}) }
	// The range rules are those of the pre-training augmentation.
	aug := AugmentConfig{CropScale: a.CropScale, CropRatio: a.CropRatio, BlurSigma: []float64{1, 1}}
	for _, e := range aug.validate() {
		if e.key == "crop_scale" || e.key == "crop_ratio" {
			errs = append(errs, e)
		}
	}
	if !(a.FlipP >= 0 && a.FlipP <= 1) {
		bad("flip_p", "must be a probability in [0, 1], got %v", a.FlipP)
	}
	if !(a.RotateDegrees >= 0 && a.RotateDegrees <= 180) {
		bad("rotate_degrees", "must be in [0, 180], got %v", a.RotateDegrees)
	}
	if _, err := ParseInterpolation(a.RotateInterpolation); err != nil {
		bad("rotate_interpolation", "must be nearest or bilinear, got %q", a.RotateInterpolation)
	}
	return errs
}

func (a SegmentAugment) validate(size int) []keyError {
	var errs []keyError
	bad := func(k, format string, args ...any) { errs = append(errs, keyError{k, fmt.Sprintf(format, args...)}) }
	for _, p := range []struct {
		k string
		v float64
	}{{"intensity_p", a.IntensityP}, {"distort_p", a.DistortP}, {"crop_p", a.CropP}, {"flip_p", a.FlipP}, {"shift_scale_rotate_p", a.ShiftScaleRotateP}} {
		if !(p.v >= 0 && p.v <= 1) {
			bad(p.k, "must be a probability in [0, 1], got %v", p.v)
		}
	}
	for _, p := range []struct {
		k string
		v float64
	}{{"brightness_limit", a.BrightnessLimit}, {"contrast_limit", a.ContrastLimit}, {"elastic_alpha", a.ElasticAlpha},
		{"elastic_affine", a.ElasticAffine}, {"grid_limit", a.GridLimit}, {"optical_limit", a.OpticalLimit},
		{"optical_shift", a.OpticalShift}, {"shift_limit", a.ShiftLimit}, {"scale_limit", a.ScaleLimit}, {"rotate_limit", a.RotateLimit}} {
		if !(p.v >= 0) || math.IsInf(p.v, 0) {
			bad(p.k, "must be a finite value >= 0, got %v", p.v)
		}
	}
	if a.ContrastLimit >= 1 {
		bad("contrast_limit", "must be < 1, got %v", a.ContrastLimit)
	}
	if a.ScaleLimit >= 1 {
		bad("scale_limit", "must be < 1, got %v", a.ScaleLimit)
	}
	if !(a.ElasticSigma > 0) {
		bad("elastic_sigma", "must be > 0, got %v", a.ElasticSigma)
	}
	if len(a.GammaLimit) != 2 || a.GammaLimit[0] != math.Trunc(a.GammaLimit[0]) || a.GammaLimit[1] != math.Trunc(a.GammaLimit[1]) ||
		a.GammaLimit[0] < 1 || a.GammaLimit[0] > a.GammaLimit[1] {
		bad("gamma_limit", "must be [min, max] integers with 1 <= min <= max, got %v", a.GammaLimit)
	}
	// grid_distortion needs no more cells than its steps+1 factors.
	if a.GridSteps < 1 || (size > 0 && (size/a.GridSteps < 1 || (size+size/a.GridSteps-1)/(size/a.GridSteps) > a.GridSteps+1)) {
		bad("grid_steps", "must be >= 1 and leave cells of at least one pixel with image_size %d (at most sqrt(image_size)), got %d", size, a.GridSteps)
	}
	if !(a.CropMinFraction > 0 && a.CropMinFraction <= 1) {
		bad("crop_min_fraction", "must be in (0, 1], got %v", a.CropMinFraction)
	}
	return errs
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
