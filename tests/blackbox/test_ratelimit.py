"""Black-box tests of per-key rate limits (docs/API.md, "Rate limits"; docs/dialects.md for the
429 shape of each vendor dialect).

A key made with `key create --rate-limit N` (else the server's `--rate-limit`, default 1000) has
a token bucket of N requests per second, bursts of N.  Every authenticated response carries
X-RateLimit-Limit / -Remaining / -Reset; a refused request is 429 with Retry-After, in the error
shape of the route's dialect.  Dialect routes are hit with unknown call ids: the limit applies
before the lookup, so 404s count too.
"""

import concurrent.futures
import time

import pytest

from cp import assert_cli_error, assert_error, random_uuid, request_id


def key_with_limit(cp, tenant, limit, number=None):
    args = ["key", "create", "--tenant", tenant, "--rate-limit", str(limit)]
    if number is not None:
        args += ["--number", number]
    out = cp.cli(*args)
    return out["id"], out["key"]


def int_header(resp, name):
    v = resp.headers.get(name)
    assert v is not None, "no %s header on %r; headers %r" % (name, resp, resp.headers.items())
    assert v.strip().isdigit(), "%s is not a non-negative integer: %r" % (name, v)
    return int(v)


def check_limit_headers(resp, limit):
    """X-RateLimit-* present and sane; returns (remaining, reset)."""
    assert int_header(resp, "X-RateLimit-Limit") == limit, resp.headers.items()
    remaining = int_header(resp, "X-RateLimit-Remaining")
    assert 0 <= remaining <= limit, resp.headers.items()
    reset = int_header(resp, "X-RateLimit-Reset")
    now = time.time()
    # an N/s bucket refills completely within 1 s
    assert now - 1.5 <= reset <= now + 2.5, "X-RateLimit-Reset %d is not a Unix time within a few seconds of %.0f" % (
        reset, now)
    if remaining < limit - 1:
        assert reset >= int(now), "X-RateLimit-Reset %d is in the past (%.1f) for a bucket that is not full" % (
            reset, now)
    return remaining, reset


def check_429(resp, limit):
    assert resp.status == 429, "expected 429, got %r" % (resp,)
    ra = resp.headers.get("Retry-After")
    assert ra is not None and ra.strip().isdigit(), "Retry-After %r on %r" % (ra, resp)
    assert int(ra) >= 1, "Retry-After %r" % ra
    assert int(ra) <= 5, "Retry-After %r for a %d/s bucket" % (ra, limit)
    remaining, _reset = check_limit_headers(resp, limit)
    assert remaining == 0, resp.headers.items()
    return int(ra)


# ------------------------------------------------------------------------------ canonical


def test_key_limit_headers_then_429_then_recovers(cp):
    cp.setup_world()
    kid, key = key_with_limit(cp, cp.tenant, 2)
    listed = {k["id"]: k for k in cp.key_list()["data"]}
    assert listed[kid]["rate_limit"] == 2, listed[kid]
    cp.start()

    r1 = cp.request("GET", "/v1/calls", key=key)
    r2 = cp.request("GET", "/v1/calls", key=key)
    r3 = cp.request("GET", "/v1/calls", key=key)
    assert r1.status == 200 and r2.status == 200, (r1, r2)
    rem1, _ = check_limit_headers(r1, 2)
    rem2, _ = check_limit_headers(r2, 2)
    assert rem1 == 1 and rem2 == 0, "X-RateLimit-Remaining after 1 and 2 requests of 2: %d, %d" % (rem1, rem2)
    assert_error(r3, 429, "rate_limited")
    retry_after = check_429(r3, 2)

    # still refused while the bucket is empty
    r4 = cp.request("GET", "/v1/calls", key=key)
    assert_error(r4, 429, "rate_limited")

    time.sleep(retry_after)
    r5 = cp.request("GET", "/v1/calls", key=key)
    assert r5.status == 200, "after waiting Retry-After=%s s: %r" % (retry_after, r5)
    check_limit_headers(r5, 2)

    # a refused POST did nothing
    time.sleep(1.1)
    body = {"agent_id": cp.agent, "to": "sip:bob@127.0.0.1:5070"}
    codes = [cp.request("POST", "/v1/calls", body, key=key).status for _ in range(4)]
    assert codes.count(429) >= 1 and set(codes) <= {201, 429}, codes
    assert codes[0] == 201 and codes[1] == 201, codes
    n_created = codes.count(201)
    assert len(cp.list_calls(key=cp.key)["data"]) == n_created


def _at_fraction(frac):
    """Sleep until the wall clock's fractional second is about `frac`."""
    now = time.time()
    delay = (frac - (now % 1.0)) % 1.0
    time.sleep(delay)


