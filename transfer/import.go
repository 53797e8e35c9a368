package transfer

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"dira/model"
	"dira/statedict"
)

// ErrDoesNotFit reports a file whose tensors do not fit the configured
// networks; the error lists the keys.
var ErrDoesNotFit = statedict.ErrDoesNotFit

// Layout names the key layout of a PyTorch file (dira-spec 2.3, 5.4).
type Layout string

const (
	// LayoutDiRA is checkpoint.pth of modes dir and dira: queue, queue_ptr,
	// encoder_q.backbone.{encoder,decoder,segmentation_head}.*,
	// encoder_q.fc.*, and the same under encoder_k.
	LayoutDiRA Layout = "dira-checkpoint"
	// LayoutMoCo is checkpoint.pth of mode di: queue, queue_ptr, and two
	// torchvision ResNets encoder_q.* and encoder_k.* with MLP heads fc.0/fc.2.
	LayoutMoCo Layout = "moco-checkpoint"
	// LayoutUNet is a bare smp Unet state_dict (encoder.*, decoder.*,
	// segmentation_head.*): best_checkpoint.pth and unet.pth of modes dir
	// and dira, or any smp.Unet with a ResNet encoder.
	LayoutUNet Layout = "unet"
	// LayoutResNet is a torchvision ResNet state_dict (conv1.*, bn1.*,
	// layer1-4.*, fc.*): resnet50.pth and best_checkpoint.pth of mode di
	// (fc.0/fc.2 is the projection head), or a torchvision classifier.
	LayoutResNet Layout = "resnet"
	// LayoutDiscriminator is D_checkpoint.pth: model.{0,2,5,8,11}.*.
	LayoutDiscriminator Layout = "discriminator"
)

// bare strips the "module." prefix DistributedDataParallel adds.
func bare(name string) string { return strings.TrimPrefix(name, "module.") }

// DetectLayout recognises a state_dict's layout from its key names (with or
// without DDP's "module." prefix); the error lists the first keys.
func DetectLayout(names []string) (Layout, error) {
	has := map[string]bool{}
	for _, n := range names {
		has[bare(n)] = true
	}
	switch {
	case has["queue"] && has["encoder_q.backbone.encoder.conv1.weight"]:
		return LayoutDiRA, nil
	case has["queue"] && has["encoder_q.conv1.weight"]:
		return LayoutMoCo, nil
	case has["encoder.conv1.weight"]:
		return LayoutUNet, nil
	case has["conv1.weight"] && has["bn1.weight"]:
		return LayoutResNet, nil
	case has["model.0.weight"]:
		return LayoutDiscriminator, nil
	}
	return "", fmt.Errorf("transfer: keys %s: not an official DiRA, torchvision ResNet or smp Unet layout", describe(names))
}

// Report says what an import did.
type Report struct {
	File   string
	Layout Layout
	Epoch  int // epochs completed according to the file; -1 when it does not say
	// Loaded counts tensors copied from the file.
	Loaded int
	// Copied counts key-network tensors copied from the query network,
	// as the official MoCo init does (its buffers too: they would otherwise
	// keep fresh running statistics next to trained weights).
	Copied int
	// Dropped lists file keys that have no place in dira's networks, with why.
	Dropped []string
	// Fresh lists the parts initialised from the config seed, not the file.
	Fresh []string
}

// Lines renders the report as human-readable lines.
func (r Report) Lines() []string {
	epoch := "no epoch recorded"
	if r.Epoch >= 0 {
		epoch = fmt.Sprintf("epoch %d", r.Epoch)
	}
	out := []string{fmt.Sprintf("%s: layout %s, %s; %d tensors loaded", r.File, r.Layout, epoch, r.Loaded)}
	if r.Copied > 0 {
		out = append(out, fmt.Sprintf("key network: %d tensors copied from the query network", r.Copied))
	}
	for _, d := range r.Dropped {
		out = append(out, "dropped "+d)
	}
	if len(r.Fresh) > 0 {
		out = append(out, "initialised fresh from the config seed: "+strings.Join(r.Fresh, ", "))
	}
	return out
}

