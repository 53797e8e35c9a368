package main

import (
	"io"

	"github.com/spf13/cobra"

	"dira/data"
	"dira/internal/atomicfile"
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
			return atomicfile.Write(out, 0o644, func(w io.Writer) error {
				return data.WritePreview(w, cfg.Data, n, cfg.Run.Seed)
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
