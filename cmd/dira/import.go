package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"dira/model"
	"dira/pipeline"
	"dira/stages"
	"dira/transfer"
)

func importCmd() *cobra.Command {
	var (
		out, cfgPath, disc, stage string
		sets                      []string
		force                     bool
	)
	c := &cobra.Command{
		Use:   "import FILE.pth --out DIR [--config CONFIG]",
		Short: "Turn an official DiRA PyTorch checkpoint (or a torchvision/smp state_dict) into a dira checkpoint",
		Long: `Read a PyTorch file in one of the official DiRA layouts and write DIR/<stage>/last.ckpt,
which ` + "`dira run CONFIG --run-dir DIR`" + ` resumes (or, for warmup, the adversarial stage
starts from):

  checkpoint.pth (modes dir/dira)   networks, queue and pointer; stage warmup
                                    (adversarial with --disc D_checkpoint.pth)
  checkpoint.pth (mode di)          stage moco
  best_checkpoint.pth, unet.pth,    the query U-Net; the key encoder is copied from it,
  an smp Unet state_dict            projection head and queue start fresh; stage warmup
  resnet50.pth (mode di)            the query ResNet and head; stage moco
  a torchvision resnet state_dict   the query encoder; stage warmup

The networks are those of --config (default: the official DiRA, ResNet-50); a file that
does not fit them is refused with the key names. The epoch is the file's ('epoch' of a
training checkpoint: epochs done), 0 for bare state_dicts. SGD momentum and Adam moments
are not imported: the stage starts them at zero.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := pipeline.Default()
			if cfgPath != "" {
				var err error
				if cfg, err = loadConfig(cfgPath, sets); err != nil {
					return err
				}
			} else if len(sets) > 0 {
				return usageError{errors.New("--set needs --config")}
			}
			if stage != "" && !slices.Contains([]string{pipeline.StageWarmup, pipeline.StageAdversarial, pipeline.StageMoCo}, stage) {
				return usageError{fmt.Errorf("--stage must be warmup, adversarial or moco, got %q", stage)}
			}
			res, err := importFiles(cfg, args[0], disc, stage)
			if err != nil {
				return err
			}
			defer res.drop()
			path := filepath.Join(out, res.meta.Stage, "last.ckpt")
			if _, err := os.Stat(path); err == nil && !force {
				return fmt.Errorf("import: %s exists (a run's checkpoint); pass --force to replace it", path)
			}
			cfgYAML, err := cfg.YAML()
			if err != nil {
				return err
			}
			res.meta.Config = string(cfgYAML)
			// Nothing is left behind on failure: the checkpoint is written
			// atomically, and folders made for it are removed again.
			var made []string
			for d := filepath.Dir(path); ; d = filepath.Dir(d) {
				if _, err := os.Stat(d); err == nil || filepath.Dir(d) == d {
					break
				}
				made = append(made, d)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return fmt.Errorf("import: %w", err)
			}
			if err := stages.WriteImported(path, res.meta, res.moco.Params, res.disc); err != nil {
				for _, d := range made {
					os.Remove(d)
				}
				return fmt.Errorf("import: %w", err)
			}
			w := cmd.OutOrStdout()
			for _, r := range res.reports {
				for _, l := range r.Lines() {
					fmt.Fprintln(w, "import: "+l)
				}
			}
			fmt.Fprintln(w, "import: optimiser state not imported: SGD momentum (and Adam moments) start at zero")
			fmt.Fprintf(w, "import: wrote %s (stage %s, epoch %d); continue with `dira run CONFIG --run-dir %s`\n", path, res.meta.Stage, res.meta.Epoch, out)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&out, "out", "", "run folder to write <stage>/last.ckpt into")
	f.StringVar(&cfgPath, "config", "", "config whose networks the file must fit (default: the official DiRA networks)")
	f.StringArrayVar(&sets, "set", nil, "override a config key (repeatable; needs --config)")
	f.StringVar(&disc, "disc", "", "D_checkpoint.pth of the same run: also import the discriminator (stage adversarial)")
	f.StringVar(&stage, "stage", "", "stage the checkpoint belongs to: warmup, adversarial or moco (default: from the file's layout)")
	f.BoolVar(&force, "force", false, "replace an existing <stage>/last.ckpt")
	c.MarkFlagRequired("out")
	return c
}

// imported is what importFiles built: the networks filled from the files
// and the checkpoint's meta (without its config).
type imported struct {
	moco    *model.MoCo
	disc    *model.Params
	meta    stages.Meta
	reports []transfer.Report
}

func (r *imported) drop() {
	r.moco.Params.Drop()
	if r.disc != nil {
		r.disc.Drop()
	}
}

// importFiles reads the generator file (and the discriminator file, when
// given) into cfg's networks. stage "" picks the stage from the layout:
// a training checkpoint of mode di or a ResNet file with an MLP head
// (fc.0/fc.2, mode di's resnet50.pth) give moco; everything else warmup, or
// adversarial when a discriminator comes along.
func importFiles(cfg pipeline.Config, genPath, discPath, stage string) (*imported, error) {
	f, err := transfer.ReadFile(genPath)
	if err != nil {
		return nil, err
	}
	layout, err := transfer.DetectLayout(f.Names())
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", genPath, err)
	}
	if layout == transfer.LayoutDiscriminator {
		return nil, usageError{fmt.Errorf("import %s: a discriminator checkpoint; pass it with --disc next to the generator's checkpoint.pth", genPath)}
	}
	if stage == "" {
		stage = pipeline.StageWarmup
		if layout == transfer.LayoutMoCo || (layout == transfer.LayoutResNet && slices.Contains(f.Names(), "fc.0.weight")) {
			stage = pipeline.StageMoCo
		}
		if discPath != "" {
			stage = pipeline.StageAdversarial
		}
	}
	if discPath != "" && stage != pipeline.StageAdversarial {
		return nil, usageError{fmt.Errorf("--disc goes with stage adversarial, not %s", stage)}
	}
	m, err := model.NewMoCo(cfg.Model, cfg.MoCo.QueueSize, stage != pipeline.StageMoCo, cfg.Run.Seed)
	if err != nil {
		return nil, err
	}
	res := &imported{moco: m, meta: stages.Meta{Stage: stage, BestEpoch: -1}}
	rep, err := transfer.ImportMoCo(f, m)
	if err != nil {
		res.drop()
		return nil, err
	}
	res.reports = append(res.reports, rep)
	res.meta.Epoch = max(f.Epoch, 0)
	if discPath != "" {
		df, err := transfer.ReadFile(discPath)
		if err != nil {
			res.drop()
			return nil, err
		}
		res.disc = model.NewParams()
		model.NewDiscriminator(res.disc, cfg.Model.Discriminator, cfg.Run.Seed)
		rep, err := transfer.ImportDiscriminator(df, res.disc)
		if err != nil {
			res.drop()
			return nil, err
		}
		if df.Epoch >= 0 && f.Epoch >= 0 && df.Epoch != f.Epoch {
			res.drop()
			return nil, fmt.Errorf("import: %s is from epoch %d, %s from epoch %d: not the same run's checkpoints", genPath, f.Epoch, discPath, df.Epoch)
		}
		res.reports = append(res.reports, rep)
	}
	return res, nil
}
