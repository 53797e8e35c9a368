package optim

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"testing"
)

// The tests compare with PyTorch 1.13.1 run live through testdata/reference.py
// (Debian's /usr/bin/python3 with python3-torch, installed by setup).

type plateauReq struct {
	Config struct {
		Mode          string  `json:"mode"`
		Factor        float64 `json:"factor"`
		Patience      int     `json:"patience"`
		Threshold     float64 `json:"threshold"`
		ThresholdMode string  `json:"threshold_mode"`
		Cooldown      int     `json:"cooldown"`
		MinLR         float64 `json:"min_lr"`
		Eps           float64 `json:"eps"`
	} `json:"config"`
	LR     float64    `json:"lr"`
	Losses []*float64 `json:"losses"` // nil: NaN
}

type earlyReq struct {
	Patience int        `json:"patience"`
	InitBest float64    `json:"init_best"`
	Losses   []*float64 `json:"losses"`
}

type cosineReq struct {
	Base      float64 `json:"base"`
	EtaMin    float64 `json:"eta_min"`
	TMax      int     `json:"tmax"`
	LastEpoch int     `json:"last_epoch"`
	Steps     int     `json:"steps"`
}

type annealReq struct {
	Epochs int     `json:"epochs"`
	LR     float64 `json:"lr"`
	N      int     `json:"n"`
}

type request struct {
	Plateau []plateauReq `json:"plateau"`
	Early   []earlyReq   `json:"early"`
	Cosine  []cosineReq  `json:"cosine"`
	Anneal  []annealReq  `json:"anneal"`
}

type response struct {
	Torch   string      `json:"torch"`
	Plateau [][]float64 `json:"plateau"`
	Early   []int       `json:"early"`
	Cosine  [][]float64 `json:"cosine"`
	Anneal  [][]float64 `json:"anneal"`
}

func reference(t *testing.T, req request) response {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", "testdata/reference.py")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testdata/reference.py: %v\n%s", err, stderr.String())
	}
	var resp response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("testdata/reference.py output: %v", err)
	}
	return resp
}

func toPtrs(v []float64) []*float64 {
	out := make([]*float64, len(v))
	for i := range v {
		if !math.IsNaN(v[i]) {
			out[i] = &v[i]
		}
	}
	return out
}

func fromPtrs(v []*float64) []float64 {
	out := make([]float64, len(v))
	for i, p := range v {
		out[i] = math.NaN()
		if p != nil {
			out[i] = *p
		}
	}
	return out
}

// lossSequences returns scripted validation-loss curves that exercise every
// branch: steady improvement, long plateaus, improvements smaller than the
// relative threshold, exact ties, a NaN, losses above the engines' initial
// best, and random curves with noise and stalls.
func lossSequences() [][]float64 {
	seqs := [][]float64{
		{1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3},
		{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
		// 0.99995 is a relative improvement of 5e-5 < 1e-4: not better for the plateau, better for early stopping.
		{1, 0.99995, 0.9999, 0.99985, 0.9998, 0.99975, 0.9997, 0.99965, 0.9996, 0.99955, 0.9995, 0.99945, 0.9994, 0.99935, 0.9993, 0.99925},
		{0.5, 0.6, 0.7, 0.5, 0.5, 0.49, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.48, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7},
		{0.5, math.NaN(), 0.5, 0.4, math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), 0.3, 0.3},
		{2e6, 3e6, 2e6, 2e6, 2e6, 2e6, 2e6, 2e6, 2e6, 2e6, 2e6, 2e6, 2e6, 2e6},
	}
	r := rand.New(rand.NewPCG(11, 12))
	for range 12 {
		n := 20 + r.IntN(60)
		s := make([]float64, n)
		v := 1.0
		for i := range s {
			switch r.IntN(4) {
			case 0: // stall: repeat or nearly repeat
				v *= 1 - 2e-4*r.Float64()
			case 1:
				v *= 1 + 0.05*r.Float64()
			default:
				v *= 1 - 0.05*r.Float64()
			}
			s[i] = v
			if r.IntN(10) == 0 {
				s[i] = math.Round(v*100) / 100 // ties after rounding
				v = s[i]
			}
		}
		seqs = append(seqs, s)
	}
	return seqs
}

