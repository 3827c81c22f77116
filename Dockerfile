# The image of `uses: lian-build/action@v1`: lian-build-action, lian-build,
# buildkitd, buildctl and runc. Base images are build args, so it also builds
# where no public registry is reachable (named contexts or a local registry):
#   lian-build build --build-arg GO_IMAGE=… --build-arg RUNTIME_IMAGE=… .
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY tools/go.mod tools/go.sum tools/
RUN --mount=type=cache,target=/go/pkg/mod cd tools && go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags=-s -o /out/ ./cmd/action ./cmd/lian-build \
 && mv /out/action /out/lian-build-action \
 && cd tools && go build -trimpath -ldflags=-s -o /out/ github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl

FROM ${RUNTIME_IMAGE}
# runc for the local runner; empty it when the base already has what it needs.
ARG RUNTIME_PACKAGES="runc ca-certificates"
RUN if [ -n "$RUNTIME_PACKAGES" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $RUNTIME_PACKAGES && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=build /out/ /usr/local/bin/
# The post step (action.yml post-entrypoint), found on PATH.
COPY lian-build-action-post /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/lian-build-action"]
