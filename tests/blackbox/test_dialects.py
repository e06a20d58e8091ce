"""Black-box tests of the four vendor dialects (docs/dialects.md, ../shared/seeds/*.txt).

One callplane (SIP engine on 127.0.0.1) and two sipp far ends are shared by the module (see
dialect_helpers.DialectWorld): `answer` answers every INVITE and waits for the BYE, `ring` rings
and waits for the CANCEL.  Every test places its own calls, so tests do not depend on each other.
Each successful dialect hang-up is checked on the wire (the far end got a BYE with
`Reason: Q.850;cause=16;text="<end reason>"`, or a CANCEL for a ringing call) and in the
canonical record (GET /v1/calls/{id}).  Every rejected request is checked to have left the call
alone (still in_progress, nothing sent to the far end).

Run: CALLPLANE_BIN=build/asan/callplane /usr/bin/python3 -m pytest -q tests/blackbox/test_dialects.py
"""

import calendar
import concurrent.futures
import json
import time

import pytest

from cp import is_ts, random_uuid, urlquote
from dialect_helpers import (NUMBER_A, SECONDS_TS_RE, DialectWorld, assert_rate_limited,
                             fire_until_429, module_world, raw_request, run_curl, run_node)

CARTESIA_VERSION = "2026-03-01"
CV = {"Cartesia-Version": CARTESIA_VERSION}
_DEFAULT = object()

# ------------------------------------------------------------------ expected bodies (docs)

TALKOVER_404 = {"success": False, "message": "Call not found for this agent"}
TALKOVER_409 = {"success": False, "message": "Call is not active", "code": "CALL_NOT_ACTIVE"}
TALKOVER_401 = {"success": False, "message": "Invalid API key"}
TALKOVER_429 = {"success": False, "message": "Too many requests"}

VOX_404 = {"success": False, "message": "Call not found"}
VOX_401 = {"success": False, "message": "Invalid API key"}
VOX_429 = {"success": False, "message": "Rate limit exceeded"}

PILOT_400 = {"error": "Validation error", "code": "VALIDATION_ERROR"}
PILOT_NOT_ACTIVE = {"error": "Call is not active", "code": "CALL_NOT_ACTIVE"}
PILOT_401 = {"error": "Unauthorized", "code": "UNAUTHORIZED"}
PILOT_403 = {"error": "Tenant-scoped keys cannot call number endpoints", "code": "TENANT_SCOPE_NOT_ALLOWED"}
PILOT_404 = {"error": "Call not found", "code": "NOT_FOUND"}
PILOT_429 = {"error": "Too many requests", "code": "RATE_LIMITED"}

CART_200 = {"cancelled": True}
CART_NOT_ACTIVE = {"error": "The call is not currently active and cannot be cancelled."}
CART_404 = {"error": "Call not found, or no active connection was found for the call."}
CART_DEL_ACTIVE = {"error": "The call is still active; cancel it before deleting its data."}
CART_401 = {"error": "invalid API key"}
CART_429 = {"error": "Too many requests"}


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def w(callplane_bin, tmp_path_factory):
    yield from module_world(DialectWorld(tmp_path_factory.mktemp("dialects")))


@pytest.fixture(autouse=True)
def _guard(w):
    """After each test: the server is alive with no sanitizer report so far, and any call the
    test left active (e.g. after a failed assertion) is ended so it cannot disturb later tests."""
    yield
    assert w.cp.running, "server died:\n%s" % w.diagnostics()
    marker = w.cp.sanitizer_report()
    assert marker is None, "sanitizer report (%s) in server stderr:\n%s" % (marker, w.diagnostics())
    for key in (w.key, w.key_b):
        r = w.cp.request("POST", "/v1/calls/end", {}, key=key, timeout=15)
        assert r.status == 200, r


# ------------------------------------------------------------------------------ helpers


def talkover(w, agent, body, key=_DEFAULT, style="bearer", headers=None):
    return w.cp.request("POST", "/api/v1/agents/%s/end-call" % agent, body,
                        key=w.key if key is _DEFAULT else key, header_style=style, headers=headers)


def voxworks(w, call_id, body=None, key=_DEFAULT, style="bearer", headers=None):
    return w.cp.request("POST", "/api/v1/end-web-call/%s" % call_id, body,
                        key=w.key if key is _DEFAULT else key, header_style=style, headers=headers)


def pilot(w, call_id, key=_DEFAULT, body=None, headers=None, style="x-api-key"):
    return w.cp.request("POST", "/v1/calls/%s/terminate" % call_id, body,
                        key=w.num_key if key is _DEFAULT else key, header_style=style, headers=headers)


def cartesia(w, call_id, key=_DEFAULT, version=CARTESIA_VERSION, method="POST", style="bearer",
             headers=None):
    hdrs = dict(headers or {})
    if version is not None:
        hdrs["Cartesia-Version"] = version
    path = "/agents/calls/%s/cancel" % call_id if method == "POST" else "/agents/calls/%s" % call_id
    return w.cp.request(method, path, None, key=w.key if key is _DEFAULT else key,
                        header_style=style, headers=hdrs)


def expect(resp, status, body, what=""):
    """Exact status and exact JSON body (dict equality: same keys, same values, same types),
    served as application/json."""
    assert resp.status == status, "%s: expected %s %s, got %r" % (what, status, json.dumps(body), resp)
    assert resp.json == body, "%s: expected body %s, got %r" % (what, json.dumps(body), resp)
    for k, v in body.items():   # True is not 1, False is not 0
        assert type(resp.json[k]) is type(v), "%s: %s has type %s: %r" % (what, k, type(resp.json[k]), resp)
    ct = resp.headers.get("Content-Type") or ""
    assert ct.split(";")[0].strip().lower() == "application/json", "%s: Content-Type %r" % (what, ct)


def expect_rate_limited(send, not_found, limited_body):
    """A key limited to 1/s: the first request passes (a 404, with the limit in its headers),
    a back-to-back one is 429 in the dialect's shape with Retry-After and X-RateLimit-*."""
    first, limited = fire_until_429(send)
    expect(first, 404, not_found, "first request within the limit")
    assert first.headers.get("X-RateLimit-Limit") == "1", first.headers
    expect(limited, 429, limited_body, "rate limited")
    assert_rate_limited(limited)


def expect_message_error(resp, status, what=""):
    """Talkover / Voxworks error with a free-text message: {"success": false, "message": "..."}."""
    assert resp.status == status, "%s: expected %s, got %r" % (what, status, resp)
    b = resp.json
    assert isinstance(b, dict) and set(b) == {"success", "message"}, "%s: body %r" % (what, resp)
    assert b["success"] is False, "%s: %r" % (what, resp)
    assert isinstance(b["message"], str) and b["message"].strip(), "%s: empty message %r" % (what, resp)


