package data

import (
	"encoding/binary"
	"errors"
	"hash/adler32"
)

// This file is a DEFLATE (RFC 1951) decoder inside a zlib (RFC 1950) wrapper,
// specialised for PNG: the compressed stream is in memory and the exact size of
// the output is known from the image header. That allows what compress/flate
// cannot do through its io.Reader interface: decode straight into the final
// buffer (back-references point into it, no sliding window), read the input 64
// bits at a time, and resolve most Huffman codes with one table lookup. On
// radiograph PNGs it is about twice as fast as compress/zlib.

var (
	errInflateCorrupt   = errors.New("corrupt deflate data")
	errInflateTruncated = errors.New("truncated deflate data")
	errInflateSize      = errors.New("decompressed size does not match the image header")
	errInflateTrailing  = errors.New("data after the zlib stream")
)

// Huffman table entries are uint32:
//
//	bits 0-4   bits to consume (code length, or the primary bits for a link)
//	bits 5-7   kind
//	bits 8-12  extra bits to read after the code (length/distance), or the
//	           index bits of a subtable (link)
//	bits 16-31 value: literal byte (two bytes, first in the low byte, for
//	           kindLiteral2), base length, base distance, subtable offset
//
// kindLiteral and kindLiteral2 are 1 and 2, the number of bytes they produce.
const (
	kindInvalid = iota
	kindLiteral
	kindLiteral2 // two literals whose codes together fit the primary table
	kindLength
	kindEnd
	kindLink
	kindDist
)

const (
	litPrimaryBits  = 11
	distPrimaryBits = 8
	codeLenBits     = 7
)

func entry(nbits, kind, extra, value uint32) uint32 {
	return nbits | kind<<5 | extra<<8 | value<<16
}

