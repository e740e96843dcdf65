# ccauthz — build, run and test. `make run` and `make test` are the two set-up
# commands: both work on a fresh machine with only Go installed.

GO        ?= go
BIN       := bin/ccauthz
FUZZTIME  ?= 20s
# Minimisation of a new input is capped: at Go's 60 s default one slow target
# spent a whole short run minimising. `make fuzz FUZZTIME=10m` is the campaign.
FUZZMINIMIZETIME ?= 5s
BENCHTIME ?= 1s
# envoyproxy/ratelimit, the distributed engine the rate-limit end-to-end test
# runs against (no tags upstream: a module pseudo-version). `make tools`
# installs it into bin/tools; tests skip with a message when it is absent.
RATELIMIT_VERSION := v1.4.1-0.20260122083618-3fb702589d36
# Cloudflare's Workers runtime for the Worker's end-to-end test
# (deploy/cloudflare); `make tools` installs it with npm when npm exists.
WORKERD_VERSION := 1.20261117.1
# Packages with fuzz targets; `make fuzz` runs each target for FUZZTIME, a
# duration or an execution count such as 2000x (.ci/fuzz.sh).
FUZZ_PKGS := ./catalog ./authz/config ./authz/jwks ./authz/token ./authz/api ./policy/manifest ./policy/route ./proto/...

# `ccauthz version` and ccauthz_build_info report these (git describe and
# the commit; "devel"/"unknown" outside a git checkout).
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X main.buildVersion=$(VERSION) -X main.buildCommit=$(COMMIT)
# Where `make install` puts the binary (a directory on PATH).
PREFIX    ?= $(HOME)/.local

.PHONY: all build install run test unit policy-test lint fmt bench soak fuzz tools clean proto proto-check

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/ccauthz

# Copies bin/ccauthz to $(PREFIX)/bin (default ~/.local/bin), so the docs'
# commands work as `ccauthz ...`; they are written as `bin/ccauthz ...`,
# which works from the clone without installing.
install: build
	install -d $(PREFIX)/bin
	install -m 0755 $(BIN) $(PREFIX)/bin/ccauthz
	@echo "installed $(PREFIX)/bin/ccauthz"

# Serves on loopback with the embedded example catalog, the AI gateway manifest
# and a dev issuer; prints commands that show an allow and a deny.
run: build
	./$(BIN) serve

# Everything CI checks: formatting and vet, generated API code up to date,
# unit and e2e tests with the race detector, then the generated policy test
# suites.
test: lint proto-check unit policy-test

# The ccauthz.v1 API: Go code generated from proto/ccauthz/v1/*.proto and
# committed next to it. protoc and the well-known types are Debian's
# protobuf-compiler and libprotobuf-dev (.ci/run installs them); the plugins
# are the go tools pinned in go.mod.
PROTO_FILES := $(wildcard proto/ccauthz/v1/*.proto)
PROTOC      ?= protoc
PROTOC_GEN   = $(PROTOC) --plugin=protoc-gen-go=$(1)/protoc-gen-go --plugin=protoc-gen-go-grpc=$(1)/protoc-gen-go-grpc \
	--go_out=$(2) --go_opt=module=github.com/ccauthz/ccauthz \
	--go-grpc_out=$(2) --go-grpc_opt=module=github.com/ccauthz/ccauthz \
	-I proto $(PROTO_FILES:proto/%=%)

proto:
	@command -v $(PROTOC) >/dev/null || { echo "make proto: protoc not found (apt-get install protobuf-compiler libprotobuf-dev)"; exit 1; }
	$(GO) build -o bin/tools/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	$(GO) build -o bin/tools/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc
	$(call PROTOC_GEN,bin/tools,.)

# Fails when the committed generated code differs from what `make proto`
# writes (a .proto edited without regenerating, or generated code edited by
# hand). Skips, saying so, where protoc is absent; CI installs it.
proto-check:
	@if ! command -v $(PROTOC) >/dev/null; then echo "proto-check: SKIP: protoc not installed (apt-get install protobuf-compiler libprotobuf-dev)"; exit 0; fi; \
	  tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	  $(GO) build -o $$tmp/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go && \
	  $(GO) build -o $$tmp/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc && \
	  $(call PROTOC_GEN,$$tmp,$$tmp) && \
	  for f in $$(cd $$tmp && find proto -name '*.pb.go'); do \
	    cmp -s $$tmp/$$f $$f || { echo "proto-check: $$f is stale or edited: run 'make proto'"; exit 1; }; \
	  done && \
	  for f in $$(find proto/ccauthz -name '*.pb.go'); do \
	    [ -f $$tmp/$$f ] || { echo "proto-check: $$f has no .proto: remove it or run 'make proto'"; exit 1; }; \
	  done && \
	  echo "proto-check: generated code is up to date"

unit:
	$(GO) test -race -count=1 -timeout 30m ./...

# Generates the Rego for the example manifests and the real legacy catalog and
# runs `opa test` on each (see docs/policy.md).
policy-test:
	@./policy/testdata/opa-test.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	# 32-bit and arm64 builds: an int compared with math.MaxUint32 compiled
	# on amd64 only; authz/server has assembly for amd64 and arm64.
	GOARCH=386 $(GO) vet ./...
	GOARCH=arm64 $(GO) vet ./authz/server
	$(GO) tool opa fmt --fail -l policy/rego
	$(GO) tool opa check --strict policy/rego

fmt:
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')
	$(GO) tool opa fmt -w policy/rego

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./benchmarks/...

# Steady open-loop load at 80 % of what the box can carry (the smaller of the
# closed-loop capacity and the open-loop maximum) for DURATION, every
# answer checked, RSS and goroutines sampled and required to stay flat
# (benchmarks/soak.sh, docs/reliability.md "Soak"). `make soak DURATION=30s`
# is the short version; CI runs it at LOAD_PERCENT=50 (.ci/run says why).
DURATION ?= 10m
LOAD_PERCENT ?= 80
soak:
	DURATION=$(DURATION) LOAD_PERCENT=$(LOAD_PERCENT) bash benchmarks/soak.sh

fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZMINIMIZETIME=$(FUZZMINIMIZETIME) bash .ci/fuzz.sh $(FUZZ_PKGS)

tools:
	GOBIN=$(CURDIR)/bin/tools $(GO) install github.com/envoyproxy/ratelimit/src/service_cmd@$(RATELIMIT_VERSION)
	@if command -v npm >/dev/null; then \
	  npm install --prefix bin/tools/workerd --no-audit --no-fund --silent workerd@$(WORKERD_VERSION); \
	else echo "npm not found: skipping workerd (the Cloudflare Worker test will skip)"; fi

clean:
	rm -rf bin
