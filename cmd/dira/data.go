package main

import (
	"io"

	"github.com/spf13/cobra"

	"dira/data"
	"dira/internal/atomicfile"
	"dira/pipeline"
)

func dataCmd() *cobra.Command {
	c := &cobra.Command{Use: "data", Short: "Inspect what the network is fed"}
	var (
		sets []string
		out  string
		n    int
	)
	preview := &cobra.Command{
		Use:   "preview CONFIG --out FILE.png [--n 8]",
		Short: "Write a PNG grid of training samples: view 1 | view 2 | target per row",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args[0], sets)
			if err != nil {
				return err
			}
			// What the first training stage is fed (warmup's views and
			// target when the config lists none).
			kind := pipeline.StageWarmup
			for _, s := range cfg.Stages {
				if _, ok := pipeline.TrainingOf(s); ok {
					kind = s.Kind()
					break
				}
			}
			return atomicfile.Write(out, 0o644, func(w io.Writer) error {
				return data.WritePreview(w, cfg.DataFor(kind), n, cfg.Run.Seed)
			})
		},
	}
	preview.Flags().StringArrayVar(&sets, "set", nil, "override a key (repeatable)")
	preview.Flags().StringVar(&out, "out", "", "PNG file to write")
	preview.Flags().IntVar(&n, "n", 8, "number of samples (rows)")
	preview.MarkFlagRequired("out")
	c.AddCommand(preview)
	return c
}
