# byob-agent. `make demo` runs the agent against local emulators; `make test` runs every test.
# Both build what they need: the agent, the W&B SCIM emulator, and the test backends
# (SeaweedFS and local-kms, compiled from their Go modules in tools/, the first build takes minutes;
# Azurite from npm).

GO        ?= go
BIN       := $(CURDIR)/bin
GOFILES   := $(shell find . -name '*.go' -not -path './tools/*' -not -path './bin/*')

.PHONY: all build tools postgres chromium demo-tools demo-notice test vet fuzz demo bench microbench chaos clean

all: build

build: $(BIN)/byob-agent $(BIN)/wandb-emulator $(BIN)/devenv

$(BIN)/byob-agent: $(GOFILES) go.mod go.sum
	$(GO) build -o $@ ./cmd/agent

$(BIN)/wandb-emulator: $(GOFILES) go.mod go.sum
	$(GO) build -o $@ ./cmd/wandb-emulator

$(BIN)/devenv: $(GOFILES) go.mod go.sum
	$(GO) build -o $@ ./cmd/devenv

# What `make demo` runs against; `make test` also needs helm.
DEMO_TOOLS := $(BIN)/weed $(BIN)/kmsd tools/azurite/node_modules/.bin/azurite-blob
demo-tools: $(DEMO_TOOLS)
tools: demo-tools $(BIN)/helm $(BIN)/promql-check postgres chromium

# PostgreSQL 15 for the state tests (internal/testsupport/testenv starts a server of its own from these
# binaries): Debian's package, installed with apt-get where it is missing and we may.
PG_BIN := /usr/lib/postgresql/15/bin
postgres:
	@if [ ! -x $(PG_BIN)/postgres ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "make tools: installing PostgreSQL 15 (Debian package postgresql-15) for the state tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15; \
		else echo "make tools: $(PG_BIN)/postgres is missing: install the Debian package postgresql-15 (apt-get install postgresql-15)" >&2; exit 1; fi; \
	fi

# Headless Chromium from Debian's packages, for the status page's browser test (TestStatusPageInBrowser
# in cmd/agent). Installed with apt-get where missing, which needs root.
chromium:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make tools: installing Debian's chromium package for the status page's browser test"; \
		apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; \
	else \
		echo "make tools: chromium is missing and cannot be installed here (apt-get as root is needed): install Debian's chromium package (sudo apt-get install -y chromium); the status page's browser test (cmd/agent) needs it" >&2; \
		exit 1; \
	fi

# helm lints and renders deploy/helm/byob-agent (deploy/deploy_test.go); -X makes `helm version` exact.
$(BIN)/helm: tools/go.mod tools/go.sum
	cd tools && $(GO) build -ldflags "-X helm.sh/helm/v3/internal/version.version=$$($(GO) list -m -f '{{.Version}}' helm.sh/helm/v3)" -o $@ helm.sh/helm/v3/cmd/helm

# promql-check parses the chart's alert and dashboard expressions with Prometheus's own parser
# (deploy/deploy_test.go). A module of its own, so neither the agent nor the other tools pull in
# Prometheus: about 20 s to build with empty caches.
$(BIN)/promql-check: tools/promql-check/go.mod tools/promql-check/go.sum tools/promql-check/main.go
	cd tools/promql-check && $(GO) build -o $@ .

# Azurite, Microsoft's Azure Blob emulator, from the npm registry. npm's .bin entries are symlinks:
# touch makes the target newer than the lock file.
tools/azurite/node_modules/.bin/azurite-blob: tools/azurite/package.json tools/azurite/package-lock.json
	cd tools/azurite && npm ci --no-audit --no-fund
	touch $@

$(BIN)/weed: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $@ github.com/seaweedfs/seaweedfs/weed

$(BIN)/kmsd: tools/go.mod tools/go.sum tools/kmsd/main.go
	cd tools && $(GO) build -o $@ ./kmsd

vet:
	@unformatted=$$(gofmt -l $(GOFILES)); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# A short run of every fuzz target.
fuzz:
	./scripts/fuzz.sh

test: tools build vet
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

# Says what a first run builds before it spends minutes on it.
demo-notice:
	@for f in $(DEMO_TOOLS) $(BIN)/byob-agent; do [ -e "$$f" ] || missing=1; done; \
	if [ -n "$$missing" ]; then echo "make demo: first run: building SeaweedFS and local-kms from their Go modules, Azurite with npm ci, and the agent (about 10 minutes on 2 cores with empty Go caches; seconds later on)"; fi

demo: demo-notice demo-tools build
	./scripts/demo.sh

# The chaos tests with many kills and teams (`make test` runs them small), then a table of their reports.
chaos: tools build
	./scripts/chaos.sh

# The performance table of README "Performance": builds the agent and the W&B emulator into a temporary
# directory, runs every measurement against SeaweedFS, local-kms and the emulator, writes bench/results.json
# (needs SeaweedFS and kmsd from `make tools`, not Azurite).
# BENCH_FLAGS=-profile=bench/profiles also writes the agent's CPU and heap profiles there.
# The performance table (README "Performance"), with the state in the bbolt file and then in PostgreSQL.
bench: $(BIN)/weed $(BIN)/kmsd postgres
	$(GO) run ./bench -out bench/results.json $(BENCH_FLAGS)
	$(GO) run ./bench -state postgres -out bench/results-postgres.json $(BENCH_FLAGS)

# The Go micro-benchmarks of the packages.
microbench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf $(BIN) tools/azurite/node_modules