def expect_cartesia_version_error(resp, what=""):
    assert resp.status == 400, "%s: expected 400, got %r" % (what, resp)
    b = resp.json
    assert isinstance(b, dict) and set(b) == {"error"}, "%s: body %r" % (what, resp)
    assert isinstance(b["error"], str) and "Cartesia-Version" in b["error"], "%s: %r" % (what, resp)


def assert_untouched(w, call):
    """The call is still in progress and the far end got no BYE/CANCEL for it."""
    got = w.get(call["id"])
    assert got["status"] == "in_progress" and got["end_reason"] is None and got["ended_at"] is None, \
        "a rejected request changed the call: %s" % json.dumps(got)
    w.assert_no_hangup(call["provider_call_id"])


def assert_ended(w, call, end_reason, status="completed"):
    """Canonical record and the wire after a successful hang-up through a dialect."""
    got = w.get(call["id"])
    assert got["status"] == status, got
    assert got["end_reason"] == end_reason, got
    assert is_ts(got["ended_at"]), got
    if status == "completed":
        assert w.bye_reason(call["provider_call_id"]) == end_reason
        assert not w._received(w.answer, "CANCEL", call["provider_call_id"]), w.answer.report()
    else:
        w.wait_received(w.ring, "CANCEL", call["provider_call_id"])
        assert not w._received(w.ring, "BYE", call["provider_call_id"]), w.ring.report()
    return got


# ============================================================================== Talkover


def test_talkover_end_answered_call(w):
    call = w.answered_call()
    t0 = time.time()
    r = talkover(w, w.agent, {"call_sid": call["id"]})
    assert r.status == 200, r
    b = r.json
    assert isinstance(b, dict) and set(b) == {"success", "data"} and b["success"] is True, r
    assert set(b["data"]) == {"id", "status", "ended_at", "ended_reason"}, r
    assert b["data"]["id"] == call["id"], r
    assert b["data"]["status"] == "completed", r
    assert b["data"]["ended_reason"] == "ended_by_api", r
    assert (r.headers.get("Content-Type") or "").startswith("application/json"), r.headers
    ended_at = b["data"]["ended_at"]
    assert isinstance(ended_at, str) and SECONDS_TS_RE.match(ended_at), \
        "ended_at %r is not printed to the second like 2024-01-15T11:35:42Z" % (ended_at,)
    # the end is stored before the response: the canonical record already says completed
    got = assert_ended(w, call, "ended_by_api")
    assert got["ended_at"][:19] + "Z" == ended_at, (got["ended_at"], ended_at)
    assert abs(calendar.timegm(time.strptime(ended_at, "%Y-%m-%dT%H:%M:%SZ")) - t0) < 5, ended_at

    # second end: 409 CALL_NOT_ACTIVE, no second BYE
    expect(talkover(w, w.agent, {"call_sid": call["id"]}), 409, TALKOVER_409, "second end")
    assert w.bye_reason(call["provider_call_id"]) == "ended_by_api"


def test_talkover_call_sid_may_be_provider_call_id(w):
    call = w.answered_call()
    r = talkover(w, w.agent, {"call_sid": call["provider_call_id"]})
    assert r.status == 200, r
    assert r.json["success"] is True and r.json["data"]["id"] == call["id"], r
    assert r.json["data"]["status"] == "completed" and r.json["data"]["ended_reason"] == "ended_by_api", r
    assert_ended(w, call, "ended_by_api")
    expect(talkover(w, w.agent, {"call_sid": call["provider_call_id"]}), 409, TALKOVER_409, "second end by pcid")


def test_talkover_seed_curl_example(w, tmp_path):
    """The document's curl example, host/ids/key substituted, run with the real curl."""
    call = w.answered_call()
    res = run_curl(["-X", "POST", "%s/api/v1/agents/%s/end-call" % (w.base, w.agent),
                    "-H", "Authorization: Bearer %s" % w.key,
                    "-H", "Content-Type: application/json",
                    "-d", '{ "call_sid": "%s" }' % call["id"]], tmp_path)
    assert res.status == 200, res
    assert res.headers.get("content-type", "").startswith("application/json"), res.headers
    d = res.json["data"]
    assert res.json["success"] is True and d["id"] == call["id"] and d["status"] == "completed" \
        and d["ended_reason"] == "ended_by_api" and SECONDS_TS_RE.match(d["ended_at"]), res
    assert_ended(w, call, "ended_by_api")


def test_talkover_seed_fetch_example(w):
    """The document's fetch() example, run with node's fetch (URL, ids and key substituted; the
    response is captured to be checked)."""
    call = w.answered_call()
    script = """
const res = await fetch('%s/api/v1/agents/%s/end-call', {
  method: 'POST',
  headers: {
    'Authorization': 'Bearer %s',
    'Content-Type': 'application/json'
  },
  body: JSON.stringify({ call_sid: '%s' })
});
console.log(JSON.stringify({status: res.status, body: await res.text()}));
""" % (w.base, w.agent, w.key, call["id"])
    res = run_node(script)
    assert res.status == 200, res
    d = res.json["data"]
    assert res.json["success"] is True and d["id"] == call["id"] and d["status"] == "completed" \
        and d["ended_reason"] == "ended_by_api", res
    assert_ended(w, call, "ended_by_api")


def test_talkover_auth_errors(w):
    call = w.answered_call()
    body = {"call_sid": call["id"]}
    expect(talkover(w, w.agent, body, key=None), 401, TALKOVER_401, "no key")
    expect(talkover(w, w.agent, body, key="cp_not_a_real_key"), 401, TALKOVER_401, "unknown key")
    expect(talkover(w, w.agent, body, style="x-api-key"), 401, TALKOVER_401, "x-api-key on a Bearer-only dialect")
    expect(talkover(w, w.agent, body, key=None, headers={"Authorization": w.key}), 401, TALKOVER_401,
           "Authorization without Bearer")
    assert_untouched(w, call)
    w.cleanup_end(call["id"])


