# cbnode — see README.md. `make demo` and `make test` need root (network
# namespaces, TUN devices); tests that need root skip without it unless CI=true.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/cloud-barista/cbnode/api.Version=$(VERSION)
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all build release test test-short demo bench lint fuzz clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/cbnode ./cmd/cbnode

# Static release binaries for Linux, stripped, with their checksums:
# bin/release/cbnode-linux-<arch> and bin/release/SHA256SUMS. Tag first
# (git tag v1.2.3) so that VERSION is the tag; VERSION=... overrides.
RELEASE_DIR    := $(BIN)/release
RELEASE_ARCHES ?= amd64 arm64

release:
	rm -rf $(RELEASE_DIR)
	mkdir -p $(RELEASE_DIR)
	@set -e; for arch in $(RELEASE_ARCHES); do \
	  out=$(RELEASE_DIR)/cbnode-linux-$$arch; \
	  echo "build $$out ($(VERSION))"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath \
	    -ldflags "-s -w $(LDFLAGS)" -o $$out ./cmd/cbnode; \
	  $(GO) version -m $$out | grep -q 'CGO_ENABLED=0' || { echo "$$out: not built with CGO_ENABLED=0"; exit 1; }; \
	  if command -v file >/dev/null 2>&1; then \
	    file -b $$out | grep -q 'statically linked' || { echo "$$out: not static: $$(file -b $$out)"; exit 1; }; \
	  fi; \
	done
	cd $(RELEASE_DIR) && sha256sum cbnode-linux-* > SHA256SUMS
	cat $(RELEASE_DIR)/SHA256SUMS

# The whole suite: lint, then every package with the race detector, including
# the in-process swarm tests on 127.0.0.1 and the namespace end-to-end tests.
test: lint
	$(GO) test -race -timeout 30m -count=1 ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=3s

# Quick loop for development: no race detector, no namespace tests.
test-short:
	$(GO) test -short -count=1 ./...

demo: build
	$(GO) build -o $(BIN)/demo ./examples/demo
	$(BIN)/demo --bin $(BIN)/cbnode

# Benchmarks write Markdown reports under bench/ (see README "Benchmarks").
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./overlay/forward/ | tee $(BIN)/bench-forward.txt
	$(GO) test -run '^$$' -bench . -benchmem ./overlay/filter/ | tee $(BIN)/bench-filter.txt
	$(GO) run ./bench/controlplane -out bench/controlplane.md
	$(GO) run ./bench/scale -out bench/scale.md -real 10,25,50 -bin $(BIN)/cbnode
	$(GO) run ./bench/dataplane -bin $(BIN)/cbnode -out bench/dataplane.md

# staticcheck runs where it is installed (.ci/run installs this version:
# go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)).
STATICCHECK_VERSION := v0.8.2
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $$($(GO) env GOPATH)/bin/staticcheck)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if [ -x "$(STATICCHECK)" ]; then echo "staticcheck ./..."; $(STATICCHECK) ./...; \
	  else echo "staticcheck not installed: skipped (go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION))"; fi

# Every parser of untrusted input has a fuzz target ("Target package"; the
# seed corpora also run in every 'go test'). 'make fuzz' fuzzes each for
# FUZZTIME (make test: 3 s each) and prints its exec count. A run that fails
# with a bare "context deadline exceeded" and wrote no failing input is Go
# 1.26's fuzz-coordinator shutdown race at the -fuzztime boundary
# (go.dev/issue/75804, fixed in Go 1.27), not a finding: it is run once more.
FUZZTIME ?= 60s
FUZZ_TARGETS := \
	FuzzRecommend:./ipam/ FuzzValidate:./ipam/ \
	FuzzDecodeToken:./cladnet/ FuzzCertificate:./cladnet/ FuzzParseRevocations:./cladnet/ \
	FuzzParseRules:./cost/ FuzzWithout:./internal/signedjson/ \
	FuzzReceive:./overlay/forward/ FuzzReceiveGSO:./overlay/forward/ \
	FuzzInbound:./overlay/filter/ FuzzParseAnnouncement:./overlay/

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  name=$${t%%:*}; pkg=$${t#*:}; \
	  out=$$($(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { \
	    if echo "$$out" | grep -q 'context deadline exceeded' && ! echo "$$out" | grep -q 'Failing input written'; then \
	      echo "$$name ($$pkg): the fuzz coordinator's shutdown race (go.dev/issue/75804), no failing input: once more"; \
	      out=$$($(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out"; exit 1; }; \
	    else echo "$$out"; exit 1; fi; }; \
	  echo "$$name ($$pkg): $$(echo "$$out" | grep -o 'execs: [0-9]*' | tail -1)"; \
	done

clean:
	rm -rf $(BIN)
