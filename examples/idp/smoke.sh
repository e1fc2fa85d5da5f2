#!/usr/bin/env bash
# Smoke test of the demo IdP over plain HTTP (curl + node; openssl or python3
# for PKCE). Drives: discovery, authorization code + PKCE for client "demo"
# (login form, auto consent), code exchange, introspection, refresh, revocation
# of a spare token, SSO login of client "other" (no login form the second time),
# RP-initiated logout of "other" with "Yes, sign me out everywhere", and checks
# that the IdP sent a back-channel logout token for "demo" with the right sid.
#
# By default it starts its own IdP (node server.js) on SMOKE_PORT (9100) with
# GATEWAY_URL pointing at a tiny back-channel receiver on SMOKE_RECEIVER_PORT
# (9101), and stops both at the end. With IDP_URL set it uses that IdP instead
# and skips the back-channel check (the receiver is not the IdP's gateway).
# With API_URL set it also checks the demo API (examples/api), which must use
# the same IdP as its -issuer.
#
#   bash examples/idp/smoke.sh
#   IDP_URL=http://127.0.0.1:9000 bash examples/idp/smoke.sh
#   IDP_URL=http://127.0.0.1:9000 API_URL=http://127.0.0.1:4000 bash examples/idp/smoke.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ "${SMOKE_KEEP:-}" == "" ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT

