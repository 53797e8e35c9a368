package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"dira/internal/torch"
	"dira/pipeline"
	"dira/stages"
)

func runCmd() *cobra.Command {
	var (
		sets   []string
		runDir string
		ortLib string
	)
	c := &cobra.Command{
		Use:   "run CONFIG",
		Short: "Run the config's stages in order; re-running resumes an interrupted run",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args[0], sets)
			if err != nil {
				return err
			}
			if len(cfg.Stages) == 0 {
				return usageError{fmt.Errorf("%s: %w", args[0], pipeline.ErrNoStages)}
			}
			stages, err := buildStages(cfg)
			if err != nil {
				return usageError{fmt.Errorf("%s: %w", args[0], err)}
			}
			if err := torch.SetThreads(cfg.Run.Threads); err != nil {
				return err
			}
			torch.Seed(cfg.Run.Seed)
			torch.TuneAllocator()
			if runDir == "" {
				runDir = filepath.Join(cfg.Run.OutputDir, cfg.Run.Name)
			}
			r, err := pipeline.Open(runDir, cfg, versions(ortLib), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := pipeline.Execute(ctx, r, stages); err != nil {
				if errors.Is(err, context.Canceled) {
					return fmt.Errorf("interrupted; run `dira run %s` again to resume: %w", args[0], err)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "run %s: all stages completed\n", runDir)
			return nil
		},
	}
	c.Flags().StringArrayVar(&sets, "set", nil, "override a key: --set stages[0].epochs=2 (repeatable)")
	c.Flags().StringVar(&runDir, "run-dir", "", "run folder (default <run.output_dir>/<run.name>)")
	c.Flags().StringVar(&ortLib, "ort-lib", "", "path of libonnxruntime.so")
	return c
}

// buildStages turns the config's stage list into runnable stages.
func buildStages(cfg pipeline.Config) ([]pipeline.Stage, error) {
	var out []pipeline.Stage
	for i, s := range cfg.Stages {
		if !s.IsTraining() {
			out = append(out, stages.NewExport(cfg, s))
			continue
		}
		st, err := stages.NewTraining(cfg, s)
		if err != nil {
			return nil, fmt.Errorf("stages[%d]: %w", i, err)
		}
		out = append(out, st)
	}
	return out, nil
}
