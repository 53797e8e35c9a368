// Package pipeline owns what a run is: the typed Config with its defaults and
// validation (every problem named by its YAML path), loading a config from
// YAML, DIRA_* environment variables and --set overrides, the run folder and its
// manifest, and the runner that executes stages in order and skips the ones a
// previous run completed.
//
// It does not know how a stage trains or exports: package stages implements the
// Stage interface and cmd/dira wires the two together.
package pipeline
