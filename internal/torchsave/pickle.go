package torchsave

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// This file is a pickle machine (Python's Lib/pickle.py and the opcode
// documentation in Lib/pickletools.py; protocols 0 to 5) over a byte slice.
// It builds plain Go values and calls nothing: see Global and Object.

// Values the machine builds: nil (None), bool, int64, *big.Int (beyond
// int64), float64, string, []byte (bytes, bytearray), Tuple, *List (lists
// and sets), *Dict, Global, *Object, and what the torch layer makes of
// persistent ids and the callables it knows (*Storage, *Tensor).

// Tuple is a Python tuple.
type Tuple []any

// List is a Python list (or set: the order of insertion is kept, duplicates
// are not removed).
type List struct{ Items []any }

// Dict is a Python dict or collections.OrderedDict, in insertion order. Keys
// are hashable values: None, bool, int, float, str, bytes, and tuples of
// them; a key set twice keeps its first position and its last value, as in
// Python.
type Dict struct {
	Keys, Values []any
	Ordered      bool // made by collections.OrderedDict
	index        map[any]int
}

// Get returns the value of a string key.
func (d *Dict) Get(key string) (any, bool) {
	i, ok := d.index[key]
	if !ok {
		return nil, false
	}
	return d.Values[i], true
}

func (d *Dict) set(k, v any) error {
	budget := maxKeyItems
	h, err := hashKey(k, &budget)
	if err != nil {
		return err
	}
	if d.index == nil {
		d.index = map[any]int{}
	}
	if i, ok := d.index[h]; ok {
		d.Values[i] = v
		return nil
	}
	d.index[h] = len(d.Keys)
	d.Keys = append(d.Keys, k)
	d.Values = append(d.Values, v)
	return nil
}

// Global is a class or function the pickle names (GLOBAL, STACK_GLOBAL).
type Global struct{ Module, Name string }

func (g Global) String() string { return g.Module + "." + g.Name }

// Object is what calling or instantiating a Global the machine does not
// interpret would have made: the call is recorded, not made. Items and
// Dict collect what the pickle appends or sets on it (defaultdict, ...).
type Object struct {
	Class Global
	Args  []any
	State any
	Items *List
	Dict  *Dict
}

// bigKey and tupleKey make hashable map keys of big ints and tuples.
type bigKey string
type tupleKey string
type bytesKey string
type noneKey struct{}

// maxKeyItems bounds the values in one dict key, nested tuples included:
// hashing costs the key's size at every insertion, and state_dicts use
// strings (optimizers small ints), so a pickle of a few megabytes cannot
// make a dict cost minutes.
const maxKeyItems = 256

// hashKey maps a dict key to a comparable Go value; unhashable keys (lists,
// dicts, objects) and tuple keys of more than maxKeyItems values in all are
// refused. budget counts the values left.
func hashKey(k any, budget *int) (any, error) {
	if *budget--; *budget < 0 {
		return nil, errors.New("dict key: a tuple of too many values")
	}
	switch v := k.(type) {
	case nil:
		return noneKey{}, nil
	case bool, int64, float64, string, Global:
		return v, nil
	case *big.Int:
		return bigKey(v.String()), nil
	case []byte:
		return bytesKey(v), nil
	case *Storage, *Tensor:
		return v, nil
	case Tuple:
		var b strings.Builder
		for _, e := range v {
			h, err := hashKey(e, budget)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(&b, "%T:%v\x00", h, h)
		}
		return tupleKey(b.String()), nil
	}
	return nil, fmt.Errorf("dict key of type %s is not hashable", typeName(k))
}

// typeName names a value's Python-side type for error messages.
func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case Tuple:
		return "tuple"
	case *List:
		return "list"
	case *Dict:
		if x.Ordered {
			return "OrderedDict"
		}
		return "dict"
	case Global:
		return "global " + x.String()
	case *Object:
		return x.Class.String() + " object"
	case *Storage:
		return "storage"
	case *Tensor:
		return "tensor"
	case storageType:
		return "storage type"
	}
	return fmt.Sprintf("%T", v)
}

// machine runs one pickle over b, starting at b[0].
type machine struct {
	b     []byte
	pos   int
	stack []any
	marks []int
	memo  map[int64]any
	// persistent resolves a persistent id (PERSID, BINPERSID).
	persistent func(pid any) (any, error)
	// call interprets a known callable; ok false records an Object.
	call func(g Global, args []any) (v any, ok bool, err error)
	// global resolves GLOBAL/STACK_GLOBAL names the caller knows (storage
	// types); ok false gives a plain Global.
	global func(g Global) (v any, ok bool)
}

