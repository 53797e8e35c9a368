# dira: `make demo` and `make test` are the two entry points (README.md).
# Both run `make setup` first, which installs only what is missing.

GO      ?= go
BIN     := bin/dira

.PHONY: setup demo test build vet bench clean

setup:
	@bash scripts/setup.sh $(SETUP_FLAGS)

build: setup
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/dira

demo: build
	$(BIN) run configs/demo.yaml

# The whole suite: formatting, vet, then every package's tests. Its setup also
# installs headless Chromium, which the report's browser test opens.
test: SETUP_FLAGS := --browser
test: setup
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.deps/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 60m ./...

bench: setup
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

clean:
	rm -rf bin runs
