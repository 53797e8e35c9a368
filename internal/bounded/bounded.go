package bounded

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"math"
)

// DeflateRatio bounds how many bytes DEFLATE (RFC 1951) can produce per
// compressed byte: the longest match, 258 bytes, costs at least two bits
// (a one-bit length code and a one-bit distance code in a dynamic block), so
// one byte yields at most 4 x 258 = 1032 bytes.
const DeflateRatio = 1032

// ErrOverflow reports a shape whose element count does not fit an int64.
var ErrOverflow = errors.New("element count overflows")

// Numel is the product of dims, refusing negative dimensions and products
// (times elemBytes, the size of one element) that overflow an int64.
func Numel(dims []int64, elemBytes int64) (int64, error) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in %v", d, dims)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("shape %v: %w", dims, ErrOverflow)
		}
		n *= d
	}
	if elemBytes > 0 && n > math.MaxInt64/elemBytes {
		return 0, fmt.Errorf("shape %v of %d-byte elements: %w", dims, elemBytes, ErrOverflow)
	}
	return n, nil
}

// Ints converts int dimensions to int64 (for callers whose shapes are int).
func Ints(dims []int) []int64 {
	out := make([]int64, len(dims))
	for i, d := range dims {
		out[i] = int64(d)
	}
	return out
}

// Entry returns the number of bytes zip entry f decompresses to, after
// checking that its compressed bytes lie inside the archive of archiveSize
// bytes and can produce that many: equal for a stored entry, at most
// DeflateRatio times for a deflated one. The archive/zip reader then never
// yields more than this (it fails with zip.ErrFormat), and fails with
// io.ErrUnexpectedEOF when the entry holds less.
func Entry(f *zip.File, archiveSize int64) (int64, error) {
	off, err := f.DataOffset()
	if err != nil {
		return 0, fmt.Errorf("entry %s: %w", f.Name, err)
	}
	c, u := f.CompressedSize64, f.UncompressedSize64
	if off < 0 || off > archiveSize || c > uint64(archiveSize-off) {
		return 0, fmt.Errorf("entry %s: truncated: %d compressed bytes at offset %d, the archive has %d", f.Name, c, off, archiveSize)
	}
	switch f.Method {
	case zip.Store:
		if u != c {
			return 0, fmt.Errorf("entry %s: stored, but declares %d bytes for %d stored bytes", f.Name, u, c)
		}
	case zip.Deflate:
		if c < math.MaxUint64/DeflateRatio && u > c*DeflateRatio {
			return 0, fmt.Errorf("entry %s: declares %d bytes, more than its %d deflated bytes can hold", f.Name, u, c)
		}
	default:
		return 0, fmt.Errorf("entry %s: compression method %d (only stored and deflated entries are read): %w", f.Name, f.Method, zip.ErrAlgorithm)
	}
	if u > math.MaxInt64 {
		return 0, fmt.Errorf("entry %s: size %d: %w", f.Name, u, ErrOverflow)
	}
	return int64(u), nil
}

// End checks that r, a reader that has delivered all the bytes its owner
// wanted, is at its end: reading on reaches io.EOF, which is also when the
// archive/zip reader verifies an entry's CRC-32. Bytes beyond are an error.
func End(r io.Reader) error {
	var b [1]byte
	for range 100 {
		n, err := r.Read(b[:])
		if n > 0 {
			return errors.New("more data than the header declares")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}
