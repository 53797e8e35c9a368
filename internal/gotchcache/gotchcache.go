package gotchcache

import (
	"os"
	"strconv"
)

// init points GOTCH_CACHE at a usable folder when the user has not set it
// and gotch's default, $HOME/.cache/gotch, neither exists nor can be created.
func init() {
	if dir := Choose(os.Getenv("GOTCH_CACHE"), os.Getenv("HOME"), os.TempDir(), os.Getuid()); dir != "" {
		os.Setenv("GOTCH_CACHE", dir)
	}
}

// Choose returns the folder GOTCH_CACHE must be set to, or "" when gotch's
// own choice already works: env is $GOTCH_CACHE (the user's choice wins),
// home is $HOME, tmp the system's temporary folder. The fallbacks, in order:
// a per-user folder under tmp (created), then tmp itself, which exists
// even when it is not writable, and gotch only needs the folder to exist.
func Choose(env, home, tmp string, uid int) string {
	if env != "" {
		return ""
	}
	if home != "" && usable(home+"/.cache/gotch") {
		return ""
	}
	if dir := tmp + "/dira-gotch-cache-" + strconv.Itoa(uid); usable(dir) {
		return dir
	}
	return tmp
}

// usable reports whether dir is a folder or can be made one, as gotch's init
// requires.
func usable(dir string) bool {
	if fi, err := os.Stat(dir); err == nil {
		return fi.IsDir()
	}
	return os.MkdirAll(dir, 0o755) == nil
}
