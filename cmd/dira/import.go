package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"dira/pipeline"
	"dira/stages"
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
			res, err := stages.Import(cfg, stages.ImportOptions{Gen: args[0], Disc: disc, Stage: stage, Out: out, Force: force})
			if errors.Is(err, stages.ErrImportArgs) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			for _, r := range res.Reports {
				for _, l := range r.Lines() {
					fmt.Fprintln(w, "import: "+l)
				}
			}
			fmt.Fprintln(w, "import: optimiser state not imported: SGD momentum (and Adam moments) start at zero")
			fmt.Fprintf(w, "import: wrote %s (stage %s, epoch %d); continue with `dira run CONFIG --run-dir %s`\n", res.Path, res.Stage, res.Epoch, out)
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
