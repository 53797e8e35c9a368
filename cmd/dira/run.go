package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"dira/internal/torch"
	"dira/pipeline"
	"dira/report"
	"dira/stages"
)

func runCmd(o stages.Options) *cobra.Command {
	var (
		sets   []string
		runDir string
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
			list, err := stages.Build(cfg, o)
			if err != nil {
				return usageError{fmt.Errorf("%s: %w", args[0], err)}
			}
			// Refuse, before anything starts, a config this machine cannot
			// hold even in the best case (the estimate is a lower bound).
			avail := pipeline.AvailableMemory()
			if err := cfg.CheckMemory(avail); err != nil {
				return usageError{fmt.Errorf("%s: %w", args[0], err)}
			}
			for _, e := range cfg.EstimateMemory() {
				fmt.Fprintf(cmd.ErrOrStderr(), "memory: stage %s needs at least %s\n", e.Stage, e)
			}
			if err := torch.SetThreads(cfg.Run.Threads); err != nil {
				return err
			}
			torch.Seed(cfg.Run.Seed)
			torch.TuneAllocator()
			dir := runDir
			if dir == "" {
				dir = filepath.Join(cfg.Run.OutputDir, cfg.Run.Name)
			}
			r, err := pipeline.Open(dir, cfg, versions(o.ORTLib), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer r.Close()
			// report.html follows the run: rewritten at each stage state
			// change and epoch end; a failure to write it is said, not fatal.
			r.OnProgress = func() {
				if err := report.WriteFile(r.Dir, ""); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "dira: report.html not updated: %v\n", err)
				}
			}
			resume := resumeCommand(args[0], dir, sets)
			setExitHint(cmd.Context(), fmt.Sprintf("run `%s` to resume", resume))
			if err := pipeline.Execute(cmd.Context(), r, list); err != nil {
				if errors.Is(err, context.Canceled) {
					return fmt.Errorf("interrupted; run `%s` again to resume", resume)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "run %s: all stages completed\n", dir)
			return nil
		},
	}
	c.Flags().StringArrayVar(&sets, "set", nil, "override a key: --set stages[0].epochs=2 (repeatable)")
	c.Flags().StringVar(&runDir, "run-dir", "", "run folder (default <run.output_dir>/<run.name>)")
	c.Flags().StringVar(&o.ORTLib, "ort-lib", "", "path of libonnxruntime.so (default: $DIRA_ORT_LIB, then .deps/onnxruntime/)")
	return c
}

// resumeCommand is the command line that resumes an interrupted run: the same
// config, run folder and overrides. The folder is always given: without it
// a changed run.name (or DIRA_RUN_NAME) would start another run.
func resumeCommand(config, runDir string, sets []string) string {
	parts := []string{"dira", "run", shellQuote(config), "--run-dir", shellQuote(runDir)}
	for _, s := range sets {
		parts = append(parts, "--set", shellQuote(s))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '=' || r == ':' || r == ',' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
