// Package runlock makes one process at a time the writer of a run folder.
//
// The lock is an exclusive flock(2) on <run>/.lock, which also holds the
// holder's PID, host and start time as JSON so that a refused process can
// say who holds the folder. The kernel drops a flock when its process ends,
// however it ends (SIGKILL, out of memory, a crash), so a lock can never be
// left held by a dead process: a leftover .lock file whose flock is free
// is stale, and the next Acquire takes it over and reports whom it
// belonged to. Release removes the file, so a leftover one always means
// that its holder did not end cleanly.
//
// Across machines the lock is as good as the file system's flock: local
// disks and NFS v4 honour it; a file system that ignores flock lets two
// hosts in at once.
//
// It owns the lock file only; what a holder may do in the folder (write
// files, clean temporary ones) is package pipeline's business.
package runlock
