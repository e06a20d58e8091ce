#!/usr/bin/env bash
# `make run`: start callplane on the embedded default (SQLite at ./var/callplane.db).
# On a new database it first creates a demo tenant, agent and API key and prints how to use them
# (also saved, readable only by you, in ./var/demo.env). It also starts a demo far end, a
# softphone that answers sip:bob@127.0.0.1:5070 (scripts/demo-peer.sh), unless something
# already listens there. Extra serve flags: make run ARGS="...".
# The environment may move things (the tests do): VAR (./var), HTTP (127.0.0.1:8080),
# SIP (127.0.0.1:5060), PEER (127.0.0.1:5070), BIN (build/callplane).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-build/callplane}
var=${VAR:-./var}
db=$var/callplane.db
http=${HTTP:-127.0.0.1:8080}
sip=${SIP:-127.0.0.1:5060}
peer=${PEER:-127.0.0.1:5070}

if [ ! -e "$db" ]; then
  mkdir -p "$var"
  "$bin" init --db "$db" >/dev/null
  json() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
  # the demo dials loopback peers (sip:bob@127.0.0.1:5070): raw sip: URIs to any host
  tenant=$("$bin" tenant create --name demo --sip-uris any --db "$db" | json id)
  agent=$("$bin" agent create --tenant "$tenant" --name demo-agent --number +15550100000 --db "$db" | json id)
  key=$("$bin" key create --tenant "$tenant" --db "$db" | json key)
  umask 077
  printf 'TENANT=%s\nAGENT=%s\nKEY=%s\n' "$tenant" "$agent" "$key" > "$var/demo.env"
  cat <<MSG
callplane: new database $db with a demo tenant (saved in $var/demo.env):
  tenant  $tenant
  agent   $agent   (number +15550100000)
  API key $key

Try, in another terminal:
  curl -s http://$http/healthz
  curl -s -H 'Authorization: Bearer $key' -H 'Content-Type: application/json' \\
       -d '{"agent_id":"$agent","to":"sip:bob@$peer"}' http://$http/v1/calls
  curl -s -H 'Authorization: Bearer $key' 'http://$http/v1/calls?status=active'
  curl -s -X POST -H 'Authorization: Bearer $key' http://$http/v1/calls/CALL_ID/end

MSG
fi
# the demo far end, for as long as the server runs
free() { python3 -c 'import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind((sys.argv[1], int(sys.argv[2])))' "${peer%:*}" "${peer##*:}" 2>/dev/null; }
if command -v baresip >/dev/null && free; then
  scripts/demo-peer.sh "$peer" "$var/demo-peer" > "$var/demo-peer.log" 2>&1 &
  peer_pid=$!
  trap 'kill $peer_pid 2>/dev/null || true' EXIT
  echo "callplane: demo far end sip:bob@$peer answers every call (log $var/demo-peer.log)" >&2
fi
echo "callplane: serving http://$http (database $db); Ctrl-C stops it" >&2
"$bin" serve --db "$db" --http "$http" --sip "$sip" ${ARGS:-}
