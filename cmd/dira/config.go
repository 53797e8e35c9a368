package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"dira/pipeline"
)

func configCmd() *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "Inspect configuration"}
	c.AddCommand(&cobra.Command{
		Use:   "defaults",
		Short: "Print the complete default config, one comment per key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := pipeline.DefaultsYAML()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	})
	return c
}

// loadConfig loads and validates a config; every problem is returned, and the
// error exits with status 2.
func loadConfig(path string, sets []string) (pipeline.Config, error) {
	cfg, err := pipeline.Load(path, sets)
	if err != nil {
		return cfg, usageError{err}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{fmt.Errorf("config %s has problems:\n%w", path, err)}
	}
	return cfg, nil
}

func validateCmd() *cobra.Command {
	var sets []string
	c := &cobra.Command{
		Use:   "validate CONFIG",
		Short: "Print the resolved config, or every problem with its YAML path",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args[0], sets)
			if err != nil {
				return err
			}
			b, err := cfg.YAML()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	c.Flags().StringArrayVar(&sets, "set", nil, "override a key: --set stages[0].epochs=2 (repeatable)")
	return c
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{errors.New(cmd.UseLine() + ": wrong number of arguments")}
		}
		return nil
	}
}
