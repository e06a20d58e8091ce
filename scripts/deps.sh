#!/usr/bin/env bash
# Installs the Debian packages a purpose needs, only those missing: `deps.sh build|run|test|bench|fuzz|deb`.
# Runs `apt-get update` once, and only when something is missing. Needs root (or sudo).
set -euo pipefail

build=(gcc make pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev libssl-dev
       libsofia-sip-ua-dev libcurl4-openssl-dev libre-dev libespeak-ng-dev libspeexdsp-dev
       libsndfile1-dev libwslay-dev libsystemd-dev libgnutls28-dev libsrtp2-dev)
# make run: its scripts read JSON with python3, its demo far end is baresip
run=("${build[@]}" python3 baresip-core)
# clang + its libFuzzer runtime: make check replays the fuzz corpora, make fuzz fuzzes
fuzz=("${build[@]}" clang libclang-rt-14-dev)
# make deb: dpkg-shlibdeps (the package's Depends), strip
deb=("${build[@]}" dpkg-dev binutils)
# python3-jsonschema (4.10: draft 2020-12, the dialect of OpenAPI 3.1's schemas) for the
# contract test of docs/openapi.json; kamailio, the carrier of the trunk tests (registrar,
# digest challenges; tests/blackbox/kamailio), with its TLS listener from kamailio-tls-modules
# (tests/blackbox/test_carrier_tls.py); chromium: the web-call tests drive it headless
# (tests/browser, playwright-core from npm); prometheus: its promtool checks what GET /metrics
# serves (tests/blackbox/test_metrics.py); openssl makes the HTTPS tests' CA; the package test
# installs and purges the package (adduser: its Depends), checks the unit (systemd-analyze)
# and the man page (groff); clang-format checks the C sources' layout (scripts/format.sh);
# iptables and iproute2 put callplane behind a NAT of the test's own
# (tests/blackbox/test_nat.py) and behind a lossy router (tests/blackbox/test_faults.py), whose
# database disk is an ext4 file system on a loop device (e2fsprogs: mkfs.ext4, e2fsck; mount)
test=("${fuzz[@]}" libcmocka-dev sip-tester python3 python3-pytest python3-websockets baresip-core
      python3-jsonschema kamailio kamailio-tls-modules chromium prometheus openssl dpkg-dev
      binutils adduser systemd groff-base clang-format iptables iproute2 e2fsprogs mount)
bench=("${build[@]}" sip-tester wrk nginx-light python3 linux-perf kamailio)

case "${1:-build}" in
  build) want=("${build[@]}") ;;
  run)   want=("${run[@]}") ;;
  test)  want=("${test[@]}") ;;
  deb)   want=("${deb[@]}") ;;
  bench) want=("${bench[@]}") ;;
  fuzz)  want=("${fuzz[@]}") ;;
  *) echo "usage: $0 build|run|test|bench|fuzz|deb" >&2; exit 2 ;;
esac

# tools the black-box tests run as a client would (the seeds' curl and fetch() examples, the
# Standard Webhooks verifier): any curl / node on PATH will do, else Debian's
if [ "${1:-build}" = test ]; then
  command -v curl >/dev/null 2>&1 || want+=(curl)
  command -v node >/dev/null 2>&1 || command -v nodejs >/dev/null 2>&1 || want+=(nodejs)
  # npm installs the lint of docs/openapi.json (scripts/lint-openapi.sh), the Standard
  # Webhooks verifier (scripts/node-deps.sh) and the browser tests' packages
  # (scripts/browser-deps.sh) from their lock files
  command -v npm >/dev/null 2>&1 || want+=(npm)
fi
# the bridged-call benchmark's echo agent: node, and npm to install its lock file
if [ "${1:-build}" = bench ]; then
  command -v node >/dev/null 2>&1 || command -v nodejs >/dev/null 2>&1 || want+=(nodejs)
  command -v npm >/dev/null 2>&1 || want+=(npm)
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
