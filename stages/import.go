package stages

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"dira/checkpoint"
	"dira/internal/runlock"
	"dira/internal/torch"
	"dira/model"
	"dira/pipeline"
	"dira/statedict"
	"dira/transfer"
)

// ErrImportArgs marks an import asked the wrong way (a discriminator file as
// the generator, --disc with a stage that has no discriminator).
var ErrImportArgs = errors.New("import")

// ImportOptions says what to import and where.
type ImportOptions struct {
	Gen   string // the generator's file: checkpoint.pth, unet.pth, resnet50.pth, ...
	Disc  string // D_checkpoint.pth of the same run, or ""
	Stage string // warmup, adversarial or moco; "" = from the file's layout
	Out   string // run folder: the checkpoint goes to Out/<stage>/last.ckpt
	Force bool   // replace an existing last.ckpt
}

// ImportResult says what Import wrote.
type ImportResult struct {
	Path    string // the checkpoint written
	Stage   string
	Epoch   int
	Reports []transfer.Report
}

// Import turns official DiRA PyTorch files (or torchvision/smp state_dicts)
// into a dira checkpoint of cfg's networks that `dira run --run-dir Out`
// resumes: Out/<stage>/last.ckpt, with no optimiser state (the stage starts
// SGD momentum and Adam moments at zero). stage "" picks the stage from the
// layout: a training checkpoint of mode di, or a ResNet file with an MLP head
// (fc.0/fc.2, mode di's resnet50.pth), gives moco; everything else warmup,
// or adversarial when a discriminator comes along. Nothing is left behind on
// failure: the checkpoint is written atomically, and folders made for it are
// removed again. While a run holds the folder (`dira run` on it), Import
// refuses with a *runlock.HeldError naming that process.
func Import(cfg pipeline.Config, o ImportOptions) (res *ImportResult, err error) {
	err = torch.Do(func() error {
		res, err = importFiles(cfg, o)
		return err
	})
	return res, err
}

func importFiles(cfg pipeline.Config, o ImportOptions) (*ImportResult, error) {
	// A run working in the folder owns it: refuse rather than swap its
	// checkpoint underneath it.
	if fi, err := os.Stat(o.Out); err == nil && fi.IsDir() {
		lock, _, err := runlock.Acquire(o.Out)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		defer lock.Release()
	}
	f, err := transfer.ReadFile(o.Gen)
	if err != nil {
		return nil, err
	}
	layout, err := transfer.DetectLayout(f.Names())
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", o.Gen, err)
	}
	if layout == transfer.LayoutDiscriminator {
		return nil, fmt.Errorf("%w %s: a discriminator checkpoint; pass it with --disc next to the generator's checkpoint.pth", ErrImportArgs, o.Gen)
	}
	stage := o.Stage
	if stage == "" {
		stage = pipeline.StageWarmup
		if layout == transfer.LayoutMoCo || (layout == transfer.LayoutResNet && slices.Contains(f.Names(), "fc.0.weight")) {
			stage = pipeline.StageMoCo
		}
		if o.Disc != "" {
			stage = pipeline.StageAdversarial
		}
	}
	if o.Disc != "" && stage != pipeline.StageAdversarial {
		return nil, fmt.Errorf("%w: --disc goes with stage adversarial, not %s", ErrImportArgs, stage)
	}
	path := filepath.Join(o.Out, stage, "last.ckpt")
	if _, err := os.Stat(path); err == nil && !o.Force {
		return nil, fmt.Errorf("import: %s exists (a run's checkpoint); pass --force to replace it", path)
	}

	m, err := model.NewMoCo(cfg.Model, cfg.MoCo.QueueSize, stage != pipeline.StageMoCo, cfg.Run.Seed)
	if err != nil {
		return nil, err
	}
	defer m.Params.Drop()
	res := &ImportResult{Path: path, Stage: stage, Epoch: max(f.Epoch, 0)}
	rep, err := transfer.ImportMoCo(f, m)
	if err != nil {
		return nil, err
	}
	res.Reports = append(res.Reports, rep)
	entries := paramEntries(checkpoint.GroupModel, m.Params)
	if o.Disc != "" {
		df, err := transfer.ReadFile(o.Disc)
		if err != nil {
			return nil, err
		}
		disc := model.NewParams()
		defer disc.Drop()
		model.NewDiscriminator(disc, cfg.Model.Discriminator, cfg.Run.Seed)
		rep, err := transfer.ImportDiscriminator(df, disc)
		if err != nil {
			return nil, err
		}
		if df.Epoch >= 0 && f.Epoch >= 0 && df.Epoch != f.Epoch {
			return nil, fmt.Errorf("import: %s is from epoch %d, %s from epoch %d: not the same run's checkpoints", o.Gen, f.Epoch, o.Disc, df.Epoch)
		}
		res.Reports = append(res.Reports, rep)
		entries = append(entries, paramEntries(checkpoint.GroupDisc, disc)...)
	}

	cfgYAML, err := cfg.YAML()
	if err != nil {
		return nil, err
	}
	meta := checkpoint.Meta{Stage: stage, Epoch: res.Epoch, BestEpoch: -1, Config: string(cfgYAML)}
	var made []string
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if _, err := checkpoint.Write(path, meta, entries); err != nil {
		for _, d := range made {
			os.Remove(d)
		}
		return nil, fmt.Errorf("import: %w", err)
	}
	return res, nil
}

// paramEntries lists a network's tensors as checkpoint entries of a group.
func paramEntries(group string, ps *model.Params) []checkpoint.Entry {
	var out []checkpoint.Entry
	for _, p := range ps.List() {
		name, t := group+p.Name, p.T
		out = append(out, checkpoint.Entry{Name: name, Value: func() (statedict.Tensor, error) { return model.TensorOf(name, t) }})
	}
	return out
}
