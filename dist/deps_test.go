package dist

import (
	"os/exec"
	"strings"
	"testing"
)

// TestModelAndDataDoNotImportDist: networks and data never know how many
// processes train them (doc.go); only the training layer uses dist.
func TestModelAndDataDoNotImportDist(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "dira/model/...", "dira/data/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list found only %d packages: %s", len(deps), out)
	}
	for _, d := range deps {
		if d == "dira/dist" {
			t.Fatal("dira/model or dira/data depends on dira/dist")
		}
	}
}
