# Two images from one build: the manager (minimal, non-root) and the node agent (needs
# mkfs, blkid, mount and losetup from the OS).
#   docker build --target manager    -t ossea-operator/manager:latest .
#   docker build --target node-agent -t ossea-operator/node-agent:latest .

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/manager ./cmd/manager && \
    go build -trimpath -ldflags="-s -w" -o /out/node-agent ./cmd/node-agent

FROM gcr.io/distroless/static-debian12:nonroot AS manager
COPY --from=build /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]

FROM debian:12-slim AS node-agent
RUN apt-get update && \
    apt-get install -y --no-install-recommends e2fsprogs xfsprogs util-linux && \
    rm -rf /var/lib/apt/lists/*
COPY --from=build /out/node-agent /node-agent
# The agent formats and mounts block devices on the host: it runs as root, privileged
# (see config/agent).
ENTRYPOINT ["/node-agent"]