def test_talkover_validation_errors(w):
    call = w.answered_call()
    path = "/api/v1/agents/%s/end-call" % w.agent
    auth = {"Authorization": "Bearer " + w.key}
    json_ct = dict(auth, **{"Content-Type": "application/json"})
    cases = [
        ("malformed JSON", b'{"call_sid": ', json_ct),
        ("missing call_sid", b"{}", json_ct),
        ("empty body", b"", json_ct),
        ("unknown field", json.dumps({"call_sid": call["id"], "force": True}).encode(), json_ct),
        ("call_sid not a string", b'{"call_sid": 12}', json_ct),
        ("call_sid empty", b'{"call_sid": ""}', json_ct),
        ("body not an object", json.dumps([call["id"]]).encode(), json_ct),
        ("wrong Content-Type", json.dumps({"call_sid": call["id"]}).encode(), dict(auth, **{"Content-Type": "text/plain"})),
        ("form Content-Type", ("call_sid=%s" % call["id"]).encode(),
         dict(auth, **{"Content-Type": "application/x-www-form-urlencoded"})),
        ("no Content-Type", json.dumps({"call_sid": call["id"]}).encode(), auth),
    ]
    for what, raw, hdrs in cases:
        expect_message_error(raw_request(w.port, "POST", path, raw, hdrs), 400, what)
    assert_untouched(w, call)
    w.cleanup_end(call["id"])


def test_talkover_not_found(w):
    call = w.answered_call()
    sid = {"call_sid": call["id"]}
    expect(talkover(w, w.agent, {"call_sid": random_uuid()}), 404, TALKOVER_404, "unknown call")
    expect(talkover(w, w.agent, {"call_sid": "no-such-provider-call-id@host"}), 404, TALKOVER_404, "unknown pcid")
    expect(talkover(w, w.agent2, sid), 404, TALKOVER_404, "another agent's call (same tenant)")
    expect(talkover(w, w.agent2, {"call_sid": call["provider_call_id"]}), 404, TALKOVER_404,
           "another agent's call by pcid")
    expect(talkover(w, random_uuid(), sid), 404, TALKOVER_404, "unknown agent in the path")
    expect(talkover(w, w.agent, sid, key=w.key_b), 404, TALKOVER_404, "tenant B's key, A's agent")
    expect(talkover(w, w.agent_b, sid, key=w.key_b), 404, TALKOVER_404, "tenant B's key, B's agent")
    expect(talkover(w, w.agent, sid, key=w.num2_key), 404, TALKOVER_404, "key of another number")
    assert_untouched(w, call)
    # the owner can still end it
    r = talkover(w, w.agent, sid)
    assert r.status == 200 and r.json["data"]["status"] == "completed", r
    assert_ended(w, call, "ended_by_api")


def test_talkover_rate_limited(w):
    key = w.limited["talkover"]
    expect_rate_limited(lambda: talkover(w, w.agent, {"call_sid": random_uuid()}, key=key), TALKOVER_404, TALKOVER_429)


# ============================================================================== Voxworks


def test_voxworks_end_answered_call_without_body(w):
    call = w.answered_call()
    r = voxworks(w, call["id"])
    expect(r, 200, {"success": True, "call_id": call["id"], "status": "completed",
                    "end_reason": "api_ended", "progress": "ended"}, "end without body")
    assert_ended(w, call, "api_ended")


def test_voxworks_seed_example_body_with_curl(w, tmp_path):
    call = w.answered_call()
    res = run_curl(["-X", "POST", "%s/api/v1/end-web-call/%s" % (w.base, call["id"]),
                    "-H", "Authorization: Bearer %s" % w.key,
                    "-H", "Content-Type: application/json",
                    "-d", '{"status":"completed","end_reason":"api_ended"}'], tmp_path)
    assert res.status == 200, res
    assert res.json == {"success": True, "call_id": call["id"], "status": "completed",
                        "end_reason": "api_ended", "progress": "ended"}, res
    assert_ended(w, call, "api_ended")


def test_voxworks_empty_object_body_uses_defaults(w):
    call = w.answered_call()
    expect(voxworks(w, call["id"], {}), 200, {"success": True, "call_id": call["id"], "status": "completed",
                                             "end_reason": "api_ended", "progress": "ended"}, "{} body")
    assert_ended(w, call, "api_ended")


def test_voxworks_given_end_reason_then_already_ended(w):
    call = w.answered_call()
    reason = "customer.hangup:web-1_X"
    expect(voxworks(w, call["id"], {"end_reason": reason}), 200,
           {"success": True, "call_id": call["id"], "status": "completed", "end_reason": reason,
            "progress": "ended"}, "end with end_reason")
    got = assert_ended(w, call, reason)

    # already ended: 200, recorded status and end_reason, progress already_ended; nothing changes
    for body in (None, {"status": "completed", "end_reason": "api_ended"}, {"end_reason": "something_else"}):
        expect(voxworks(w, call["id"], body), 200,
               {"success": True, "call_id": call["id"], "status": "completed", "end_reason": reason,
                "progress": "already_ended"}, "already ended, body %r" % (body,))
    again = w.get(call["id"])
    assert again == got, (got, again)
    assert w.bye_reason(call["provider_call_id"]) == reason   # still exactly one BYE


def test_voxworks_already_ended_by_another_route(w):
    call = w.answered_call()
    expect(cartesia(w, call["id"]), 200, CART_200, "cancel via Cartesia")
    expect(voxworks(w, call["id"], {"status": "completed", "end_reason": "api_ended"}), 200,
           {"success": True, "call_id": call["id"], "status": "completed", "end_reason": "api_cancelled",
            "progress": "already_ended"}, "Voxworks end of a call Cartesia cancelled")
    assert_ended(w, call, "api_cancelled")


def test_voxworks_by_provider_call_id(w):
    call = w.answered_call()
    expect(voxworks(w, urlquote(call["provider_call_id"])), 200,
           {"success": True, "call_id": call["id"], "status": "completed", "end_reason": "api_ended",
            "progress": "ended"}, "end by provider call id")
    assert_ended(w, call, "api_ended")


def test_voxworks_validation_errors(w):
    call = w.answered_call()
    path = "/api/v1/end-web-call/%s" % call["id"]
    hdrs = {"Authorization": "Bearer " + w.key, "Content-Type": "application/json"}
    cases = [
        ("malformed JSON", b'{"status": "completed"'),
        ("unknown field", b'{"status": "completed", "reason": "x"}'),
        ("status canceled", b'{"status": "canceled"}'),
        ("status failed", b'{"status": "failed"}'),
        ("status ended", b'{"status": "ended", "end_reason": "api_ended"}'),
        ("status not a string", b'{"status": true}'),
        ("end_reason with a space", b'{"end_reason": "api ended"}'),
        ("end_reason empty", b'{"end_reason": ""}'),
        ("end_reason too long", json.dumps({"end_reason": "x" * 65}).encode()),
        ("end_reason not a string", b'{"end_reason": 5}'),
        ("body not an object", b'["completed"]'),
    ]
    for what, raw in cases:
        expect_message_error(raw_request(w.port, "POST", path, raw, hdrs), 400, what)
    assert_untouched(w, call)
    # 64 characters of the allowed alphabet is fine
    reason = ("A-z0.9_:" * 8)
    assert len(reason) == 64
    expect(voxworks(w, call["id"], {"status": "completed", "end_reason": reason}), 200,
           {"success": True, "call_id": call["id"], "status": "completed", "end_reason": reason,
            "progress": "ended"}, "64-character end_reason")
    assert_ended(w, call, reason)


