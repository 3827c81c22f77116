# lian-build — see README.md. Two entry points: `make demo` and `make test`.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

# Debian packages the local runner, its tests and the demo need.
APT_PACKAGES := runc busybox-static docker-registry openssh-server iproute2 btrfs-progs xfsprogs docker.io qemu-user-static prometheus qemu-system-x86 qemu-utils debootstrap python3

.PHONY: all build deps tools demo test bench vet fmt-check clean fake-hcloud buildkit-image doctest soak soak-pool

all: build

## deps: install the system packages (root; apt)
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## tools: buildkitd and buildctl built from the pinned github.com/moby/buildkit (tools/go.mod), and an
## arm64 busybox (Debian's busybox-static:arm64) for the emulated arm64 runner hosts of the tests
tools: deps $(BIN)/buildkitd $(BIN)/buildctl $(BIN)/busybox-arm64 $(BIN)/cosign $(BIN)/lian-sbom-scanner

## the SBOM scanner (scanner/, its own module: syft as a library), static for its FROM-scratch image
$(BIN)/lian-sbom-scanner: scanner/go.mod scanner/go.sum $(wildcard scanner/*.go)
	cd scanner && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/lian-sbom-scanner .

## the real cosign (tools/cosign/go.mod, its own module) verifies what lian-build signs in the tests
$(BIN)/cosign: tools/cosign/go.mod tools/cosign/go.sum
	cd tools/cosign && $(GO) build -o $(BIN)/cosign github.com/sigstore/cosign/v2/cmd/cosign

$(BIN)/busybox-arm64:
	@mkdir -p $(BIN) && tmp=$$(mktemp -d) && cd $$tmp && \
	  { dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }; } && \
	  { apt-get download -qq busybox-static:arm64 2>/dev/null || { apt-get update -qq && apt-get download -qq busybox-static:arm64; }; } && \
	  dpkg -x busybox-static_*_arm64.deb x && cp x/bin/busybox $@.tmp && mv $@.tmp $@ && rm -rf $$tmp

$(BIN)/buildkitd $(BIN)/buildctl &: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BIN)/ github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl

## buildkit-image: the docker provider's runner image, made here from bin/ (no registry):
## the Docker Engine at DOCKER_HOST (or the local socket) imports it as lian-build/buildkit:v0.34.2-local
buildkit-image: tools build
	$(BIN)/lian-build runners image --provider docker

## build: every binary into bin/ — lian-build (the CLI), gateway (the GitHub App), lian-build-plugin
## (Woodpecker), lian-build-action (the Action's entry point), fake-hcloud (the fake Hetzner API)
build:
	$(GO) build -o $(BIN)/lian-build ./cmd/lian-build
	$(GO) build -o $(BIN)/gateway ./cmd/gateway
	$(GO) build -o $(BIN)/lian-build-plugin ./plugin/woodpecker
	$(GO) build -o $(BIN)/lian-build-action ./cmd/action
	$(GO) build -o $(BIN)/fake-hcloud ./cmd/fake-hcloud

## demo: set up and run the main job — real builds of examples/hello on fresh local runners
demo: tools build
	./examples/demo.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## test: the whole suite, real buildkitd + runc + registry included (LIAN_E2E=1 makes missing prerequisites fail)
test: tools vet fmt-check
	$(GO) test -race -count=1 -timeout 40m ./...
	cd scanner && $(GO) vet ./... && $(GO) test -count=1 ./...
	# Fuzz budgets are counts: a -fuzztime duration races Go 1.26's fuzz
	# coordinator at its deadline (golang/go#75804: "context deadline
	# exceeded", no failing input), which failed a CI run on 2026-12-06.
	$(GO) test -run '^$$' -fuzz FuzzEval -fuzztime 30000x ./internal/nickel/
	$(GO) test -run '^$$' -fuzz FuzzLeaseRequest -fuzztime 30000x ./internal/pool/
	$(GO) test -run '^$$' -fuzz FuzzLoadCatalog -fuzztime 10000x ./internal/lamina/

## soak: the whole system — three gateway replicas, two pool replicas, a three-node NATS cluster, the fake
## Hetzner API with runner hosts, Prometheus with deploy/'s rules — under webhooks and random faults for
## DURATION; SEED reproduces a run's choices; SOAK_DIR keeps the replicas' logs (CI runs it for 2 minutes)
DURATION ?= 10m
SEED ?=
SOAK_DIR ?=
soak: tools
	LIAN_E2E=1 LIAN_SOAK=$(DURATION) LIAN_SOAK_SEED=$(SEED) LIAN_SOAK_DIR=$(SOAK_DIR) $(GO) test -run '^TestSystemSoak$$' -count=1 -v -timeout 0 ./internal/gateway/

## soak-pool: the VM pool alone (two replicas) under leases and the API's faults for DURATION (CI: 90 s)
soak-pool: tools
	LIAN_E2E=1 LIAN_SOAK=$(DURATION) LIAN_SOAK_SEED=$(SEED) $(GO) test -run '^TestPoolSoak$$' -count=1 -v -timeout 0 ./internal/pool/

## bench: spawn time, pipeline vs BuildKit by hand, cache import (prints numbers)
bench: tools build
	./bench/run.sh

clean:
	rm -rf $(BIN) .lian

## fake-hcloud: the fake Hetzner Cloud API with real runner hosts, in the foreground (root): make fake-hcloud LISTEN=127.0.0.1:8088
## RUNNER_HOSTS=vm backs each server with a qemu VM booting the real cloud-init (it prints the flags to pass)
LISTEN ?= 127.0.0.1:8088
RUNNER_HOSTS ?= netns
fake-hcloud: tools
	$(GO) run ./cmd/fake-hcloud --listen $(LISTEN) --buildkitd $(BIN)/buildkitd --runner-hosts $(RUNNER_HOSTS)
