package data

import "math/bits"

// PyRandom is CPython's random.Random: the MT19937 Mersenne Twister seeded
// the way random.seed(int) seeds it, with getrandbits and shuffle as CPython
// implements them (Modules/_randommodule.c and Lib/random.py; shuffle's
// algorithm is the same from Python 3.2 to 3.12). It exists to pick the same
// label subset as the official benchmark code's random.Random(99).shuffle.
type PyRandom struct {
	mt    [624]uint32
	index int
}

const (
	mtN = 624
	mtM = 397
)

// NewPyRandom returns random.Random(seed) for a non-negative integer seed.
func NewPyRandom(seed uint64) *PyRandom {
	r := &PyRandom{}
	// random_seed: the absolute value of the seed, split into 32-bit words,
	// least significant first; zero is the single word 0.
	key := []uint32{uint32(seed)}
	if hi := uint32(seed >> 32); hi != 0 {
		key = append(key, hi)
	}
	r.initByArray(key)
	return r
}

func (r *PyRandom) initGenrand(s uint32) {
	r.mt[0] = s
	for i := 1; i < mtN; i++ {
		r.mt[i] = 1812433253*(r.mt[i-1]^(r.mt[i-1]>>30)) + uint32(i)
	}
	r.index = mtN
}

func (r *PyRandom) initByArray(key []uint32) {
	r.initGenrand(19650218)
	mt := &r.mt
	i, j := 1, 0
	for k := max(mtN, len(key)); k > 0; k-- {
		mt[i] = (mt[i] ^ ((mt[i-1] ^ (mt[i-1] >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= mtN {
			mt[0] = mt[mtN-1]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k := mtN - 1; k > 0; k-- {
		mt[i] = (mt[i] ^ ((mt[i-1] ^ (mt[i-1] >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= mtN {
			mt[0] = mt[mtN-1]
			i = 1
		}
	}
	mt[0] = 0x80000000
}

// Uint32 is genrand_uint32: the next 32-bit output of the generator.
func (r *PyRandom) Uint32() uint32 {
	mt := &r.mt
	if r.index >= mtN {
		mag := func(y uint32) uint32 { return (y >> 1) ^ (0x9908b0df * (y & 1)) }
		kk := 0
		for ; kk < mtN-mtM; kk++ {
			y := (mt[kk] & 0x80000000) | (mt[kk+1] & 0x7fffffff)
			mt[kk] = mt[kk+mtM] ^ mag(y)
		}
		for ; kk < mtN-1; kk++ {
			y := (mt[kk] & 0x80000000) | (mt[kk+1] & 0x7fffffff)
			mt[kk] = mt[kk+mtM-mtN] ^ mag(y)
		}
		y := (mt[mtN-1] & 0x80000000) | (mt[0] & 0x7fffffff)
		mt[mtN-1] = mt[mtM-1] ^ mag(y)
		r.index = 0
	}
	y := mt[r.index]
	r.index++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// GetRandBits is random.getrandbits(k) for 0 <= k <= 64: the top k bits of
// one 32-bit output, or for k > 32 the words of two outputs, least
// significant first, as CPython assembles them.
func (r *PyRandom) GetRandBits(k int) uint64 {
	switch {
	case k <= 0:
		return 0
	case k <= 32:
		return uint64(r.Uint32() >> (32 - k))
	case k <= 64:
		lo := uint64(r.Uint32())
		return lo | uint64(r.Uint32()>>(64-k))<<32
	}
	panic("data: PyRandom.GetRandBits: k > 64")
}

// randBelow is Random._randbelow_with_getrandbits(n) for n >= 1: draws of
// n.bit_length() bits until one is below n.
func (r *PyRandom) randBelow(n uint64) uint64 {
	k := bits.Len64(n)
	v := r.GetRandBits(k)
	for v >= n {
		v = r.GetRandBits(k)
	}
	return v
}

// Shuffle is random.shuffle(x) on a sequence of length n, with swap
// exchanging elements i and j: Fisher-Yates from the end, j = randbelow(i+1).
func (r *PyRandom) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		j := int(r.randBelow(uint64(i + 1)))
		swap(i, j)
	}
}