def test_voxworks_auth_errors(w):
    call = w.answered_call()
    expect(voxworks(w, call["id"], key=None), 401, VOX_401, "no key")
    expect(voxworks(w, call["id"], key="cp_not_a_real_key"), 401, VOX_401, "unknown key")
    expect(voxworks(w, call["id"], style="x-api-key"), 401, VOX_401, "x-api-key on a Bearer-only dialect")
    assert_untouched(w, call)
    w.cleanup_end(call["id"])


def test_voxworks_not_found(w):
    call = w.answered_call()
    expect(voxworks(w, random_uuid()), 404, VOX_404, "unknown id")
    expect(voxworks(w, "unknown-provider-call-id%40host"), 404, VOX_404, "unknown provider call id")
    expect(voxworks(w, call["id"], key=w.key_b), 404, VOX_404, "another team's call")
    expect(voxworks(w, urlquote(call["provider_call_id"]), key=w.key_b), 404, VOX_404,
           "another team's call by provider call id")
    expect(voxworks(w, call["id"], key=w.num2_key), 404, VOX_404, "key of another number")
    assert_untouched(w, call)
    w.cleanup_end(call["id"])


def test_voxworks_rate_limited(w):
    key = w.limited["voxworks"]
    expect_rate_limited(lambda: voxworks(w, random_uuid(), key=key), VOX_404, VOX_429)


# ========================================================================== Pilot Status


def test_pilot_terminate_answered_call(w):
    call = w.answered_call()
    expect(pilot(w, call["id"]), 200, {"success": True, "id": call["id"], "status": "COMPLETED"}, "terminate")
    assert_ended(w, call, "ended_by_api")
    expect(pilot(w, call["id"]), 400, PILOT_NOT_ACTIVE, "second terminate")
    assert w.bye_reason(call["provider_call_id"]) == "ended_by_api"


def test_pilot_seed_no_body_post_with_curl(w, tmp_path):
    call = w.answered_call()
    res = run_curl(["-X", "POST", "%s/v1/calls/%s/terminate" % (w.base, call["id"]),
                    "-H", "x-api-key: %s" % w.num_key], tmp_path)
    assert res.status == 200, res
    assert res.json == {"success": True, "id": call["id"], "status": "COMPLETED"}, res
    assert_ended(w, call, "ended_by_api")


def test_pilot_terminate_by_provider_call_id(w):
    call = w.answered_call()
    expect(pilot(w, urlquote(call["provider_call_id"])), 200,
           {"success": True, "id": call["id"], "status": "COMPLETED"}, "terminate by provider call id")
    assert_ended(w, call, "ended_by_api")
    expect(pilot(w, urlquote(call["provider_call_id"])), 400, PILOT_NOT_ACTIVE, "second terminate by pcid")


def test_pilot_empty_object_body_is_no_body(w):
    call = w.answered_call()
    expect(pilot(w, call["id"], body={}), 200, {"success": True, "id": call["id"], "status": "COMPLETED"},
           "terminate with {}")
    assert_ended(w, call, "ended_by_api")


def test_pilot_body_is_validation_error(w):
    call = w.answered_call()
    path = "/v1/calls/%s/terminate" % call["id"]
    hdrs = {"x-api-key": w.num_key, "Content-Type": "application/json"}
    for what, raw in [("an object with a field", b'{"reason": "x"}'),
                      ("malformed JSON", b'{"reason": '),
                      ("an array", b"[]"),
                      ("a string", b'"terminate"'),
                      ("not JSON", b"terminate")]:
        expect(raw_request(w.port, "POST", path, raw, hdrs), 400, PILOT_400, "body " + what)
    assert_untouched(w, call)
    w.cleanup_end(call["id"])


def test_pilot_auth_scope_and_key_id(w):
    call = w.answered_call()
    cid = call["id"]
    expect(pilot(w, cid, key=None), 401, PILOT_401, "no key")
    expect(pilot(w, cid, key="ps_not_a_real_key"), 401, PILOT_401, "unknown key")
    expect(pilot(w, cid, style="bearer"), 401, PILOT_401, "Authorization: Bearer instead of x-api-key")
    expect(pilot(w, cid, key=None, headers={"x-api-key-id": w.num_key_id}), 401, PILOT_401,
           "x-api-key-id alone")
    expect(pilot(w, cid, headers={"x-api-key-id": w.num2_key_id}), 401, PILOT_401,
           "x-api-key-id naming another key")
    expect(pilot(w, cid, headers={"x-api-key-id": random_uuid()}), 401, PILOT_401,
           "x-api-key-id naming no key")
    expect(pilot(w, cid, key=w.key), 403, PILOT_403, "tenant-scoped key")
    expect(pilot(w, cid, key=w.key, headers={"x-api-key-id": w.key_id}), 403, PILOT_403,
           "tenant-scoped key with its id")
    assert_untouched(w, call)
    expect(pilot(w, cid, headers={"x-api-key-id": w.num_key_id}), 200,
           {"success": True, "id": cid, "status": "COMPLETED"}, "x-api-key with its matching x-api-key-id")
    assert_ended(w, call, "ended_by_api")


def test_pilot_not_found(w):
    call = w.answered_call()
    expect(pilot(w, random_uuid()), 404, PILOT_404, "unknown id")
    expect(pilot(w, "wacid.ABGG-unknown"), 404, PILOT_404, "unknown provider call id")
    expect(pilot(w, call["id"], key=w.num2_key), 404, PILOT_404, "key of another number")
    expect(pilot(w, urlquote(call["provider_call_id"]), key=w.num2_key), 404, PILOT_404,
           "key of another number, by provider call id")
    expect(pilot(w, call["id"], key=w.num_key_b), 404, PILOT_404, "another tenant's number key")
    assert_untouched(w, call)
    w.cleanup_end(call["id"])


def test_pilot_rate_limited(w):
    key = w.limited["pilotstatus"]
    expect_rate_limited(lambda: pilot(w, random_uuid(), key=key), PILOT_404, PILOT_429)


# ============================================================================== Cartesia


def test_cartesia_cancel_answered_call(w):
    call = w.answered_call()
    expect(cartesia(w, call["id"]), 200, CART_200, "cancel")
    assert_ended(w, call, "api_cancelled")
    expect(cartesia(w, call["id"]), 400, CART_NOT_ACTIVE, "second cancel")
    assert w.bye_reason(call["provider_call_id"]) == "api_cancelled"