var (
	lengthBase  = [29]uint32{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint32{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint32{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint32{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// Order in which code-length code lengths are stored (RFC 1951 3.2.7).
	codeLenOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

func litEntry(sym int, n uint32) uint32 {
	switch {
	case sym < 256:
		return entry(n, kindLiteral, 0, uint32(sym))
	case sym == 256:
		return entry(n, kindEnd, 0, 0)
	case sym <= 285:
		return entry(n, kindLength, lengthExtra[sym-257], lengthBase[sym-257])
	}
	return entry(n, kindInvalid, 0, 0) // 286, 287: never valid in data
}

func distEntry(sym int, n uint32) uint32 {
	if sym < 30 {
		return entry(n, kindDist, distExtra[sym], distBase[sym])
	}
	return entry(n, kindInvalid, 0, 0)
}

func codeLenEntry(sym int, n uint32) uint32 { return entry(n, kindLiteral, 0, uint32(sym)) }

// buildTable builds a lookup table for the canonical Huffman code with the given
// code lengths (0 = unused symbol). Codes up to primary bits resolve in one
// lookup of the low primary bits of the (LSB-first) input; longer codes go
// through a link to a subtable. Over-subscribed codes are rejected, and so are
// incomplete ones, as compress/flate rejects them, except the two it accepts:
// no code at all (an unused distance code) and a single code of one bit
// (RFC 1951 allows a distance code with one symbol; zlib writes it with one
// bit). The fixed distance code, 30 of 32 five-bit codes, is built with
// incomplete set.
//
// scratch, if large enough, is reused for the table.
func buildTable(lengths []uint8, primary uint, mk func(sym int, n uint32) uint32, scratch []uint32) ([]uint32, error) {
	return buildTableOf(lengths, primary, mk, scratch, false)
}

func buildTableOf(lengths []uint8, primary uint, mk func(sym int, n uint32) uint32, scratch []uint32, incomplete bool) ([]uint32, error) {
	var count [16]int
	for _, l := range lengths {
		count[l]++
	}
	count[0] = 0
	left, codes := 1, 0
	for l := 1; l < 16; l++ {
		left = left<<1 - count[l]
		codes += count[l]
		if left < 0 {
			return nil, errInflateCorrupt
		}
	}
	if left > 0 && !incomplete && codes > 0 && !(codes == 1 && count[1] == 1) {
		return nil, errInflateCorrupt
	}
	// First code of each length (RFC 1951 3.2.2).
	var next [16]uint32
	code := uint32(0)
	for l := 1; l < 16; l++ {
		next[l] = code
		code = (code + uint32(count[l])) << 1
	}
	// Codes, bit-reversed for LSB-first reading.
	rev := make([]uint32, len(lengths))
	for s, l := range lengths {
		if l == 0 {
			continue
		}
		c := next[l]
		next[l]++
		r := uint32(0)
		for i := uint8(0); i < l; i++ {
			r = r<<1 | (c>>i)&1
		}
		rev[s] = r
	}
	// Subtable sizes per primary prefix.
	pmask := uint32(1)<<primary - 1
	size := 1 << primary
	subBits := make([]uint, 1<<primary) // 0: no subtable for this prefix
	for s, l := range lengths {
		if uint(l) > primary {
			p := rev[s] & pmask
			subBits[p] = max(subBits[p], uint(l)-primary)
		}
	}
	offsets := make([]int, 1<<primary)
	for p, b := range subBits {
		if b > 0 {
			offsets[p] = size
			size += 1 << b
		}
	}
	var t []uint32
	if cap(scratch) >= size {
		t = scratch[:size]
		clear(t)
	} else {
		t = make([]uint32, size)
	}
	for p, b := range subBits {
		if b > 0 {
			t[p] = entry(uint32(primary), kindLink, uint32(b), uint32(offsets[p]))
		}
	}
	for s, l := range lengths {
		if l == 0 {
			continue
		}
		if uint(l) <= primary {
			e := mk(s, uint32(l))
			for i := rev[s]; i < 1<<primary; i += 1 << l {
				t[i] = e
			}
			continue
		}
		p := rev[s] & pmask
		sb, off := subBits[p], offsets[p]
		n := uint(l) - primary
		e := mk(s, uint32(n))
		for i := rev[s] >> primary; i < 1<<sb; i += 1 << n {
			t[off+int(i)] = e
		}
	}
	return t, nil
}

// pairLiterals turns primary entries that decode a literal into double-literal
// entries wherever the next code is also a literal and both codes fit the
// primary bits: PNG rows after filtering are mostly small residuals with short
// codes, so this halves the lookups. Entry i's second code starts at bit l1,
// so it is entry i>>l1 when that code is short enough not to depend on the
// (unknown) bits above the primary width. Going down from the top, every entry
// read (i>>l1 < i) is still a single-literal entry.
func pairLiterals(t []uint32, primary uint) {
	for i := 1<<primary - 1; i >= 0; i-- {
		e := t[i]
		if (e>>5)&7 != kindLiteral {
			continue
		}
		l1 := e & 31
		if uint(l1) >= primary {
			continue
		}
		e2 := t[i>>l1]
		l2 := e2 & 31
		if (e2>>5)&7 != kindLiteral || uint(l1+l2) > primary {
			continue
		}
		t[i] = entry(l1+l2, kindLiteral2, 0, e>>16|(e2>>16)<<8)
	}
}

// Fixed Huffman tables (RFC 1951 3.2.6), built once; never modified.
var fixedLit, fixedDist = func() ([]uint32, []uint32) {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	lit, err := buildTable(l[:], litPrimaryBits, litEntry, nil)
	if err != nil {
		panic(err)
	}
	pairLiterals(lit, litPrimaryBits)
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	dist, err := buildTableOf(d[:], distPrimaryBits, distEntry, nil, true)
	if err != nil {
		panic(err)
	}
	return lit, dist
}()

// bitReader reads bits LSB-first from an in-memory buffer. Past the end it
// supplies zero bytes, counting them; reading more than it supplied is an error
// detected by the caller with overrun.
type bitReader struct {
	in    []byte
	pos   int // next byte of in to load (may exceed len(in) by the padding count)
	buf   uint64
	nbits uint
}

// refill tops the bit buffer up to at least 56 bits.
func (b *bitReader) refill() {
	if b.pos+8 <= len(b.in) {
		b.buf |= binary.LittleEndian.Uint64(b.in[b.pos:]) << b.nbits
		b.pos += int(63-b.nbits) >> 3
		b.nbits |= 56
		return
	}
	for b.nbits <= 56 {
		if b.pos < len(b.in) {
			b.buf |= uint64(b.in[b.pos]) << b.nbits
		}
		b.pos++
		b.nbits += 8
	}
}

// overrun reports whether more bits were consumed than the input holds.
func (b *bitReader) overrun() bool {
	return b.pos*8-int(b.nbits) > len(b.in)*8
}

func (b *bitReader) bits(n uint) uint32 {
	if b.nbits < n {
		b.refill()
	}
	v := uint32(b.buf & (1<<n - 1))
	b.buf >>= n
	b.nbits -= n
	return v
}

// decodeSym reads one symbol with table t (primary bits p). The buffer must
// hold at least 15 bits.
func (b *bitReader) decodeSym(t []uint32, p uint) uint32 {
	e := t[b.buf&(1<<p-1)]
	if (e>>5)&7 == kindLink {
		b.buf >>= p
		b.nbits -= p
		e = t[e>>16+uint32(b.buf&(1<<((e>>8)&31)-1))]
	}
	n := uint(e & 31)
	b.buf >>= n
	b.nbits -= n
	return e
}

// zlibInflate decompresses a zlib stream into out, which must be exactly the
// decompressed size, and verifies the Adler-32 checksum.
func zlibInflate(in, out []byte) error {
	if len(in) < 2 {
		return errInflateTruncated
	}
	cmf, flg := in[0], in[1]
	if cmf&0x0f != 8 || cmf>>4 > 7 || (uint16(cmf)<<8|uint16(flg))%31 != 0 {
		return errors.New("invalid zlib header")
	}
	if flg&0x20 != 0 {
		return errors.New("zlib preset dictionary not supported")
	}
	br := bitReader{in: in, pos: 2}
	n, err := inflate(&br, out)
	if err != nil {
		return err
	}
	if n != len(out) {
		return errInflateSize
	}
	// The Adler-32 trailer starts at the next byte boundary, and ends the
	// input: bytes after it are left to image/png to judge (it accepts or
	// refuses them depending on how far its reader has read ahead).
	consumed := br.pos - int(br.nbits/8)
	if consumed+4 > len(in) {
		return errInflateTruncated
	}
	if consumed+4 < len(in) {
		return errInflateTrailing
	}
	if binary.BigEndian.Uint32(in[consumed:]) != adler32.Checksum(out) {
		return errors.New("zlib checksum mismatch")
	}
	return nil
}

// inflate decodes raw DEFLATE blocks into out and returns the bytes written.
// Output beyond len(out) is an error (errInflateSize).
func inflate(br *bitReader, out []byte) (int, error) {
	op := 0
	var lens [320]uint8
	var litBuf, distBuf, clBuf []uint32 // table memory reused across blocks
	for {
		br.refill()
		final := br.bits(1)
		btype := br.bits(2)
		var lit, dist []uint32
		switch btype {
		case 0:
			// Stored block: skip to the byte boundary, then LEN, NLEN, bytes.
			br.bits(br.nbits % 8)
			br.pos -= int(br.nbits / 8) // give back whole buffered bytes
			br.buf, br.nbits = 0, 0
			if br.pos+4 > len(br.in) {
				return op, errInflateTruncated
			}
			n := int(binary.LittleEndian.Uint16(br.in[br.pos:]))
			if uint16(n) != ^binary.LittleEndian.Uint16(br.in[br.pos+2:]) {
				return op, errInflateCorrupt
			}
			br.pos += 4
			if br.pos+n > len(br.in) {
				return op, errInflateTruncated
			}
			if op+n > len(out) {
				return op, errInflateSize
			}
			copy(out[op:], br.in[br.pos:br.pos+n])
			op += n
			br.pos += n
			if final == 1 {
				return op, nil
			}
			continue
		case 1:
			lit, dist = fixedLit, fixedDist
		case 2:
			hlit := int(br.bits(5)) + 257
			hdist := int(br.bits(5)) + 1
			hclen := int(br.bits(4)) + 4
			if hlit > 286 || hdist > 30 {
				return op, errInflateCorrupt
			}
			var cl [19]uint8
			for i := 0; i < hclen; i++ {
				cl[codeLenOrder[i]] = uint8(br.bits(3))
			}
			clt, err := buildTable(cl[:], codeLenBits, codeLenEntry, clBuf)
			clBuf = clt
			if err != nil {
				return op, err
			}
			for i := 0; i < hlit+hdist; {
				br.refill()
				e := br.decodeSym(clt, codeLenBits)
				if (e>>5)&7 != kindLiteral {
					return op, errInflateCorrupt
				}
				sym := e >> 16
				switch {
				case sym < 16:
					lens[i] = uint8(sym)
					i++
					continue
				case sym == 16:
					if i == 0 {
						return op, errInflateCorrupt
					}
					n := 3 + int(br.bits(2))
					if i+n > hlit+hdist {
						return op, errInflateCorrupt
					}
					for ; n > 0; n-- {
						lens[i] = lens[i-1]
						i++
					}
				default:
					var n int
					if sym == 17 {
						n = 3 + int(br.bits(3))
					} else {
						n = 11 + int(br.bits(7))
					}
					if i+n > hlit+hdist {
						return op, errInflateCorrupt
					}
					for ; n > 0; n-- {
						lens[i] = 0
						i++
					}
				}
			}
			if lens[256] == 0 {
				return op, errInflateCorrupt // no end-of-block code
			}
			lit, err = buildTable(lens[:hlit], litPrimaryBits, litEntry, litBuf)
			if err != nil {
				return op, err
			}
			pairLiterals(lit, litPrimaryBits)
			dist, err = buildTable(lens[hlit:hlit+hdist], distPrimaryBits, distEntry, distBuf)
			if err != nil {
				return op, err
			}
			litBuf, distBuf = lit, dist
		default:
			return op, errInflateCorrupt
		}
		if br.overrun() {
			return op, errInflateTruncated
		}
		var err error
		op, err = inflateBlock(br, out, op, lit, dist)
		if err != nil {
			return op, err
		}
		if br.overrun() {
			return op, errInflateTruncated
		}
		if final == 1 {
			return op, nil
		}
	}
}

// inflateBlock decodes one Huffman-coded block. It is the decoder's hot loop:
// the bit buffer lives in local variables, and after each refill up to four
// primary-table literal entries (one or two bytes each) are decoded.
func inflateBlock(br *bitReader, out []byte, op int, lit, dist []uint32) (int, error) {
	in, pos, buf, nbits := br.in, br.pos, br.buf, br.nbits
	const litMask = 1<<litPrimaryBits - 1
	const distMask = 1<<distPrimaryBits - 1
	var err error
	for {
		// Refill to at least 56 bits: enough for four primary entries (11 bits
		// each), or for a length code (15 bits) with its extra bits (5) and a
		// distance code (15) with its extra bits (13).
		if pos+8 <= len(in) {
			buf |= binary.LittleEndian.Uint64(in[pos:]) << nbits
			pos += int(63-nbits) >> 3
			nbits |= 56
		} else {
			if pos > len(in)+16 {
				err = errInflateTruncated
				break
			}
			br.pos, br.buf, br.nbits = pos, buf, nbits
			br.refill()
			pos, buf, nbits = br.pos, br.buf, br.nbits
		}
		e := lit[buf&litMask]
		if k := (e >> 5) & 7; k == kindLiteral || k == kindLiteral2 {
			for range 4 {
				if op+2 <= len(out) {
					// Two bytes are always stored; a single literal's second byte
					// is overwritten by the next output.
					out[op] = byte(e >> 16)
					out[op+1] = byte(e >> 24)
				} else if op+int(k) <= len(out) {
					out[op] = byte(e >> 16)
				} else {
					err = errInflateSize
					break
				}
				op += int(k)
				n := uint(e & 31)
				buf >>= n
				nbits -= n
				e = lit[buf&litMask]
				if k = (e >> 5) & 7; k != kindLiteral && k != kindLiteral2 {
					break
				}
			}
			if err != nil {
				break
			}
			continue
		}
		if (e>>5)&7 == kindLink {
			buf >>= litPrimaryBits
			nbits -= litPrimaryBits
			e = lit[e>>16+uint32(buf&(1<<((e>>8)&31)-1))]
		}
		n := uint(e & 31)
		buf >>= n
		nbits -= n
		switch (e >> 5) & 7 {
		case kindLiteral: // a long literal code, from a subtable
			if op >= len(out) {
				err = errInflateSize
				break
			}
			out[op] = byte(e >> 16)
			op++
			continue
		case kindLength:
			ex := (e >> 8) & 31
			length := int(e>>16 + uint32(buf&(1<<ex-1)))
			buf >>= ex
			nbits -= uint(ex)
			d := dist[buf&distMask]
			if (d>>5)&7 == kindLink {
				buf >>= distPrimaryBits
				nbits -= distPrimaryBits
				d = dist[d>>16+uint32(buf&(1<<((d>>8)&31)-1))]
			}
			dn := uint(d & 31)
			buf >>= dn
			nbits -= dn
			if (d>>5)&7 != kindDist {
				err = errInflateCorrupt
				break
			}
			dx := (d >> 8) & 31
			distance := int(d>>16 + uint32(buf&(1<<dx-1)))
			buf >>= dx
			nbits -= uint(dx)
			if distance > op {
				err = errInflateCorrupt
				break
			}
			if op+length > len(out) {
				err = errInflateSize
				break
			}
			src := op - distance
			if distance >= length {
				copy(out[op:op+length], out[src:src+length])
			} else {
				// An overlapping copy repeats the last distance bytes: copy the
				// run written so far, doubling it each step.
				for done := 0; done < length; {
					done += copy(out[op+done:op+length], out[src:op+done])
				}
			}
			op += length
			continue
		case kindEnd:
		default:
			err = errInflateCorrupt
		}
		break
	}
	br.pos, br.buf, br.nbits = pos, buf, nbits
	return op, err
}