PASS=0
FAIL=0
ok()   { PASS=$((PASS + 1)); echo "ok   - $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
die()  { echo "FAIL - $*"; echo "$PASS passed, $((FAIL + 1)) failed"; [[ -f "$WORK/idp.log" ]] && { echo "--- idp log"; tail -n 40 "$WORK/idp.log"; }; exit 1; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }

DEMO_SECRET="${DEMO_CLIENT_SECRET:-demo-secret-change-me}"
OTHER_SECRET="${OTHER_CLIENT_SECRET:-other-secret-change-me}"

wait_http() { # url [tries]
  local i
  for ((i = 0; i < ${2:-50}; i++)); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

# ---------------------------------------------------------------- setup
if [[ -n "${IDP_URL:-}" ]]; then
  ISSUER="${IDP_URL%/}"
  RECEIVER=""
  GATEWAY="${GATEWAY_URL:-http://127.0.0.1:8080}"
else
  PORT="${SMOKE_PORT:-9100}"
  RPORT="${SMOKE_RECEIVER_PORT:-9101}"
  ISSUER="http://127.0.0.1:$PORT"
  GATEWAY="http://127.0.0.1:$RPORT"
  RECEIVER="$WORK/backchannel.txt"
  # A stand-in for the gateway's POST /bff/backchannel-logout: stores each body.
  RECV_FILE="$RECEIVER" RPORT="$RPORT" node -e '
    const http = require("http"), fs = require("fs");
    http.createServer((req, res) => {
      let b = ""; req.on("data", (c) => b += c); req.on("end", () => {
        if (req.method === "POST") fs.appendFileSync(process.env.RECV_FILE, req.url + " " + b + "\n");
        res.writeHead(200, {"cache-control": "no-store"}); res.end();
      });
    }).listen(Number(process.env.RPORT), "127.0.0.1");
  ' >"$WORK/receiver.log" 2>&1 &
  PIDS+=($!)
  PORT="$PORT" GATEWAY_URL="$GATEWAY" node "$HERE/server.js" >"$WORK/idp.log" 2>&1 &
  PIDS+=($!)
  for ((i = 0; i < 50; i++)); do
    grep -q "oidc-provider listening on" "$WORK/idp.log" 2>/dev/null && break
    sleep 0.2
  done
  grep -q "oidc-provider listening on http://127.0.0.1:$PORT" "$WORK/idp.log" || die "IdP did not start"
  wait_http "$GATEWAY/" || die "receiver did not start"
fi
echo "# issuer $ISSUER, gateway $GATEWAY"

# ---------------------------------------------------------------- helpers
b64url() { base64 | tr -d '=\n' | tr '/+' '_-'; }
rand() { head -c 32 /dev/urandom | b64url; }
s256() {
  if command -v openssl >/dev/null; then
    printf '%s' "$1" | openssl dgst -sha256 -binary | b64url
  else
    python3 -c 'import sys,hashlib,base64;print(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).decode().rstrip("="))' "$1"
  fi
}
json() { # json FILE EXPR -> prints the JS expression evaluated on the parsed file (j)
  node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const v = eval(process.argv[2]); console.log(typeof v === "object" ? JSON.stringify(v) : v ?? "")' "$1" "$2"
}
jwt_payload() { # jwt -> JSON of its payload
  node -e 'console.log(Buffer.from(process.argv[1].split(".")[1], "base64url").toString())' "$1"
}
urlenc() { node -e 'console.log(encodeURIComponent(process.argv[1]))' "$1"; }
header() { # header FILE NAME
  tr -d '\r' <"$1" | awk -v n="$(echo "$2" | tr 'A-Z' 'a-z')" 'BEGIN{FS=": "} tolower($1)==n {sub(/^[^:]*: /,""); print; exit}'
}
absolute() { case "$1" in http*) echo "$1" ;; /*) echo "$ISSUER$1" ;; *) echo "$ISSUER/$1" ;; esac; }
qparam() { node -e 'const u = new URL(process.argv[1]); console.log(u.searchParams.get(process.argv[2]) ?? "")' "$1" "$2"; }

JAR="$WORK/cookies.txt"
req() { # req OUTPREFIX curl-args... ; sets STATUS, LOCATION
  local out="$1"; shift
  STATUS=$(curl -sS -b "$JAR" -c "$JAR" -D "$out.h" -o "$out.b" -w '%{http_code}' "$@")
  LOCATION="$(header "$out.h" location)"
}

# login CLIENT REDIRECT_URI USER PASSWORD SCOPE [EXTRA_QUERY] -> sets CODE, VERIFIER, NONCE, SAW_LOGIN_FORM
login() {
  local client="$1" redirect="$2" user="$3" pass="$4" scope="$5" extra="${6:-}"
  VERIFIER="$(rand)"
  local challenge state nonce url step=0
  challenge="$(s256 "$VERIFIER")"; state="$(rand)"; nonce="$(rand)"
  url="$ISSUER/auth?response_type=code&client_id=$client&redirect_uri=$(urlenc "$redirect")&scope=$(urlenc "$scope")&state=$state&nonce=$nonce&code_challenge=$challenge&code_challenge_method=S256$extra"
  CODE=""; SAW_LOGIN_FORM=no
  local last="$WORK/s0"
  req "$last" "$url"
  while ((step++ < 12)); do
    if [[ "$STATUS" =~ ^30[0-9]$ ]]; then
      if [[ "$LOCATION" == "$redirect"* ]]; then
        [[ "$(qparam "$LOCATION" state)" == "$state" ]] || { echo "# state mismatch in $LOCATION"; return 1; }
        [[ "$(qparam "$LOCATION" iss)" == "$ISSUER" ]] || { echo "# iss missing/wrong in $LOCATION"; return 1; }
        CODE="$(qparam "$LOCATION" code)"
        [[ -n "$CODE" ]] || { echo "# no code: $LOCATION"; return 1; }
        NONCE="$nonce"
        return 0
      fi
      last="$WORK/s$step"
      req "$last" "$(absolute "$LOCATION")"
    elif [[ "$STATUS" == 200 ]] && grep -q 'id="login"' "$last.b"; then
      local action
      grep -q 'id="password"' "$last.b" && grep -q 'id="submit"' "$last.b" || { echo "# login page without #password/#submit"; return 1; }
      action="$(grep -o 'action="/interaction/[^"]*/login"' "$last.b" | head -1 | sed 's/^action="//; s/"$//')"
      SAW_LOGIN_FORM=yes
      last="$WORK/s$step"
      req "$last" -X POST --data-urlencode "login=$user" --data-urlencode "password=$pass" "$ISSUER$action"
    else
      echo "# unexpected $STATUS at step $step"; head -c 600 "$last.b"; echo
      return 1
    fi
  done
  echo "# too many steps"; return 1
}

token() { # token OUT CLIENT SECRET form-args...
  local out="$1" client="$2" secret="$3"; shift 3
  STATUS=$(curl -sS -u "$client:$secret" -o "$out" -w '%{http_code}' "$ISSUER/token" "$@")
}
introspect() { # introspect CLIENT SECRET TOKEN -> prints active
  curl -sS -u "$1:$2" --data-urlencode "token=$3" "$ISSUER/token/introspection" >"$WORK/introspect.json"
  json "$WORK/introspect.json" 'j.active'
}

# ---------------------------------------------------------------- discovery
curl -fsS "$ISSUER/.well-known/openid-configuration" >"$WORK/disc.json" || die "discovery"
check "discovery issuer" test "$(json "$WORK/disc.json" j.issuer)" == "$ISSUER"
for k in end_session_endpoint introspection_endpoint revocation_endpoint; do
  check "discovery has $k" test -n "$(json "$WORK/disc.json" "j.$k")"
done
check "discovery backchannel_logout_supported" test "$(json "$WORK/disc.json" j.backchannel_logout_supported)" == true
check "discovery backchannel_logout_session_supported" test "$(json "$WORK/disc.json" j.backchannel_logout_session_supported)" == true
check "discovery S256 only" test "$(json "$WORK/disc.json" 'j.code_challenge_methods_supported.join()')" == S256
curl -fsS "$ISSUER/jwks" >"$WORK/jwks.json" || die "jwks"
check "jwks has an RS256 key" test "$(json "$WORK/jwks.json" 'j.keys.filter(k => k.alg === "RS256").length')" -ge 1

# ---------------------------------------------------------------- PKCE is required
req "$WORK/nopkce" "$ISSUER/auth?response_type=code&client_id=demo&redirect_uri=$(urlenc "$GATEWAY/bff/callback")&scope=openid&state=x"
check "authorize without PKCE is refused (error redirect)" bash -c '[[ "$1" == *error=invalid_request* ]]' _ "$LOCATION"

# ---------------------------------------------------------------- wrong password
VERIFIER="$(rand)"
req "$WORK/bad0" "$ISSUER/auth?response_type=code&client_id=demo&redirect_uri=$(urlenc "$GATEWAY/bff/callback")&scope=openid&state=x&code_challenge=$(s256 "$VERIFIER")&code_challenge_method=S256"
req "$WORK/bad1" "$(absolute "$LOCATION")"
ACTION="$(grep -o 'action="/interaction/[^"]*/login"' "$WORK/bad1.b" | head -1 | sed 's/^action="//; s/"$//')"
req "$WORK/bad2" -X POST --data-urlencode "login=alice" --data-urlencode "password=nope" "$ISSUER$ACTION"
check "wrong password shows #error" bash -c '[[ "$1" == 200 ]] && grep -q "id=\"error\"" "$2"' _ "$STATUS" "$WORK/bad2.b"
rm -f "$JAR"

# ---------------------------------------------------------------- demo: login
DEMO_REDIRECT="$GATEWAY/bff/callback"
login demo "$DEMO_REDIRECT" alice wonderland "openid profile email offline_access" || die "demo login"
ok "demo: code issued after login form + auto consent"
check "demo: login form was shown" test "$SAW_LOGIN_FORM" == yes

token "$WORK/demo-tokens.json" demo "$DEMO_SECRET" -d grant_type=authorization_code \
  --data-urlencode "code=$CODE" --data-urlencode "redirect_uri=$DEMO_REDIRECT" --data-urlencode "code_verifier=$VERIFIER"
[[ "$STATUS" == 200 ]] || { cat "$WORK/demo-tokens.json"; die "demo: code exchange ($STATUS)"; }
ok "demo: code exchanged"
DEMO_AT="$(json "$WORK/demo-tokens.json" j.access_token)"
DEMO_RT="$(json "$WORK/demo-tokens.json" j.refresh_token)"
DEMO_IDT="$(json "$WORK/demo-tokens.json" j.id_token)"
check "demo: refresh_token issued" test -n "$DEMO_RT"
check "demo: access token lives <= 300s" test "$(json "$WORK/demo-tokens.json" j.expires_in)" -le 300
jwt_payload "$DEMO_IDT" >"$WORK/demo-idt.json"
DEMO_SID="$(json "$WORK/demo-idt.json" j.sid)"
check "demo: id_token sub=alice" test "$(json "$WORK/demo-idt.json" j.sub)" == alice
check "demo: id_token has sid" test -n "$DEMO_SID"
check "demo: id_token has name" test "$(json "$WORK/demo-idt.json" j.name)" == "Alice Liddell"
check "demo: id_token has email" test "$(json "$WORK/demo-idt.json" j.email)" == alice@example.com
check "demo: id_token nonce" test "$(json "$WORK/demo-idt.json" j.nonce)" == "$NONCE"

check "demo: access token active (introspection)" test "$(introspect demo "$DEMO_SECRET" "$DEMO_AT")" == true
check "demo: introspection sub=alice" test "$(json "$WORK/introspect.json" j.sub)" == alice
check "demo: garbage token inactive" test "$(introspect demo "$DEMO_SECRET" not-a-token)" == false
curl -sS -H "Authorization: Bearer $DEMO_AT" "$ISSUER/me" >"$WORK/me.json"
check "demo: userinfo name" test "$(json "$WORK/me.json" j.name)" == "Alice Liddell"

token "$WORK/demo-refresh.json" demo "$DEMO_SECRET" -d grant_type=refresh_token --data-urlencode "refresh_token=$DEMO_RT"
check "demo: refresh grant ($STATUS)" test "$STATUS" == 200
DEMO_AT2="$(json "$WORK/demo-refresh.json" j.access_token)"
check "demo: refreshed access token active" test "$(introspect demo "$DEMO_SECRET" "$DEMO_AT2")" == true
check "demo: refreshed id_token keeps sid" test "$(jwt_payload "$(json "$WORK/demo-refresh.json" j.id_token)" | node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>console.log(JSON.parse(s).sid))')" == "$DEMO_SID"

if [[ -n "${API_URL:-}" ]]; then
  # The demo API (examples/api) must use this IdP as its -issuer.
  api() { STATUS=$(curl -sS -o "$WORK/api.json" -w '%{http_code}' "$@" "${API_URL%/}/api/hello"); }
  api -H "Authorization: Bearer $DEMO_AT2"
  check "api: 200 with the access token ($STATUS)" test "$STATUS" == 200
  check "api: token_ok" test "$(json "$WORK/api.json" j.token_ok)" == true
  check "api: hello Alice Liddell" test "$(json "$WORK/api.json" j.message)" == "hello Alice Liddell"
  check "api: sub=alice" test "$(json "$WORK/api.json" j.sub)" == alice
  api
  check "api: 401 without a token" test "$STATUS" == 401
  api -H "Authorization: Bearer not-a-token"
  check "api: 401 with an invalid token" test "$STATUS" == 401
  api -H "Authorization: Bearer $DEMO_RT"
  check "api: 401 with a refresh token" test "$STATUS" == 401
fi

curl -sS -u "demo:$DEMO_SECRET" --data-urlencode "token=$DEMO_AT" -o /dev/null -w '%{http_code}' "$ISSUER/token/revocation" >"$WORK/rev.txt"
check "demo: revocation 200" test "$(cat "$WORK/rev.txt")" == 200
check "demo: revoked access token inactive" test "$(introspect demo "$DEMO_SECRET" "$DEMO_AT")" == false

# ---------------------------------------------------------------- demo2: offline_access needs prompt=consent
DEMO2_REDIRECT="$GATEWAY/app2/bff/callback"
login demo2 "$DEMO2_REDIRECT" alice wonderland "openid profile offline_access" "&prompt=consent" || die "demo2 login"
check "demo2: SSO with prompt=consent, no login form" test "$SAW_LOGIN_FORM" == no
token "$WORK/demo2-tokens.json" demo2 "$DEMO_SECRET" -d grant_type=authorization_code \
  --data-urlencode "code=$CODE" --data-urlencode "redirect_uri=$DEMO2_REDIRECT" --data-urlencode "code_verifier=$VERIFIER"
[[ "$STATUS" == 200 ]] || { cat "$WORK/demo2-tokens.json"; die "demo2: code exchange ($STATUS)"; }
DEMO2_RT="$(json "$WORK/demo2-tokens.json" j.refresh_token)"
DEMO2_SID="$(jwt_payload "$(json "$WORK/demo2-tokens.json" j.id_token)" | node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>console.log(JSON.parse(s).sid))')"
check "demo2: scope kept offline_access" bash -c '[[ "$1" == *offline_access* ]]' _ "$(json "$WORK/demo2-tokens.json" j.scope)"
check "demo2: refresh_token issued" test -n "$DEMO2_RT"
check "demo2: sid differs from demo's (one sid per client)" test "$DEMO2_SID" != "$DEMO_SID"
check "demo: scope without prompt=consent dropped offline_access" bash -c '[[ "$1" != *offline_access* ]]' _ "$(json "$WORK/demo-tokens.json" j.scope)"

# ---------------------------------------------------------------- other: SSO login
OTHER_REDIRECT="$ISSUER/other/callback"
login other "$OTHER_REDIRECT" alice wonderland "openid profile" || die "other login"
check "other: SSO, no login form the second time" test "$SAW_LOGIN_FORM" == no
token "$WORK/other-tokens.json" other "$OTHER_SECRET" -d grant_type=authorization_code \
  --data-urlencode "code=$CODE" --data-urlencode "redirect_uri=$OTHER_REDIRECT" --data-urlencode "code_verifier=$VERIFIER"
[[ "$STATUS" == 200 ]] || { cat "$WORK/other-tokens.json"; die "other: code exchange ($STATUS)"; }
OTHER_IDT="$(json "$WORK/other-tokens.json" j.id_token)"
ok "other: code exchanged"

# ---------------------------------------------------------------- other: RP-initiated logout (ends the IdP session)
OTHER_PLR="$ISSUER/other/signed-out"
LSTATE="$(rand)"
req "$WORK/end0" "$ISSUER/session/end?id_token_hint=$OTHER_IDT&post_logout_redirect_uri=$(urlenc "$OTHER_PLR")&state=$LSTATE"
check "end_session: confirm page (200)" test "$STATUS" == 200
check "end_session: page has #logout-yes" grep -q 'id="logout-yes"' "$WORK/end0.b"
XSRF="$(grep -o 'name="xsrf" value="[^"]*"' "$WORK/end0.b" | sed 's/.*value="//; s/"$//')"
check "end_session: xsrf field present" test -n "$XSRF"
req "$WORK/end1" -X POST --data-urlencode "xsrf=$XSRF" -d logout=yes "$ISSUER/session/end/confirm"
check "end_session: 303 to post_logout_redirect_uri with state" \
  bash -c '[[ "$1" == 303 && "$2" == "$3"* && "$2" == *"state=$4"* ]]' _ "$STATUS" "$LOCATION" "$OTHER_PLR" "$LSTATE"

# The IdP session is gone: a new authorize needs the login form again.
login demo "$DEMO_REDIRECT" bob builder "openid profile" || die "demo login after logout"
check "after logout: login form shown again" test "$SAW_LOGIN_FORM" == yes

if [[ -n "$RECEIVER" ]]; then
  for ((i = 0; i < 25; i++)); do [[ -s "$RECEIVER" ]] && break; sleep 0.2; done
  if [[ -s "$RECEIVER" ]]; then
    LINE="$(grep '^/bff/backchannel-logout ' "$RECEIVER" | head -1)"
    LT="$(node -e 'console.log(new URLSearchParams(process.argv[1].split(" ")[1]).get("logout_token") ?? "")' "$LINE")"
    jwt_payload "$LT" >"$WORK/lt.json"
    check "back-channel: logout_token posted to demo's uri" test -n "$LT"
    check "back-channel: sid matches demo's id_token" test "$(json "$WORK/lt.json" j.sid)" == "$DEMO_SID"
    check "back-channel: sub=alice" test "$(json "$WORK/lt.json" j.sub)" == alice
    check "back-channel: aud=demo" test "$(json "$WORK/lt.json" j.aud)" == demo
    check "back-channel: events claim" test "$(json "$WORK/lt.json" 'Object.keys(j.events).join()')" == "http://schemas.openid.net/event/backchannel-logout"
    check "back-channel: demo2 notified with its own sid" bash -c 'grep "^/app2/bff/backchannel-logout " "$1" | grep -q .' _ "$RECEIVER"
    check "back-channel: idp logged backchannel.success" grep -q '"event":"backchannel.success"' "$WORK/idp.log"
  else
    fail "back-channel: no logout token arrived"
  fi
fi

check "after logout: demo's refresh token (no offline_access) inactive" test "$(introspect demo "$DEMO_SECRET" "$DEMO_RT")" == false
check "after logout: demo2's offline_access refresh token still active" test "$(introspect demo2 "$DEMO_SECRET" "$DEMO2_RT")" == true
echo "$PASS passed, $FAIL failed"
[[ "$FAIL" == 0 ]]
