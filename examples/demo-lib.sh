# Sourced by demo.sh and demo-replicas.sh: the demo's settings, its builds,
# and the starting and stopping of its processes.
#
# Every part runs as a background job in its own process group (set -m), and
# stop_all signals whole groups: a pipeline such as "bffgate | logview" is
# stopped as one, whatever $! named. SIGINT (Ctrl-C), SIGTERM and the
# script's exit all stop every part, the last started first, each with
# SIGKILL after 20 s.

set -m

export BFFGATE_SESSION_SECRET="${BFFGATE_SESSION_SECRET:-demo-only-session-secret-change-me-0123456789}"
export DEMO_CLIENT_SECRET="${DEMO_CLIENT_SECRET:-demo-secret-change-me}"
export BFFGATE_ADMIN_TOKEN="${BFFGATE_ADMIN_TOKEN:-demo-admin-token-change-me}"

# Ports (all on 127.0.0.1); the tests set them to free ones.
GW=${DEMO_GATEWAY_PORT:-8080}
IDP=${DEMO_IDP_PORT:-9000}
SPA=${DEMO_SPA_PORT:-3000}
API=${DEMO_API_PORT:-4000}

stop_all() {
  trap - INT TERM EXIT
  local groups pg
  groups=$(jobs -p)
  [ -n "$groups" ] || return 0
  echo "demo: stopping…" >&2
  # Last started first: the balancer and the gateways before what they use.
  for pg in $(echo "$groups" | tac); do
    kill -TERM -- "-$pg" 2>/dev/null || continue
    for _ in $(seq 1 100); do
      kill -0 -- "-$pg" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$pg" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

# build_demo installs the IdP's packages (once) and builds the programs
# into bin/.
build_demo() {
  mkdir -p "$LOGS" bin
  [ -f examples/idp/node_modules/oidc-provider/package.json ] || (cd examples/idp && npm ci --no-audit --no-fund)
  go build -o bin/bffgate ./cmd/bffgate
  go build -o bin/demo-spa ./examples/spa
  go build -o bin/demo-api ./examples/api
  go build -o bin/demo-logview ./examples/logview
}

# start_apps starts the IdP, the SPA and the API, each logging to its file.
start_apps() {
  : >"$LOGS/idp.log"
  start_idp
  bin/demo-spa -listen "127.0.0.1:$SPA" >"$LOGS/spa.log" 2>&1 &
  bin/demo-api -listen "127.0.0.1:$API" -issuer "http://127.0.0.1:$IDP" -client-id demo \
    -gateway "http://127.0.0.1:$GW" >"$LOGS/api.log" 2>&1 &
}

start_idp() {
  PORT=$IDP GATEWAY_URL=http://127.0.0.1:$GW node examples/idp/server.js >>"$LOGS/idp.log" 2>&1 &
  IDP_PID=$!
}

# wait_idp waits for the IdP. It listens within a second or two; a Node
# process that is alive but not listening after 10 s has hung at start (seen
# rarely, on a busy machine): it is stopped and started once more.
wait_idp() {
  local u="http://127.0.0.1:$IDP/healthz"
  for _ in $(seq 1 50); do
    curl -fsS -o /dev/null "$u" 2>/dev/null && return 0
    kill -0 "$IDP_PID" 2>/dev/null || { echo "demo: the IdP exited; see $LOGS/idp.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "demo: the IdP is not listening after 10 s; starting it again" >&2
  kill -KILL -- "-$IDP_PID" 2>/dev/null || true
  wait "$IDP_PID" 2>/dev/null || true
  start_idp
  wait_ready "$u"
}

# wait_ready URL...: each must answer 200 within 30 s.
wait_ready() {
  local u
  for u in "$@"; do
    for _ in $(seq 1 150); do
      curl -fsS -o /dev/null "$u" 2>/dev/null && continue 2
      sleep 0.2
    done
    echo "demo: $u is not ready after 30 s; see the logs in $LOGS" >&2
    exit 1
  done
}
