# dira: `make demo` and `make test` are the two entry points (README.md).
# Both run `make setup` first, which installs only what is missing.

GO      ?= go
BIN     := bin/dira

.PHONY: setup demo test build vet bench fuzz clean

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

# Native Go fuzzing of every reader of outside bytes (docs/reliability.md),
# one target after the other, each for FUZZTIME. `make test` already runs
# their seed corpora (f.Add and testdata/fuzz/) as ordinary tests; inputs
# that fail are written to the package's testdata/fuzz/<Target>/ and stay
# there as regression seeds. Pick targets with FUZZ_TARGETS=pkg:Fuzz...
FUZZTIME ?= 5m
FUZZ_TARGETS ?= \
	./data:FuzzDecode ./data:FuzzDecodeJPEG ./data:FuzzInflate ./data:FuzzReadList \
	./internal/npy:FuzzRead ./internal/npy:FuzzReadNPZ ./checkpoint:FuzzRead \
	./internal/torchsave:FuzzOpen ./transfer:FuzzRead ./infer:FuzzInspect \
	./pipeline:FuzzParse

fuzz: setup
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "== $$pkg $$fn, $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

clean:
	rm -rf bin runs
