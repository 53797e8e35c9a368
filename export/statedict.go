package export

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sugarme/gotch"

	"dira/model"
	"dira/transfer"
)

// DType is the element type of a state_dict entry. PyTorch state_dicts of
// our networks hold float32 weights and statistics and int64 counters
// (num_batches_tracked).
type DType int

const (
	Float32 DType = iota
	Int64
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int64:
		return "int64"
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// Tensor is one state_dict entry: a name, a shape (empty for a 0-d tensor,
// as num_batches_tracked is in PyTorch) and the values in C order, in F32 or
// I64 according to DType.
type Tensor struct {
	Name  string
	Shape []int64
	DType DType
	F32   []float32
	I64   []int64
}

// Numel is the number of elements the shape holds (1 for a 0-d tensor).
func (t Tensor) Numel() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// check reports an entry whose values do not fill its shape.
func (t Tensor) check() error {
	n := t.Numel()
	var have int
	switch t.DType {
	case Float32:
		have = len(t.F32)
	case Int64:
		have = len(t.I64)
	default:
		return fmt.Errorf("export: %s: unknown dtype %v", t.Name, t.DType)
	}
	if int64(have) != n {
		return fmt.Errorf("export: %s: shape %v needs %d values, has %d", t.Name, t.Shape, n, have)
	}
	return nil
}

// StateDict is an ordered state_dict: PyTorch's module order is kept, so a
// written file lists keys as torch.save of the same module would.
type StateDict []Tensor

// Names lists the keys in order.
func (sd StateDict) Names() []string {
	out := make([]string, len(sd))
	for i, t := range sd {
		out[i] = t.Name
	}
	return out
}

// Get returns the entry named name.
func (sd StateDict) Get(name string) (Tensor, bool) {
	for _, t := range sd {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// FromParams copies the entries of ps whose names start with prefix, with the
// prefix removed; entries outside prefix are left out. The training model
// names its U-Net "encoder_q.backbone." (model.MoCo), so
// FromParams(moco.Params, "encoder_q.backbone.") gives smp's bare keys, what
// the official code saves as unet.pth; a standalone model.NewUNet needs "".
// Float tensors are copied as float32, integer ones (num_batches_tracked) as
// int64.
func FromParams(ps *model.Params, prefix string) (StateDict, error) {
	var sd StateDict
	for _, p := range ps.List() {
		name, ok := strings.CutPrefix(p.Name, prefix)
		if !ok {
			continue
		}
		t := Tensor{Name: name, Shape: p.T.MustSize()}
		switch p.T.DType() {
		case gotch.Float:
			t.F32 = model.Values(p.T)
		case gotch.Int64:
			t.DType = Int64
			t.I64 = p.T.Int64Values()
		default:
			return nil, fmt.Errorf("export: %s: dtype %v (want float32 or int64)", p.Name, p.T.DType())
		}
		sd = append(sd, t)
	}
	if len(sd) == 0 {
		return nil, fmt.Errorf("export: no parameter starts with %q (the U-Net of the training model is under \"encoder_q.backbone.\")", prefix)
	}
	return sd, nil
}

// Encoder applies the DiRA README's classification snippet (spec 2.4,
// transfer.Classification): remove the substrings "module.", "backbone." and
// "encoder." (in that order, every occurrence, as str.replace does), then
// drop keys starting with "fc" (the projection head), "segmentation_head" or
// "decoder". On smp's bare U-Net keys the result is torchvision's ResNet
// names (conv1.weight, layer1.0.downsample.1.running_mean, ...): what
// encoder.pth holds, and what torchvision's resnet loads missing only
// fc.weight and fc.bias.
//
// It fails when two keys collapse onto one name, and when the result lacks
// conv1.weight, which is what the snippet does silently on a full training
// checkpoint ("encoder_q.conv1.weight" matches nothing in a resnet).
func (sd StateDict) Encoder() (StateDict, error) {
	return sd.rename(transfer.Classification)
}

// UNet applies the README's segmentation snippet minus its last step
// (transfer.UNet): remove "module." and "backbone.", drop keys starting with
// "fc" (the projection head), keep segmentation_head. The result is smp's
// names (encoder.*, decoder.*, segmentation_head.*), what unet.pth holds; the
// snippet itself then drops segmentation_head before loading, so smp's Unet
// misses only the head.
func (sd StateDict) UNet() (StateDict, error) {
	return sd.rename(transfer.UNet)
}

// rename applies r's key rules; values are shared, not copied.
func (sd StateDict) rename(r transfer.Rules) (StateDict, error) {
	kept, err := r.Apply(sd.Names())
	if err != nil {
		if errors.Is(err, transfer.ErrLoadsNothing) {
			return nil, fmt.Errorf("export: %w; strip the training model's prefix with FromParams first", err)
		}
		return nil, fmt.Errorf("export: %w", err)
	}
	// Apply keeps the input order, so kept is a subsequence of sd.
	out := make(StateDict, 0, len(kept))
	i := 0
	for _, t := range sd {
		if i < len(kept) && t.Name == kept[i].From {
			t.Name = kept[i].To
			out = append(out, t)
			i++
		}
	}
	return out, nil
}