@pytest.mark.parametrize("limit", [1, 2])
def test_bucket_is_full_at_reset_time(cp, limit):
    """X-RateLimit-Reset is "when the bucket is full again": a client that waits until that
    Unix second finds a full bucket (`limit` requests pass)."""
    cp.setup_world()
    _kid, key = key_with_limit(cp, cp.tenant, limit)
    cp.start()
    _at_fraction(0.4)      # away from a second boundary, so rounding shows
    t_before = time.time()
    rs = [cp.request("GET", "/v1/calls", key=key) for _ in range(limit)]
    assert all(r.status == 200 for r in rs), rs
    reset = int_header(rs[-1], "X-RateLimit-Reset")
    assert int_header(rs[-1], "X-RateLimit-Remaining") == 0
    # the bucket was emptied at or after t_before and refills in 1 s
    assert reset >= t_before + 1 - 0.05, (
        "X-RateLimit-Reset %d is before the bucket can be full again (emptied at >= %.3f, refill 1 s)"
        % (reset, t_before))
    while time.time() < reset + 0.02:
        time.sleep(0.02)
    rs = [cp.request("GET", "/v1/calls", key=key) for _ in range(limit)]
    assert [r.status for r in rs] == [200] * limit, (
        "at X-RateLimit-Reset (%d) the bucket of %d is not full: %r" % (reset, limit, rs))


def test_flood_of_one_key_does_not_throttle_another(cp):
    cp.setup_world()
    # 2/s: a token comes back every 500 ms, so the check that the flooded key is still refused
    # holds even when a loaded machine takes a few hundred ms between the flood and it
    limit = 2
    _k1, flood = key_with_limit(cp, cp.tenant, limit)
    _k2, calm = key_with_limit(cp, cp.tenant, limit)
    cp.start()

    def hit(_i):
        return cp.request("GET", "/v1/calls", key=flood).status

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        codes = list(ex.map(hit, range(40), timeout=30))
    elapsed = time.monotonic() - t0
    # a burst of `limit`, plus at most what refilled meanwhile (`limit` per second)
    allowed = limit + int(elapsed * limit) + 1
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) <= allowed, "%d of 40 concurrent requests on a %d/s key passed in %.2f s: %r" % (
        codes.count(200), limit, elapsed, codes)
    assert codes.count(200) >= limit, codes

    # the flooded key is still refused, the other key of the same tenant is not
    r = cp.request("GET", "/v1/calls", key=flood)
    assert_error(r, 429, "rate_limited")
    r = cp.request("GET", "/v1/calls", key=calm)
    assert r.status == 200, r
    rem, _ = check_limit_headers(r, limit)
    assert rem == limit - 1, "the calm key's bucket was drained by another key: remaining %d" % rem
    # the tenant's default-limited key is unaffected as well
    r = cp.request("GET", "/v1/calls", key=cp.key)
    assert r.status == 200, r
    assert int_header(r, "X-RateLimit-Limit") == 1000, r.headers.items()


def test_bucket_does_not_grow_beyond_its_burst(cp):
    cp.setup_world()
    _kid, key = key_with_limit(cp, cp.tenant, 3)
    cp.start()
    time.sleep(2.2)     # idle for longer than a refill: still at most 3 in a burst
    t0 = time.monotonic()
    codes = [cp.request("GET", "/v1/calls", key=key).status for _ in range(6)]
    elapsed = time.monotonic() - t0
    assert codes[:3] == [200, 200, 200], codes
    allowed = 3 + int(elapsed * 3)      # the burst plus whatever refilled meanwhile
    assert codes.count(200) <= allowed, "%d of 6 requests passed in %.2f s on an idle 3/s key: %r" % (
        codes.count(200), elapsed, codes)


def test_large_key_limit(cp):
    cp.setup_world()
    _kid, key = key_with_limit(cp, cp.tenant, 1000000)
    cp.start()
    r = cp.request("GET", "/v1/calls", key=key)
    assert r.status == 200, r
    assert int_header(r, "X-RateLimit-Limit") == 1000000, r.headers.items()
    assert int_header(r, "X-RateLimit-Remaining") == 999999, r.headers.items()


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1000001"])
def test_key_create_invalid_rate_limit(cp, bad):
    cp.setup_world()
    result = cp.cli_raw("key", "create", "--tenant", cp.tenant, "--rate-limit", bad)
    assert len(cp.key_list()["data"]) == 1
    assert_cli_error(result, 2, "error: --rate-limit must be an integer in 1..1000000: " + bad)


