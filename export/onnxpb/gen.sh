#!/bin/sh
# gen.sh regenerates onnx.pb.go, the Go types of ONNX's protobuf schema
# (IR version 8, opsets up to 17), from the onnx.proto that Debian's
# python3-onnx 1.12 ships. Run it from anywhere:
#
#   sh export/onnxpb/gen.sh
#
# Needs protoc (Debian protobuf-compiler 3.21) and protoc-gen-go:
#
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.10
#
# onnx.proto declares no go_package, so the import path is given with
# protoc-gen-go's M option. ONNX_PROTO overrides where onnx.proto is read from.
#
# The proto package "onnx" is renamed "dira.onnx" in a temporary copy before
# generating. The binary wire format does not contain package names, so files
# are unchanged; only the names in Go's global protobuf registry differ
# (dira.onnx.ModelProto). Without the rename, any binary that also links
# another Go ONNX binding registering "onnx.*" (onnx-go, which the export tests
# use as a second engine) panics at init with "message onnx.AttributeProto is
# already registered" (https://protobuf.dev/reference/go/faq#namespace-conflict).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
proto=${ONNX_PROTO:-/usr/lib/python3/dist-packages/onnx/onnx.proto}
want_gen=v1.36.10

if [ ! -f "$proto" ]; then
	echo "gen.sh: $proto not found (apt-get install python3-onnx, or set ONNX_PROTO)" >&2
	exit 1
fi
gen=$(command -v protoc-gen-go || echo "$(go env GOPATH)/bin/protoc-gen-go")
if [ ! -x "$gen" ]; then
	echo "gen.sh: protoc-gen-go not found (go install google.golang.org/protobuf/cmd/protoc-gen-go@$want_gen)" >&2
	exit 1
fi
have_gen=$("$gen" --version | awk '{print $2}')
if [ "$have_gen" != "$want_gen" ]; then
	echo "gen.sh: protoc-gen-go is $have_gen, want $want_gen (the version onnx.pb.go was made with)" >&2
	exit 1
fi
if ! grep -q 'IR_VERSION = 0x0000000000000008;' "$proto"; then
	echo "gen.sh: $proto is not IR version 8 (ONNX 1.12)" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/^package onnx;$/package dira.onnx;/' "$proto" >"$tmp/onnx.proto"
if ! grep -q '^package dira.onnx;$' "$tmp/onnx.proto"; then
	echo "gen.sh: no 'package onnx;' line to rename in $proto" >&2
	exit 1
fi

protoc \
	--plugin=protoc-gen-go="$gen" \
	--proto_path="$tmp" \
	--go_out="$here" \
	--go_opt=paths=source_relative \
	--go_opt="Monnx.proto=dira/export/onnxpb;onnxpb" \
	onnx.proto
echo "gen.sh: wrote $here/onnx.pb.go from $proto ($(sha256sum "$proto" | cut -c1-16))"
