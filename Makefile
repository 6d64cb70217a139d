# nri-csig — see README.md. Every target works on a fresh Debian machine as root.
GO      ?= go
CACHE   ?= $(CURDIR)/.cache
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/nri-csig/nri-csig/internal/version.Version=$(VERSION)
export NRI_CSIG_CACHE := $(CACHE)

.PHONY: build test unit integration demo bench lint fuzz clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/nri-csig ./cmd/nri-csig

# Every test: unit tests, then the integration suite on a real containerd (needs root).
test: unit integration

unit:
	$(GO) test -count=1 ./...

integration:
	$(GO) test -tags integration -count=1 -p 1 -timeout 40m -v ./integration/... 2>&1 | tee $(CACHE)/integration.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic|\s+\S+_test.go)' ; exit $${PIPESTATUS[0]}

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./integration/...

clean:
	rm -rf bin dist
