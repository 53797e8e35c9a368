package export

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestCheckJSONNonFinite: a check whose outputs were NaN or infinite is
// written with null, not refused ("json: unsupported value: +Inf" lost
// the whole export report before).
func TestCheckJSONNonFinite(t *testing.T) {
	b, err := json.Marshal(Check{File: "unet.onnx", Output: MaskName, Shape: []int64{2, 1, 64, 64}, MaxAbsDiff: math.Inf(1), MaxAbs: math.NaN()})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"file":"unet.onnx","output":"mask","shape":[2,1,64,64],"max_abs_diff":null,"max_abs_output":null}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(Check{MaxAbsDiff: 2.5e-7, MaxAbs: 0.75})
	if !strings.Contains(string(b), `"max_abs_diff":2.5e-7,"max_abs_output":0.75`) {
		t.Errorf("finite values: %s", b)
	}
}
