package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"dira/checkpoint"
	"dira/export"
	"dira/infer"
	"dira/internal/atomicfile"
	"dira/internal/torch"
	"dira/model"
	"dira/pipeline"
	"dira/statedict"
	"dira/transfer"
)

// Export is the export stage: from a training stage's checkpoint it writes
// encoder.onnx, unet.onnx, encoder.pth and unet.pth into <run>/export/, after
// checking both ONNX files in ONNX Runtime against the Go forward pass; with
// precision int8 or fp16 also encoder.int8.onnx, unet.int8.onnx (or .fp16)
// and their report.
type Export struct {
	settings *pipeline.ExportStage
	ortLib   string
}

func newExport(_ pipeline.Config, s pipeline.StageSettings, o Options) (pipeline.Stage, error) {
	es, ok := s.(*pipeline.ExportStage)
	if !ok {
		return nil, fmt.Errorf("stages: %s is not an export stage", s.Kind())
	}
	return &Export{settings: es, ortLib: o.ORTLib}, nil
}

// Name is "export".
func (e *Export) Name() string { return pipeline.StageExport }

// Run exports the configured checkpoint of the configured stage.
func (e *Export) Run(ctx context.Context, r *pipeline.Run) error {
	ckpt := filepath.Join(r.Dir, e.settings.From, e.settings.Checkpoint+".ckpt")
	// Not r.StageDir: the folder is made only when there is something to
	// put in it (a refused checkpoint leaves none).
	out := filepath.Join(r.Dir, e.Name())
	rep, err := ExportCheckpoint(ckpt, out, ExportOptions{Tolerance: e.settings.Tolerance, ORTLib: e.ortLib, Log: r.Log})
	if err != nil {
		return err
	}
	files := append(rep.Files, "export-report.json")
	if p := e.settings.Precision; p != export.PrecisionFP32 {
		q, err := e.writePrecision(out, r.Log)
		if err != nil {
			return err
		}
		files = append(files, q.Files...)
	}
	for _, f := range files {
		if err := r.RecordArtifact(e.Name(), filepath.Join(out, f)); err != nil {
			return err
		}
	}
	return nil
}

// writePrecision adds the int8 or fp16 copies of the exported ONNX models
// and their report, as `dira export --precision` does.
func (e *Export) writePrecision(out string, log io.Writer) (export.QuantReport, error) {
	s := e.settings
	var images []string
	if s.Calibration != "" {
		ins, err := infer.ListInputs(s.Calibration, "")
		if err != nil {
			return export.QuantReport{}, fmt.Errorf("export: calibration: %w", err)
		}
		for _, in := range ins {
			images = append(images, in.Path)
		}
	}
	return export.WriteQuantized(out, s.Precision, images, export.QuantizedOptions{
		Quant:  export.QuantOptions{Method: s.CalibrationMethod, Count: s.CalibrationCount},
		ORTLib: e.ortLib,
		Log:    log,
	})
}

// ExportOptions tunes ExportCheckpoint.
type ExportOptions struct {
	Tolerance float64   // max abs ORT-vs-Go difference accepted (0 = export.Tolerance)
	ORTLib    string    // ONNX Runtime library path ("" = search)
	Log       io.Writer // progress lines (nil = none)
}

// ExportReport is export-report.json.
type ExportReport struct {
	Checkpoint   string         `json:"checkpoint"`
	Stage        string         `json:"stage"`
	Epoch        int            `json:"epoch"`
	ConfigSHA256 string         `json:"config_sha256"`
	InputSize    int            `json:"input_size"`
	Tolerance    float64        `json:"tolerance"`
	Checks       []export.Check `json:"checks"`
	Passed       bool           `json:"passed"`
	Files        []string       `json:"files"`
	// Keys lists each .pth file's keys, in order, after the README's rules.
	Keys map[string][]string `json:"keys,omitempty"`
	Note string              `json:"note,omitempty"`
}

// ExportCheckpoint reads a training checkpoint and writes the artifacts into
// outDir. Everything is built and checked in a temporary folder first: a
// corrupt checkpoint or a failed check leaves outDir without artifacts (a
// failed check still writes export-report.json there, with passed: false).
func ExportCheckpoint(ckptPath, outDir string, opts ExportOptions) (rep ExportReport, err error) {
	err = torch.Do(func() error {
		rep, err = exportCheckpoint(ckptPath, outDir, opts)
		return err
	})
	return rep, err
}

