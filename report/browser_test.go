package report

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The browser test opens reports in headless Chromium (Debian's chromium,
// which `bash scripts/setup.sh --browser` installs and `make test` asks
// for). To refresh the screenshot in docs/ from a real demo run:
//
//	make demo
//	go test ./report -run TestBrowser -args -run-dir=$PWD/runs/demo -screenshot=$PWD/docs/report-demo.png
var (
	chromiumPath = flag.String("chromium", "", "Chromium binary (default: chromium or chromium-browser on PATH)")
	runDirFlag   = flag.String("run-dir", "testdata/demo", "run folder whose report the browser test opens")
	screenshot   = flag.String("screenshot", "", "write a full-page screenshot of the -run-dir report here")
)

// testdata/demo is a real `make demo` run folder (configs/demo.yaml), kept
// without its checkpoints and model files (which the report lists as
// absent) and with only the sample grids the report shows.

// TestBrowser renders reports and opens each in headless Chromium, driven
// through the DevTools protocol over a pipe (--remote-debugging-pipe: no
// port, no websocket; messages are JSON separated by NUL bytes). That is
// more robust than --dump-dom or --screenshot alone: it waits for the load
// event, sees every console message, script exception and failed or
// outside network request, asks the page itself whether each image
// decoded, and takes the screenshot from the same page. It checks that:
//   - the page loads with no console error, exception or failed request,
//     and requests nothing but the file itself and its data: URIs;
//   - every <img> element completed loading with a natural width > 0, and
//     there are as many as the HTML has;
//   - the status line says how the run ended (completed, killed in a stage,
//     export failed);
//   - a 1200x900 screenshot has that exact size and is not blank.
func TestBrowser(t *testing.T) {
	bin := *chromiumPath
	if bin == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		t.Fatal("chromium not found: install it with `bash scripts/setup.sh --browser` (make test does), or pass -chromium=PATH")
	}
	demo, err := filepath.Abs(*runDirFlag)
	if err != nil {
		t.Fatal(err)
	}
	killed := copyRun(t, demo, func(dir string) {
		// The adversarial stage was killed in its second epoch.
		editManifest(t, dir, func(m map[string]any) {
			for _, s := range m["stages"].([]any) {
				s := s.(map[string]any)
				switch s["name"] {
				case "adversarial":
					s["state"] = "running"
					delete(s, "finished")
				case "export":
					s["state"] = "pending"
					delete(s, "started")
					delete(s, "finished")
				}
			}
		})
		cutMetrics(t, filepath.Join(dir, "adversarial", "metrics.jsonl"), 1)
		os.Remove(filepath.Join(dir, "export", "export-report.json"))
	})
	failedExport := copyRun(t, demo, func(dir string) {
		editManifest(t, dir, func(m map[string]any) {
			for _, s := range m["stages"].([]any) {
				if s := s.(map[string]any); s["name"] == "export" {
					s["state"] = "failed"
					s["error"] = "export: ONNX Runtime and the Go forward differ by more than 0.0001"
				}
			}
		})
		os.WriteFile(filepath.Join(dir, "export", "export-report.json"), []byte(exportFailed), 0o644)
	})

	// The completed run's status counts its stages (3 in testdata/demo, 4
	// in a real `make demo`).
	var man struct{ Stages []any }
	if b, err := os.ReadFile(filepath.Join(demo, "manifest.json")); err != nil || json.Unmarshal(b, &man) != nil {
		t.Fatalf("manifest of %s: %v", demo, err)
	}
	b := startBrowser(t, bin)
	for _, tc := range []struct {
		name, dir, title, status string
	}{
		{"demo", demo, "dira run demo", fmt.Sprintf("completed: all %d stages finished", len(man.Stages))},
		{"killed", killed, "dira run demo", "stopped in stage adversarial, or still running"},
		{"export_failed", failedExport, "dira run demo", "failed in stage export"},
		// The hand-written run with a fine-tuning stage: comparison, ROC
		// and learning-curve figures.
		{"finetune", completeRun(t), "dira run fixture", "completed: all 4 stages finished"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.html")
			dir := tc.dir
			if tc.name == "demo" && *screenshot != "" {
				// The page names its run folder as given: for the picture in
				// docs/, name it from the repository root, as `dira run`
				// users see it ("runs/demo").
				if root, err := filepath.Abs(".."); err == nil {
					if rel, err := filepath.Rel(root, dir); err == nil && !strings.HasPrefix(rel, "..") {
						t.Chdir(root)
						dir = rel
					}
				}
			}
			if err := WriteFile(dir, out); err != nil {
				t.Fatal(err)
			}
			doc, _ := os.ReadFile(out)
			wantImages := strings.Count(string(doc), "<img ")
			got := b.open(t, out)
			if got.Title != tc.title {
				t.Errorf("title %q", got.Title)
			}
			if !strings.Contains(got.Status, tc.status) {
				t.Errorf("status %q, want %q", got.Status, tc.status)
			}
			if len(got.Images) != wantImages || wantImages < 4 {
				t.Errorf("browser sees %d images, the HTML has %d (want at least 4)", len(got.Images), wantImages)
			}
			for i, img := range got.Images {
				if !img.OK {
					t.Errorf("image %d (%s) did not load", i, img.Alt)
				}
			}
			for _, p := range got.Problems {
				t.Errorf("browser: %s", p)
			}
			if got.Height <= 900 {
				t.Errorf("page is %d px high: the report did not lay out", got.Height)
			}
			checkScreenshot(t, got.Shot, 1200, 900)
			if tc.name == "demo" && *screenshot != "" {
				full := b.fullPage(t)
				checkScreenshot(t, full, 1200, 0)
				if err := os.WriteFile(*screenshot, full, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", *screenshot)
			}
		})
	}
}

