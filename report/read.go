package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"dira/export/onnxpb"
)

// manifest is manifest.json as the pipeline writes it. The report keeps its
// own copy of the layout so that it reads a run folder without the
// pipeline's packages, and tolerates fields it does not know.
type manifest struct {
	Versions     map[string]string `json:"versions"`
	GitCommit    string            `json:"git_commit"`
	Seed         uint64            `json:"seed"`
	ConfigSHA256 string            `json:"config_sha256"`
	Created      time.Time         `json:"created"`
	Stages       []stageRecord     `json:"stages"`
}

type stageRecord struct {
	Name      string            `json:"name"`
	State     string            `json:"state"` // pending, running, completed, failed
	Started   *time.Time        `json:"started"`
	Finished  *time.Time        `json:"finished"`
	Error     string            `json:"error"`
	Artifacts map[string]string `json:"artifacts"` // path relative to the run folder -> sha256
}

// runConfig is the part of config.yaml the report uses: the run's name and
// each stage's planned epochs.
type runConfig struct {
	Run struct {
		Name string `yaml:"name"`
	} `yaml:"run"`
	Stages []struct {
		Name   string `yaml:"name"`
		Epochs int    `yaml:"epochs"`
	} `yaml:"stages"`
}

func parseConfig(b []byte) (runConfig, error) {
	var c runConfig
	err := yaml.Unmarshal(b, &c)
	return c, err
}

// exportReport is export/export-report.json (the export stage's
// ExportReport), plus Keys: the parameter names of each written .pth file,
// shown when the export stage records them.
type exportReport struct {
	Checkpoint   string              `json:"checkpoint"`
	Stage        string              `json:"stage"`
	Epoch        int                 `json:"epoch"`
	ConfigSHA256 string              `json:"config_sha256"`
	InputSize    int                 `json:"input_size"`
	Tolerance    float64             `json:"tolerance"`
	Checks       []exportCheck       `json:"checks"`
	Passed       bool                `json:"passed"`
	Files        []string            `json:"files"`
	Note         string              `json:"note"`
	Keys         map[string][]string `json:"keys"`
}

type exportCheck struct {
	File       string   `json:"file"`
	Output     string   `json:"output"`
	Shape      []int64  `json:"shape"`
	MaxAbsDiff *float64 `json:"max_abs_diff"`
	MaxAbs     *float64 `json:"max_abs_output"`
}

// onnxSummary is what a reader of the report needs from an .onnx file: its
// interface, metadata and initializer names.
type onnxSummary struct {
	File         string
	IRVersion    int64
	Opsets       []string
	Producer     string
	Inputs       []string // "image: float32 [N,3,64,64]"
	Outputs      []string
	Metadata     [][2]string
	Nodes        int
	Initializers []string
	Params       int64
}

// maxONNXRead bounds the size of an .onnx file the report parses: protobuf
// messages cannot exceed 2 GiB anyway.
const maxONNXRead = 2 << 30

func readONNX(path string) (onnxSummary, error) {
	s := onnxSummary{File: filepath.Base(path)}
	st, err := os.Stat(path)
	if err != nil {
		return s, err
	}
	if st.Size() > maxONNXRead {
		return s, fmt.Errorf("%s: %d bytes, larger than an ONNX protobuf can be", path, st.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		return s, fmt.Errorf("%s: not an ONNX model: %w", path, err)
	}
	s.IRVersion = m.GetIrVersion()
	for _, o := range m.GetOpsetImport() {
		d := o.GetDomain()
		if d == "" {
			d = "ai.onnx"
		}
		s.Opsets = append(s.Opsets, fmt.Sprintf("%s %d", d, o.GetVersion()))
	}
	s.Producer = strings.TrimSpace(m.GetProducerName() + " " + m.GetProducerVersion())
	for _, kv := range m.GetMetadataProps() {
		s.Metadata = append(s.Metadata, [2]string{kv.GetKey(), kv.GetValue()})
	}
	g := m.GetGraph()
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		s.Initializers = append(s.Initializers, t.GetName())
		inits[t.GetName()] = true
		n := int64(1)
		for _, d := range t.GetDims() {
			n *= d
		}
		s.Params += n
	}
	for _, v := range g.GetInput() {
		if !inits[v.GetName()] { // old exporters list initializers as inputs too
			s.Inputs = append(s.Inputs, valueInfo(v))
		}
	}
	for _, v := range g.GetOutput() {
		s.Outputs = append(s.Outputs, valueInfo(v))
	}
	s.Nodes = len(g.GetNode())
	return s, nil
}

// valueInfo prints a graph input or output as "name: type [d0,d1,...]".
func valueInfo(v *onnxpb.ValueInfoProto) string {
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return v.GetName()
	}
	elem := strings.ToLower(onnxpb.TensorProto_DataType(tt.GetElemType()).String())
	var dims []string
	for _, d := range tt.GetShape().GetDim() {
		switch {
		case d.GetDimParam() != "":
			dims = append(dims, d.GetDimParam())
		case d.Value != nil:
			dims = append(dims, strconv.FormatInt(d.GetDimValue(), 10))
		default:
			dims = append(dims, "?")
		}
	}
	return fmt.Sprintf("%s: %s [%s]", v.GetName(), elem, strings.Join(dims, ","))
}

// sampleGrids lists <stage>/samples/epoch_NNN.png by epoch number.
func sampleGrids(stageDir string) (epochs []int, paths map[int]string) {
	paths = map[int]string{}
	entries, err := os.ReadDir(filepath.Join(stageDir, "samples"))
	if err != nil {
		return nil, paths
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasPrefix(name, "epoch_") || !strings.HasSuffix(name, ".png") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "epoch_"), ".png"))
		if err != nil {
			continue
		}
		paths[n] = filepath.Join(stageDir, "samples", name)
		epochs = append(epochs, n)
	}
	slices.Sort(epochs)
	return epochs, paths
}

// readJSON decodes the JSON file at path into v.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
