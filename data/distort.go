package data

import (
	"math"
	"math/rand/v2"
)

// This file is the official Custom_Distoration (spec 3.2), the restoration
// distortion T(·) applied to both views in modes dir/dira. Blocks are addressed
// as in the numpy original: x is the row (first index, along H) and y the column
// (along W); randint(a, b) includes both ends.
//
// The spec's block sizes are for 224×224 views. For another size every size
// constant (10..70, 50..70, 10..15) is scaled by H/224 along rows and W/224 along
// columns and rounded (at least 1); the 3-pixel margin stays 3. At 224 the
// ranges are exactly the official ones.

// Distortion branches.
const (
	BranchNone     = "none"
	BranchInpaint  = "inpaint"
	BranchOutpaint = "outpaint"
	BranchSwap     = "swap"
)

// Block is a rectangle of a distortion: rows X..X+BX, columns Y..Y+BY. For a
// swap, (X2, Y2) is the other block's corner.
type Block struct {
	X, Y, BX, BY int
	X2, Y2       int
	Skipped      bool // swap rejected as overlapping (only with SwapRejectOverlap)
}

// Distortion records what Distort did.
type Distortion struct {
	Branch string
	Blocks []Block
}

// randint is Python's random.randint: uniform on [a, b], both included. An
// empty range (b < a, only possible for tiny images) yields a.
func randint(r *rand.Rand, a, b int) int {
	if b <= a {
		return a
	}
	return a + r.IntN(b-a+1)
}

// scaled maps a size constant of the 224-pixel original to an n-pixel axis.
func scaled(v, n int) int {
	if n == 224 {
		return v
	}
	return max(1, int(math.Round(float64(v)*float64(n)/224)))
}

// distortMargin is the official distance kept from the image border.
const distortMargin = 3

// Distort applies the restoration distortion to m in place and returns what it
// did. r ≤ inpaint_p: in-painting; then out-painting with outpaint_p; then
// patch swapping with swap_p; otherwise nothing.
func Distort(r *rand.Rand, m *Image, a AugmentConfig) Distortion {
	u := r.Float64()
	switch {
	case u <= a.InpaintP:
		return inpaint(r, m)
	case u <= a.InpaintP+a.OutpaintP:
		return outpaint(r, m)
	case u <= a.InpaintP+a.OutpaintP+a.SwapP:
		return swapPatches(r, m, a.SwapRejectOverlap)
	}
	return Distortion{Branch: BranchNone}
}

// inpaint zeroes up to 10 blocks of 10..70 pixels per side, stopping after each
// block with probability 0.1.
func inpaint(r *rand.Rand, m *Image) Distortion {
	d := Distortion{Branch: BranchInpaint}
	for range 10 {
		bx := randint(r, scaled(10, m.H), scaled(70, m.H))
		by := randint(r, scaled(10, m.W), scaled(70, m.W))
		x := randint(r, distortMargin, m.H-bx-distortMargin)
		y := randint(r, distortMargin, m.W-by-distortMargin)
		fillBlock(m, x, y, bx, by, 0)
		d.Blocks = append(d.Blocks, Block{X: x, Y: y, BX: bx, BY: by})
		if r.Float64() < 0.1 {
			break
		}
	}
	return d
}

// outpaint blacks out the image except up to 10 windows whose sides are the
// image side minus 50..70 pixels, stopping after each window with probability
// 0.1.
func outpaint(r *rand.Rand, m *Image) Distortion {
	d := Distortion{Branch: BranchOutpaint}
	orig := m.Clone()
	clear(m.Pix)
	for range 10 {
		bx := m.H - randint(r, scaled(50, m.H), scaled(70, m.H))
		by := m.W - randint(r, scaled(50, m.W), scaled(70, m.W))
		x := randint(r, distortMargin, m.H-bx-distortMargin)
		y := randint(r, distortMargin, m.W-by-distortMargin)
		copyBlock(m, orig, x, y, x, y, bx, by)
		d.Blocks = append(d.Blocks, Block{X: x, Y: y, BX: bx, BY: by})
		if r.Float64() < 0.1 {
			break
		}
	}
	return d
}

// swapPatches makes exactly 10 swaps of two 10..15-pixel blocks, both copied
// from the image as it was before the first swap. The official overlap test
// compares columns with "<" and is therefore always true, so overlapping blocks
// are swapped too (the second write wins where they overlap); rejectOverlap
// applies the intended test and skips such pairs.
func swapPatches(r *rand.Rand, m *Image, rejectOverlap bool) Distortion {
	d := Distortion{Branch: BranchSwap}
	orig := m.Clone()
	for range 10 {
		bx := randint(r, scaled(10, m.H), scaled(15, m.H))
		by := randint(r, scaled(10, m.W), scaled(15, m.W))
		x1 := randint(r, distortMargin, m.H-bx-distortMargin)
		y1 := randint(r, distortMargin, m.W-by-distortMargin)
		x2 := randint(r, distortMargin, m.H-bx-distortMargin)
		y2 := randint(r, distortMargin, m.W-by-distortMargin)
		b := Block{X: x1, Y: y1, BX: bx, BY: by, X2: x2, Y2: y2}
		if rejectOverlap && !(x1 > x2+bx || x2 > x1+bx || y1 > y2+by || y2 > y1+by) {
			b.Skipped = true
			d.Blocks = append(d.Blocks, b)
			continue
		}
		copyBlock(m, orig, x1, y1, x2, y2, bx, by)
		copyBlock(m, orig, x2, y2, x1, y1, bx, by)
		d.Blocks = append(d.Blocks, b)
	}
	return d
}

// fillBlock sets rows x..x+bx, columns y..y+by (clipped to m) to v.
func fillBlock(m *Image, x, y, bx, by int, v uint8) {
	x0, x1 := max(x, 0), min(x+bx, m.H)
	y0, y1 := max(y, 0), min(y+by, m.W)
	for row := x0; row < x1; row++ {
		s := m.Pix[(row*m.W+y0)*m.C : (row*m.W+y1)*m.C]
		for i := range s {
			s[i] = v
		}
	}
}

// copyBlock copies the bx×by block of src at (sx, sy) to dst at (dx, dy); like a
// numpy slice assignment it clips both blocks to the image.
func copyBlock(dst, src *Image, dx, dy, sx, sy, bx, by int) {
	rows := min(bx, dst.H-dx, src.H-sx)
	cols := min(by, dst.W-dy, src.W-sy)
	if rows <= 0 || cols <= 0 {
		return
	}
	c := dst.C
	for i := 0; i < rows; i++ {
		copy(dst.Pix[((dx+i)*dst.W+dy)*c:((dx+i)*dst.W+dy+cols)*c], src.Pix[((sx+i)*src.W+sy)*c:((sx+i)*src.W+sy+cols)*c])
	}
}
