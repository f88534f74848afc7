# imagesync — common tasks. `make test` is the README's test command and what CI runs.
GO       ?= go
PKGS     ?= ./...
# A count, not a duration: with -fuzztime <duration> Go's fuzzing coordinator
# can fail a target with a bare "context deadline exceeded" when a loaded
# machine's workers miss its deadline (a race in internal/fuzz, no crasher
# written). A count has no deadline to race.
FUZZTIME ?= 100000x
# What --version prints; without it the commands fall back to the module
# version and VCS stamp the Go toolchain records.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS  := $(if $(VERSION),-X github.com/imagesync/imagesync/internal/version.Version=$(VERSION))

.PHONY: all build test test-short lint fmt vet staticcheck fuzz bench dev sandbox clean

all: lint test

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# The full suite, with the race detector. Integration tests start their own
# redis-server processes on free ports (internal/redistest), so the binary
# must be installed; they never touch a Redis they did not start.
test:
	@command -v redis-server >/dev/null || { echo "make test: redis-server not found; install it (apt-get install redis-server) or set IMAGESYNC_TEST_REDIS=host:port/db (flushed!)"; exit 1; }
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint: vet fmt staticcheck

vet:
	$(GO) vet $(PKGS)

fmt:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# staticcheck is a tool dependency in go.mod (go get -tool), so its version
# is pinned with the rest and nothing needs installing.
staticcheck:
	$(GO) tool staticcheck $(PKGS)

# Short runs of every fuzz target (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list ./internal/...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

bench:
	./bench/run.sh

dev:
	$(GO) run ./cmd/syncd --dev

sandbox:
	$(GO) run ./cmd/snf-sandbox --listen 127.0.0.1:8080 --data ./state/sandbox

clean:
	rm -rf bin
