package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"dira/model"
	"dira/pipeline"
)

func modelCmd() *cobra.Command {
	c := &cobra.Command{Use: "model", Short: "Inspect the configured networks"}
	var sets []string
	summary := &cobra.Command{
		Use:   "summary CONFIG",
		Short: "Parameter count per network part and the encoder stage shapes at the configured image size",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Only the networks matter here: a paper config whose image
			// folder is not on this machine still has a summary.
			cfg, err := pipeline.Load(args[0], sets)
			if err != nil {
				return usageError{err}
			}
			probs := cfg.Model.Validate("model")
			if s := cfg.Data.ImageSize; s < 32 || s%32 != 0 {
				probs = append(probs, fmt.Errorf("data.image_size: must be a positive multiple of 32, got %d", s))
			}
			if len(probs) > 0 {
				return usageError{fmt.Errorf("config %s has problems:\n%w", args[0], errors.Join(probs...))}
			}
			s, err := model.Summarize(cfg.Model, cfg.Data.ImageSize, cfg.Run.Seed)
			if err != nil {
				return err
			}
			return s.Write(cmd.OutOrStdout())
		},
	}
	summary.Flags().StringArrayVar(&sets, "set", nil, "override a key: --set model.arch=resnet18 (repeatable)")
	c.AddCommand(summary)
	return c
}