func exportCheckpoint(ckptPath, outDir string, opts ExportOptions) (rep ExportReport, err error) {
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	tol := opts.Tolerance
	if tol <= 0 {
		tol = export.Tolerance
	}
	ck, err := checkpoint.Read(ckptPath)
	if err != nil {
		return rep, err
	}
	cfg, err := pipeline.Parse(ckptPath+" (embedded config)", []byte(ck.Meta.Config), nil)
	if err != nil {
		return rep, err
	}
	sum := sha256.Sum256([]byte(ck.Meta.Config))
	rep = ExportReport{Checkpoint: ckptPath, Stage: ck.Meta.Stage, Epoch: ck.Meta.Epoch, ConfigSHA256: hex.EncodeToString(sum[:]),
		InputSize: cfg.Data.ImageSize, Tolerance: tol, Keys: map[string][]string{}}

	u, ps, err := model.NewUNet(cfg.Model, cfg.Run.Seed)
	if err != nil {
		return rep, err
	}
	defer ps.Drop()
	withDecoder, err := loadUNet(ck, ps)
	if err != nil {
		return rep, err
	}
	sd, err := ps.StateDict("")
	if err != nil {
		return rep, err
	}
	// Weights that diverged would give artifacts that compute NaN; refuse
	// them before anything is written.
	if err := checkFinite(sd); err != nil {
		return rep, fmt.Errorf("export %s: %w; nothing written (export an earlier checkpoint, e.g. best instead of last)", ckptPath, err)
	}

	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(outDir)), ".export-tmp-")
	if err != nil {
		return rep, fmt.Errorf("export: %w", err)
	}
	defer os.RemoveAll(tmp)
	eo := export.Options{Height: cfg.Data.ImageSize, Width: cfg.Data.ImageSize, Stage: ck.Meta.Stage, Epoch: ck.Meta.Epoch, ConfigHash: rep.ConfigSHA256}
	type artifact struct {
		name  string
		write func(io.Writer) error
	}
	arts := []artifact{
		{"encoder.onnx", func(w io.Writer) error { return export.WriteEncoder(w, u, eo) }},
		{"encoder.pth", func(w io.Writer) error {
			enc, err := transfer.Classification.StateDict(sd)
			if err != nil {
				return err
			}
			rep.Keys["encoder.pth"] = enc.Names()
			return export.WritePTH(w, enc)
		}},
	}
	if withDecoder {
		arts = append(arts,
			artifact{"unet.onnx", func(w io.Writer) error { return export.WriteUNet(w, u, eo) }},
			artifact{"unet.pth", func(w io.Writer) error {
				un, err := transfer.UNet.StateDict(sd)
				if err != nil {
					return err
				}
				rep.Keys["unet.pth"] = un.Names()
				return export.WritePTH(w, un)
			}})
	} else {
		rep.Note = "the checkpoint has no decoder (mode di / moco stage): only the encoder is exported"
	}
	for _, a := range arts {
		if err := atomicfile.Write(filepath.Join(tmp, a.name), 0o644, a.write); err != nil {
			return rep, fmt.Errorf("export %s: %w", a.name, err)
		}
		rep.Files = append(rep.Files, a.name)
	}

	lib, err := infer.FindLibrary(opts.ORTLib, "")
	if err != nil {
		return rep, err
	}
	if err := infer.Start(lib); err != nil {
		return rep, err
	}
	defer infer.Stop()
	x := export.RandomInput(2, cfg.Data.ImageSize, cfg.Data.ImageSize, cfg.Run.Seed)
	rep.Passed = true
	for _, k := range []export.Kind{export.KindEncoder, export.KindUNet} {
		if k == export.KindUNet && !withDecoder {
			continue
		}
		c, err := export.Verify(filepath.Join(tmp, string(k)+".onnx"), u, k, x, infer.SessionOptions{Device: "cpu", Threads: cfg.Run.Threads})
		if err != nil {
			return rep, err
		}
		c.File = string(k) + ".onnx"
		rep.Checks = append(rep.Checks, c)
		fmt.Fprintf(log, "export: %s: ONNX Runtime vs Go max |diff| %.3g (tolerance %g)\n", c.File, c.MaxAbsDiff, tol)
		if !(c.MaxAbsDiff <= tol) || math.IsNaN(c.MaxAbsDiff) {
			rep.Passed = false
		}
	}

	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return rep, fmt.Errorf("export: %w", err)
	}
	if !rep.Passed {
		files := rep.Files
		rep.Files = nil
		if werr := writeReport(outDir, rep); werr != nil {
			return rep, werr
		}
		return rep, fmt.Errorf("export %s: ONNX Runtime and the Go forward differ by more than %g; %v not written (see %s)",
			ckptPath, tol, files, filepath.Join(outDir, "export-report.json"))
	}
	for _, f := range rep.Files {
		if err := os.Rename(filepath.Join(tmp, f), filepath.Join(outDir, f)); err != nil {
			return rep, fmt.Errorf("export: %w", err)
		}
	}
	return rep, writeReport(outDir, rep)
}

// checkFinite names the first tensor of sd that holds a NaN or an infinity,
// with how many of its values are not finite.
func checkFinite(sd statedict.StateDict) error {
	for _, t := range sd {
		bad, first := 0, -1
		for i, v := range t.F32 {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				if bad++; first < 0 {
					first = i
				}
			}
		}
		if bad > 0 {
			return fmt.Errorf("tensor %s %v is not finite: %d of its %d values are NaN or infinite (the first, at index %d, is %v)",
				t.Name, t.Shape, bad, len(t.F32), first, t.F32[first])
		}
	}
	return nil
}

func writeReport(dir string, rep ExportReport) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "export-report.json"), append(b, '\n'), 0o644)
}

// loadUNet fills a standalone U-Net's parameters from a training checkpoint's
// query network (model/encoder_q.backbone.*), strictly. A moco-stage
// checkpoint (mode di) has only the encoder, under model/encoder_q.*: then
// the decoder keeps its initial weights and withDecoder is false.
func loadUNet(ck *checkpoint.File, ps *model.Params) (withDecoder bool, err error) {
	net := ck.Group(checkpoint.GroupModel)
	src := net.Prefixed("encoder_q.backbone.")
	full := len(src) > 0
	required := func(string) bool { return true }
	if !full {
		// Mode di: the encoder is encoder_q.* minus the projection head fc.*.
		src, err = net.Prefixed("encoder_q.").Rename(func(n string) (string, bool) {
			return "encoder." + n, !strings.HasPrefix(n, "fc.")
		})
		if err != nil {
			return false, err
		}
		required = func(n string) bool { return strings.HasPrefix(n, "encoder.") }
	}
	if _, err := statedict.Load(ps, statedict.Identity(src), required); err != nil {
		return false, fmt.Errorf("checkpoint %s does not hold the configured U-Net: %w", ck.Path, err)
	}
	return full, nil
}
