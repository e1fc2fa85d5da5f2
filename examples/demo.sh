#!/usr/bin/env bash
# Runs the whole demo on 127.0.0.1: the IdP (oidc-provider 9.x, :9000),
# the sample SPA (:3000) and API (:4000), and bffgate (:8080, admin :9090)
# with the repository's config.toml. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

export BFFGATE_SESSION_SECRET="${BFFGATE_SESSION_SECRET:-demo-only-session-secret-change-me-0123456789}"
export DEMO_CLIENT_SECRET="${DEMO_CLIENT_SECRET:-demo-secret-change-me}"
export BFFGATE_ADMIN_TOKEN="${BFFGATE_ADMIN_TOKEN:-demo-admin-token-change-me}"
LOGS="${DEMO_LOGS:-${TMPDIR:-/tmp}/bffgate-demo}"
GW=${DEMO_GATEWAY_PORT:-8080} ADMIN=${DEMO_ADMIN_PORT:-9090} IDP=${DEMO_IDP_PORT:-9000} SPA=${DEMO_SPA_PORT:-3000} API=${DEMO_API_PORT:-4000}
mkdir -p "$LOGS" bin

[ -d examples/idp/node_modules ] || (cd examples/idp && npm ci --no-audit --no-fund)
go build -o bin/bffgate ./cmd/bffgate
go build -o bin/demo-spa ./examples/spa
go build -o bin/demo-api ./examples/api

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

sed -e "s/127.0.0.1:8080/127.0.0.1:$GW/g; s/127.0.0.1:9090/127.0.0.1:$ADMIN/g; s/127.0.0.1:9000/127.0.0.1:$IDP/g" \
    -e "s/127.0.0.1:3000/127.0.0.1:$SPA/g; s/127.0.0.1:4000/127.0.0.1:$API/g" config.toml >"$LOGS/gateway.toml"
PORT=$IDP GATEWAY_URL=http://127.0.0.1:$GW node examples/idp/server.js >"$LOGS/idp.log" 2>&1 & pids+=($!)
bin/demo-spa -listen 127.0.0.1:$SPA >"$LOGS/spa.log" 2>&1 & pids+=($!)
bin/demo-api -listen 127.0.0.1:$API -issuer http://127.0.0.1:$IDP -client-id demo -gateway http://127.0.0.1:$GW >"$LOGS/api.log" 2>&1 & pids+=($!)
bin/bffgate -config "$LOGS/gateway.toml" 2>&1 | tee "$LOGS/gateway.log" & pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS -o /dev/null http://127.0.0.1:$ADMIN/readyz 2>/dev/null && break
  sleep 0.2
done
cat <<MSG

  bffgate demo is up.   Open  http://127.0.0.1:8080/
  Sign in as  alice / wonderland  (or bob / builder).
  Logs: $LOGS (idp.log, spa.log, api.log, gateway.log)
  Ctrl-C stops everything.

MSG
wait