def test_cartesia_seed_cancel_with_curl(w, tmp_path):
    call = w.answered_call()
    res = run_curl(["-X", "POST", "%s/agents/calls/%s/cancel" % (w.base, call["id"]),
                    "-H", "Authorization: Bearer %s" % w.key,
                    "-H", "Cartesia-Version: 2026-03-01"], tmp_path)
    assert res.status == 200, res
    assert res.json == CART_200, res
    assert_ended(w, call, "api_cancelled")


def test_cartesia_cancel_by_provider_call_id(w):
    call = w.answered_call()
    expect(cartesia(w, urlquote(call["provider_call_id"])), 200, CART_200, "cancel by provider call id")
    assert_ended(w, call, "api_cancelled")


def cartesia_get(w, path, key=_DEFAULT, version=CARTESIA_VERSION, headers=None):
    hdrs = dict(headers or {})
    if version is not None:
        hdrs["Cartesia-Version"] = version
    return w.cp.request("GET", path, None, key=w.key if key is _DEFAULT else key, headers=hdrs)


def test_cartesia_version_header(w):
    call = w.answered_call()
    cid = call["id"]
    expect_cartesia_version_error(cartesia(w, cid, version=None), "cancel without Cartesia-Version")
    for v in ("2025-01-01", "2026-02-28", "", "2026-03-01x", "latest", "2026-3-01", "2026-02-30",
              "2027-02-29", "2026-13-01", "2026-00-10", "2026-03-00", "20260301", "2026/03/01"):
        expect_cartesia_version_error(cartesia(w, cid, version=v), "cancel with Cartesia-Version %r" % v)
        expect_cartesia_version_error(cartesia_get(w, "/agents/calls/%s" % cid, version=v),
                                      "get with Cartesia-Version %r" % v)
    expect_cartesia_version_error(cartesia(w, cid, version=None, method="DELETE"), "delete without version")
    expect_cartesia_version_error(cartesia(w, cid, version="2025-01-01", method="DELETE"), "delete, old version")
    expect_cartesia_version_error(cartesia_get(w, "/agents/calls?agent_id=%s" % w.agent, version=None),
                                  "list without version")
    assert_untouched(w, call)
    # any well-formed date from 2026-03-01 on: clients send the newest version they know
    for v in ("2026-03-01", "2026-03-02", "2026-12-31", "2028-02-29", "2100-01-01"):
        r = cartesia_get(w, "/agents/calls/%s" % cid, version=v)
        assert r.status == 200 and r.json["id"] == cid, (v, r)
    expect(cartesia(w, cid, version="2027-06-15"), 200, CART_200, "cancel with a newer version")
    assert_ended(w, call, "api_cancelled")


def _seconds(ts):
    """The canonical timestamp (milliseconds) as Cartesia prints it (seconds)."""
    return ts[:19] + "Z"


def test_cartesia_get_call(w):
    call = w.answered_call(metadata={"customer": "alice"})
    pcid = call["provider_call_id"]
    want = {"id": call["id"], "agent_id": w.agent, "status": "started",
            "start_time": _seconds(call["created_at"]), "end_time": None, "redacted_at": None,
            "telephony_params": {"from": NUMBER_A, "to": call["to"], "call_sid": pcid,
                                 "direction": "outbound"},
            "end_reason": None, "metadata": {"customer": "alice"}}
    expect(cartesia_get(w, "/agents/calls/%s" % call["id"]), 200, want, "an active call")
    expect(cartesia_get(w, "/agents/calls/%s" % urlquote(pcid)), 200, want, "by provider call id")
    for key, what in ((w.key_b, "another tenant's key"), (w.num2_key, "another number's key")):
        expect(cartesia_get(w, "/agents/calls/%s" % call["id"], key=key), 404, CART_404, what)
    expect(cartesia_get(w, "/agents/calls/%s" % random_uuid()), 404, CART_404, "an unknown call")
    expect(cartesia_get(w, "/agents/calls/%s" % call["id"], key=None), 401, CART_401, "no key")

    expect(cartesia(w, call["id"]), 200, CART_200, "cancel")
    ended = assert_ended(w, call, "api_cancelled")
    want.update(status="completed", end_time=_seconds(ended["ended_at"]), end_reason="api_cancelled")
    expect(cartesia_get(w, "/agents/calls/%s" % call["id"]), 200, want, "the cancelled call")
    # no recording: the audio route says why, in Cartesia's shape
    expect(cartesia_get(w, "/agents/calls/%s/audio" % call["id"]), 404,
           {"error": "the call was not recorded"}, "audio of a call not recorded")
    expect(cartesia_get(w, "/agents/calls/%s/audio" % random_uuid()), 404, CART_404, "audio of an unknown call")

    r = cartesia(w, call["id"], method="DELETE")
    redacted_at = w.get(call["id"])["redacted_at"]
    want.update(redacted_at=_seconds(redacted_at),
                telephony_params={"call_sid": pcid, "direction": "outbound"})
    del want["metadata"]
    # Cartesia's Delete Call answers the record with its deleted fields left out
    expect(r, 200, want, "DELETE")
    expect(cartesia_get(w, "/agents/calls/%s" % call["id"]), 200, want, "after DELETE: deleted fields left out")


def test_cartesia_end_reasons_and_statuses(w):
    """A call another route ended, and one the far end never answered, in Cartesia's words."""
    answered = w.answered_call()
    w.cp.end_call(answered["id"], key=w.key)                    # ended_by_api: the agent hung up
    got = cartesia_get(w, "/agents/calls/%s" % answered["id"]).json
    assert (got["status"], got["end_reason"]) == ("completed", "agent_hangup"), got
    ringing = w.ringing_call()
    w.cp.end_call(ringing["id"], key=w.key)                     # canceled before the answer
    got = cartesia_get(w, "/agents/calls/%s" % ringing["id"]).json
    assert (got["status"], got["end_reason"]) == ("completed", "agent_hangup"), got
    assert got["start_time"] == _seconds(ringing["created_at"]) and got["end_time"], got


