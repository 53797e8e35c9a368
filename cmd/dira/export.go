package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"dira/stages"
)

func exportCmd() *cobra.Command {
	var (
		ckpt, out, ortLib string
		tolerance         float64
	)
	c := &cobra.Command{
		Use:   "export --checkpoint CKPT --out DIR",
		Short: "Write encoder/U-Net ONNX and .pth files from a training checkpoint, checked in ONNX Runtime",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := stages.ExportCheckpoint(ckpt, out, stages.ExportOptions{Tolerance: tolerance, ORTLib: ortLib, Log: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %v to %s (stage %s, epoch %d)\n", rep.Files, out, rep.Stage, rep.Epoch)
			return nil
		},
	}
	c.Flags().StringVar(&ckpt, "checkpoint", "", "training checkpoint (.ckpt) to export")
	c.Flags().StringVar(&out, "out", "", "output folder")
	c.Flags().Float64Var(&tolerance, "tolerance", 1e-4, "max abs difference allowed between ONNX Runtime and the Go forward")
	c.Flags().StringVar(&ortLib, "ort-lib", "", "path of libonnxruntime.so")
	c.MarkFlagRequired("checkpoint")
	c.MarkFlagRequired("out")
	return c
}