// run executes opcodes until STOP and returns the top of the stack and the
// number of bytes consumed.
func (m *machine) run() (any, int, error) {
	if m.memo == nil {
		m.memo = map[int64]any{}
	}
	for {
		at := m.pos
		if at >= len(m.b) {
			return nil, at, fmt.Errorf("pickle %w at byte %d (no STOP opcode)", ErrTruncated, at)
		}
		op := m.b[at]
		m.pos++
		done, err := m.step(op)
		if err != nil {
			return nil, at, fmt.Errorf("pickle byte %d, opcode %s: %w", at, opName(op), err)
		}
		if done {
			// Python's STOP returns the top of the stack and ignores the
			// rest, and so does this.
			v, err := m.pop()
			if err != nil {
				return nil, at, fmt.Errorf("pickle byte %d: STOP: %w", at, err)
			}
			return v, m.pos, nil
		}
	}
}

func opName(op byte) string {
	if op >= 0x20 && op < 0x7f {
		return strconv.QuoteRune(rune(op))
	}
	return fmt.Sprintf("0x%02x", op)
}

// take returns the next n bytes, checking first that they are there: a
// length field never makes the machine allocate more than the pickle holds.
func (m *machine) take(n int64) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("negative length %d", n)
	}
	if n > int64(len(m.b)-m.pos) {
		return nil, fmt.Errorf("%w: needs %d bytes, %d left", ErrTruncated, n, len(m.b)-m.pos)
	}
	b := m.b[m.pos : m.pos+int(n)]
	m.pos += int(n)
	return b, nil
}

func (m *machine) u8() (int64, error) {
	b, err := m.take(1)
	if err != nil {
		return 0, err
	}
	return int64(b[0]), nil
}

func (m *machine) u16() (int64, error) {
	b, err := m.take(2)
	if err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint16(b)), nil
}

func (m *machine) u32() (int64, error) {
	b, err := m.take(4)
	if err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint32(b)), nil
}

func (m *machine) i32() (int64, error) {
	b, err := m.take(4)
	if err != nil {
		return 0, err
	}
	return int64(int32(binary.LittleEndian.Uint32(b))), nil
}

func (m *machine) u64() (int64, error) {
	b, err := m.take(8)
	if err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(b)
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("length %d", v)
	}
	return int64(v), nil
}

// line returns the text up to the next newline (protocol 0 arguments).
func (m *machine) line() (string, error) {
	i := slices.Index(m.b[m.pos:], '\n')
	if i < 0 {
		return "", fmt.Errorf("%w: no newline after a text argument", ErrTruncated)
	}
	s := string(m.b[m.pos : m.pos+i])
	m.pos += i + 1
	return s, nil
}

func (m *machine) push(v any) { m.stack = append(m.stack, v) }

func (m *machine) pop() (any, error) {
	floor := 0
	if len(m.marks) > 0 {
		floor = m.marks[len(m.marks)-1]
	}
	if len(m.stack) <= floor {
		return nil, errors.New("stack underflow")
	}
	v := m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
	return v, nil
}

func (m *machine) top() (any, error) {
	floor := 0
	if len(m.marks) > 0 {
		floor = m.marks[len(m.marks)-1]
	}
	if len(m.stack) <= floor {
		return nil, errors.New("stack underflow")
	}
	return m.stack[len(m.stack)-1], nil
}

// popMark returns the values above the topmost mark and removes them and
// the mark.
func (m *machine) popMark() ([]any, error) {
	if len(m.marks) == 0 {
		return nil, errors.New("no MARK on the stack")
	}
	k := m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	items := slices.Clone(m.stack[k:])
	m.stack = m.stack[:k]
	return items, nil
}

func (m *machine) popN(n int) ([]any, error) {
	floor := 0
	if len(m.marks) > 0 {
		floor = m.marks[len(m.marks)-1]
	}
	if len(m.stack)-floor < n {
		return nil, errors.New("stack underflow")
	}
	items := slices.Clone(m.stack[len(m.stack)-n:])
	m.stack = m.stack[:len(m.stack)-n]
	return items, nil
}

func (m *machine) put(idx int64) error {
	v, err := m.top()
	if err != nil {
		return err
	}
	if idx < 0 {
		return fmt.Errorf("negative memo index %d", idx)
	}
	m.memo[idx] = v
	return nil
}