def test_cartesia_list_calls_pages_both_ways(w):
    agent = w.cp.agent_create(w.tenant, "cartesia-list", number="+15550003333")
    made = []
    for i in range(5):
        c = w._create(w.ring, agent=agent, metadata={"i": i})
        made.append(c["id"])
        w.cleanup_end(c["id"])
    newest_first = list(reversed(made))
    base = "/agents/calls?agent_id=%s" % agent

    # the default page holds them all (10), newest first, in the AgentCall shape
    page = cartesia_get(w, base).json
    assert set(page) == {"data", "next_page"} and page["next_page"] is None, page
    assert [c["id"] for c in page["data"]] == newest_first, page
    one = cartesia_get(w, "/agents/calls/%s" % made[0]).json
    assert page["data"][-1] == one, (page["data"][-1], one)

    # forwards, two at a time, with the cursor Cartesia's client passes: the last id
    seen, after = [], None
    for _ in range(5):
        p = cartesia_get(w, base + "&limit=2" + ("&starting_after=%s" % after if after else "")).json
        seen += [c["id"] for c in p["data"]]
        if p["next_page"] is None:
            break
        assert p["next_page"] == p["data"][-1]["id"], p
        after = p["next_page"]
    assert seen == newest_first, seen

    # backwards from the oldest: ending_before the first id, each page still newest first
    p = cartesia_get(w, base + "&limit=2&ending_before=%s" % made[0]).json
    assert [c["id"] for c in p["data"]] == [made[2], made[1]] and p["next_page"] == made[2], p
    p = cartesia_get(w, base + "&limit=2&ending_before=%s" % made[2]).json
    assert [c["id"] for c in p["data"]] == [made[4], made[3]] and p["next_page"] is None, p
    p = cartesia_get(w, base + "&limit=2&ending_before=%s" % made[4]).json
    assert p == {"data": [], "next_page": None}, p

    # expand=transcript: callplane keeps none
    p = cartesia_get(w, base + "&limit=1&expand=transcript").json
    assert p["data"][0]["transcript"] is None and p["data"][0]["id"] == made[4], p

    # scope: another tenant sees none of them, and cannot page from them
    assert cartesia_get(w, base, key=w.key_b).json == {"data": [], "next_page": None}
    assert cartesia_get(w, base + "&starting_after=%s" % made[2], key=w.key_b).status == 400

    bad = ["/agents/calls", "/agents/calls?agent_id=", base + "&limit=0", base + "&limit=101",
           base + "&limit=x", base + "&expand=summary", base + "&starting_after=%s" % random_uuid(),
           base + "&starting_after=%s&ending_before=%s" % (made[1], made[3])]
    for path in bad:
        r = cartesia_get(w, path)
        assert r.status == 400 and set(r.json) == {"error"} and r.json["error"], (path, r)


def test_cartesia_unknown_routes_and_methods_in_cartesia_shape(w):
    cid = random_uuid()
    for method, path, status, allow in (("GET", "/agents/calls/%s/cancel" % cid, 405, "POST"),
                                        ("PUT", "/agents/calls/%s" % cid, 405, "DELETE, GET"),
                                        ("POST", "/agents/calls", 405, "GET"),
                                        ("DELETE", "/agents/calls/%s/audio" % cid, 405, "GET"),
                                        ("GET", "/agents/calls/%s/transcript" % cid, 404, None),
                                        ("GET", "/agents", 404, None),
                                        ("GET", "/agents/nope", 404, None)):
        for key in (None, w.key):
            r = w.cp.request(method, path, None, key=key, headers=CV)
            assert r.status == status, (method, path, r)
            assert set(r.json) == {"error"} and isinstance(r.json["error"], str), (method, path, r)
            assert r.headers.get("Allow") == allow, (method, path, r.headers.get("Allow"))
    # elsewhere the canonical shape stays
    r = w.cp.request("GET", "/agentsx", None, key=w.key)
    assert r.status == 404 and set(r.json["error"]) == {"code", "message"}, r


CARTESIA_AUTH_CASES = {
    "unknown key": dict(key="sk_car_not_a_real_key"),
    "no key": dict(key=None),
    "x-api-key on a Bearer-only dialect": dict(style="x-api-key"),
    "no key, no Cartesia-Version": dict(key=None, version=None),
    "delete with an unknown key": dict(key="sk_car_not_a_real_key", method="DELETE"),
    "delete without key": dict(key=None, method="DELETE"),
}


@pytest.mark.parametrize("case", list(CARTESIA_AUTH_CASES))
def test_cartesia_auth_errors(w, case):
    call = w.answered_call()
    expect(cartesia(w, call["id"], **CARTESIA_AUTH_CASES[case]), 401, CART_401, case)
    assert_untouched(w, call)


def test_cartesia_not_found(w):
    call = w.answered_call()
    expect(cartesia(w, random_uuid()), 404, CART_404, "cancel unknown id")
    expect(cartesia(w, "unknown-pcid%40host"), 404, CART_404, "cancel unknown provider call id")
    expect(cartesia(w, call["id"], key=w.key_b), 404, CART_404, "cancel another tenant's call")
    expect(cartesia(w, call["id"], key=w.num2_key), 404, CART_404, "cancel with a key of another number")
    expect(cartesia(w, random_uuid(), method="DELETE"), 404, CART_404, "delete unknown id")
    expect(cartesia(w, call["id"], key=w.key_b, method="DELETE"), 404, CART_404, "delete another tenant's call")
    assert_untouched(w, call)
    w.cleanup_end(call["id"])


def test_cartesia_delete_call_data(w):
    call = w.answered_call(metadata={"customer": "alice", "order": 42})
    before = w.get(call["id"])
    assert before["from"] == NUMBER_A and before["to"] and before["metadata"] == {"customer": "alice", "order": 42}
    assert before["redacted_at"] is None, before

    expect(cartesia(w, call["id"], method="DELETE"), 400, CART_DEL_ACTIVE, "delete an active call")
    assert_untouched(w, call)
    assert w.get(call["id"])["metadata"] == {"customer": "alice", "order": 42}

    expect(cartesia(w, call["id"]), 200, CART_200, "cancel")
    assert_ended(w, call, "api_cancelled")

    r = cartesia(w, call["id"], method="DELETE")
    assert r.status == 200, "delete of an ended call: %r" % (r,)
    got = w.get(call["id"])
    assert r.json == cartesia_get(w, "/agents/calls/%s" % call["id"]).json, r.json
    assert "metadata" not in r.json and r.json["redacted_at"] is not None, r.json
    assert got["from"] is None and got["to"] is None and got["metadata"] is None, got
    assert is_ts(got["redacted_at"]), got
    # the record stays, with its outcome
    assert got["status"] == "completed" and got["end_reason"] == "api_cancelled", got
    assert got["id"] == call["id"] and got["agent_id"] == w.agent, got

    again = cartesia(w, call["id"], method="DELETE")
    assert again.status == 200 and again.json == r.json, "second delete: %r" % (again,)
    got2 = w.get(call["id"])
    assert got2["from"] is None and got2["to"] is None and got2["metadata"] is None and is_ts(got2["redacted_at"]), got2
    expect(cartesia(w, call["id"]), 400, CART_NOT_ACTIVE, "cancel after delete")


