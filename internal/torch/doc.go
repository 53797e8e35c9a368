// Package torch holds the few libtorch calls that gotch v0.7.0 does not expose:
// the intra-op thread count, the global seed, and the libtorch version. It also
// carries compat/libtorch113_compat.h, the header that lets gotch's generated
// wrapper compile against Debian's libtorch 1.13.1 (installed by scripts/setup.sh).
//
// It does not own tensors or models; see package model for those.
package torch