// ImportMoCo copies the file's tensors into m, the training model of the
// configured networks (model.NewMoCo), following the file's layout:
//
//   - LayoutDiRA into a model with restoration: every key, strictly, as the
//     official --generator_pre_trained_weights does; the official key
//     network's decoder and head are dropped (dira's has none).
//   - LayoutMoCo into a model without restoration (mode di): every key.
//   - LayoutUNet: the query U-Net (encoder, decoder, head); into a model
//     without restoration only the encoder, by the README's classification
//     rules.
//   - LayoutResNet: the query encoder; fc.* too when it fits the projection
//     head (mode di's fc.0/fc.2), else it is dropped (a classifier).
//
// Then every key-network entry the file did not give is copied from the
// query network. The queue, and whatever else the file lacks, keeps m's
// fresh values; the report lists them. Nothing is changed when the file
// does not fit: the error (ErrDoesNotFit) lists every offending key.
//
// The calling goroutine must be locked to its OS thread (gotch).
func ImportMoCo(f *File, m *model.MoCo) (Report, error) {
	layout, err := DetectLayout(f.Names())
	if err != nil {
		return Report{}, fmt.Errorf("transfer: import %s: %w", f.Path, err)
	}
	rep := Report{File: f.Path, Layout: layout, Epoch: f.Epoch}
	restoration := m.Q.UNet.Decoder != nil
	var maps []statedict.Assignment
	var required func(name string) bool
	drop := func(what string, n int, why string) {
		rep.Dropped = append(rep.Dropped, fmt.Sprintf("%s (%d keys): %s", what, n, why))
	}
	switch layout {
	case LayoutDiRA, LayoutMoCo:
		if restoration != (layout == LayoutDiRA) {
			want := map[bool]string{true: "with", false: "without"}[layout == LayoutDiRA]
			return rep, fmt.Errorf("transfer: import %s: a %s file needs networks %s the U-Net decoder (stage %s): %w",
				f.Path, layout, want, map[bool]string{true: "warmup or adversarial", false: "moco"}[layout == LayoutDiRA], ErrDoesNotFit)
		}
		nk := 0
		for _, t := range f.StateDict {
			name := bare(t.Name)
			if strings.HasPrefix(name, "encoder_k.backbone.decoder.") || strings.HasPrefix(name, "encoder_k.backbone.segmentation_head.") {
				nk++
				continue
			}
			maps = append(maps, statedict.Assignment{To: name, T: t})
		}
		if nk > 0 {
			drop("encoder_k.backbone.{decoder,segmentation_head}", nk, "dira's key network has no decoder (its output is never used, spec 2.2)")
		}
		required = func(string) bool { return true }
	case LayoutUNet:
		nd := 0
		for _, t := range f.StateDict {
			name := bare(t.Name)
			if restoration {
				maps = append(maps, statedict.Assignment{To: "encoder_q.backbone." + name, T: t})
				continue
			}
			to, keep := Classification.Key(name)
			if !keep {
				nd++
				continue
			}
			maps = append(maps, statedict.Assignment{To: "encoder_q." + to, T: t})
		}
		if nd > 0 {
			drop("decoder, segmentation_head", nd, "the moco stage's networks have no decoder")
		}
		prefix := "encoder_q.backbone."
		if !restoration {
			prefix = "encoder_q."
		}
		required = func(n string) bool { return strings.HasPrefix(n, prefix) && !strings.HasPrefix(n, "encoder_q.fc.") }
	case LayoutResNet:
		enc := "encoder_q.backbone.encoder."
		if !restoration {
			enc = "encoder_q."
		}
		var fc statedict.StateDict
		for _, t := range f.StateDict {
			name := bare(t.Name)
			if strings.HasPrefix(name, "fc.") {
				fc = append(fc, t)
				continue
			}
			maps = append(maps, statedict.Assignment{To: enc + name, T: t})
		}
		if len(fc) > 0 {
			if fits(fc, m.Params, "encoder_q.") {
				for _, t := range fc {
					maps = append(maps, statedict.Assignment{To: "encoder_q." + bare(t.Name), T: t})
				}
			} else {
				var shapes []string
				for _, t := range fc {
					shapes = append(shapes, fmt.Sprintf("%s %v", bare(t.Name), t.Shape))
				}
				drop("fc", len(fc), "does not fit the projection head ("+strings.Join(shapes, ", ")+"): a classifier, not DiRA's head")
			}
		}
		required = func(n string) bool { return strings.HasPrefix(n, enc) && !strings.HasPrefix(n, "encoder_q.fc.") }
	default:
		return rep, fmt.Errorf("transfer: import %s: a %s file holds no encoder (import it as the discriminator): %w", f.Path, layout, ErrDoesNotFit)
	}
	loaded, err := apply(f.Path, layout, maps, m.Params, required)
	if err != nil {
		return rep, err
	}
	rep.Loaded = len(loaded)

	// The key network: whatever the file did not give comes from the query
	// network (official init: encoder_k's parameters are copied from encoder_q).
	fresh := map[string]bool{}
	for _, p := range m.Params.List() {
		if loaded[p.Name] {
			continue
		}
		rest, isKey := strings.CutPrefix(p.Name, "encoder_k.")
		if !isKey {
			fresh[part(p.Name)] = true
			continue
		}
		twin := "encoder_q." + rest
		v, shape, err := m.Params.Float32(twin)
		if err != nil {
			return rep, fmt.Errorf("transfer: import %s: key network: %w", f.Path, err)
		}
		if err := m.Params.SetData(p.Name, shape, v); err != nil {
			return rep, fmt.Errorf("transfer: import %s: key network: %w", f.Path, err)
		}
		if loaded[twin] {
			rep.Copied++
		} else {
			fresh[part(p.Name)] = true
		}
	}
	for k := range fresh {
		rep.Fresh = append(rep.Fresh, k)
	}
	sort.Strings(rep.Fresh)
	return rep, nil
}

