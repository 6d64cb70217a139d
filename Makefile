# nri-csig — see README.md. Every target works on a fresh Debian machine as root.
SHELL   := /bin/bash
GO      ?= go
CACHE   ?= $(CURDIR)/.cache
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
# -s -w: no symbol table or DWARF (panics and profiles still name functions,
# from the function table): the binaries are 30 % smaller on disk, and a run
# touches 0-1.2 MiB fewer pages of them (measured on "version" and an idle
# daemon); debuggers need a build without them.
LDFLAGS := -s -w -X github.com/nri-csig/nri-csig/internal/version.Version=$(VERSION)
# Third-party tools (containerd, crictl, cosign) are built once into $(CACHE)/bin.
export NRI_CSIG_CACHE := $(CACHE)

.PHONY: build test unit integration demo bench fuzz lint clean package

# Three builds of ./cmd/nri-csig (docs/ARCHITECTURE.md, "Binaries"): a Go
# process's resident memory is mostly the pages of its binary it touches, so
# each runs only what it links.
#   bin/nri-csigd    -tags nodeonly: the node daemon (run, check-config, version),
#                    which systemd and the pre-installed plugin run; no KMS or
#                    ACR SDK, no signing, no kritis import.
#   bin/nri-csig-cli -tags nodaemon: the operator's commands without the daemon's
#                    (no containerd client, NRI, Prometheus) and without the
#                    certificate witnesses' verifiers (notation-go, sigstore-go),
#                    for which it runs nri-csig.
#   bin/nri-csig     everything ("go install" builds this one).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/nri-csig ./cmd/nri-csig
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -tags nodeonly -o bin/nri-csigd ./cmd/nri-csig
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -tags nodaemon -o bin/nri-csig-cli ./cmd/nri-csig

# Every test: unit tests, then the integration suite on a real containerd (root).
test: unit integration

# The commands' tests also run as nri-csig-cli and nri-csigd build them.
unit:
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -tags nodaemon ./cmd/...
	$(GO) test -count=1 -tags nodeonly ./cmd/...

# One containerd per test package; -p 1 keeps two packages from building the
# tool cache or fighting over the machine's 2 cores at once.
integration:
	@mkdir -p $(CACHE)
	set -o pipefail; $(GO) test -tags integration -count=1 -p 1 -timeout 40m -v ./integration/... 2>&1 \
	  | tee $(CACHE)/integration.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic|testbed|toolcache|\s+\S+_test\.go:)'

# A real containerd refuses a container because nri-csig says so (root).
demo:
	$(GO) run ./integration/demo

# Unit benchmarks, then create latency with and without the plugin on the real
# containerd (root) with nri-csig's decision latency percentiles, then the
# node-scale benchmark (integration/scale) at BENCH_SIZES images: it prints one
# table at the end and writes it to BENCHMARKS.md. GNU time measures peak memory.
BENCH_SIZES ?= 100 1000 10000
bench:
	@test -x /usr/bin/time || { apt-get update -qq && apt-get install -y -qq --no-install-recommends time; }
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) test -tags integration -run '^$$' -bench . -benchtime 50x ./integration/ ./integration/policy/
	BENCH_SIZES="$(BENCH_SIZES)" BENCH_OUT=$(CURDIR)/BENCHMARKS.md BENCH_COMMAND='make bench BENCH_SIZES="$(BENCH_SIZES)"' \
	  $(GO) test -tags integration -count=1 -run '^$$' -bench . -benchtime 1x -timeout 120m ./integration/scale/

# Every fuzz target for FUZZTIME each (their seed corpora also run in "make unit").
FUZZTIME ?= 20s
FUZZ_TARGETS := ./pkg/nodeconfig:FuzzParse ./pkg/policy:FuzzParseBundle ./pkg/policy:FuzzVerifyBundle ./pkg/bundleoci:FuzzOCIManifest \
	./pkg/signature:FuzzParsePayload ./pkg/signature:FuzzParseManifest ./pkg/signature:FuzzParseIndex ./pkg/signature:FuzzParseSigstoreBundle \
	./pkg/signature:FuzzDecodeBase64 ./pkg/keys:FuzzParsePublicKeyPEM ./pkg/keys/alikms:FuzzDecodeResponses ./pkg/keys/alikms:FuzzKMSResponse \
	./pkg/verify:FuzzVerify ./pkg/verify:FuzzReplayLog ./cmd/nri-csig/cli:FuzzIndexChildren \
	./pkg/credprovider:FuzzMatches ./pkg/credprovider:FuzzDecode
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "== $$fn ($$pkg)"; $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s $$pkg || exit 1; done

# staticcheck is built once into the tool cache, pinned here.
STATICCHECK_VERSION ?= v0.8.2
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./integration/...
	$(GO) vet -tags nodaemon ./cmd/...
	$(GO) vet -tags nodeonly ./cmd/...
	$(GO) run ./internal/toolcache/cmd/toolcache-ensure honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(CACHE)/bin/staticcheck ./...
	$(CACHE)/bin/staticcheck -tags nodaemon ./cmd/...
	$(CACHE)/bin/staticcheck -tags nodeonly ./cmd/...

# .deb and .rpm of the node daemon (binary, systemd units, example config,
# containerd drop-in) into $(DIST)/, with nfpm built once into $(CACHE)/bin.
# nfpm >= 2.46 needs modules the Go proxy refuses (go.digitalxero.dev).
NFPM_VERSION ?= v2.45.2
DIST         ?= dist
GOARCH       ?= $(shell $(GO) env GOARCH)
PKG_VERSION  ?= 0.1.0~git$(shell git log -1 --format=%cd.%h --date=format:%Y%m%d 2>/dev/null || echo 0)
package:
	$(MAKE) build VERSION=$(PKG_VERSION)
	@mkdir -p $(DIST)
	$(GO) run ./internal/toolcache/cmd/toolcache-ensure github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	for p in deb rpm; do \
	  GOARCH=$(GOARCH) PKG_VERSION=$(PKG_VERSION) $(CACHE)/bin/nfpm package --config packaging/nfpm.yaml --packager $$p --target $(DIST)/ || exit 1; \
	done
	@ls -l $(DIST)

clean:
	rm -rf bin dist