func TestPlateauMatchesTorch(t *testing.T) {
	configs := []PlateauConfig{
		OfficialPlateau(10),
		OfficialPlateau(3),
		OfficialPlateau(0),
		{Mode: ModeMin, Factor: 0.1, Patience: 2, Threshold: 0.01, ThresholdMode: ThresholdAbs, Cooldown: 2, MinLR: 1e-5, Eps: 1e-8},
		{Mode: ModeMax, Factor: 0.5, Patience: 1, Threshold: 1e-4, ThresholdMode: ThresholdRel, Cooldown: 1, MinLR: 0, Eps: 1e-8},
		{Mode: ModeMax, Factor: 0.3, Patience: 2, Threshold: 0.02, ThresholdMode: ThresholdAbs, Cooldown: 0, MinLR: 0, Eps: 1e-3},
	}
	var req request
	type key struct{ cfg, seq int }
	var keys []key
	seqs := lossSequences()
	for ci, c := range configs {
		for si, s := range seqs {
			var p plateauReq
			p.Config.Mode, p.Config.Factor, p.Config.Patience = c.Mode, c.Factor, c.Patience
			p.Config.Threshold, p.Config.ThresholdMode, p.Config.Cooldown = c.Threshold, c.ThresholdMode, c.Cooldown
			p.Config.MinLR, p.Config.Eps = c.MinLR, c.Eps
			p.LR, p.Losses = 2e-4, toPtrs(s)
			req.Plateau = append(req.Plateau, p)
			keys = append(keys, key{ci, si})
		}
	}
	resp := reference(t, req)
	reductions := 0
	for i, k := range keys {
		p, err := NewPlateau(configs[k.cfg], 2e-4)
		if err != nil {
			t.Fatal(err)
		}
		for e, loss := range fromPtrs(req.Plateau[i].Losses) {
			lr, reduced := p.Step(loss)
			if reduced {
				reductions++
			}
			if want := resp.Plateau[i][e]; lr != want {
				t.Fatalf("config %d, sequence %d, epoch %d: lr %v, torch %v", k.cfg, k.seq, e, lr, want)
			}
		}
	}
	if reductions < 20 {
		t.Fatalf("only %d reductions over all cases: the sequences do not exercise the scheduler", reductions)
	}
	t.Logf("torch %s: %d sequences x %d configs, lr equal at every epoch (%d reductions)", resp.Torch, len(seqs), len(configs), reductions)
}

func TestEarlyStopMatchesOfficialLoop(t *testing.T) {
	var req request
	seqs := lossSequences()
	for _, patience := range []int{0, 2, 5, 10} {
		for _, init := range []float64{ClassificationInitBest, SegmentationInitBest} {
			for _, s := range seqs {
				req.Early = append(req.Early, earlyReq{Patience: patience, InitBest: init, Losses: toPtrs(s)})
			}
		}
	}
	resp := reference(t, req)
	stops := 0
	for i, r := range req.Early {
		e, err := NewEarlyStop(r.Patience, r.InitBest)
		if err != nil {
			t.Fatal(err)
		}
		got := -1
		for ep, loss := range fromPtrs(r.Losses) {
			if _, stop := e.Step(loss); stop {
				got = ep
				break
			}
		}
		if got != resp.Early[i] {
			t.Errorf("case %d (patience %d, init %g): stop after epoch %d, official loop %d", i, r.Patience, r.InitBest, got, resp.Early[i])
		}
		if got >= 0 {
			stops++
		}
	}
	if stops == 0 || stops == len(req.Early) {
		t.Fatalf("%d of %d cases stop: the sequences do not exercise both outcomes", stops, len(req.Early))
	}
}

