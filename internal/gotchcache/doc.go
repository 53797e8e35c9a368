// Package gotchcache gives gotch's package initialisation a cache folder it
// can use, so that no dira command depends on a writable home folder.
//
// gotch v0.7.0's init sets its download cache to $HOME/.cache/gotch (or
// $GOTCH_CACHE) and, when that folder does not exist and cannot be created,
// ends the process with log.Fatal before main runs: with HOME unset, read-only
// or pointing nowhere (containers, batch systems), every dira command would
// exit 1 without a word about why. dira never downloads through gotch, so
// the folder only has to exist.
//
// Importing this package (blank import) is enough. Since Go 1.21 packages
// are initialised in import-path order, subject to dependencies: this
// package imports only what gotch itself imports and its path
// ("dira/internal/gotchcache") sorts before "github.com/sugarme/gotch", so
// its init runs first and can set GOTCH_CACHE. It owns that one variable and
// nothing else; it never writes into the Go module cache.
package gotchcache
