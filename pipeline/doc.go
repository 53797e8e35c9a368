// Package pipeline owns what a run is: the typed Config with its defaults and
// validation (every problem named by its YAML path), loading a config, the run
// folder and its manifest, and the runner that executes stages in order and
// skips the ones a previous run completed.
//
// # Stage kinds
//
// The stages list is a tagged union: an entry's name is its kind (warmup,
// adversarial, moco, export), and the kind's settings type (stagekinds.go)
// decides which keys the entry may hold, with the kind's own defaults. A key
// of another kind is refused by YAML path and line. Adding a kind is one
// settings type here and one file in package stages.
//
// # Loading, and how viper is used
//
// Load parses the file once (yaml.v3 nodes, which keep each key's line for
// error messages) and resolves the config in viper's layers: every default is
// registered with SetDefault, the file is merged with MergeConfigMap, DIRA_*
// variables come in through AutomaticEnv (DIRA_RUN_SEED sets run.seed), and
// --set overrides through Set. Unmarshal decodes exactly: ErrorUnused, no weak
// typing, and a decode hook (strictScalars) that converts a value only when it
// is exactly representable (no 2.7 for an integer, no -1 for a seed, no NaN).
//
// Three parts viper cannot do are done here, each in one place:
//   - line numbers: viper keeps none, so unknown keys are found by walking
//     the parsed file against the typed structs (checkKeys), which also
//     suggests the closest known key;
//   - list elements: viper cannot address stages[1].optimizer.lr, so the
//     stages list stays outside viper and --set paths into it edit the raw
//     list (override), after which each entry is decoded into its kind's
//     settings with the same strict decoder (decodeStage);
//   - unknown environment variables: AutomaticEnv only looks up keys it
//     knows, so a mistyped DIRA_<SECTION>_... variable is found by scanning
//     the environment (checkEnvironment).
//
// Every key either takes effect or is refused: a key set to a non-default
// value that the rest of the config makes inert (data.val_fraction with a
// list source, optimizer.milestones without the step schedule) is an error
// (noEffect), and data.restoration is not a key at all: it follows from the
// stage kind (Config.DataFor).
//
// It does not know how a stage trains or exports: package stages implements
// the Stage interface and cmd/dira wires the two together.
package pipeline
