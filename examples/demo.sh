#!/usr/bin/env bash
# Runs the whole demo on 127.0.0.1: the IdP (oidc-provider 9.x, :9000),
# the sample SPA (:3000) and API (:4000), and bffgate (:8080, admin :9090)
# with the repository's config.toml. Ctrl-C (or SIGTERM) stops everything.
#
# The ports can be moved with DEMO_GATEWAY_PORT, DEMO_ADMIN_PORT,
# DEMO_IDP_PORT, DEMO_SPA_PORT and DEMO_API_PORT; the logs' folder with
# DEMO_LOGS. The gateway's JSON log lines go to gateway.log there and are
# shown in slog's text format here.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGS="${DEMO_LOGS:-${TMPDIR:-/tmp}/bffgate-demo}"
. examples/demo-lib.sh
ADMIN=${DEMO_ADMIN_PORT:-9090}

build_demo
: >"$LOGS/gateway.log"
# config.toml with the ports above.
sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$GW/g; s/127\.0\.0\.1:9090/127.0.0.1:$ADMIN/g" \
    -e "s/127\.0\.0\.1:9000/127.0.0.1:$IDP/g; s/127\.0\.0\.1:3000/127.0.0.1:$SPA/g" \
    -e "s/127\.0\.0\.1:4000/127.0.0.1:$API/g" config.toml >"$LOGS/gateway.toml"

start_apps
wait_idp
bin/bffgate -config "$LOGS/gateway.toml" 2>&1 | bin/demo-logview -file "$LOGS/gateway.log" &
wait_ready "http://127.0.0.1:$ADMIN/readyz"

cat <<MSG

  bffgate demo is up.   Open  http://127.0.0.1:$GW/
  Sign in as  alice / wonderland  (or bob / builder).
  Logs: $LOGS (idp.log, spa.log, api.log, gateway.log)
  Ctrl-C stops everything.

MSG
wait
