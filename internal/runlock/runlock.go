package runlock

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FileName is the lock file's name inside the locked folder.
const FileName = ".lock"

// Holder is who holds (or held) a lock.
type Holder struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

func (h Holder) String() string {
	return fmt.Sprintf("PID %d on host %s, since %s", h.PID, h.Host, h.Since.Local().Format("2006-01-02 15:04:05"))
}

// ErrHeld is matched (errors.Is) by a *HeldError.
var ErrHeld = errors.New("held by another process")

// HeldError is Acquire's error when another live process holds the lock.
type HeldError struct {
	Dir    string
	Holder Holder // zero when the holder had not written its details yet
}

func (e *HeldError) Error() string {
	who := "another process (which has not written its PID yet)"
	if e.Holder.PID != 0 {
		who = "dira " + e.Holder.String()
	}
	return fmt.Sprintf("run folder %s is in use by %s; wait for it to finish or stop it, or use another run folder (--run-dir)", e.Dir, who)
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Lock is a held lock on a folder.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the lock of folder dir, which must exist, without waiting:
// when a live process holds it, the error is a *HeldError naming that
// process. stale is the holder recorded in a lock file that its process
// left behind (it ended without releasing the lock), nil when there was
// none; the lock is then taken over.
func Acquire(dir string) (l *Lock, stale *Holder, err error) {
	path := filepath.Join(dir, FileName)
	host, _ := os.Hostname()
	// A holder that releases removes the file after we opened it: we would
	// then lock a file no longer in the folder, so check and start again.
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("runlock: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			defer f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				// The holder writes its details just after taking the lock.
				h := readHolder(f)
				for i := 0; i < 10 && h.PID == 0; i++ {
					time.Sleep(20 * time.Millisecond)
					h = readHolder(f)
				}
				return nil, nil, &HeldError{Dir: dir, Holder: h}
			}
			return nil, nil, fmt.Errorf("runlock: lock %s: %w", path, err)
		}
		if !samePath(f, path) {
			f.Close()
			continue
		}
		if prev := readHolder(f); prev.PID != 0 {
			stale = &prev
		}
		me := Holder{PID: os.Getpid(), Host: host, Since: time.Now().UTC().Truncate(time.Second)}
		b, _ := json.Marshal(me)
		if err := writeAt0(f, append(b, '\n')); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("runlock: %s: %w", path, err)
		}
		return &Lock{f: f, path: path}, stale, nil
	}
	return nil, nil, fmt.Errorf("runlock: %s keeps changing; is another process locking and unlocking it?", path)
}

// Release removes the lock file and drops the lock. It is safe to call on
// a nil Lock and more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Remove while still holding the flock: a process that opened the file
	// meanwhile finds, once it gets the flock, that the path is gone.
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err != nil {
		return fmt.Errorf("runlock: release: %w", err)
	}
	return nil
}

// readHolder reads the details a holder wrote; a zero Holder if there are
// none (yet) or they are unreadable.
func readHolder(f *os.File) Holder {
	var h Holder
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err == nil {
		json.Unmarshal(b, &h)
	}
	return h
}

func writeAt0(f *os.File, b []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}

// samePath reports whether the open file f is still the file at path.
func samePath(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}
