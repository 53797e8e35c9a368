package data

import (
	"bytes"
	"image/png"
	"testing"
)

// Stage benchmarks on one 1024×1024 synthetic radiograph (ChestX-ray14 size).
// The end-to-end loader benchmark against PyTorch is in data/bench.

func benchPNG(b *testing.B) []byte {
	b.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, DrawRadiograph(1024, 1, 7)); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkDecodePNG(b *testing.B) {
	p := benchPNG(b)
	b.SetBytes(1024 * 1024)
	for b.Loop() {
		if _, err := Decode(p, "bench.png"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePNGStdlib(b *testing.B) {
	p := benchPNG(b)
	b.SetBytes(1024 * 1024)
	for b.Loop() {
		if _, err := png.Decode(bytes.NewReader(p)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMakeSample(b *testing.B) {
	m := DrawRadiograph(1024, 1, 7)
	a := DefaultAugment()
	i := 0
	for b.Loop() {
		MakeSample(SampleRNG(1, 0, i), m, 224, a, true)
		i++
	}
}

func BenchmarkResizedCrop(b *testing.B) {
	m := DrawRadiograph(1024, 1, 7)
	for b.Loop() {
		ResizedCrop(m, 100, 120, 775, 760, 224, 224)
	}
}

func BenchmarkGaussianBlur(b *testing.B) {
	m := DrawRadiograph(224, 1, 7)
	for b.Loop() {
		GaussianBlur(m, 1.5)
	}
}