func TestEarlyStopRule(t *testing.T) {
	// Patience 2: the third epoch in a row without a strict improvement stops.
	e, _ := NewEarlyStop(2, ClassificationInitBest)
	for i, tc := range []struct {
		loss           float64
		improved, stop bool
	}{
		{1, true, false}, {1, false, false}, {0.5, true, false}, {0.5, false, false}, {0.6, false, false}, {0.5, false, true},
	} {
		imp, stop := e.Step(tc.loss)
		if imp != tc.improved || stop != tc.stop {
			t.Fatalf("epoch %d loss %v: improved %v stop %v, want %v %v", i, tc.loss, imp, stop, tc.improved, tc.stop)
		}
	}
	if e.Best != 0.5 || e.BestAt != 2 {
		t.Fatalf("best %v at %d, want 0.5 at 2", e.Best, e.BestAt)
	}
	if _, err := NewEarlyStop(-1, 1); err == nil {
		t.Fatal("negative patience accepted")
	}
}

func TestCosineMatchesTorch(t *testing.T) {
	req := request{Cosine: []cosineReq{
		{Base: 0.1, EtaMin: 0, TMax: 10, LastEpoch: -1, Steps: 45},
		{Base: 2e-4, EtaMin: 1e-6, TMax: 7, LastEpoch: -1, Steps: 50},
		{Base: 1e-3, EtaMin: 0, TMax: 200, LastEpoch: -1, Steps: 420},
		{Base: 0.03, EtaMin: 1e-4, TMax: 1, LastEpoch: -1, Steps: 6},
		{Base: 0.1, EtaMin: 0.001, TMax: 10, LastEpoch: 4, Steps: 20},
	}}
	resp := reference(t, req)
	worst := 0.0
	for i, r := range req.Cosine {
		c, err := NewCosine(r.Base, r.EtaMin, r.TMax, r.LastEpoch)
		if err != nil {
			t.Fatal(err)
		}
		got := []float64{c.LR}
		for range r.Steps {
			got = append(got, c.Step())
		}
		for e := range got {
			d := math.Abs(got[e] - resp.Cosine[i][e])
			worst = max(worst, d)
			if d > 1e-12 {
				t.Fatalf("case %d step %d: lr %.17g, torch %.17g", i, e, got[e], resp.Cosine[i][e])
			}
		}
	}
	t.Logf("CosineAnnealingLR vs torch %s: max |diff| %.3g (tolerance 1e-12)", resp.Torch, worst)
	if _, err := NewCosine(1, 0, 0, -1); err == nil {
		t.Fatal("T_max 0 accepted")
	}
}

func TestAnnealCosineMatchesOfficial(t *testing.T) {
	req := request{Anneal: []annealReq{{Epochs: 200, LR: 1e-3, N: 420}, {Epochs: 7, LR: 0.01, N: 30}, {Epochs: 1, LR: 0.5, N: 3}}}
	resp := reference(t, req)
	worst := 0.0
	for i, r := range req.Anneal {
		for ep := range r.N {
			got := AnnealCosine(ep, r.Epochs, r.LR)
			d := math.Abs(got - resp.Anneal[i][ep])
			worst = max(worst, d)
			if d > 1e-12 {
				t.Fatalf("epochs %d, t %d: %.17g, official %.17g", r.Epochs, ep, got, resp.Anneal[i][ep])
			}
		}
	}
	t.Logf("cosine_anneal_schedule: max |diff| %.3g (tolerance 1e-12)", worst)
	if SegmentationLR(0, 10, 0.1) != 0.1 || SegmentationLR(1, 10, 0.1) != 0.1 || SegmentationLR(2, 10, 0.1) != AnnealCosine(1, 10, 0.1) {
		t.Fatal("SegmentationLR does not lag the schedule by one epoch")
	}
}

func TestPlateauConfigValidate(t *testing.T) {
	bad := OfficialPlateau(10)
	bad.Factor, bad.Mode = 1, "median"
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"factor", "mode"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if OfficialPlateau(10).Patience != 5 {
		t.Fatal("official plateau patience is --patience // 2")
	}
}
