package torchsave

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"testing"
)

// pk writes pickle opcodes (protocol 2), for crafting files by hand.
type pk struct{ bytes.Buffer }

func (p *pk) op(b ...byte) *pk { p.Write(b); return p }

func (p *pk) str(s string) *pk {
	p.WriteByte('X')
	binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}

func (p *pk) int(v int64) *pk {
	if v >= -1<<31 && v < 1<<31 {
		p.WriteByte('J')
		binary.Write(p, binary.LittleEndian, int32(v))
		return p
	}
	p.op(0x8a, 8)
	binary.Write(p, binary.LittleEndian, v)
	return p
}

func (p *pk) global(mod, name string) *pk {
	p.WriteString("c" + mod + "\n" + name + "\n")
	return p
}

func (p *pk) ints(v []int64) *pk {
	p.op('(')
	for _, x := range v {
		p.int(x)
	}
	return p.op('t')
}

// view is one tensor of a crafted state_dict.
type view struct {
	name, storage, dtype string // dtype: "FloatStorage", ...
	numel, offset        int64  // the storage's declared elements; the view's offset
	size, stride         []int64
}

// stateDict pickles an OrderedDict of the views, each storage by a
// persistent id as torch.save's zip layout writes it.
func stateDict(vs []view) []byte {
	var p pk
	p.op(0x80, 2)
	p.global("collections", "OrderedDict").op(')', 'R')
	p.op('(')
	for _, v := range vs {
		p.str(v.name)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.op('(')
		p.op('(').str("storage").global("torch", v.dtype).str(v.storage).str("cpu").int(v.numel).op('t', 'Q')
		p.int(v.offset).ints(v.size).ints(v.stride).op(0x89) // requires_grad False
		p.global("collections", "OrderedDict").op(')', 'R')  // backward hooks
		p.op('t', 'R')
	}
	p.op('u', '.')
	return p.Bytes()
}

// zipFile writes a torch.save zip archive "archive/" of data.pkl and the
// given records (name under archive/data/ -> bytes).
func zipFile(t testing.TB, pkl []byte, method uint16, records map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	add := func(name string, body []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(body)
	}
	add("data.pkl", pkl)
	for k, v := range records {
		add("data/"+k, v)
	}
	add("version", []byte("3\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func f32bytes(v ...float32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, v)
	return b.Bytes()
}