// ImportDiscriminator copies a D_checkpoint.pth (or a bare discriminator
// state_dict) into ps, the discriminator's parameters
// (model.NewDiscriminator), strictly: every key must fit.
func ImportDiscriminator(f *File, ps *model.Params) (Report, error) {
	layout, err := DetectLayout(f.Names())
	if err != nil {
		return Report{}, fmt.Errorf("transfer: import %s: %w", f.Path, err)
	}
	rep := Report{File: f.Path, Layout: layout, Epoch: f.Epoch}
	if layout != LayoutDiscriminator {
		return rep, fmt.Errorf("transfer: import %s: a %s file is not a discriminator (want model.{0,2,5,8,11}.* as in D_checkpoint.pth): %w", f.Path, layout, ErrDoesNotFit)
	}
	var maps []statedict.Assignment
	for _, t := range f.StateDict {
		maps = append(maps, statedict.Assignment{To: bare(t.Name), T: t})
	}
	loaded, err := apply(f.Path, layout, maps, ps, func(string) bool { return true })
	if err != nil {
		return rep, err
	}
	rep.Loaded = len(loaded)
	return rep, nil
}

// fits reports whether every fc tensor has a same-shaped place under prefix.
func fits(fc statedict.StateDict, ps *model.Params, prefix string) bool {
	for _, t := range fc {
		shape, ok := ps.ShapeOf(prefix + bare(t.Name))
		if !ok || !slices.Equal(shape, t.Shape) {
			return false
		}
	}
	return true
}

// apply loads the assignments into ps with the strict loader; the error
// names the file and layout and suggests the config keys to check.
func apply(path string, layout Layout, maps []statedict.Assignment, ps *model.Params, required func(string) bool) (map[string]bool, error) {
	loaded, err := statedict.Load(ps, maps, required)
	if err != nil {
		return nil, fmt.Errorf("transfer: import %s (layout %s): %w (check model.arch, model.decoder_channels, model.out_channels, model.projection and moco.queue_size)", path, layout, err)
	}
	return loaded, nil
}

// part names the network part a parameter belongs to, for the report:
// "queue", "encoder_q.fc", "encoder_q.backbone.decoder", ...
func part(name string) string {
	s := strings.Split(name, ".")
	switch {
	case len(s) < 2:
		return name
	case s[1] == "backbone" && len(s) > 2:
		return strings.Join(s[:3], ".")
	case s[1] == "fc":
		return s[0] + ".fc"
	}
	return s[0] + " encoder"
}
