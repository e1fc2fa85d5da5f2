# syntax=docker/dockerfile:1
# Build: docker build -t bffgate .
# Run:   docker run -p 8080:8080 -p 9090:9090 \
#          -v $PWD/config.toml:/etc/bffgate/config.toml:ro \
#          -e BFFGATE_SESSION_SECRET -e DEMO_CLIENT_SECRET bffgate
# The mounted config must listen on 0.0.0.0 (listen / admin_listen).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/bffgate ./cmd/bffgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bffgate /usr/local/bin/bffgate
USER nonroot:nonroot
EXPOSE 8080 9090
# No shell in the image: the binary probes its own admin /healthz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/bffgate", "-config", "/etc/bffgate/config.toml", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/bffgate"]
CMD ["-config", "/etc/bffgate/config.toml"]
