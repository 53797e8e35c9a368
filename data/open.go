package data

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// Opening image files. A name in a folder or a list file is not always a
// plain file: a FIFO named x.png blocks the process that opens it until
// some writer shows up, a device may never end, and a file on a hung
// network mount blocks in the kernel. Images are therefore read only from
// regular files, and each read has a deadline; anything else is a bad
// image, handled by the bad_images policy like an undecodable one.

// ReadTimeout is how long reading one image file may take before it counts
// as unreadable. It is generous (a 100 MB file read at under 2 MB/s still
// fits) so that only a stuck read reaches it.
const ReadTimeout = 60 * time.Second

// MaxFileSize is the largest image file read (1 GiB): more than any image
// within the decoders' pixel limit can take, even stored uncompressed at 16
// bits per RGBA sample, so a larger file cannot be one and is not loaded
// into memory.
const MaxFileSize = 1 << 30

var (
	// ErrNotRegular reports an image path that names a FIFO, a device, a
	// socket or a folder rather than a regular file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrReadTimeout reports an image file whose read did not finish
	// within ReadTimeout.
	ErrReadTimeout = errors.New("read timed out")
	// ErrFileTooLarge reports an image file over MaxFileSize.
	ErrFileTooLarge = errors.New("file too large")
)

// ReadFile returns the content of the regular file at path, read within
// ReadTimeout. Errors are *fs.PathError values naming path; a non-regular
// file wraps ErrNotRegular, a read past the deadline ErrReadTimeout, a file
// over MaxFileSize ErrFileTooLarge.
func ReadFile(path string) ([]byte, error) { return readFile(path, ReadTimeout, MaxFileSize) }

func readFile(path string, timeout time.Duration, limit int64) ([]byte, error) {
	// Stat before opening: opening a FIFO without O_NONBLOCK waits for a
	// writer, and opening some devices has effects of its own.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := regular(path, fi); err != nil {
		return nil, err
	}
	// O_NONBLOCK: should the name be swapped for a FIFO after the Stat,
	// the open still returns at once; the Stat of the open file below
	// then refuses it. Regular files ignore the flag.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fi, err = f.Stat(); err == nil {
		err = regular(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() > limit {
		f.Close()
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (%d bytes, limit %d)", ErrFileTooLarge, fi.Size(), limit)}
	}
	return readAll(f, path, fi.Size(), limit, timeout)
}

// regular refuses anything but a regular file, naming what it is.
func regular(path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	what := "special file"
	switch m := fi.Mode(); {
	case m.IsDir():
		what = "folder"
	case m&fs.ModeNamedPipe != 0:
		what = "FIFO"
	case m&fs.ModeSocket != 0:
		what = "socket"
	case m&fs.ModeCharDevice != 0:
		what = "character device"
	case m&fs.ModeDevice != 0:
		what = "device"
	}
	return &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (a %s)", ErrNotRegular, what)}
}

// readAll reads f to its end (at most limit bytes: a file may grow after
// its Stat) and closes it. If that takes longer than timeout it closes f and
// returns ErrReadTimeout: a pollable file's read ends at once, while a read
// stuck in the kernel keeps its goroutine until the kernel returns, but the
// caller (a loader worker) is free again.
func readAll(f *os.File, path string, size, limit int64, timeout time.Duration) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1) // the reader never blocks on sending
	go func() {
		// size+1 so that a file that is as long as it says needs no regrowth
		// (and the final read sees EOF without another allocation).
		buf := make([]byte, 0, min(max(size, 0), limit)+1)
		for {
			n, err := f.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				done <- result{buf, nil}
				return
			}
			if err != nil {
				done <- result{nil, err}
				return
			}
			if int64(len(buf)) > limit {
				done <- result{nil, fmt.Errorf("%w (grew past %d bytes while read)", ErrFileTooLarge, limit)}
				return
			}
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-done:
		f.Close()
		if r.err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: r.err}
		}
		return r.b, nil
	case <-t.C:
		f.Close()
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w after %v", ErrReadTimeout, timeout)}
	}
}
