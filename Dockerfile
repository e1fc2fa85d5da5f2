# syntax=docker/dockerfile:1
# Build: docker build -t bffgate .
# Run:   docker run --rm -p 8080:8080 -p 9090:9090 \
#          -v "$PWD/deploy/config.toml:/etc/bffgate/config.toml:ro" \
#          -e BFFGATE_SESSION_SECRET -e BFFGATE_ADMIN_TOKEN -e DEMO_CLIENT_SECRET \
#          bffgate
# Every ${NAME} the config references must be passed with -e (the shipped
# config.toml: the three above). The mounted config must listen on 0.0.0.0
# (listen, admin_listen) and name addresses the container can reach.
# ENTRYPOINT and HEALTHCHECK both read the file BFFGATE_CONFIG names; to
# mount it elsewhere, set -e BFFGATE_CONFIG=/path rather than -config.
# dockerfile_test.go runs this file's `go build` line without
# Docker and checks the binary: keep the build on that one RUN line.

# The builder's Go is go.mod's go line exactly (the test checks it).
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# bffgate -version prints it: docker build --build-arg VERSION=$(git describe --tags --always) .
ARG VERSION=devel
# The context has no .git (.dockerignore), so the commit comes in too:
# --build-arg COMMIT=$(git rev-parse HEAD).
ARG COMMIT=
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/bffgate ./cmd/bffgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bffgate /usr/local/bin/bffgate
USER nonroot:nonroot
ENV BFFGATE_CONFIG=/etc/bffgate/config.toml
EXPOSE 8080 9090
# No shell in the image: the binary probes its own admin /healthz, at the
# admin_listen of the config BFFGATE_CONFIG names.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/bffgate", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/bffgate"]
