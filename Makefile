# bffgate — see README.md.
GO      ?= go
BIN     := bin/bffgate
export BFFGATE_SESSION_SECRET ?= demo-only-session-secret-change-me-0123456789
export DEMO_CLIENT_SECRET     ?= demo-secret-change-me
export BFFGATE_ADMIN_TOKEN    ?= demo-admin-token-change-me

.PHONY: all build test demo demo-replicas bench fuzz check-config node-deps clean

all: build

# bffgate -version prints VERSION and the commit (stamped by -buildvcs).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
build:
	$(GO) build -buildvcs=auto -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/bffgate

# Installs the pinned npm packages of the IdPs (once): oidc-provider 9.x
# for the demo and the tests, 6.31.1 for front-channel and session
# management tests.
node-deps: examples/idp/node_modules/.package-lock.json e2e/idp6/node_modules/.package-lock.json

examples/idp/node_modules/.package-lock.json: examples/idp/package-lock.json
	cd examples/idp && npm ci --no-audit --no-fund

e2e/idp6/node_modules/.package-lock.json: e2e/idp6/package-lock.json
	cd e2e/idp6 && npm ci --no-audit --no-fund

# The README's second command: every test, with the race detector.
test: node-deps
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# The README's first command: IdP, sample SPA and API, and the gateway.
# Needs only the demo IdP's packages (oidc-provider 9).
demo: examples/idp/node_modules/.package-lock.json build
	./examples/demo.sh

# The same with Redis, three gateway replicas and a round-robin balancer
# on :8080 (README, "Many replicas with Redis").
demo-replicas: examples/idp/node_modules/.package-lock.json build
	./examples/demo-replicas.sh

check-config: build
	./$(BIN) -config config.toml -check-config

# The load harness (e2e/load, issue 7): targets side by side in
# interleaved rounds, then the Go benchmarks; about 4 minutes. It rewrites
# the generated section of docs/benchmarks.md. Uses wrk when installed
# (apt-get install wrk; else a Go generator) and redis-server when
# installed (the Redis target), and oauth2-proxy beside them when
# BENCH_OAUTH2_PROXY names its binary or one is on PATH or in
# $(go env GOPATH)/bin (BENCH_OAUTH2_PROXY=0: never). It also opens
# BENCH_STREAMS (10000) /bff/events streams on a gateway of their own.
# BENCH_ROUNDS=7 BENCH_DURATION=6s for more.
BENCH_ROUNDS       ?= 5
BENCH_DURATION     ?= 4s
BENCH_STREAMS      ?= 10000
BENCH_OAUTH2_PROXY ?=
BENCH_DOC          ?= $(CURDIR)/docs/benchmarks.md
bench:
	BFFGATE_LOAD=1 BFFGATE_LOAD_DOC=$(BENCH_DOC) BFFGATE_LOAD_ROUNDS=$(BENCH_ROUNDS) \
	BFFGATE_LOAD_DURATION=$(BENCH_DURATION) BFFGATE_LOAD_STREAMS=$(BENCH_STREAMS) \
	BFFGATE_LOAD_OAUTH2_PROXY=$(BENCH_OAUTH2_PROXY) GO=$(GO) \
		$(GO) test -tags loadbench -count=1 -timeout 25m -run '^TestLoad$$' -v ./e2e/load

# Fuzz the logout-token verifier and the back-channel endpoint
# (FUZZTIME=5m make fuzz); neither may ever panic.
FUZZTIME ?= 60s
fuzz:
	$(GO) test ./logout -run '^$$' -fuzz FuzzVerify -fuzztime $(FUZZTIME)
	$(GO) test ./bff -run '^$$' -fuzz FuzzBackchannelEndpoint -fuzztime $(FUZZTIME)

clean:
	rm -rf bin