def test_server_rate_limit_is_default_for_keys_without_own(cp):
    cp.setup_world()
    _kid, own = key_with_limit(cp, cp.tenant, 7)
    cp.start(extra_args=["--rate-limit", "3"])
    r = cp.request("GET", "/v1/calls", key=cp.key)
    assert r.status == 200, r
    assert int_header(r, "X-RateLimit-Limit") == 3, r.headers.items()
    assert int_header(r, "X-RateLimit-Remaining") == 2, r.headers.items()
    r = cp.request("GET", "/v1/calls", key=own)
    assert int_header(r, "X-RateLimit-Limit") == 7, "a key's own limit must win: %r" % r.headers.items()
    codes = [cp.request("GET", "/v1/calls", key=cp.key).status for _ in range(3)]
    assert codes[-1] == 429 and 429 in codes, codes
    # the key with its own (higher) limit is not limited at 3
    codes = [cp.request("GET", "/v1/calls", key=own).status for _ in range(5)]
    assert codes == [200] * 5, codes


def test_default_server_limit_is_1000(srv):
    r = srv.request("GET", "/v1/calls", key=srv.key)
    assert r.status == 200, r
    assert int_header(r, "X-RateLimit-Limit") == 1000, r.headers.items()
    assert int_header(r, "X-RateLimit-Remaining") == 999, r.headers.items()


def test_server_rate_limit_zero_is_unlimited(cp):
    cp.setup_world()
    cp.start(extra_args=["--rate-limit", "0"])
    codes = [cp.request("GET", "/v1/calls", key=cp.key).status for _ in range(60)]
    assert codes == [200] * 60, codes


def test_rate_limit_from_config_file(cp, tmp_path):
    cp.setup_world()
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"rate-limit": "2"}')
    cp.start(extra_args=["--config", str(cfg)])
    r = cp.request("GET", "/v1/calls", key=cp.key)
    assert int_header(r, "X-RateLimit-Limit") == 2, r.headers.items()


def test_unauthenticated_requests_do_not_drain_a_bucket(cp):
    cp.setup_world()
    _kid, key = key_with_limit(cp, cp.tenant, 2)
    cp.start()
    for _ in range(5):
        assert_error(cp.request("GET", "/v1/calls", key=key + "x"), 401, "unauthorized")
    r = cp.request("GET", "/v1/calls", key=key)
    assert r.status == 200, r
    assert int_header(r, "X-RateLimit-Remaining") == 1, r.headers.items()


# ------------------------------------------------------------------------------ dialects

NUMBER = "+15550001111"


def _voxworks(cp, key):
    return cp.request("POST", "/api/v1/end-web-call/%s" % random_uuid(), key=key)


def _talkover(cp, key):
    return cp.request("POST", "/api/v1/agents/%s/end-call" % cp.agent, {"call_sid": random_uuid()}, key=key)


def _cartesia(cp, key):
    return cp.request("POST", "/agents/calls/%s/cancel" % random_uuid(), key=key,
                      headers={"Cartesia-Version": "2026-03-01"})


def _pilotstatus(cp, key):
    return cp.request("POST", "/v1/calls/%s/terminate" % random_uuid(), key=key, header_style="x-api-key")


def _canonical(cp, key):
    return cp.request("POST", "/v1/calls/%s/end" % random_uuid(), key=key)


DIALECTS = {
    # name: (request, number-scoped key?, 404 body, 429 body)
    "voxworks": (_voxworks, False, {"success": False, "message": "Call not found"},
                 {"success": False, "message": "Rate limit exceeded"}),
    "talkover": (_talkover, False, {"success": False, "message": "Call not found for this agent"},
                 {"success": False, "message": "Too many requests"}),
    "cartesia": (_cartesia, False,
                 {"error": "Call not found, or no active connection was found for the call."},
                 {"error": "Too many requests"}),
    "pilotstatus": (_pilotstatus, True, {"error": "Call not found", "code": "NOT_FOUND"},
                    {"error": "Too many requests", "code": "RATE_LIMITED"}),
    "canonical": (_canonical, False, None, None),
}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_429_in_dialect_shape(cp, dialect):
    send, numbered, body404, body429 = DIALECTS[dialect]
    cp.setup_world(number=NUMBER)
    _kid, key = key_with_limit(cp, cp.tenant, 2, number=NUMBER if numbered else None)
    cp.start()
    r1 = send(cp, key)
    r2 = send(cp, key)
    r3 = send(cp, key)
    for r, rem in ((r1, 1), (r2, 0)):
        assert r.status == 404, "unknown call on %s: %r" % (dialect, r)
        if dialect == "canonical":
            assert_error(r, 404, "not_found")
        else:
            assert r.json == body404, r
        got_rem, _ = check_limit_headers(r, 2)
        assert got_rem == rem, "X-RateLimit-Remaining %d, expected %d on %r" % (got_rem, rem, r)
    check_429(r3, 2)
    if dialect == "canonical":
        assert_error(r3, 429, "rate_limited")
    else:
        assert r3.json == body429, "%s 429 body: %r" % (dialect, r3)
    assert (r3.headers.get("Content-Type") or "").startswith("application/json"), r3.headers.items()
    request_id(r3)
