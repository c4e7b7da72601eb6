# syntax=docker/dockerfile:1
#
# The herald image. Two static binaries serve every role; the Deployment
# picks one with its command and first argument:
#
#   herald manager      the operator (the Helm chart, config/default)
#   herald-dispatcher   a Topic's ingress and delivery (created by the operator)
#   herald adapter      an EventSource (created by the operator)
#
# herald-dispatcher is herald dispatcher's code alone, without the control
# plane's libraries, so that a dispatcher Pod takes less memory; herald
# dispatcher stays for the Deployments of earlier operators. The operator
# starts dispatchers with command ["herald-dispatcher"] and adapters with
# command ["herald"], so both binaries are on PATH. The image runs as the distroless "nonroot" user
# (65532:65532) and needs no writable root filesystem.
#
#   docker build -t ghcr.io/herald-dev/herald:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t … --push .

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/ ./cmd/herald ./cmd/herald-dispatcher

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="herald" \
      org.opencontainers.image.description="Kubernetes-native eventing: CloudEvents over HTTP, NATS JetStream, subscribers" \
      org.opencontainers.image.source="https://github.com/herald-dev/herald" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/herald /out/herald-dispatcher /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/herald"]
