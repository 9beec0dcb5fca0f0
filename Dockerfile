# Builds the agentbill binary into a small static image.
#
#   docker build -t agentbill .
#   docker run --rm agentbill serve --nats-url nats://HOST:4222
#
# The build context is the repository: keep ./data (a local JetStream
# store) out of it, e.g. with a .dockerignore.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binary: no cgo, so it runs on distroless/static.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/agentbill ./cmd/agentbill
# Empty directories for the data and signing-key volumes, so a named
# volume mounted there starts owned by nonroot (uid 65532).
RUN mkdir -p /out/home/data /out/home/keys && chmod 700 /out/home/data /out/home/keys

# distroless/static: CA certificates and tzdata, no shell; runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/agentbill /usr/local/bin/agentbill
COPY --from=build --chown=65532:65532 /out/home/ /home/nonroot/
# `serve` without --nats-url stores in ./data: a directory nonroot can write.
WORKDIR /home/nonroot
USER nonroot:nonroot
ENTRYPOINT ["agentbill"]
