package transfer

import (
	"errors"
	"fmt"
	"strings"

	"dira/statedict"
)

// ErrLoadsNothing reports key names that, once renamed, match nothing the
// target network has: what PyTorch's load_state_dict(strict=False) accepts
// without a word.
var ErrLoadsNothing = errors.New("the file would load nothing")

// Rules is one of the DiRA README's key-renaming recipes: remove substrings
// everywhere, then drop keys by prefix (dira-spec 2.4).
type Rules struct {
	// Name names the recipe in errors ("encoder", "unet").
	Name string
	// Remove lists substrings removed from every key, in order, every
	// occurrence (Python's str.replace).
	Remove []string
	// Drop lists prefixes: a key that starts with one after the removals is
	// left out (Python's k.startswith).
	Drop []string
	// Anchor is a key the result must hold; without it the recipe would load
	// nothing into its target network. Empty: no check.
	Anchor string
}

// The README's recipes.
var (
	// Classification is the README's classification snippet: remove
	// "module.", "backbone.", "encoder.", drop fc, segmentation_head and
	// decoder. On smp U-Net keys the result is torchvision's ResNet names,
	// which torchvision's resnet loads missing only fc.weight and fc.bias.
	// ("decoder." does not contain "encoder.", so decoder keys survive the
	// removal and are then dropped.)
	Classification = Rules{
		Name:   "encoder",
		Remove: []string{"module.", "backbone.", "encoder."},
		Drop:   []string{"fc", "segmentation_head", "decoder"},
		Anchor: "conv1.weight",
	}
	// Segmentation is the README's segmentation snippet: remove "module."
	// and "backbone.", drop fc and segmentation_head; smp's Unet then misses
	// only its head, which the downstream task re-initialises.
	Segmentation = Rules{
		Name:   "segmentation",
		Remove: []string{"module.", "backbone."},
		Drop:   []string{"fc", "segmentation_head"},
		Anchor: "encoder.conv1.weight",
	}
	// UNet is Segmentation without its last step: the head is kept. The
	// result is smp's names (encoder.*, decoder.*, segmentation_head.*), what
	// unet.pth holds.
	UNet = Rules{
		Name:   "unet",
		Remove: []string{"module.", "backbone."},
		Drop:   []string{"fc"},
		Anchor: "encoder.conv1.weight",
	}
)

// Key returns what name becomes under r, and false when r drops it.
func (r Rules) Key(name string) (string, bool) {
	for _, s := range r.Remove {
		name = strings.ReplaceAll(name, s, "")
	}
	for _, d := range r.Drop {
		if strings.HasPrefix(name, d) {
			return name, false
		}
	}
	return name, true
}

// Rename is one kept key: its name in the file and under the rules.
type Rename struct{ From, To string }

// Apply renames names in order and returns the kept ones. It fails when two
// keys become one name, and, wrapping ErrLoadsNothing, when r.Anchor is not
// among the results: the README's snippet applied to the full training
// checkpoint turns "module.encoder_q.backbone.encoder.conv1.weight" into
// "encoder_q.conv1.weight", which a ResNet does not have.
func (r Rules) Apply(names []string) ([]Rename, error) {
	var out []Rename
	seen := map[string]string{}
	anchored := r.Anchor == ""
	for _, n := range names {
		to, keep := r.Key(n)
		if !keep {
			continue
		}
		if prev, dup := seen[to]; dup {
			return nil, fmt.Errorf("transfer: %s keys: %q and %q both become %q", r.Name, prev, n, to)
		}
		seen[to] = n
		anchored = anchored || to == r.Anchor
		out = append(out, Rename{From: n, To: to})
	}
	if !anchored {
		first := ""
		if len(out) > 0 {
			first = out[0].To
		}
		return nil, fmt.Errorf("transfer: %s keys: no %s after stripping (first key %q): %w", r.Name, r.Anchor, first, ErrLoadsNothing)
	}
	return out, nil
}

// StateDict applies r to sd's keys, in order (values shared, not copied);
// errors as Apply. On a training model's keys (encoder_q.backbone.*) the
// recipes load nothing: strip that prefix first (StateDict.Prefixed).
func (r Rules) StateDict(sd statedict.StateDict) (statedict.StateDict, error) {
	kept, err := r.Apply(sd.Names())
	if err != nil {
		if errors.Is(err, ErrLoadsNothing) {
			return nil, fmt.Errorf("%w; strip the training model's prefix (encoder_q.backbone.) first", err)
		}
		return nil, err
	}
	// Apply keeps the input order, so kept is a subsequence of sd.
	out := make(statedict.StateDict, 0, len(kept))
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

// Match is what load_state_dict(strict=False) would report for a file's
// keys (already renamed) against a network's keys.
type Match struct {
	Loaded     []string // in both
	Missing    []string // the network's keys the file lacks
	Unexpected []string // the file's keys the network lacks
}

// CheckLoads compares renamed file keys with a network's keys. Unlike
// PyTorch's strict=False it fails, wrapping ErrLoadsNothing and naming the
// first keys of both sides, when nothing would load.
func CheckLoads(file, network []string) (Match, error) {
	var m Match
	inFile := map[string]bool{}
	for _, k := range file {
		inFile[k] = true
	}
	inNet := map[string]bool{}
	for _, k := range network {
		inNet[k] = true
		if inFile[k] {
			m.Loaded = append(m.Loaded, k)
		} else {
			m.Missing = append(m.Missing, k)
		}
	}
	for _, k := range file {
		if !inNet[k] {
			m.Unexpected = append(m.Unexpected, k)
		}
	}
	if len(m.Loaded) == 0 {
		return m, fmt.Errorf("transfer: none of the file's %d keys (%s) is one of the network's %d (%s): %w",
			len(file), head(file, 3), len(network), head(network, 3), ErrLoadsNothing)
	}
	return m, nil
}

// head lists the first n names and how many more there are.
func head(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