def test_cartesia_delete_with_curl(w, tmp_path):
    call = w.answered_call(metadata={"k": "v"})
    expect(cartesia(w, call["id"]), 200, CART_200, "cancel")
    res = run_curl(["-X", "DELETE", "%s/agents/calls/%s" % (w.base, call["id"]),
                    "-H", "Authorization: Bearer %s" % w.key,
                    "-H", "Cartesia-Version: 2026-03-01"], tmp_path)
    assert res.status == 200 and json.loads(res.raw)["id"] == call["id"], res
    got = w.get(call["id"])
    assert got["metadata"] is None and got["to"] is None and is_ts(got["redacted_at"]), got


def test_cartesia_rate_limited(w):
    key = w.limited["cartesia"]
    expect_rate_limited(lambda: cartesia(w, random_uuid(), key=key), CART_404, CART_429)


# ========================================================================= all dialects


def _talkover_end(w, c):
    return talkover(w, w.agent, {"call_sid": c["id"]})


RINGING = {
    # dialect: (end it, expected response body (call id filled in), canonical end_reason)
    "talkover": (_talkover_end, lambda c, r: r.json == {"success": True, "data": {
        "id": c["id"], "status": "completed", "ended_at": r.json["data"]["ended_at"],
        "ended_reason": "ended_by_api"}} and SECONDS_TS_RE.match(r.json["data"]["ended_at"]), "ended_by_api"),
    "voxworks": (lambda w, c: voxworks(w, c["id"]), lambda c, r: r.json == {
        "success": True, "call_id": c["id"], "status": "canceled", "end_reason": "api_ended",
        "progress": "ended"}, "api_ended"),
    "pilotstatus": (lambda w, c: pilot(w, c["id"]), lambda c, r: r.json == {
        "success": True, "id": c["id"], "status": "COMPLETED"}, "ended_by_api"),
    "cartesia": (lambda w, c: cartesia(w, c["id"]), lambda c, r: r.json == CART_200, "api_cancelled"),
}


@pytest.mark.parametrize("dialect", sorted(RINGING))
def test_ending_a_ringing_call_sends_cancel(w, dialect):
    end, body_ok, reason = RINGING[dialect]
    call = w.ringing_call()
    r = end(w, call)
    assert r.status == 200 and body_ok(call, r), "%s end of a ringing call: %r" % (dialect, r)
    got = assert_ended(w, call, reason, status="canceled")
    assert got["answered_at"] is None and got["duration_s"] is None, got
    if dialect == "voxworks":
        expect(voxworks(w, call["id"], {"end_reason": "later"}), 200,
               {"success": True, "call_id": call["id"], "status": "canceled", "end_reason": "api_ended",
                "progress": "already_ended"}, "already canceled")


IDEMPOTENT = {
    "talkover": lambda w, c, **kw: talkover(w, w.agent, {"call_sid": c["id"]}, **kw),
    "voxworks": lambda w, c, **kw: voxworks(w, c["id"], {"end_reason": "api_ended"}, **kw),
    "pilotstatus": lambda w, c, **kw: pilot(w, c["id"], **kw),
    "cartesia": lambda w, c, **kw: cartesia(w, c["id"], **kw),
}


@pytest.mark.parametrize("dialect", sorted(IDEMPOTENT))
def test_idempotency_key_replays_dialect_response(w, dialect):
    call = w.answered_call()
    idem = {"Idempotency-Key": "dialect-%s-%s" % (dialect, call["id"])}
    first = IDEMPOTENT[dialect](w, call, headers=idem)
    again = IDEMPOTENT[dialect](w, call, headers=idem)
    assert first.status == 200, first
    assert first.headers.get("Idempotent-Replayed") is None, first.headers
    assert again.status == 200 and again.json == first.json, "replay differs: %r vs %r" % (again, first)
    assert again.headers.get("Idempotent-Replayed") == "true", again.headers
    reason = {"talkover": "ended_by_api", "voxworks": "api_ended", "pilotstatus": "ended_by_api",
              "cartesia": "api_cancelled"}[dialect]
    assert_ended(w, call, reason)   # exactly one BYE


@pytest.mark.parametrize("method,path,status,code", [
    ("GET", "/api/v1/agents/%(agent)s/end-call", 405, "method_not_allowed"),
    ("PUT", "/api/v1/end-web-call/%(call)s", 405, "method_not_allowed"),
    ("GET", "/v1/calls/%(call)s/terminate", 405, "method_not_allowed"),
    ("POST", "/api/v1/agents/%(agent)s/end-calls", 404, "not_found"),
])
def test_unknown_routes_and_methods_use_canonical_errors(w, method, path, status, code):
    """Outside Cartesia's /agents (whose misses are Cartesia's: see
    test_cartesia_unknown_routes_and_methods_in_cartesia_shape)."""
    p = path % {"agent": w.agent, "call": random_uuid()}
    r = w.cp.request(method, p, None, key=w.key, headers=CV)
    assert r.status == status, "%s %s -> %r" % (method, p, r)
    b = r.json
    assert isinstance(b, dict) and set(b) == {"error"} and isinstance(b["error"], dict), r
    assert set(b["error"]) == {"code", "message"} and b["error"]["code"] == code, r


# a reused Idempotency-Key, in each dialect's error shape (docs/dialects.md; the message is the
# "<why>" of its conflict rows)
IDEM_REUSED = "Idempotency-Key was already used with a different request"
CONFLICT_BODY = {
    "talkover": {"success": False, "message": IDEM_REUSED},
    "voxworks": {"success": False, "message": IDEM_REUSED},
    "pilotstatus": {"error": IDEM_REUSED, "code": "IDEMPOTENCY_CONFLICT"},
    "cartesia": {"error": IDEM_REUSED},
}

CONFLICT = {
    # dialect: (first request on the call, same Idempotency-Key with another request)
    "talkover": (lambda w, c, h: talkover(w, w.agent, {"call_sid": c["id"]}, headers=h),
                 lambda w, c, h: talkover(w, w.agent, {"call_sid": random_uuid()}, headers=h)),
    "voxworks": (lambda w, c, h: voxworks(w, c["id"], headers=h),
                 lambda w, c, h: voxworks(w, c["id"], {"end_reason": "other"}, headers=h)),
    "pilotstatus": (lambda w, c, h: pilot(w, c["id"], headers=h),
                    lambda w, c, h: pilot(w, random_uuid(), headers=h)),
    "cartesia": (lambda w, c, h: cartesia(w, c["id"], headers=h),
                 lambda w, c, h: cartesia(w, random_uuid(), headers=h)),
}


