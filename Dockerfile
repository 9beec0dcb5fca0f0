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

# distroless/static: CA certificates and tzdata, no shell; runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/agentbill /usr/local/bin/agentbill
# `serve` without --nats-url stores in ./data: a directory nonroot can write.
WORKDIR /home/nonroot
USER nonroot:nonroot
ENTRYPOINT ["agentbill"]
