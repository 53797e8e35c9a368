#!/usr/bin/env bash
# setup.sh installs everything dira needs on a Debian 12 machine, and nothing twice.
#
#   1. Debian packages: libtorch-dev (training), libgloo-dev (Gloo headers for
#      dist's c10d shim), protobuf-compiler, and the Python reference stack used by
#      tests and benchmarks (python3-torch, -torchvision, -onnx, -sklearn).
#   2. The cgo environment for gotch v0.7.0 on libtorch 1.13.1 (see
#      docs/toolchain.md): a force-included compatibility header and empty
#      stub libraries for the CUDA names gotch links unconditionally. They are
#      installed to a fixed place ($DIRA_PREFIX) and written with `go env -w`, so
#      plain `go build` / `go test` work from any clone on this machine.
#   3. The ONNX Runtime shared library, taken from the npm package onnxruntime-node
#      (pinned, checksum verified) into .deps/onnxruntime/ of this checkout.
#   4. With --browser (make test passes it): Debian's chromium and a font, for the
#      test that opens report.html in headless Chromium. Training never needs them.
#
# Every step first checks whether its result is already in place; a second run
# changes nothing and says so.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=${DIRA_PREFIX:-/usr/local/lib/dira}
ort_version=1.27.0
ort_tgz_sha256=c3779c01c59832f8c03e2c392ac3af10bf08579f1822e8b1c63cc451edb302a2
ort_lib_sha256=d8aff4aa8abee8fb2abb2f2f2459ffc94461e781e41b9f7c072829dd0d470221
ort_dir=$repo/.deps/onnxruntime
changed=0

log() { printf 'setup: %s\n' "$*"; }
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

with_browser=0
for arg in "$@"; do
  case $arg in
    --browser) with_browser=1 ;;
    *) log "unknown option $arg (known: --browser)"; exit 2 ;;
  esac
done

# --- 1. Debian packages ------------------------------------------------------
apt_pkgs=(libtorch-dev libgloo-dev protobuf-compiler python3-torch python3-torchvision python3-onnx
  python3-numpy python3-pil python3-sklearn ca-certificates)
if [ "$with_browser" = 1 ]; then
  apt_pkgs+=(chromium fonts-dejavu-core)
fi
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  changed=1
else
  log "Debian packages already installed"
fi

# --- 2. cgo environment for gotch ------------------------------------------------
header_src=$repo/internal/torch/compat/libtorch113_compat.h
header_dst=$prefix/include/libtorch113_compat.h
stubdir=$prefix/cuda-stubs
if ! cmp -s "$header_src" "$header_dst"; then
  sudo_if_needed install -D -m 0644 "$header_src" "$header_dst"
  log "installed $header_dst"
  changed=1
fi
# gotch v0.7.0's libtch/lib.go links these CUDA libraries unconditionally. Empty
# stubs satisfy the -l flags; --as-needed then drops them from the binary.
for name in cuda cudart cublas cudnn caffe2_nvrtc nvrtc-builtins nvrtc nvToolsExt c10_cuda torch_cuda; do
  if [ ! -f "$stubdir/lib$name.so" ]; then
    sudo_if_needed mkdir -p "$stubdir"
    sudo_if_needed gcc -shared -o "$stubdir/lib$name.so" -x c /dev/null
    log "built stub $stubdir/lib$name.so"
    changed=1
  fi
done
want_cxx="-include $header_dst -I/usr/include/torch/csrc/api/include -O1 -g0"
want_ld="-L$stubdir -Wl,--as-needed"
if [ "$(go env CGO_CXXFLAGS)" != "$want_cxx" ] || [ "$(go env CGO_LDFLAGS)" != "$want_ld" ]; then
  go env -w CGO_CXXFLAGS="$want_cxx" CGO_LDFLAGS="$want_ld"
  log "wrote CGO_CXXFLAGS and CGO_LDFLAGS with go env -w"
  changed=1
fi

# --- 3. ONNX Runtime from npm --------------------------------------------------
ort_lib=$ort_dir/libonnxruntime.so.$ort_version
if [ -f "$ort_lib" ] && echo "$ort_lib_sha256  $ort_lib" | sha256sum -c --status; then
  :
else
  command -v npm >/dev/null || { sudo_if_needed apt-get install -y -qq npm; changed=1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  log "fetching onnxruntime-node@$ort_version from the npm registry (no install scripts run)"
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ort_version" >/dev/null)
  echo "$ort_tgz_sha256  $tmp/onnxruntime-node-$ort_version.tgz" | sha256sum -c --status ||
    { log "checksum mismatch for onnxruntime-node-$ort_version.tgz"; exit 1; }
  tar -xzf "$tmp/onnxruntime-node-$ort_version.tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  echo "$ort_lib_sha256  $tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c --status ||
    { log "checksum mismatch for libonnxruntime.so.1"; exit 1; }
  mkdir -p "$ort_dir"
  install -m 0644 "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ort_lib.tmp"
  mv "$ort_lib.tmp" "$ort_lib"
  ln -sf "libonnxruntime.so.$ort_version" "$ort_dir/libonnxruntime.so"
  log "installed $ort_lib"
  changed=1
fi

# --- Go modules ----------------------------------------------------------------
if ! (cd "$repo" && go mod verify >/dev/null 2>&1); then
  (cd "$repo" && go mod download)
  log "downloaded Go modules"
  changed=1
fi

if [ "$changed" = 0 ]; then
  log "nothing to do: everything is already installed"
fi