@pytest.mark.parametrize("dialect", sorted(CONFLICT))
def test_idempotency_key_reused_for_another_request_conflicts_in_dialect_shape(w, dialect):
    """docs/API.md: the same Idempotency-Key with a different request is 409; docs/dialects.md:
    every error a dialect route returns uses that dialect's error shape."""
    first_req, other_req = CONFLICT[dialect]
    call = w.answered_call()
    h = {"Idempotency-Key": "conflict-%s-%s" % (dialect, call["id"])}
    first = first_req(w, call, h)
    assert first.status == 200, first
    r = other_req(w, call, h)
    expect(r, 409, CONFLICT_BODY[dialect], "%s: reused Idempotency-Key with another request" % dialect)


CONCURRENT = 20
CONCURRENT_CASES = {
    # dialect: (end request, check of the one winner, expected response of every other request)
    "talkover": (lambda w, c: talkover(w, w.agent, {"call_sid": c["id"]}),
                 lambda c, r: r.json["success"] is True and r.json["data"]["status"] == "completed",
                 lambda c: (409, TALKOVER_409), "ended_by_api"),
    "voxworks": (lambda w, c: voxworks(w, c["id"]),
                 lambda c, r: r.json == {"success": True, "call_id": c["id"], "status": "completed",
                                         "end_reason": "api_ended", "progress": "ended"},
                 lambda c: (200, {"success": True, "call_id": c["id"], "status": "completed",
                                  "end_reason": "api_ended", "progress": "already_ended"}), "api_ended"),
    "pilotstatus": (lambda w, c: pilot(w, c["id"]),
                    lambda c, r: r.json == {"success": True, "id": c["id"], "status": "COMPLETED"},
                    lambda c: (400, PILOT_NOT_ACTIVE), "ended_by_api"),
    "cartesia": (lambda w, c: cartesia(w, c["id"]), lambda c, r: r.json == CART_200,
                 lambda c: (400, CART_NOT_ACTIVE), "api_cancelled"),
}


@pytest.mark.parametrize("dialect", sorted(CONCURRENT_CASES))
def test_concurrent_dialect_ends_of_one_call(w, dialect):
    """20 clients end the same answered call at once: exactly one ends it (one BYE); every
    other request gets the dialect's documented answer for an ended call."""
    end, winner_ok, other, reason = CONCURRENT_CASES[dialect]
    call = w.answered_call()
    with concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENT) as ex:
        results = list(ex.map(lambda _i: end(w, call), range(CONCURRENT), timeout=30))
    st, body = other(call)
    winners = [r for r in results if r.status == 200 and winner_ok(call, r)]
    rest = [r for r in results if not (r.status == 200 and winner_ok(call, r))]
    assert len(winners) == 1, "%s: expected exactly one request to end the call, got %d: %r" % (
        dialect, len(winners), [(r.status, r.raw) for r in results])
    bad = [r for r in rest if r.status != st or r.json != body]
    assert not bad, "%s: %d of %d other requests did not get %s %s, e.g. %r" % (
        dialect, len(bad), len(rest), st, json.dumps(body), bad[:3])
    assert_ended(w, call, reason)


REVOKED = {
    "talkover": (lambda w, c, k: talkover(w, w.agent, {"call_sid": c["id"]}, key=k), TALKOVER_401),
    "voxworks": (lambda w, c, k: voxworks(w, c["id"], key=k), VOX_401),
    "pilotstatus": (lambda w, c, k: pilot(w, c["id"], key=k), PILOT_401),
    "cartesia": (lambda w, c, k: cartesia(w, c["id"], key=k), CART_401),
}


@pytest.mark.parametrize("dialect", sorted(REVOKED))
def test_revoked_key_is_401_in_dialect_shape(w, dialect):
    send, body = REVOKED[dialect]
    call = w.answered_call()
    key = w.revoked_num_key if dialect == "pilotstatus" else w.revoked_key
    expect(send(w, call, key), 401, body, "%s with a revoked key" % dialect)
    assert_untouched(w, call)


BAD_IDEM = {
    "talkover": lambda w, c, h: talkover(w, w.agent, {"call_sid": c["id"]}, headers=h),
    "voxworks": lambda w, c, h: voxworks(w, c["id"], headers=h),
    "pilotstatus": lambda w, c, h: pilot(w, c["id"], headers=h),
    "cartesia": lambda w, c, h: cartesia(w, c["id"], headers=h),
}


@pytest.mark.parametrize("dialect", sorted(BAD_IDEM))
def test_invalid_idempotency_key_is_400_in_dialect_shape(w, dialect):
    """docs/API.md: Idempotency-Key is 1..255 printable ASCII; a bad one is a validation error,
    rendered in the dialect's shape, and nothing is ended."""
    call = w.answered_call()
    r = BAD_IDEM[dialect](w, call, {"Idempotency-Key": "k" * 256})
    if dialect in ("talkover", "voxworks"):
        expect_message_error(r, 400, "%s, 256-character Idempotency-Key" % dialect)
    elif dialect == "pilotstatus":
        expect(r, 400, PILOT_400, "pilotstatus, 256-character Idempotency-Key")
    else:
        assert r.status == 400 and isinstance(r.json, dict) and set(r.json) == {"error"} \
            and isinstance(r.json["error"], str) and r.json["error"], r
    assert_untouched(w, call)


@pytest.mark.parametrize("dialect", sorted(CONCURRENT_CASES))
def test_concurrent_dialect_ends_of_one_ringing_call(w, dialect):
    """Same as above for a ringing call: exactly one CANCEL-ing end, every other request gets
    the dialect's documented answer for an ended call (Voxworks: status canceled)."""
    end, winner_ok, other, reason = CONCURRENT_CASES[dialect]
    call = w.ringing_call()
    with concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENT) as ex:
        results = list(ex.map(lambda _i: end(w, call), range(CONCURRENT), timeout=30))
    st, body = other(call)
    if dialect == "voxworks":
        body = dict(body, status="canceled")

    def won(r):
        if dialect == "voxworks":
            return r.status == 200 and r.json == dict(body, progress="ended")
        return r.status == 200 and winner_ok(call, r)

    winners = [r for r in results if won(r)]
    rest = [r for r in results if not won(r)]
    assert len(winners) == 1, "%s: expected exactly one request to end the call, got %d: %r" % (
        dialect, len(winners), [(r.status, r.raw) for r in results])
    bad = [r for r in rest if r.status != st or r.json != body]
    assert not bad, "%s: %d of %d other requests did not get %s %s, e.g. %r" % (
        dialect, len(bad), len(rest), st, json.dumps(body), bad[:3])
    assert_ended(w, call, reason, status="canceled")
