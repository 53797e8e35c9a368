package metrics

import "math"

// pairwiseSum adds a as numpy's add.reduce does for a contiguous float64
// array: pairwise, halving down to blocks of at most 128 that are summed with
// eight interleaved accumulators. Adding in numpy's order makes the results
// equal to numpy's and scikit-learn's, not merely close.
func pairwiseSum(a []float64) float64 {
	n := len(a)
	switch {
	case n < 8:
		s := 0.0
		for _, v := range a {
			s += v
		}
		return s
	case n <= 128:
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for j := range r {
				r[j] += a[i+j]
			}
		}
		s := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			s += a[i]
		}
		return s
	default:
		n2 := n / 2
		n2 -= n2 % 8
		return pairwiseSum(a[:n2]) + pairwiseSum(a[n2:])
	}
}

// MeanStd returns the mean and the population standard deviation (ddof 0) of
// xs, as numpy's mean and std compute them; the official engine reports the
// per-trial mean AUCs this way. Both are NaN for an empty xs.
func MeanStd(xs []float64) (mean, std float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	n := float64(len(xs))
	mean = pairwiseSum(xs) / n
	sq := make([]float64, len(xs))
	for i, x := range xs {
		d := x - mean
		sq[i] = d * d
	}
	return mean, math.Sqrt(pairwiseSum(sq) / n)
}