// checkScreenshot: a PNG of w x h (h 0: any) with real content: at least
// 3% of the pixels differ from white and there are many distinct colours.
func checkScreenshot(t *testing.T, b []byte, w, h int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	sz := img.Bounds().Size()
	if sz.X != w || (h > 0 && sz.Y != h) {
		t.Errorf("screenshot is %dx%d, want %dx%d", sz.X, sz.Y, w, h)
	}
	inked := 0
	colours := map[[3]uint32]bool{}
	for y := 0; y < sz.Y; y++ {
		for x := 0; x < sz.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || b < 0xf000 {
				inked++
			}
			if len(colours) < 1000 {
				colours[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
			}
		}
	}
	if frac := float64(inked) / float64(sz.X*sz.Y); frac < 0.03 || len(colours) < 50 {
		t.Errorf("screenshot looks blank: %.3f of pixels inked, %d colours", frac, len(colours))
	}
}

// copyRun copies a run folder into a temporary one and lets edit change it.
func copyRun(t *testing.T, src string, edit func(dir string)) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "demo")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	edit(dst)
	return dst
}

func editManifest(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, "manifest.json")
	var m map[string]any
	if err := readJSON(path, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ := json.Marshal(m)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cutMetrics keeps the lines of metrics.jsonl up to the end of `epochs`
// epochs plus half of the next epoch's steps, as a kill would leave it.
func cutMetrics(t *testing.T, path string, epochs int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	extra := 0
	for _, line := range strings.SplitAfter(string(b), "\n") {
		var rec struct {
			Kind  string
			Epoch int
		}
		json.Unmarshal([]byte(line), &rec)
		if rec.Epoch < epochs || (rec.Epoch == epochs && rec.Kind == "step" && extra < 5) {
			if rec.Epoch == epochs {
				extra++
			}
			keep = append(keep, line)
		}
	}
	os.WriteFile(path, []byte(strings.Join(keep, "")), 0o644)
}

// browser is a headless Chromium driven over the DevTools protocol pipe.
type browser struct {
	cmd     *exec.Cmd
	w       *os.File     // chromium reads commands from its fd 3
	msgs    chan cdpMsg  // what chromium writes on its fd 4
	stderr  bytes.Buffer // chromium's own log, shown when something fails
	next    int
	session string
	events  []cdpMsg // events seen while waiting for answers
}

type cdpMsg struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

const browserTimeout = 60 * time.Second

func startBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{w: cmdW, msgs: make(chan cdpMsg, 256)}
	// The flags this closed machine needs: without the background
	// networking ones Chromium waits on the network and hangs; as root it
	// needs --no-sandbox; a fresh profile keeps runs independent.
	b.cmd = exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-pipe", "--hide-scrollbars", "about:blank")
	b.cmd.ExtraFiles = []*os.File{cmdR, outW} // fds 3 and 4 in the child
	b.cmd.Stderr = &limitedWriter{buf: &b.stderr, max: 1 << 16}
	// Its own process group, so the renderer and GPU children go with it.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	cmdR.Close()
	outW.Close()
	go func() {
		defer close(b.msgs)
		r := bufio.NewReader(outR)
		for {
			line, err := r.ReadBytes(0)
			if len(line) > 1 {
				var m cdpMsg
				if json.Unmarshal(line[:len(line)-1], &m) == nil {
					b.msgs <- m
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		b.call("", "Browser.close", nil)
		done := make(chan error, 1)
		go func() { done <- b.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		cmdW.Close()
		outR.Close()
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", b.stderr.String())
		}
	})

	res, err := b.call("", "Target.createTarget", map[string]any{"url": "about:blank"})
	if err != nil {
		t.Fatal(err)
	}
	var target struct{ TargetID string }
	json.Unmarshal(res, &target)
	res, err = b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true})
	if err != nil {
		t.Fatal(err)
	}
	var att struct{ SessionID string }
	json.Unmarshal(res, &att)
	b.session = att.SessionID
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable", "Network.enable"} {
		if _, err := b.call(b.session, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.call(b.session, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": false}); err != nil {
		t.Fatal(err)
	}
	return b
}

type limitedWriter struct {
	buf *bytes.Buffer
	max int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if room := w.max - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// call sends a command and waits for its answer, keeping the events that
// arrive meanwhile.
func (b *browser) call(session, method string, params any) (json.RawMessage, error) {
	b.next++
	id := b.next
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	line, _ := json.Marshal(msg)
	if _, err := b.w.Write(append(line, 0)); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	deadline := time.After(browserTimeout)
	for {
		select {
		case m, ok := <-b.msgs:
			if !ok {
				return nil, fmt.Errorf("%s: chromium closed the pipe", method)
			}
			if m.ID == id {
				if m.Error != nil {
					return nil, fmt.Errorf("%s: %s", method, m.Error.Message)
				}
				return m.Result, nil
			}
			if m.Method != "" {
				b.events = append(b.events, m)
			}
		case <-deadline:
			return nil, fmt.Errorf("%s: no answer in %s", method, browserTimeout)
		}
	}
}

// waitEvent waits for an event of this session, first among those already
// seen.
func (b *browser) waitEvent(method string) error {
	for _, e := range b.events {
		if e.Method == method && e.SessionID == b.session {
			return nil
		}
	}
	deadline := time.After(browserTimeout)
	for {
		select {
		case m, ok := <-b.msgs:
			if !ok {
				return errors.New("chromium closed the pipe")
			}
			if m.Method != "" {
				b.events = append(b.events, m)
			}
			if m.Method == method && m.SessionID == b.session {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("no %s in %s", method, browserTimeout)
		}
	}
}

type pageState struct {
	Title  string
	Status string
	Height int
	Images []struct {
		OK  bool
		Alt string
	}
	Problems []string
	Shot     []byte
}

// pageProbe asks the loaded page for its title, status line, height and
// the load state of each image; it runs in the test's DevTools session,
// not in the page's own code (the page has none).
const pageProbe = `JSON.stringify({
  Title: document.title,
  Status: (document.getElementById("status") || {}).innerText || "",
  Height: document.documentElement.scrollHeight,
  Images: Array.from(document.images).map(i => ({OK: i.complete && i.naturalWidth > 0, Alt: i.alt})),
})`

// open loads the file at path and reports what the browser saw.
func (b *browser) open(t *testing.T, path string) pageState {
	t.Helper()
	b.events = nil
	url := "file://" + path
	res, err := b.call(b.session, "Page.navigate", map[string]any{"url": url})
	if err != nil {
		t.Fatal(err)
	}
	var nav struct{ ErrorText string }
	json.Unmarshal(res, &nav)
	if nav.ErrorText != "" {
		t.Fatalf("navigate %s: %s", url, nav.ErrorText)
	}
	if err := b.waitEvent("Page.loadEventFired"); err != nil {
		t.Fatal(err)
	}
	res, err = b.call(b.session, "Runtime.evaluate", map[string]any{"expression": pageProbe, "returnByValue": true})
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Result struct{ Value string }
	}
	json.Unmarshal(res, &ev)
	var st pageState
	if err := json.Unmarshal([]byte(ev.Result.Value), &st); err != nil {
		t.Fatalf("page probe: %v (%s)", err, res)
	}
	res, err = b.call(b.session, "Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		t.Fatal(err)
	}
	st.Shot = decodeShot(t, res)
	st.Problems = b.problems(url)
	return st
}

// problems lists the events that mean the page is broken or not
// self-contained.
func (b *browser) problems(url string) []string {
	var out []string
	for _, e := range b.events {
		if e.SessionID != b.session {
			continue
		}
		switch e.Method {
		case "Runtime.exceptionThrown":
			out = append(out, "exception: "+string(e.Params))
		case "Runtime.consoleAPICalled":
			var p struct{ Type string }
			json.Unmarshal(e.Params, &p)
			if p.Type == "error" || p.Type == "assert" || p.Type == "warning" {
				out = append(out, "console "+p.Type+": "+string(e.Params))
			}
		case "Log.entryAdded":
			var p struct {
				Entry struct{ Level, Text, URL string }
			}
			json.Unmarshal(e.Params, &p)
			if p.Entry.Level == "error" || p.Entry.Level == "warning" {
				out = append(out, fmt.Sprintf("log %s: %s %s", p.Entry.Level, p.Entry.Text, p.Entry.URL))
			}
		case "Network.loadingFailed":
			out = append(out, "request failed: "+string(e.Params))
		case "Network.requestWillBeSent":
			var p struct{ Request struct{ URL string } }
			json.Unmarshal(e.Params, &p)
			if u := p.Request.URL; u != url && !strings.HasPrefix(u, "data:") {
				out = append(out, "request outside the page: "+u)
			}
		}
	}
	return out
}

// fullPage is a screenshot of the whole current page at 1200 px wide.
func (b *browser) fullPage(t *testing.T) []byte {
	t.Helper()
	res, err := b.call(b.session, "Page.getLayoutMetrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	var lm struct {
		CSSContentSize struct{ Width, Height float64 }
	}
	json.Unmarshal(res, &lm)
	res, err = b.call(b.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": 1200, "height": lm.CSSContentSize.Height, "scale": 1}})
	if err != nil {
		t.Fatal(err)
	}
	return decodeShot(t, res)
}

func decodeShot(t *testing.T, res json.RawMessage) []byte {
	t.Helper()
	var shot struct{ Data string }
	json.Unmarshal(res, &shot)
	b, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || len(b) == 0 {
		t.Fatalf("screenshot: %v (%d bytes)", err, len(b))
	}
	if _, _, err := image.DecodeConfig(bytes.NewReader(b)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return b
}
