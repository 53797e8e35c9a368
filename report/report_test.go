package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"google.golang.org/protobuf/proto"

	"dira/export/onnxpb"
)

// A run folder is written from a map of relative path -> content.
type files map[string]string

func writeRun(t *testing.T, fs files) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	for p, content := range fs {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// grid is a small gray PNG standing in for a samples/epoch_NNN.png.
func grid(shade uint8) string {
	img := image.NewGray(image.Rect(0, 0, 30, 20))
	for i := range img.Pix {
		img.Pix[i] = shade + uint8(i%7)
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.String()
}

const configYAML = `run:
  name: fixture
  seed: 1
stages:
  - name: warmup
    epochs: 2
  - name: adversarial
    epochs: 3
  - name: export
    from: adversarial
  - name: finetune
    epochs: 2
`

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func manifestJSON(cfg string, stages ...string) string {
	return fmt.Sprintf(`{"versions":{"go":"go1.26","gotch":"v0.7.0","libtorch":"1.13.0"},"git_commit":"abc123","seed":1,
"config_sha256":%q,"created":"2026-01-02T03:04:05Z","stages":[%s]}`, sha(cfg), strings.Join(stages, ","))
}

func stage(name, state, errText string) string {
	s := fmt.Sprintf(`{"name":%q,"state":%q`, name, state)
	if state != "pending" {
		s += `,"started":"2026-01-02T03:04:05Z"`
	}
	if state == "completed" || state == "failed" {
		s += `,"finished":"2026-01-02T03:05:10Z"`
	}
	if errText != "" {
		s += fmt.Sprintf(`,"error":%q`, errText)
	}
	if state == "completed" {
		s += fmt.Sprintf(`,"artifacts":{"%s/last.ckpt":"%s"}`, name, strings.Repeat("ab", 32))
	}
	return s + "}"
}

// metricsLines is a metrics.jsonl of `epochs` finished epochs of 3 steps, plus
// `extra` steps of an unfinished one.
func metricsLines(epochs, extra int, adversarial bool) string {
	var b strings.Builder
	step := 0
	line := func(e int) {
		step++
		fmt.Fprintf(&b, `{"kind":"step","epoch":%d,"step":%d,"lr":0.03,"img_per_s":%d,"loss":%g,"nce":%g,"mse":%g`,
			e, step, 20+step, 6-0.1*float64(step), 5.5-0.1*float64(step), 0.05/float64(step))
		if adversarial {
			fmt.Fprintf(&b, `,"adv_g":%g,"d_loss":%g`, 1/float64(step), 0.5)
		}
		b.WriteString("}\n")
	}
	for e := range epochs {
		for range 3 {
			line(e)
		}
		fmt.Fprintf(&b, `{"kind":"epoch","epoch":%d,"step":%d,"train":{"loss":%g,"nce":5,"mse":0.03},"val_loss":%g,"best_epoch":%d}`+"\n",
			e, step, 6-0.3*float64(e), 6.1-0.3*float64(e), e)
	}
	for range extra {
		line(epochs)
	}
	return b.String()
}

const exportPassed = `{"checkpoint":"RUN/adversarial/best.ckpt","stage":"adversarial","epoch":3,"config_sha256":"x","input_size":64,
"tolerance":0.0001,"checks":[{"file":"encoder.onnx","output":"features","shape":[2,512],"max_abs_diff":4.5e-6,"max_abs_output":2.28},
{"file":"unet.onnx","output":"mask","shape":[2,1,64,64],"max_abs_diff":4.8e-7,"max_abs_output":0.83}],"passed":true,
"files":["encoder.onnx","encoder.pth"],"keys":{"encoder.pth":["conv1.weight","bn1.weight","bn1.num_batches_tracked"]}}`

const exportFailed = `{"checkpoint":"RUN/adversarial/best.ckpt","stage":"adversarial","epoch":3,"config_sha256":"x","input_size":64,
"tolerance":0.0001,"checks":[{"file":"encoder.onnx","output":"features","shape":[2,512],"max_abs_diff":0.31,"max_abs_output":2.28}],
"passed":false}`

const resultsJSON = `{"task":"classification","dataset":"Toy-CXR","metric":"auc","classes":["Atelectasis","Effusion"],
"trials":[
 {"init":"dira","label_fraction":1,"run":0,"seed":1,"score":0.82,"per_class":[0.80,0.84],"best_epoch":1,
  "history":[{"epoch":0,"train_loss":0.5,"val_loss":0.55,"val_score":0.7},{"epoch":1,"train_loss":0.4,"val_loss":0.45,"val_score":0.78}]},
 {"init":"dira","label_fraction":1,"run":1,"seed":2,"score":0.80,"per_class":[0.79,0.81],"best_epoch":1},
 {"init":"random","label_fraction":1,"run":0,"seed":1,"score":0.71,"per_class":[0.70,0.72],"best_epoch":1},
 {"init":"random","label_fraction":1,"run":1,"seed":2,"score":null,"error":"trial diverged: loss is NaN"}
],
"roc":[{"init":"dira","label_fraction":1,"run":0,"class":"Atelectasis","fpr":[0,0.2,1],"tpr":[0,0.7,1]},
       {"init":"dira","label_fraction":1,"run":0,"class":"Effusion","fpr":[0,0.1,1],"tpr":[0,0.6,1]}]}`

func completeRun(t *testing.T) string {
	return writeRun(t, files{
		"config.yaml":                       configYAML,
		"manifest.json":                     manifestJSON(configYAML, stage("warmup", "completed", ""), stage("adversarial", "completed", ""), stage("export", "completed", ""), stage("finetune", "completed", "")),
		"warmup/metrics.jsonl":              metricsLines(2, 0, false),
		"warmup/samples/epoch_001.png":      grid(10),
		"warmup/samples/epoch_002.png":      grid(100),
		"warmup/last.ckpt":                  "weights",
		"adversarial/metrics.jsonl":         metricsLines(3, 0, true),
		"adversarial/samples/epoch_001.png": grid(20),
		"adversarial/samples/epoch_002.png": grid(60),
		"adversarial/samples/epoch_003.png": grid(200),
		"export/export-report.json":         exportPassed,
		"finetune/results.json":             resultsJSON,
	})
}

func render(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(dir, &b); err != nil {
		t.Fatal(err)
	}
	checkHTML(t, b.String())
	return b.String()
}

func mustContain(t *testing.T, page string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(page, w) {
			t.Errorf("page lacks %q", w)
		}
	}
}

// imgSrc matches an inlined PNG. html/template writes '+' in attributes as
// &#43;, which the browser decodes.
var imgSrc = regexp.MustCompile(`<img src="data:image/png;base64,([^"]+)"`)

// images decodes every inlined image of page.
func images(t *testing.T, page string) []image.Image {
	t.Helper()
	var out []image.Image
	for _, m := range imgSrc.FindAllStringSubmatch(page, -1) {
		img, err := png.Decode(base64Reader(html.UnescapeString(m[1])))
		if err != nil {
			t.Fatalf("inlined image does not decode: %v", err)
		}
		out = append(out, img)
	}
	return out
}

func TestCompleteRun(t *testing.T) {
	dir := completeRun(t)
	page := render(t, dir)
	mustContain(t, page,
		"dira run fixture",
		"completed: all 4 stages finished",
		`id="stage-warmup"`, `id="stage-adversarial"`, `id="stage-export"`, `id="stage-finetune"`,
		"2 of 2 epochs done, 6 steps", "3 of 3 epochs done, 9 steps",
		"best checkpoint",                // from best_epoch
		"after epoch 1", "after epoch 3", // first and last adversarial grids
		"Passed: ONNX Runtime matches the Go forward pass within 0.0001",
		"4.5e-06", "adversarial, after epoch 3",
		"bn1.num_batches_tracked",                        // key lists from export-report.json
		"Fine-tuning results: Toy-CXR", "0.810", "0.010", // dira mean and population std of 0.82, 0.80
		"random, 100% labels, run 1: trial diverged: loss is NaN",
		"Per-class auc, 100% of the labels", "0.795 ± 0.005",
		"abc123", "matches config.yaml", "go1.26",
	)
	// Warmup's grids are epochs 1 and 2; adversarial's epoch 2 of 3 is
	// not shown.
	if n := strings.Count(page, "after epoch 2<"); n != 1 {
		t.Errorf("%d grids captioned epoch 2, want 1: only the first and last of each stage", n)
	}
	// Two loss figures, 2+2 sample grids, then comparison, ROC and learning curves.
	imgs := images(t, page)
	if len(imgs) != 9 {
		t.Fatalf("%d images inlined, want 9", len(imgs))
	}
	if got := imgs[2].Bounds().Size(); got != (image.Point{30, 20}) {
		t.Errorf("first sample grid is %v, want the file's 30x20", got)
	}
	// The loss figure of the adversarial stage has 5 terms + lr: 3 rows.
	if h := imgs[3].Bounds().Dy(); h < 3*228 {
		t.Errorf("adversarial loss figure %d px high, want 3 rows of panels", h)
	}
}

func TestKilledMidStage(t *testing.T) {
	dir := writeRun(t, files{
		"config.yaml":                       configYAML,
		"manifest.json":                     manifestJSON(configYAML, stage("warmup", "completed", ""), stage("adversarial", "running", ""), stage("export", "pending", "")),
		"warmup/metrics.jsonl":              metricsLines(2, 0, false),
		"adversarial/metrics.jsonl":         metricsLines(1, 2, true) + `{"kind":"step","epoch":1,"st`, // killed while writing
		"adversarial/samples/epoch_001.png": grid(20),
	})
	page := render(t, dir)
	mustContain(t, page,
		`class="status status-warn"`,
		"stopped in stage adversarial, or still running",
		"1 of 3 epochs done, 5 steps; stopped inside epoch 2",
		"unreadable metrics lines",
		"after epoch 1",
		">pending<",
	)
	if n := len(images(t, page)); n != 3 { // two loss figures, one grid
		t.Errorf("%d images, want 3", n)
	}
}

func TestFailedStage(t *testing.T) {
	dir := writeRun(t, files{
		"config.yaml":               configYAML,
		"manifest.json":             manifestJSON(configYAML, stage("warmup", "completed", ""), stage("adversarial", "failed", "adversarial step 14: loss is NaN"), stage("export", "pending", "")),
		"warmup/metrics.jsonl":      metricsLines(2, 0, false),
		"adversarial/metrics.jsonl": metricsLines(1, 1, true),
	})
	page := render(t, dir)
	mustContain(t, page, `class="status status-fail"`, "failed in stage adversarial", "adversarial step 14: loss is NaN", `<pre class="error">`)
}

func TestExportFailed(t *testing.T) {
	dir := writeRun(t, files{
		"config.yaml":               configYAML,
		"manifest.json":             manifestJSON(configYAML, stage("warmup", "completed", ""), stage("adversarial", "completed", ""), stage("export", "failed", "export: ONNX Runtime and the Go forward differ by more than 0.0001")),
		"warmup/metrics.jsonl":      metricsLines(2, 0, false),
		"adversarial/metrics.jsonl": metricsLines(3, 0, true),
		"export/export-report.json": exportFailed,
	})
	page := render(t, dir)
	mustContain(t, page, `class="status status-fail"`, "failed in stage export",
		"Failed: ONNX Runtime and the Go forward pass differ by more than 0.0001",
		"0.31", `<span class="fail">no</span>`)
}

// TestEscaping: text from the config, the manifest and file names appears
// as text, never as markup.
func TestEscaping(t *testing.T) {
	const evil = `<script>alert(1)</script>`
	cfg := strings.Replace(configYAML, "name: fixture", "name: '"+evil+"'", 1)
	dir := writeRun(t, files{
		"config.yaml": cfg,
		"manifest.json": strings.Replace(manifestJSON(cfg, stage("warmup", "failed", `<img src=x onerror=alert(2)>`)),
			`"seed"`, `"versions_note":"x","seed"`, 1),
		"warmup/metrics.jsonl": `{"kind":"skipped","epoch":0,"step":1,"file":"<b>bad</b>.png","error":"x"}` + "\n" + metricsLines(1, 0, false),
	})
	// An artifact and a version whose names are markup.
	m, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	m = bytes.Replace(m, []byte(`"go":"go1.26"`), []byte(`"go\"><i>":"</td><script>alert(3)</script>"`), 1)
	os.WriteFile(filepath.Join(dir, "manifest.json"), m, 0o644)
	page := render(t, dir)
	if strings.Contains(strings.ToLower(page), "<script") {
		t.Fatal("markup from the run folder reached the page as a script element")
	}
	for _, bad := range []string{"<img src=x", "<b>bad</b>", "<i>"} {
		if strings.Contains(page, bad) {
			t.Errorf("unescaped %q in the page", bad)
		}
	}
	mustContain(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt;", "&lt;b&gt;bad&lt;/b&gt;.png")
}

func TestNoManifest(t *testing.T) {
	dir := writeRun(t, files{"config.yaml": configYAML})
	page := render(t, dir)
	mustContain(t, page, "manifest.json is missing", "no manifest", `id="stage-warmup"`, ">unknown<")

	empty := t.TempDir()
	render(t, empty) // nothing at all still renders

	if err := Write(filepath.Join(empty, "nope"), io.Discard); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing folder: error %v does not name it", err)
	}
}

func TestBrokenFiles(t *testing.T) {
	dir := writeRun(t, files{
		"config.yaml":               "run: [unclosed",
		"manifest.json":             manifestJSON(configYAML, stage("export", "completed", ""), stage("finetune", "completed", "")),
		"export/export-report.json": "{not json",
		"finetune/results.json":     `{"trials": 3}`,
	})
	page := render(t, dir)
	mustContain(t, page, "Files the report could not use", "config.yaml: ", "export/export-report.json: ", "finetune/results.json: ")
}

func TestWriteFileAtomic(t *testing.T) {
	dir := completeRun(t)
	if err := WriteFile(dir, ""); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	checkHTML(t, string(b))
	out := filepath.Join(t.TempDir(), "elsewhere.html")
	if err := WriteFile(dir, out); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	// A failed write leaves the old report in place.
	if err := WriteFile(filepath.Join(dir, "missing"), filepath.Join(dir, FileName)); err == nil {
		t.Fatal("report of a missing folder succeeded")
	}
	if after, _ := os.ReadFile(filepath.Join(dir, FileName)); !bytes.Equal(after, b) {
		t.Error("a failed report replaced the previous one")
	}
}

// TestONNXSummary: the export section shows each .onnx file's interface,
// metadata and initializer names, read from the file itself.
func TestONNXSummary(t *testing.T) {
	dim := func(v int64) *onnxpb.TensorShapeProto_Dimension {
		return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
	}
	vi := func(name string, dims ...*onnxpb.TensorShapeProto_Dimension) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{Dim: dims}}}}}
	}
	n := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}}
	m := &onnxpb.ModelProto{
		IrVersion:     proto.Int64(8),
		OpsetImport:   []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		ProducerName:  proto.String("dira"),
		MetadataProps: []*onnxpb.StringStringEntryProto{{Key: proto.String("stage"), Value: proto.String("adversarial")}},
		Graph: &onnxpb.GraphProto{
			Input:       []*onnxpb.ValueInfoProto{vi("image", n, dim(3), dim(64), dim(64))},
			Output:      []*onnxpb.ValueInfoProto{vi("features", n, dim(512))},
			Initializer: []*onnxpb.TensorProto{{Name: proto.String("encoder.conv1.weight"), Dims: []int64{64, 3, 7, 7}}},
			Node:        []*onnxpb.NodeProto{{OpType: proto.String("Conv")}},
		},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	dir := completeRun(t)
	os.WriteFile(filepath.Join(dir, "export", "encoder.onnx"), b, 0o644)
	page := render(t, dir)
	mustContain(t, page, "image: float [N,3,64,64]", "features: float [N,512]", "ai.onnx 17", "encoder.conv1.weight", "9408 in 1 initializers", "adversarial")
	// encoder.pth is listed in files but is not ONNX; unet.onnx is not in
	// files: neither is parsed, and nothing complains.
	if strings.Contains(page, "not an ONNX model") {
		t.Error("a non-ONNX file was parsed as ONNX")
	}
}

