# bffgate — see README.md.
GO      ?= go
BIN     := bin/bffgate
export BFFGATE_SESSION_SECRET ?= demo-only-session-secret-change-me-0123456789
export DEMO_CLIENT_SECRET     ?= demo-secret-change-me

.PHONY: all build test test-unit e2e demo bench fuzz check-config node-deps clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/bffgate

# Installs the pinned npm packages of the example IdP (once).
node-deps: examples/idp/node_modules/.package-lock.json

examples/idp/node_modules/.package-lock.json: examples/idp/package-lock.json
	cd examples/idp && npm ci --no-audit --no-fund

# The README's second command: every test, with the race detector.
test: node-deps
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# The README's first command: IdP, sample SPA and API, and the gateway.
demo: node-deps build
	./examples/demo.sh

check-config: build
	./$(BIN) -config config.toml -check-config

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Fuzz the logout-token and back-channel endpoint paths (FUZZTIME=5m).
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./logout -run '^$$' -fuzz FuzzVerify -fuzztime $(FUZZTIME)

clean:
	rm -rf bin
