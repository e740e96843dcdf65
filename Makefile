# ccauthz — build, run and test. `make run` and `make test` are the two set-up
# commands: both work on a fresh machine with only Go installed.

GO        ?= go
BIN       := bin/ccauthz
FUZZTIME  ?= 20s
BENCHTIME ?= 1s
# envoyproxy/ratelimit, the distributed engine the rate-limit end-to-end test
# runs against (no tags upstream: a module pseudo-version). `make tools`
# installs it into bin/tools; tests skip with a message when it is absent.
RATELIMIT_VERSION := v1.4.1-0.20260122083618-3fb702589d36
# Cloudflare's Workers runtime for the Worker's end-to-end test
# (deploy/cloudflare); `make tools` installs it with npm when npm exists.
WORKERD_VERSION := 1.20261117.1
# Packages with fuzz targets; `make fuzz` runs each target for FUZZTIME.
FUZZ_PKGS := ./catalog ./authz/token ./proto/...

.PHONY: all build run test unit policy-test lint fmt bench fuzz tools clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/ccauthz

# Serves on loopback with the embedded example catalog, the AI gateway manifest
# and a dev issuer; prints commands that show an allow and a deny.
run: build
	./$(BIN) serve

# Everything CI checks: formatting and vet, unit and e2e tests with the race
# detector, then the generated `opa test` suites.
test: lint unit policy-test

unit:
	$(GO) test -race -count=1 ./...

# Generates the Rego for the example manifests and the real legacy catalog and
# runs `opa test` on each (see docs/policy.md).
policy-test:
	@./policy/testdata/opa-test.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool opa fmt --fail -l policy/rego
	$(GO) tool opa check --strict policy/rego

fmt:
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')
	$(GO) tool opa fmt -w policy/rego

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./benchmarks/...

fuzz:
	@for pkg in $(FUZZ_PKGS); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

tools:
	GOBIN=$(CURDIR)/bin/tools $(GO) install github.com/envoyproxy/ratelimit/src/service_cmd@$(RATELIMIT_VERSION)
	@if command -v npm >/dev/null; then \
	  npm install --prefix bin/tools/workerd --no-audit --no-fund --silent workerd@$(WORKERD_VERSION); \
	else echo "npm not found: skipping workerd (the Cloudflare Worker test will skip)"; fi

clean:
	rm -rf bin
