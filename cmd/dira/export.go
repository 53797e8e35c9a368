package main

import (
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"dira/export"
	"dira/infer"
	"dira/stages"
)

func exportCmd() *cobra.Command {
	var (
		ckpt, out, ortLib      string
		tolerance              float64
		precision, calib, calM string
		calCount               int
	)
	c := &cobra.Command{
		Use:   "export --checkpoint CKPT --out DIR [--precision int8 --calibration DIR|LIST]",
		Short: "Write encoder/U-Net ONNX and .pth files from a training checkpoint, checked in ONNX Runtime",
		Long: `Write encoder/U-Net ONNX and .pth files from a training checkpoint, checked in ONNX Runtime.

--precision int8 also writes encoder.int8.onnx and unet.int8.onnx (static QDQ quantization
calibrated on the first --calibration-count images of --calibration) and
quantization-report.json; --precision fp16 writes encoder.fp16.onnx and unet.fp16.onnx (for
GPUs) and fp16-report.json. Both run in 'dira infer' unchanged.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(export.Precisions, precision) {
				return fmt.Errorf("--precision must be one of %v, got %q", export.Precisions, precision)
			}
			if calM != export.CalibMinMax && calM != export.CalibPercentile {
				return fmt.Errorf("--calibration-method must be %s or %s, got %q", export.CalibMinMax, export.CalibPercentile, calM)
			}
			if calCount < 1 {
				return fmt.Errorf("--calibration-count must be >= 1, got %d", calCount)
			}
			var images []string
			if calib != "" {
				ins, err := infer.ListInputs(calib, "")
				if err != nil {
					return fmt.Errorf("--calibration: %w", err)
				}
				for _, in := range ins {
					images = append(images, in.Path)
				}
			} else if precision == export.PrecisionInt8 {
				return fmt.Errorf("--precision int8 needs --calibration DIR|LIST (images like the ones the model will see)")
			}
			rep, err := stages.ExportCheckpoint(ckpt, out, stages.ExportOptions{Tolerance: tolerance, ORTLib: ortLib, Log: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %v to %s (stage %s, epoch %d)\n", rep.Files, out, rep.Stage, rep.Epoch)
			if precision == export.PrecisionFP32 {
				return nil
			}
			q, err := export.WriteQuantized(out, precision, images, export.QuantizedOptions{
				Quant:  export.QuantOptions{Method: calM, Count: calCount},
				ORTLib: ortLib,
				Log:    cmd.ErrOrStderr(),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %v to %s (%s)\n", q.Files, out, precision)
			return nil
		},
	}
	c.Flags().StringVar(&ckpt, "checkpoint", "", "training checkpoint (.ckpt) to export")
	c.Flags().StringVar(&out, "out", "", "output folder")
	c.Flags().Float64Var(&tolerance, "tolerance", 1e-4, "max abs difference allowed between ONNX Runtime and the Go forward")
	c.Flags().StringVar(&ortLib, "ort-lib", "", "path of libonnxruntime.so")
	c.Flags().StringVar(&precision, "precision", export.PrecisionFP32, "also write the models at this precision: fp32 (only), int8 or fp16")
	c.Flags().StringVar(&calib, "calibration", "", "int8 calibration images: a folder, an image or a list file (the first --calibration-count are used; the next 16 are held out for the report)")
	c.Flags().IntVar(&calCount, "calibration-count", export.DefaultCalibrationCount, "number of calibration images")
	c.Flags().StringVar(&calM, "calibration-method", export.CalibMinMax, "int8 calibration: minmax or percentile (99.99)")
	c.MarkFlagRequired("checkpoint")
	c.MarkFlagRequired("out")
	return c
}
