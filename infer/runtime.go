package infer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibEnv names the environment variable that points at libonnxruntime.so.
const LibEnv = "DIRA_ORT_LIB"

// libName is what scripts/setup.sh installs under <repo>/.deps/onnxruntime/.
const libName = "libonnxruntime.so"

// FindLibrary returns the path of the ONNX Runtime shared library, trying in
// order: flagPath, $DIRA_ORT_LIB, configPath, then the place scripts/setup.sh
// installs it (.deps/onnxruntime/ in the repository that holds the current
// folder or the executable). The error lists every place it looked.
func FindLibrary(flagPath, configPath string) (string, error) {
	var tried []string
	for _, c := range []struct{ what, path string }{
		{"--ort-lib", flagPath}, {"$" + LibEnv, os.Getenv(LibEnv)}, {"config", configPath},
	} {
		if c.path == "" {
			continue
		}
		if _, err := os.Stat(c.path); err != nil {
			return "", fmt.Errorf("infer: ONNX Runtime library from %s: %w", c.what, err)
		}
		return c.path, nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, start := range starts {
		for dir := start; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, ".deps", "onnxruntime", libName)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			tried = append(tried, p)
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return "", fmt.Errorf("infer: ONNX Runtime library not found (run `make setup`, or set %s); looked at %d places from %v", LibEnv, len(tried), starts)
}

var (
	envMu   sync.Mutex
	envLib  string
	envRefs int
)

// Start initialises the ONNX Runtime environment with the library at lib.
// It may be called more than once (with the same lib); each Start needs a Stop.
func Start(lib string) error {
	envMu.Lock()
	defer envMu.Unlock()
	if envRefs > 0 {
		if lib != envLib {
			return fmt.Errorf("infer: ONNX Runtime already started with %s, cannot switch to %s", envLib, lib)
		}
		envRefs++
		return nil
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(); err != nil {
		return fmt.Errorf("infer: start ONNX Runtime from %s: %w", lib, err)
	}
	envLib, envRefs = lib, 1
	return nil
}

// Stop releases one Start; the last one destroys the environment.
func Stop() error {
	envMu.Lock()
	defer envMu.Unlock()
	if envRefs == 0 {
		return errors.New("infer: Stop without Start")
	}
	envRefs--
	if envRefs > 0 {
		return nil
	}
	return ort.DestroyEnvironment()
}

// Version reports the version of the running ONNX Runtime library.
func Version() string { return ort.GetVersion() }
