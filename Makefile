# byob-agent. `make demo` runs the agent against local emulators; `make test` runs every test.
# Both build what they need: the agent, the W&B SCIM emulator, and the test backends
# (SeaweedFS and local-kms, compiled from their Go modules in tools/, the first build takes minutes;
# Azurite from npm).

GO        ?= go
BIN       := $(CURDIR)/bin
GOFILES   := $(shell find . -name '*.go' -not -path './tools/*' -not -path './bin/*')

.PHONY: all build tools demo-tools demo-notice test vet fuzz demo bench microbench chaos clean

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
tools: demo-tools $(BIN)/helm

# helm lints and renders deploy/helm/byob-agent (deploy/deploy_test.go); -X makes `helm version` exact.
$(BIN)/helm: tools/go.mod tools/go.sum
	cd tools && $(GO) build -ldflags "-X helm.sh/helm/v3/internal/version.version=$$($(GO) list -m -f '{{.Version}}' helm.sh/helm/v3)" -o $@ helm.sh/helm/v3/cmd/helm

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
bench: $(BIN)/weed $(BIN)/kmsd
	$(GO) run ./bench -out bench/results.json $(BENCH_FLAGS)

# The Go micro-benchmarks of the packages.
microbench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf $(BIN) tools/azurite/node_modules