// memoIndex reads the memo index of a PUT or GET opcode: a decimal line
// (p, g), one byte (q, h) or four bytes (r, j).
func (m *machine) memoIndex(op byte) (int64, error) {
	switch op {
	case 'q', 'h':
		return m.u8()
	case 'r', 'j':
		return m.u32()
	}
	s, err := m.line()
	if err != nil {
		return 0, err
	}
	idx, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad memo index %q", truncate(s, 40))
	}
	return idx, nil
}

func (m *machine) get(idx int64) error {
	v, ok := m.memo[idx]
	if !ok {
		return fmt.Errorf("memo index %d was never stored", idx)
	}
	m.push(v)
	return nil
}

// makeInt turns a little-endian two's-complement integer into int64 or,
// when it does not fit, *big.Int.
func makeInt(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	be := make([]byte, len(b))
	for i, c := range b {
		be[len(b)-1-i] = c
	}
	n := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	if n.IsInt64() {
		return n.Int64()
	}
	return n
}

// maxIntBytes bounds the integers the machine builds (1 KiB: 2466 decimal
// digits; torch.save's largest is the legacy magic number, 10 bytes):
// converting huge integers between bases costs more than linear time.
const maxIntBytes = 1024

func parseInt(s string) (any, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	if len(s) > 2*maxIntBytes {
		return nil, fmt.Errorf("an integer of %d digits", len(s))
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("bad integer %q", truncate(s, 40))
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// step executes one opcode; done is true after STOP.
func (m *machine) step(op byte) (done bool, err error) {
	switch op {
	case '.': // STOP
		return true, nil
	case 0x80: // PROTO
		p, err := m.u8()
		if err != nil {
			return false, err
		}
		if p > 5 {
			return false, fmt.Errorf("pickle protocol %d (at most 5 exists)", p)
		}
	case 0x95: // FRAME: a hint for buffered readers; the slice is all here
		n, err := m.u64()
		if err != nil {
			return false, err
		}
		if n > int64(len(m.b)-m.pos) {
			return false, fmt.Errorf("%w: frame of %d bytes, %d left", ErrTruncated, n, len(m.b)-m.pos)
		}
	case '(': // MARK
		m.marks = append(m.marks, len(m.stack))
	case '0': // POP
		if len(m.marks) > 0 && len(m.stack) == m.marks[len(m.marks)-1] {
			_, err = m.popMark() // Python pops the mark too
			return false, err
		}
		_, err = m.pop()
	case '1': // POP_MARK
		_, err = m.popMark()
	case '2': // DUP
		v, err := m.top()
		if err != nil {
			return false, err
		}
		m.push(v)

	// Constants and numbers.
	case 'N':
		m.push(nil)
	case 0x88:
		m.push(true)
	case 0x89:
		m.push(false)
	case 'J':
		v, err := m.i32()
		if err != nil {
			return false, err
		}
		m.push(v)
	case 'K':
		v, err := m.u8()
		if err != nil {
			return false, err
		}
		m.push(v)
	case 'M':
		v, err := m.u16()
		if err != nil {
			return false, err
		}
		m.push(v)
	case 0x8a, 0x8b: // LONG1, LONG4
		var n int64
		if op == 0x8a {
			n, err = m.u8()
		} else {
			n, err = m.i32()
		}
		if err != nil {
			return false, err
		}
		if n > maxIntBytes {
			return false, fmt.Errorf("an integer of %d bytes", n)
		}
		b, err := m.take(n)
		if err != nil {
			return false, err
		}
		m.push(makeInt(b))
	case 'I': // INT: decimal, or 00/01 for False/True
		s, err := m.line()
		if err != nil {
			return false, err
		}
		switch s {
		case "00":
			m.push(false)
		case "01":
			m.push(true)
		default:
			v, err := parseInt(s)
			if err != nil {
				return false, err
			}
			m.push(v)
		}
	case 'L': // LONG: decimal with an optional trailing L
		s, err := m.line()
		if err != nil {
			return false, err
		}
		v, err := parseInt(strings.TrimSuffix(s, "L"))
		if err != nil {
			return false, err
		}
		m.push(v)
	case 'F':
		s, err := m.line()
		if err != nil {
			return false, err
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return false, fmt.Errorf("bad float %q", truncate(s, 40))
		}
		m.push(v)
	case 'G':
		b, err := m.take(8)
		if err != nil {
			return false, err
		}
		m.push(math.Float64frombits(binary.BigEndian.Uint64(b)))

	// Strings and bytes.
	case 'X', 0x8c, 0x8d, 'B', 'C', 0x8e, 0x96, 'T', 'U':
		var n int64
		switch op {
		case 0x8c, 'C', 'U':
			n, err = m.u8()
		case 'X', 'B':
			n, err = m.u32()
		case 'T':
			n, err = m.i32()
		default:
			n, err = m.u64()
		}
		if err != nil {
			return false, err
		}
		b, err := m.take(n)
		if err != nil {
			return false, err
		}
		switch op {
		case 'X', 0x8c, 0x8d, 'T', 'U': // str (Python 2 str read as text)
			m.push(string(b))
		default:
			m.push(slices.Clone(b))
		}
	case 'S': // STRING: a quoted Python 2 repr
		s, err := m.line()
		if err != nil {
			return false, err
		}
		v, err := unquote(s)
		if err != nil {
			return false, err
		}
		m.push(v)
	case 'V': // UNICODE: raw-unicode-escape
		s, err := m.line()
		if err != nil {
			return false, err
		}
		m.push(rawUnicode(s))

	// Containers.
	case ')':
		m.push(Tuple{})
	case 0x85, 0x86, 0x87:
		items, err := m.popN(int(op-0x85) + 1)
		if err != nil {
			return false, err
		}
		m.push(Tuple(items))
	case 't':
		items, err := m.popMark()
		if err != nil {
			return false, err
		}
		m.push(Tuple(items))
	case ']', 0x8f: // EMPTY_LIST, EMPTY_SET
		m.push(&List{})
	case 'l', 0x91: // LIST, FROZENSET
		items, err := m.popMark()
		if err != nil {
			return false, err
		}
		m.push(&List{Items: items})
	case '}':
		m.push(&Dict{})
	case 'd':
		items, err := m.popMark()
		if err != nil {
			return false, err
		}
		d := &Dict{}
		if err := setItems(d, items); err != nil {
			return false, err
		}
		m.push(d)
	case 'a': // APPEND
		v, err := m.pop()
		if err != nil {
			return false, err
		}
		return false, m.appendTo([]any{v})
	case 'e', 0x90: // APPENDS, ADDITEMS
		items, err := m.popMark()
		if err != nil {
			return false, err
		}
		return false, m.appendTo(items)
	case 's': // SETITEM
		kv, err := m.popN(2)
		if err != nil {
			return false, err
		}
		return false, m.setOn(kv)
	case 'u': // SETITEMS
		items, err := m.popMark()
		if err != nil {
			return false, err
		}
		return false, m.setOn(items)

	// Memo: PUT and GET with a text, one-byte or four-byte index.
	case 'p', 'q', 'r', 'g', 'h', 'j':
		idx, err := m.memoIndex(op)
		if err != nil {
			return false, err
		}
		if op == 'p' || op == 'q' || op == 'r' {
			return false, m.put(idx)
		}
		return false, m.get(idx)
	case 0x94: // MEMOIZE
		return false, m.put(int64(len(m.memo)))

	// Classes, calls, persistent ids.
	case 'c', 'i': // GLOBAL, INST: "module\nname\n"
		mod, err := m.line()
		if err != nil {
			return false, err
		}
		name, err := m.line()
		if err != nil {
			return false, err
		}
		g := m.resolve(Global{mod, name})
		if op == 'c' {
			m.push(g)
			return false, nil
		}
		args, err := m.popMark()
		if err != nil {
			return false, err
		}
		return false, m.apply(g, args)
	case 0x93: // STACK_GLOBAL
		nm, err := m.popN(2)
		if err != nil {
			return false, err
		}
		mod, ok1 := nm[0].(string)
		name, ok2 := nm[1].(string)
		if !ok1 || !ok2 {
			return false, errors.New("STACK_GLOBAL needs two strings")
		}
		m.push(m.resolve(Global{mod, name}))
	case 'R': // REDUCE
		fa, err := m.popN(2)
		if err != nil {
			return false, err
		}
		args, ok := fa[1].(Tuple)
		if !ok {
			return false, fmt.Errorf("REDUCE arguments are a %s, not a tuple", typeName(fa[1]))
		}
		return false, m.apply(fa[0], args)
	case 0x81: // NEWOBJ: cls, args
		ca, err := m.popN(2)
		if err != nil {
			return false, err
		}
		args, ok := ca[1].(Tuple)
		if !ok {
			return false, fmt.Errorf("NEWOBJ arguments are a %s, not a tuple", typeName(ca[1]))
		}
		return false, m.apply(ca[0], args)
	case 0x92: // NEWOBJ_EX: cls, args, kwargs
		cak, err := m.popN(3)
		if err != nil {
			return false, err
		}
		args, ok := cak[1].(Tuple)
		if !ok {
			return false, fmt.Errorf("NEWOBJ_EX arguments are a %s, not a tuple", typeName(cak[1]))
		}
		return false, m.apply(cak[0], append(slices.Clone(args), cak[2]))
	case 'o': // OBJ: mark, cls, args...
		items, err := m.popMark()
		if err != nil {
			return false, err
		}
		if len(items) == 0 {
			return false, errors.New("OBJ without a class")
		}
		return false, m.apply(items[0], items[1:])
	case 'b': // BUILD
		state, err := m.pop()
		if err != nil {
			return false, err
		}
		inst, err := m.top()
		if err != nil {
			return false, err
		}
		if o, ok := inst.(*Object); ok {
			o.State = state
		}
		// Dicts (OrderedDict's _metadata), tensors and the rest: the state
		// is not needed.
	case 'P': // PERSID
		s, err := m.line()
		if err != nil {
			return false, err
		}
		return false, m.persist(s)
	case 'Q': // BINPERSID
		pid, err := m.pop()
		if err != nil {
			return false, err
		}
		return false, m.persist(pid)
	case 0x98: // READONLY_BUFFER: no-op here
		if _, err := m.top(); err != nil {
			return false, err
		}
	case 0x82, 0x83, 0x84:
		return false, errors.New("the extension registry (copyreg) is not supported")
	case 0x97:
		return false, errors.New("out-of-band buffers are not supported")
	default:
		return false, errors.New("unknown opcode")
	}
	return false, err
}

func (m *machine) resolve(g Global) any {
	if m.global != nil {
		if v, ok := m.global(g); ok {
			return v
		}
	}
	return g
}

// apply calls (or records a call of) fn with args.
func (m *machine) apply(fn any, args []any) error {
	g, ok := fn.(Global)
	if !ok {
		return fmt.Errorf("cannot call a %s", typeName(fn))
	}
	if m.call != nil {
		v, ok, err := m.call(g, args)
		if err != nil {
			return fmt.Errorf("%s: %w", g, err)
		}
		if ok {
			m.push(v)
			return nil
		}
	}
	m.push(&Object{Class: g, Args: args})
	return nil
}

func (m *machine) persist(pid any) error {
	if m.persistent == nil {
		return errors.New("a persistent id where none is expected")
	}
	v, err := m.persistent(pid)
	if err != nil {
		return err
	}
	m.push(v)
	return nil
}

func (m *machine) appendTo(items []any) error {
	v, err := m.top()
	if err != nil {
		return err
	}
	switch c := v.(type) {
	case *List:
		c.Items = append(c.Items, items...)
	case *Object:
		if c.Items == nil {
			c.Items = &List{}
		}
		c.Items.Items = append(c.Items.Items, items...)
	default:
		return fmt.Errorf("append to a %s", typeName(v))
	}
	return nil
}

func (m *machine) setOn(kv []any) error {
	v, err := m.top()
	if err != nil {
		return err
	}
	switch c := v.(type) {
	case *Dict:
		return setItems(c, kv)
	case *Object:
		if c.Dict == nil {
			c.Dict = &Dict{}
		}
		return setItems(c.Dict, kv)
	}
	return fmt.Errorf("set items on a %s", typeName(v))
}

func setItems(d *Dict, kv []any) error {
	if len(kv)%2 != 0 {
		return fmt.Errorf("odd number of items (%d) for a dict", len(kv))
	}
	for i := 0; i < len(kv); i += 2 {
		if err := d.set(kv[i], kv[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// unquote decodes a protocol 0 STRING argument: a Python 2 repr in single or
// double quotes with backslash escapes.
func unquote(s string) (string, error) {
	if len(s) < 2 || (s[0] != '\'' && s[0] != '"') || s[len(s)-1] != s[0] {
		return "", fmt.Errorf("STRING argument %q is not quoted", truncate(s, 40))
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'x':
			if i+3 > len(s) {
				return "", errors.New("short \\x escape in a STRING argument")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", errors.New("bad \\x escape in a STRING argument")
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			b.WriteByte(e) // \\ \' \" and anything else: the character itself
		}
	}
	return b.String(), nil
}

// rawUnicode decodes raw-unicode-escape: \uXXXX and \UXXXXXXXX are code
// points, everything else is itself (Latin-1 bytes).
func rawUnicode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			n := 4
			if s[i+1] == 'U' {
				n = 8
			}
			if i+2+n <= len(s) {
				if v, err := strconv.ParseUint(s[i+2:i+2+n], 16, 32); err == nil && v <= math.MaxInt32 {
					b.WriteRune(rune(v))
					i += 1 + n
					continue
				}
			}
		}
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}
