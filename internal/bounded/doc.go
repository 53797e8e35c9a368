// Package bounded holds the checks dira's readers of outside files make on
// every size a file declares before they allocate anything from it: element
// counts computed without overflow (Numel), and what a zip entry can really
// hold (Entry): a stored entry exactly its compressed bytes, a deflated one
// at most DeflateRatio times them, inside the archive.
//
// The readers themselves (internal/npy, checkpoint, internal/torchsave)
// own their formats and their caps; this package owns only the arithmetic
// they share. It does not read whole files or allocate buffers.
package bounded
