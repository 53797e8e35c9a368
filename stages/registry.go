package stages

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"dira/pipeline"
)

// Options are what every stage of a run gets besides its settings.
type Options struct {
	// ORTLib is the ONNX Runtime library ("" = infer.FindLibrary's search).
	ORTLib string
	Hooks  Hooks
}

// Hooks let a test reach into a running stage. Production code leaves them
// nil.
type Hooks struct {
	// BeforeStep sees each training batch's tensors before the forward pass
	// (tests inject a NaN, or a libtorch error, at a chosen step).
	BeforeStep func(stage string, step int64, query, key, target *ts.Tensor)
	// AfterCheckpoint runs after each mid-epoch last.ckpt write (tests kill
	// the process there).
	AfterCheckpoint func(stage string, step int64)
}

// builder makes the runnable stage of one kind's settings.
type builder func(cfg pipeline.Config, s pipeline.StageSettings, o Options) (pipeline.Stage, error)

// kinds is the registry of stage kinds: a new kind is its settings type in
// package pipeline, one entry here and one file in this package.
var kinds = map[string]builder{
	pipeline.StageWarmup:      newPretrain,
	pipeline.StageAdversarial: newPretrain,
	pipeline.StageMoCo:        newPretrain,
	pipeline.StageExport:      newExport,
	pipeline.StageClassify:    newFineTune,
	pipeline.StageSegment:     newFineTune,
}

// Build turns the config's stages list into runnable stages, in order.
func Build(cfg pipeline.Config, o Options) ([]pipeline.Stage, error) {
	out := make([]pipeline.Stage, 0, len(cfg.Stages))
	for i, s := range cfg.Stages {
		b, ok := kinds[s.Kind()]
		if !ok {
			return nil, fmt.Errorf("stages[%d]: no stage implements kind %q", i, s.Kind())
		}
		st, err := b(cfg, s, o)
		if err != nil {
			return nil, fmt.Errorf("stages[%d]: %w", i, err)
		}
		out = append(out, st)
	}
	return out, nil
}
