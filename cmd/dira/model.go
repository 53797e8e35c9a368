package main

import (
	"github.com/spf13/cobra"

	"dira/model"
)

func modelCmd() *cobra.Command {
	c := &cobra.Command{Use: "model", Short: "Inspect the configured networks"}
	var sets []string
	summary := &cobra.Command{
		Use:   "summary CONFIG",
		Short: "Parameter count per network part and the encoder stage shapes at the configured image size",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args[0], sets)
			if err != nil {
				return err
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