func TestSummarize(t *testing.T) {
	score := func(v float64) *float64 { return &v }
	sums := Summarize([]Trial{
		{Init: "dira", LabelFraction: 0.1, Score: score(0.7), PerClass: []*float64{score(0.6), score(0.8)}},
		{Init: "dira", LabelFraction: 0.1, Score: score(0.8), PerClass: []*float64{score(0.7), score(0.9)}},
		{Init: "dira", LabelFraction: 0.1, Score: score(0.9), PerClass: []*float64{score(0.8), nil}},
		{Init: "dira", LabelFraction: 0.1, Error: "crashed"},
		{Init: "random", LabelFraction: 0.1, Score: score(0.5)},
	})
	if len(sums) != 2 {
		t.Fatalf("%d groups, want 2", len(sums))
	}
	d := sums[0]
	// NumPy: np.mean([.7,.8,.9]) = 0.8, np.std(...) (ddof 0, as the
	// official engine reports trials) = sqrt(0.02/3).
	if d.N != 3 || math.Abs(*d.Mean-0.8) > 1e-12 || math.Abs(*d.Std-math.Sqrt(0.02/3)) > 1e-12 {
		t.Errorf("dira: n %d mean %v std %v, want 3, 0.8, 0.0816", d.N, *d.Mean, *d.Std)
	}
	// Class 1 is undefined in the third trial: its numbers come from two.
	if math.Abs(*d.PerClassMean[1]-0.85) > 1e-12 || math.Abs(*d.PerClassStd[1]-0.05) > 1e-12 {
		t.Errorf("per class %v ± %v", *d.PerClassMean[1], *d.PerClassStd[1])
	}
	if r := sums[1]; r.N != 1 || *r.Std != 0 {
		t.Errorf("one trial: n %d std %v, want 1 and std 0", r.N, r.Std)
	}
}
