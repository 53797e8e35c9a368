package export

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strconv"

	"dira/statedict"
)

// The layout torch.save (PyTorch >= 1.6, "zipfile serialization") writes and
// torch.load reads, as PyTorch 1.13 produces it:
//
//	archive/data.pkl   pickle (protocol 2) of the object; tensors are
//	                   torch._utils._rebuild_tensor_v2 calls whose storage is
//	                   a persistent id ('storage', torch.FloatStorage, key,
//	                   'cpu', numel)
//	archive/data/<key> the storage's raw little-endian bytes
//	archive/version    "3\n", the format version
//
// Entries are stored uncompressed. PyTorch pads each local header with an
// extra field ("FB" + 'Z's) so that data starts on a 64-byte boundary, which
// lets readers map storages in place; WritePTH does the same. torch.load
// takes the folder name ("archive") from the first entry.
const (
	pthRoot      = "archive"
	pthAlign     = 64
	pthVersion   = "3\n"
	zipLocalHead = 30     // fixed part of a zip local file header
	zipExtraFB   = 0x4246 // "FB", PyTorch's padding extra field id
)

// WritePTH writes sd as torch.save(OrderedDict) would: torch.load returns an
// OrderedDict of CPU tensors with sd's names, shapes, dtypes and order; 0-d
// entries (num_batches_tracked) come back 0-d. The keys are written as they
// are; rename them first (transfer.Classification.StateDict, transfer.UNet.StateDict).
func WritePTH(w io.Writer, sd statedict.StateDict) error {
	for _, t := range sd {
		if err := t.Check(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	z := zip.NewWriter(w)
	var offset int64 // where the next local header starts
	add := func(name string, data []byte) error {
		name = pthRoot + "/" + name
		// Pad the header so the data starts at a multiple of pthAlign.
		start := offset + zipLocalHead + int64(len(name)) + 4
		pad := (pthAlign - start%pthAlign) % pthAlign
		extra := make([]byte, 4+pad)
		binary.LittleEndian.PutUint16(extra, zipExtraFB)
		binary.LittleEndian.PutUint16(extra[2:], uint16(pad))
		for i := 4; i < len(extra); i++ {
			extra[i] = 'Z'
		}
		// CreateRaw with the sizes and CRC known up front writes no data
		// descriptor, so offsets are exactly header + data.
		fw, err := z.CreateRaw(&zip.FileHeader{
			Name:               name,
			Method:             zip.Store,
			Extra:              extra,
			CRC32:              crc32.ChecksumIEEE(data),
			CompressedSize64:   uint64(len(data)),
			UncompressedSize64: uint64(len(data)),
		})
		if err != nil {
			return fmt.Errorf("export: pth entry %s: %w", name, err)
		}
		if _, err := fw.Write(data); err != nil {
			return fmt.Errorf("export: pth entry %s: %w", name, err)
		}
		offset += zipLocalHead + int64(len(name)) + int64(len(extra)) + int64(len(data))
		return nil
	}
	if err := add("data.pkl", statePickle(sd)); err != nil {
		return err
	}
	for i, t := range sd {
		if err := add("data/"+strconv.Itoa(i), storageBytes(t)); err != nil {
			return err
		}
	}
	if err := add("version", []byte(pthVersion)); err != nil {
		return err
	}
	if err := z.Close(); err != nil {
		return fmt.Errorf("export: pth: %w", err)
	}
	return nil
}

// storageBytes is the tensor's storage as torch writes it: little-endian
// elements, one storage per tensor, offset 0.
func storageBytes(t statedict.Tensor) []byte {
	if t.DType == statedict.Int64 {
		b := make([]byte, 8*len(t.I64))
		for i, v := range t.I64 {
			binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
		}
		return b
	}
	b := make([]byte, 4*len(t.F32))
	for i, v := range t.F32 {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// Pickle opcodes (Python's Lib/pickle.py; protocol 2 is what torch.save uses).
const (
	opProto      = 0x80
	opGlobal     = 'c'
	opEmptyTuple = ')'
	opReduce     = 'R'
	opMark       = '('
	opTuple      = 't'
	opTuple1     = 0x85
	opTuple2     = 0x86
	opTuple3     = 0x87
	opBinUnicode = 'X'
	opBinInt1    = 'K'
	opBinInt2    = 'M'
	opBinInt     = 'J'
	opLong1      = 0x8a
	opBinPersID  = 'Q'
	opNewFalse   = 0x89
	opSetItems   = 'u'
	opStop       = '.'
)

// pickler emits the few opcodes a state_dict needs. It keeps no memo:
// repeated globals are written again, which unpicklers accept.
type pickler struct{ bytes.Buffer }

func (p *pickler) global(module, name string) {
	p.WriteByte(opGlobal)
	p.WriteString(module + "\n" + name + "\n")
}

func (p *pickler) str(s string) {
	p.WriteByte(opBinUnicode)
	p.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
	p.WriteString(s)
}

func (p *pickler) int(v int64) {
	switch {
	case v >= 0 && v < 1<<8:
		p.WriteByte(opBinInt1)
		p.WriteByte(byte(v))
	case v >= 0 && v < 1<<16:
		p.WriteByte(opBinInt2)
		p.Write(binary.LittleEndian.AppendUint16(nil, uint16(v)))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		p.WriteByte(opBinInt)
		p.Write(binary.LittleEndian.AppendUint32(nil, uint32(int32(v))))
	default: // LONG1: little-endian two's complement, 8 bytes is always enough
		p.WriteByte(opLong1)
		p.WriteByte(8)
		p.Write(binary.LittleEndian.AppendUint64(nil, uint64(v)))
	}
}

// tuple writes a tuple of ints.
func (p *pickler) tuple(vs []int64) {
	if len(vs) == 0 {
		p.WriteByte(opEmptyTuple)
		return
	}
	if len(vs) > 3 {
		p.WriteByte(opMark)
	}
	for _, v := range vs {
		p.int(v)
	}
	switch len(vs) {
	case 1:
		p.WriteByte(opTuple1)
	case 2:
		p.WriteByte(opTuple2)
	case 3:
		p.WriteByte(opTuple3)
	default:
		p.WriteByte(opTuple)
	}
}

// emptyOrderedDict writes collections.OrderedDict().
func (p *pickler) emptyOrderedDict() {
	p.global("collections", "OrderedDict")
	p.WriteByte(opEmptyTuple)
	p.WriteByte(opReduce)
}

// statePickle is data.pkl for sd: OrderedDict((name,
// _rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())), ...),
// tensor i stored in data/<i>.
func statePickle(sd statedict.StateDict) []byte {
	var p pickler
	p.WriteByte(opProto)
	p.WriteByte(2)
	p.emptyOrderedDict()
	p.WriteByte(opMark)
	for i, t := range sd {
		p.str(t.Name)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.WriteByte(opMark)
		// The storage: a persistent id the unpickler resolves to data/<key>.
		p.WriteByte(opMark)
		p.str("storage")
		if t.DType == statedict.Int64 {
			p.global("torch", "LongStorage")
		} else {
			p.global("torch", "FloatStorage")
		}
		p.str(strconv.Itoa(i))
		p.str("cpu")
		p.int(t.Numel())
		p.WriteByte(opTuple)
		p.WriteByte(opBinPersID)
		p.int(0) // storage offset
		p.tuple(t.Shape)
		p.tuple(contiguousStrides(t.Shape))
		p.WriteByte(opNewFalse) // requires_grad
		p.emptyOrderedDict()    // backward hooks
		p.WriteByte(opTuple)
		p.WriteByte(opReduce)
	}
	p.WriteByte(opSetItems)
	p.WriteByte(opStop)
	return p.Bytes()
}

// contiguousStrides are C-order strides in elements.
func contiguousStrides(shape []int64) []int64 {
	s := make([]int64, len(shape))
	acc := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}
