package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"dira/report"
)

func reportCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "report RUN_DIR [--out FILE.html]",
		Short: "Write a self-contained HTML report of a run folder (dira run writes RUN_DIR/report.html itself)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := report.WriteFile(args[0], out); err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join(args[0], "report.html")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "HTML file to write (default RUN_DIR/report.html)")
	return c
}
