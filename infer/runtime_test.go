package infer

import (
	"strings"
	"testing"
)

func TestStartReportsVersion(t *testing.T) {
	lib, err := FindLibrary("", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := Start(lib); err != nil {
		t.Fatal(err)
	}
	defer Stop()
	if v := Version(); !strings.HasPrefix(v, "1.27") {
		t.Fatalf("Version() = %q, want 1.27.x (the pinned onnxruntime-node)", v)
	}
}

func TestFindLibraryNamesBadFlag(t *testing.T) {
	_, err := FindLibrary("/nonexistent/libonnxruntime.so", "")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/libonnxruntime.so") {
		t.Fatalf("err = %v, want it to name the missing path", err)
	}
}
