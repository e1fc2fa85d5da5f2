#!/usr/bin/env bash
# The demo with many replicas (make demo-replicas), on 127.0.0.1: the IdP
# (:9000), the SPA (:3000) and the API (:4000) as in demo.sh, a Redis
# (:6390, nothing saved), three bffgate replicas (:8081-8083, admin
# :9091-9093) sharing Redis, the session secret and a signing key made
# for this run, and a round-robin balancer on :8080 that prints which
# replica served each request. Ctrl-C (or SIGTERM) stops everything.
#
# Ports: DEMO_GATEWAY_PORT (the balancer), DEMO_IDP_PORT, DEMO_SPA_PORT,
# DEMO_API_PORT, DEMO_REDIS_PORT, DEMO_REPLICA_PORTS and
# DEMO_REPLICA_ADMIN_PORTS (three each, space-separated); the logs'
# folder with DEMO_LOGS. Each replica's JSON log goes to replicaN.log
# there; its warnings and errors are shown here too.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGS="${DEMO_LOGS:-${TMPDIR:-/tmp}/bffgate-demo-replicas}"
. examples/demo-lib.sh
REDIS=${DEMO_REDIS_PORT:-6390}
read -r -a PORTS <<<"${DEMO_REPLICA_PORTS:-8081 8082 8083}"
read -r -a ADMINS <<<"${DEMO_REPLICA_ADMIN_PORTS:-9091 9092 9093}"
[ "${#PORTS[@]}" = 3 ] && [ "${#ADMINS[@]}" = 3 ] || { echo "demo: DEMO_REPLICA_PORTS and DEMO_REPLICA_ADMIN_PORTS need three ports each" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "demo: redis-server is not installed (apt-get install redis-server)" >&2; exit 2; }

build_demo
go build -o bin/demo-balancer ./examples/balancer

# The replicas' shared signing key, made for this run, in the logs' folder.
(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$LOGS/signing.pem" 2>/dev/null)
export DEMO_SIGNING_KEY="$LOGS/signing.pem"
export DEMO_PUBLIC_URL="http://127.0.0.1:$GW" DEMO_REDIS_URL="redis://127.0.0.1:$REDIS/0"
export DEMO_IDP_URL="http://127.0.0.1:$IDP" DEMO_SPA_URL="http://127.0.0.1:$SPA" DEMO_API_URL="http://127.0.0.1:$API"

redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly no --dir "$LOGS" >"$LOGS/redis.log" 2>&1 &
start_apps
for _ in $(seq 1 150); do redis-cli -p "$REDIS" ping >/dev/null 2>&1 && break; sleep 0.2; done
wait_idp
backends=()
for i in 0 1 2; do
  n=$((i + 1))
  : >"$LOGS/replica$n.log"
  REPLICA_LISTEN="127.0.0.1:${PORTS[$i]}" REPLICA_ADMIN_LISTEN="127.0.0.1:${ADMINS[$i]}" \
    bin/bffgate -config examples/replicas.toml 2>&1 |
    bin/demo-logview -file "$LOGS/replica$n.log" -prefix "r$n" -level warn &
  backends+=("r$n=http://127.0.0.1:${PORTS[$i]}")
done
wait_ready "http://127.0.0.1:${ADMINS[0]}/readyz" "http://127.0.0.1:${ADMINS[1]}/readyz" "http://127.0.0.1:${ADMINS[2]}/readyz"
bin/demo-balancer -listen "127.0.0.1:$GW" -backends "$(IFS=,; echo "${backends[*]}")" &
wait_ready "http://127.0.0.1:$GW/bff/client.js"

cat <<MSG

  bffgate with three replicas is up.   Open  http://127.0.0.1:$GW/  (the balancer)
  Sign in as  alice / wonderland.  Each request below names its replica (r1, r2, r3).
  Replicas: ${PORTS[*]} (admin ${ADMINS[*]}), Redis: $REDIS.
  Logs: $LOGS (replica1.log … replica3.log, idp.log, spa.log, api.log, redis.log)
  Ctrl-C stops everything.

MSG
wait
