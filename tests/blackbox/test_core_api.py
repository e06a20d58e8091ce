"""Black-box tests of the canonical REST API (docs/API.md)."""

import json
import subprocess
import threading
import time

import pytest

from cp import (CALL_KEYS, assert_call_shape, assert_error, assert_recent,
                free_port, is_ts, is_uuid, random_uuid, request_id, split_end, urlquote)

SIP_TO = "sip:bob@127.0.0.1:5070"


def ids(calls):
    return [c["id"] for c in calls]


# ---------------------------------------------------------------- health


def test_healthz_without_auth(srv):
    r = srv.request("GET", "/healthz")
    assert r.status == 200, r
    assert r.json == {"status": "ok"}, r
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers.items()
    request_id(r)


# ------------------------------------------------------------------ auth


def test_no_key_is_401(srv):
    r = srv.request("GET", "/v1/calls")
    assert_error(r, 401, "unauthorized")
    r = srv.request("POST", "/v1/calls", {"agent_id": srv.agent, "to": SIP_TO})
    assert_error(r, 401, "unauthorized")
    assert srv.list_calls()["data"] == []


def test_wrong_key_is_401(srv):
    for style in ("bearer", "x-api-key"):
        r = srv.request("GET", "/v1/calls", key=srv.key + "x", header_style=style)
        assert_error(r, 401, "unauthorized")
        r = srv.request("GET", "/v1/calls", key="not-a-key", header_style=style)
        assert_error(r, 401, "unauthorized")
    # malformed Authorization headers
    r = srv.request("GET", "/v1/calls", headers={"Authorization": "Bearer"})
    assert_error(r, 401, "unauthorized")
    r = srv.request("GET", "/v1/calls", headers={"Authorization": "Basic " + srv.key})
    assert_error(r, 401, "unauthorized")


def test_bearer_and_x_api_key_both_work(srv):
    r = srv.request("GET", "/v1/calls", key=srv.key, header_style="bearer")
    assert r.status == 200, r
    r = srv.request("GET", "/v1/calls", key=srv.key, header_style="x-api-key")
    assert r.status == 200, r
    r = srv.request("POST", "/v1/calls", {"agent_id": srv.agent, "to": SIP_TO}, key=srv.key,
                    header_style="x-api-key")
    assert r.status == 201, r
    r2 = srv.request("GET", "/v1/calls/" + r.json["id"], key=srv.key, header_style="bearer")
    assert r2.status == 200 and r2.json["id"] == r.json["id"], r2


def test_revoked_key_is_401_while_running(srv):
    assert srv.request("GET", "/v1/calls", key=srv.key).status == 200
    call = srv.create_call()
    out = srv.key_revoke(srv.key_id)
    assert out == {"id": srv.key_id, "revoked": True}, out
    for style in ("bearer", "x-api-key"):
        assert_error(srv.request("GET", "/v1/calls", key=srv.key, header_style=style), 401, "unauthorized")
    assert_error(srv.request("GET", "/v1/calls/" + call["id"], key=srv.key), 401, "unauthorized")
    assert_error(srv.request("POST", "/v1/calls/%s/end" % call["id"], key=srv.key), 401, "unauthorized")
    assert_error(srv.request("POST", "/v1/calls", {"agent_id": srv.agent, "to": SIP_TO}, key=srv.key),
                 401, "unauthorized")
    # the revoked key did not end the call: a fresh key still sees it queued
    _kid, key2 = srv.key_create(srv.tenant)
    assert srv.get_call(call["id"], key=key2)["status"] == "queued"


# ---------------------------------------------------------- create call


def test_create_call_shape(srv):
    r = srv.request("POST", "/v1/calls", {"agent_id": srv.agent, "to": SIP_TO, "metadata": {"a": 1, "b": {"c": [1, "x"]}}},
                    key=srv.key)
    assert r.status == 201, r
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers.items()
    c = r.json
    assert_call_shape(c)
    assert set(c) == CALL_KEYS
    assert c["status"] == "queued"
    assert c["direction"] == "outbound"
    assert c["agent_id"] == srv.agent
    assert c["from"] == srv.number
    assert c["to"] == SIP_TO
    assert c["metadata"] == {"a": 1, "b": {"c": [1, "x"]}}
    assert_recent(c["created_at"])
    for k in ("provider_call_id", "answered_at", "ended_at", "duration_s", "end_reason", "sip_status",
              "redacted_at", "recording_url"):
        assert c[k] is None, (k, c)
    assert c["has_recording"] is False, c
    # GET returns the same object
    g = srv.get_call(c["id"])
    assert g == c


def test_create_call_defaults_and_options(srv):
    c = srv.create_call()
    assert c["metadata"] == {}, c
    assert c["max_duration_s"] is None, c
    assert c["from"] == srv.number
    # E.164 `to`, explicit `from` (another agent's number of the tenant), max_duration_s bounds
    srv.agent_create(srv.tenant, "agent-second", number="+15550009999")
    c = srv.create_call(to="+15557654321", **{"from": "+15550009999"})
    assert c["to"] == "+15557654321" and c["from"] == "+15550009999", c
    c = srv.create_call(to="sips:alice@example.com")
    assert c["to"] == "sips:alice@example.com" and c["from"] == srv.number, c
    c = srv.create_call(max_duration_s=1)
    assert c["max_duration_s"] == 1, c
    c = srv.create_call(max_duration_s=86400)
    assert c["max_duration_s"] == 86400, c
    c = srv.create_call(to="+12")  # 2 digits is the minimum
    assert c["to"] == "+12"
    c = srv.create_call(to="+123456789012345")  # 15 digits is the maximum
    assert c["to"] == "+123456789012345"
    # metadata close to (but under) 16 KiB is fine
    c = srv.create_call(metadata={"x": "a" * 16000})
    assert c["metadata"] == {"x": "a" * 16000}
    ids_ = {c["id"] for c in srv.list_all()}
    assert len(ids_) == 8


def test_create_call_ids_unique(srv):
    seen = set()
    for _ in range(10):
        c = srv.create_call()
        assert is_uuid(c["id"])
        seen.add(c["id"])
    assert len(seen) == 10


def _post_raw(srv, body, **kw):
    return srv.request("POST", "/v1/calls", body, key=srv.key, **kw)


def test_create_call_validation_400(srv):
    before = srv.create_call()
    ag = srv.agent
    bad = [
        ("malformed json", b'{"agent_id": "' + ag.encode() + b'", "to": '),
        ("malformed json 2", b"{not json}"),
        ("empty body", b""),
        ("json array", [ {"agent_id": ag, "to": SIP_TO} ]),
        ("json string", "hello"),
        ("json null", b"null"),
        ("json number", b"42"),
        ("missing agent_id", {"to": SIP_TO}),
        ("missing to", {"agent_id": ag}),
        ("agent_id not string", {"agent_id": 12, "to": SIP_TO}),
        ("to hello", {"agent_id": ag, "to": "hello"}),
        ("to empty", {"agent_id": ag, "to": ""}),
        ("to no plus", {"agent_id": ag, "to": "15551234567"}),
        ("to one digit", {"agent_id": ag, "to": "+1"}),
        ("to 16 digits", {"agent_id": ag, "to": "+1234567890123456"}),
        ("to letters", {"agent_id": ag, "to": "+1555abc4567"}),
        ("to http uri", {"agent_id": ag, "to": "http://example.com"}),
        ("to number type", {"agent_id": ag, "to": 15551234567}),
        ("to too long", {"agent_id": ag, "to": "sip:" + "b" * 240 + "@127.0.0.1:5070"}),
        ("from bad", {"agent_id": ag, "to": SIP_TO, "from": "hello"}),
        ("from sip uri", {"agent_id": ag, "to": SIP_TO, "from": "sip:+15550001111@127.0.0.1"}),
        ("from number type", {"agent_id": ag, "to": SIP_TO, "from": 5}),
        ("metadata string", {"agent_id": ag, "to": SIP_TO, "metadata": "x"}),
        ("metadata array", {"agent_id": ag, "to": SIP_TO, "metadata": [1, 2]}),
        ("metadata number", {"agent_id": ag, "to": SIP_TO, "metadata": 3}),
        ("metadata > 16 KiB", {"agent_id": ag, "to": SIP_TO, "metadata": {"x": "a" * 17000}}),
        ("metadata > 16 KiB many keys", {"agent_id": ag, "to": SIP_TO,
                                         "metadata": {"k%04d" % i: "v" * 20 for i in range(700)}}),
        ("max_duration 0", {"agent_id": ag, "to": SIP_TO, "max_duration_s": 0}),
        ("max_duration negative", {"agent_id": ag, "to": SIP_TO, "max_duration_s": -5}),
        ("max_duration float", {"agent_id": ag, "to": SIP_TO, "max_duration_s": 1.5}),
        ("max_duration string", {"agent_id": ag, "to": SIP_TO, "max_duration_s": "30"}),
        ("max_duration bool", {"agent_id": ag, "to": SIP_TO, "max_duration_s": True}),
        ("max_duration too big", {"agent_id": ag, "to": SIP_TO, "max_duration_s": 86401}),
        ("max_duration huge", {"agent_id": ag, "to": SIP_TO, "max_duration_s": 10 ** 20}),
        ("record string", {"agent_id": ag, "to": SIP_TO, "record": "true"}),
        ("record number", {"agent_id": ag, "to": SIP_TO, "record": 1}),
        ("record null", {"agent_id": ag, "to": SIP_TO, "record": None}),
        ("unknown field", {"agent_id": ag, "to": SIP_TO, "foo": 1}),
        ("unknown field status", {"agent_id": ag, "to": SIP_TO, "status": "completed"}),
    ]
    # sanity: the "to too long" entry really exceeds 256 bytes
    to_long = [b for n, b in bad if n == "to too long"][0]["to"]
    assert len(to_long.encode()) > 256
    failures = []
    for name, body in bad:
        r = _post_raw(srv, body)
        try:
            assert_error(r, 400, "invalid_request")
        except AssertionError as e:
            failures.append("%s: %s" % (name, e))
    assert not failures, "\n".join(failures)
    after = srv.list_all()
    assert ids(after) == [before["id"]], "bad requests changed the call list: %r" % ids(after)


def test_create_call_unknown_agent_404(srv):
    r = _post_raw(srv, {"agent_id": random_uuid(), "to": SIP_TO})
    assert_error(r, 404, "not_found")
    assert srv.list_calls()["data"] == []


def test_create_call_from_only_a_number_the_tenant_owns(srv):
    """`from` is the caller ID: a number of one of the tenant's agents (a number-scoped key:
    its own). Another tenant's agent's number, or a number nobody here holds, is 403
    from_not_allowed with one message (it does not say whether the number exists); a SIP
    URI is no number (400). Nothing is created by a refusal."""
    other = srv.agent_create(srv.tenant, "agent-second", number="+15550002222")
    tenant_b = srv.tenant_create("tenant-b")
    srv.agent_create(tenant_b, "agent-b", number="+15550009999")
    message = "from must be the number of one of the tenant's agents"
    for number in ("+15550009999", "+15550007777"):
        r = _post_raw(srv, {"agent_id": srv.agent, "to": SIP_TO, "from": number})
        assert_error(r, 403, "from_not_allowed")
        assert r.json["error"]["message"] == message, r
    r = _post_raw(srv, {"agent_id": srv.agent, "to": SIP_TO, "from": "sip:+15550009999@127.0.0.1"})
    assert_error(r, 400, "invalid_request")
    _kid, number_key = srv.key_create(srv.tenant, number=srv.number)
    r = srv.request("POST", "/v1/calls", {"agent_id": srv.agent, "to": SIP_TO, "from": "+15550002222"},
                    key=number_key)
    assert_error(r, 403, "from_not_allowed")
    assert r.json["error"]["message"] == "from must be this key's number, %s" % srv.number, r
    assert srv.list_calls()["data"] == []
    # the tenant's own numbers, from any of its agents (and its own, for a number-scoped key)
    assert srv.create_call(agent=other, **{"from": srv.number})["from"] == srv.number
    assert srv.create_call(**{"from": "+15550002222"})["from"] == "+15550002222"
    assert srv.create_call(key=number_key, **{"from": srv.number})["from"] == srv.number
    assert len(srv.list_calls()["data"]) == 3


def test_create_call_body_too_large_413(srv):
    body = json.dumps({"agent_id": srv.agent, "to": SIP_TO, "metadata": {"x": "a" * 70000}}).encode()
    assert len(body) > 65536
    r = _post_raw(srv, body)
    assert_error(r, 413, "payload_too_large")
    # just under the limit: not a 413 (the metadata limit still applies -> 400)
    body = json.dumps({"agent_id": srv.agent, "to": SIP_TO, "metadata": {"x": "a" * 60000}}).encode()
    assert len(body) < 65536
    r = _post_raw(srv, body)
    assert_error(r, 400, "invalid_request")
    assert srv.list_calls()["data"] == []
    # the server still works
    srv.create_call()


# --------------------------------------------------------------- get call


def test_get_call(srv):
    c = srv.create_call(metadata={"k": "v"})
    r = srv.request("GET", "/v1/calls/" + c["id"], key=srv.key)
    assert r.status == 200, r
    assert r.json == c


def test_get_unknown_call_404(srv):
    assert_error(srv.request("GET", "/v1/calls/" + random_uuid(), key=srv.key), 404, "not_found")
    assert_error(srv.request("GET", "/v1/calls/nope", key=srv.key), 404, "not_found")


# ------------------------------------------------------------------ list


def test_list_newest_first(srv):
    created = []
    for i in range(5):
        created.append(srv.create_call(metadata={"i": i}))
        time.sleep(0.005)
    page = srv.list_calls()
    assert set(page) == {"data", "next_cursor"}, page
    assert page["next_cursor"] is None, page
    assert ids(page["data"]) == list(reversed(ids(created)))
    for c in page["data"]:
        assert_call_shape(c)


def test_list_pagination_walks_all_once(srv):
    n = 25
    created = []
    for i in range(n):
        created.append(srv.create_call(metadata={"i": i})["id"])
        time.sleep(0.002)  # distinct millisecond timestamps: "newest first" is unambiguous
    seen = []
    sizes = []
    cursor = None
    while True:
        assert len(sizes) < 10, "pagination did not terminate"
        q = "limit=7" + ("&cursor=" + urlquote(cursor) if cursor is not None else "")
        page = srv.list_calls(query=q)
        assert set(page) == {"data", "next_cursor"}, page
        sizes.append(len(page["data"]))
        seen.extend(ids(page["data"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [7, 7, 7, 4], sizes
    assert len(seen) == len(set(seen)), "duplicates in pagination"
    assert sorted(seen) == sorted(created)
    assert seen == list(reversed(created)), "pages are not newest first"
    # default limit (50) returns all 25 in one page
    page = srv.list_calls()
    assert len(page["data"]) == n and page["next_cursor"] is None
    # limit=1 walks one at a time
    one = srv.list_all(limit=1, max_pages=n + 2)
    assert ids(one) == seen
    # limit=200 is allowed
    assert len(srv.list_calls(query="limit=200")["data"]) == n


def test_list_limit_caps_page(srv):
    for _ in range(3):
        srv.create_call()
    page = srv.list_calls(query="limit=2")
    assert len(page["data"]) == 2 and isinstance(page["next_cursor"], str) and page["next_cursor"], page


def test_list_filters(srv):
    agent2 = srv.agent_create(srv.tenant, "agent-a2", number="+15550002222")
    a1 = [srv.create_call()["id"] for _ in range(3)]
    a2 = [srv.create_call(agent=agent2)["id"] for _ in range(2)]
    ended = srv.end_call(a1[0])
    assert ended["status"] == "canceled"
    ended2 = srv.end_call(a2[0])

    active = srv.list_all(query="status=active")
    assert sorted(ids(active)) == sorted([a1[1], a1[2], a2[1]])
    assert [c["status"] for c in active] == ["queued"] * 3, active     # no SIP: none rings
    canceled = srv.list_all(query="status=canceled")
    assert sorted(ids(canceled)) == sorted([ended["id"], ended2["id"]])
    queued = srv.list_all(query="status=queued")
    assert sorted(ids(queued)) == sorted([a1[1], a1[2], a2[1]])
    assert srv.list_all(query="status=completed") == []

    by_a2 = srv.list_all(query="agent_id=" + agent2)
    assert sorted(ids(by_a2)) == sorted(a2)
    by_a1_active = srv.list_all(query="agent_id=%s&status=active" % srv.agent)
    assert sorted(ids(by_a1_active)) == sorted(a1[1:])
    assert srv.list_all(query="agent_id=" + random_uuid()) == []
    # filtered pagination
    walked = srv.list_all(query="status=active", limit=1, max_pages=10)
    assert sorted(ids(walked)) == sorted([a1[1], a1[2], a2[1]])


@pytest.mark.parametrize("query", [
    "limit=0", "limit=201", "limit=abc", "limit=-1", "limit=", "limit=1.5",
    "status=bogus", "status=ACTIVE", "cursor=garbage", "cursor=%00%01",
])
def test_list_bad_query_400(srv, query):
    srv.create_call()
    assert_error(srv.request("GET", "/v1/calls?" + query, key=srv.key), 400, "invalid_request")


# ------------------------------------------------------------------- end


def test_end_call_defaults(srv):
    c = srv.create_call()
    r = srv.request("POST", "/v1/calls/%s/end" % c["id"], key=srv.key)
    assert r.status == 200, r
    e, goodbye_ms = split_end(r.json)
    assert goodbye_ms == 0      # an immediate end plays nothing
    assert e["id"] == c["id"]
    assert e["status"] == "canceled"
    assert e["end_reason"] == "ended_by_api"
    assert is_ts(e["ended_at"])
    assert_recent(e["ended_at"])
    assert e["ended_at"] >= e["created_at"]
    assert e["duration_s"] is None and e["answered_at"] is None
    assert e["created_at"] == c["created_at"] and e["from"] == c["from"] and e["to"] == c["to"]
    assert srv.get_call(c["id"]) == e


def test_end_call_with_reason(srv):
    c = srv.create_call()
    e = srv.end_call(c["id"], body={"reason": "user_hangup"})
    assert e["status"] == "canceled" and e["end_reason"] == "user_hangup", e
    assert srv.get_call(c["id"])["end_reason"] == "user_hangup"
    for reason in ("a.b:c-d_E9", "x" * 64, "Z"):
        c = srv.create_call()
        e = srv.end_call(c["id"], body={"reason": reason})
        assert e["end_reason"] == reason


def test_end_call_empty_body_and_empty_object(srv):
    c1 = srv.create_call()
    c2 = srv.create_call()
    e1 = srv.end_call(c1["id"], body=b"")
    assert e1["status"] == "canceled" and e1["end_reason"] == "ended_by_api"
    e2 = srv.end_call(c2["id"], body={})
    assert e2["status"] == "canceled" and e2["end_reason"] == "ended_by_api"


@pytest.mark.parametrize("body", [
    {"reason": "x" * 200},
    {"reason": "x" * 65},
    {"reason": "user hangup"},
    {"reason": ""},
    {"reason": 42},
    {"reason": "caf\u00e9"},
    {"reason": "a/b"},
    b"{not json",
    b"[1]",
], ids=["200chars", "65chars", "space", "empty", "number", "non-ascii", "slash", "malformed", "array"])
def test_end_call_invalid_reason_400(srv, body):
    c = srv.create_call()
    r = srv.request("POST", "/v1/calls/%s/end" % c["id"], body, key=srv.key)
    assert_error(r, 400, "invalid_request")
    g = srv.get_call(c["id"])
    assert g["status"] == "queued" and g["ended_at"] is None and g["end_reason"] is None, g
    # still endable
    assert srv.end_call(c["id"])["status"] == "canceled"


def test_end_twice_409(srv):
    c = srv.create_call()
    e = srv.end_call(c["id"])
    r = srv.request("POST", "/v1/calls/%s/end" % c["id"], key=srv.key)
    assert_error(r, 409, "call_not_active")
    r = srv.request("POST", "/v1/calls/%s/end" % c["id"], {"reason": "again"}, key=srv.key)
    assert_error(r, 409, "call_not_active")
    assert srv.get_call(c["id"]) == e, "ending again changed the call"


def test_end_unknown_call_404(srv):
    assert_error(srv.request("POST", "/v1/calls/%s/end" % random_uuid(), key=srv.key), 404, "not_found")


def test_concurrent_end_exactly_one_wins(srv):
    c = srv.create_call()
    n = 50
    barrier = threading.Barrier(n, timeout=10)
    results = [None] * n

    def worker(i):
        try:
            barrier.wait()
            results[i] = srv.request("POST", "/v1/calls/%s/end" % c["id"], key=srv.key, timeout=15)
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "requests did not finish in time"
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, "request errors: %r\nstderr:\n%s" % (errors[:3], srv.stderr_text()[-3000:])
    oks = [r for r in results if r.status == 200]
    conflicts = [r for r in results if r.status == 409]
    assert len(oks) == 1, "expected exactly one 200, got %d; statuses %r" % (
        len(oks), sorted(r.status for r in results))
    assert len(conflicts) == n - 1, sorted(r.status for r in results)
    for r in conflicts:
        assert_error(r, 409, "call_not_active")
    ended, _ms = split_end(oks[0].json)
    assert ended["status"] == "canceled"
    assert srv.get_call(c["id"]) == ended


# ----------------------------------------------------------------- delete


def test_delete_active_call_409(srv):
    c = srv.create_call(metadata={"secret": "x"})
    assert_error(srv.request("DELETE", "/v1/calls/" + c["id"], key=srv.key), 409, "call_not_active")
    assert srv.get_call(c["id"]) == c


def test_delete_ended_call_redacts(srv):
    c = srv.create_call(to="+15557654321", metadata={"secret": "x"})
    e = srv.end_call(c["id"], body={"reason": "done"})
    r = srv.request("DELETE", "/v1/calls/" + c["id"], key=srv.key)
    assert r.status == 200, r
    d = r.json
    assert_call_shape(d)
    assert d["from"] is None and d["to"] is None and d["metadata"] is None, d
    assert is_ts(d["redacted_at"]), d
    assert_recent(d["redacted_at"])
    for k in ("id", "agent_id", "direction", "status", "created_at", "answered_at", "ended_at",
              "duration_s", "end_reason", "max_duration_s", "provider_call_id", "sip_status"):
        assert d[k] == e[k], (k, d, e)
    assert d["status"] == "canceled" and d["end_reason"] == "done"
    assert srv.get_call(c["id"]) == d
    # the redacted data does not appear in the list either
    listed = [x for x in srv.list_all() if x["id"] == c["id"]]
    assert listed == [d]
    # repeatable
    r2 = srv.request("DELETE", "/v1/calls/" + c["id"], key=srv.key)
    assert r2.status == 200, r2
    assert r2.json["from"] is None and r2.json["to"] is None and r2.json["metadata"] is None
    assert is_ts(r2.json["redacted_at"])
    assert r2.json["id"] == c["id"] and r2.json["status"] == "canceled"
    # ending a redacted (ended) call is still 409
    assert_error(srv.request("POST", "/v1/calls/%s/end" % c["id"], key=srv.key), 409, "call_not_active")


def test_delete_unknown_404(srv):
    assert_error(srv.request("DELETE", "/v1/calls/" + random_uuid(), key=srv.key), 404, "not_found")


# -------------------------------------------------------------- isolation


def test_tenant_isolation(cp):
    cp.setup_world()
    tb = cp.tenant_create("tenant-b")
    agent_b = cp.agent_create(tb, "agent-b", number="+15559990000")
    _kb, key_b = cp.key_create(tb)
    cp.start()
    active = cp.create_call()
    ended = cp.create_call()
    cp.end_call(ended["id"])
    own_b = cp.create_call(key=key_b, agent=agent_b)

    for c in (active, ended):
        assert_error(cp.request("GET", "/v1/calls/" + c["id"], key=key_b), 404, "not_found")
        assert_error(cp.request("POST", "/v1/calls/%s/end" % c["id"], key=key_b), 404, "not_found")
        assert_error(cp.request("DELETE", "/v1/calls/" + c["id"], key=key_b), 404, "not_found")
    listed_b = cp.list_all(key=key_b)
    assert ids(listed_b) == [own_b["id"]]
    assert cp.list_all(key=key_b, query="agent_id=" + cp.agent) == []
    # B cannot place a call with A's agent, nor A with B's
    assert_error(cp.request("POST", "/v1/calls", {"agent_id": cp.agent, "to": SIP_TO}, key=key_b),
                 404, "not_found")
    assert_error(cp.request("POST", "/v1/calls", {"agent_id": agent_b, "to": SIP_TO}, key=cp.key),
                 404, "not_found")
    assert_error(cp.request("GET", "/v1/calls/" + own_b["id"], key=cp.key), 404, "not_found")
    # nothing B did touched A's calls
    assert cp.get_call(active["id"])["status"] == "queued"
    assert cp.get_call(ended["id"])["from"] == ended["from"]
    assert sorted(ids(cp.list_all())) == sorted([active["id"], ended["id"]])


def test_number_scoped_key(cp):
    cp.setup_world(number="+15550001111")
    agent2 = cp.agent_create(cp.tenant, "agent-other", number="+15550002222")
    _ks, key_s = cp.key_create(cp.tenant, number="+15550001111")
    cp.start()
    mine = cp.create_call()
    other = cp.create_call(agent=agent2)
    other_ended = cp.create_call(agent=agent2)
    cp.end_call(other_ended["id"])

    assert cp.get_call(mine["id"], key=key_s) == mine
    for c in (other, other_ended):
        assert_error(cp.request("GET", "/v1/calls/" + c["id"], key=key_s), 404, "not_found")
        assert_error(cp.request("POST", "/v1/calls/%s/end" % c["id"], key=key_s), 404, "not_found")
        assert_error(cp.request("DELETE", "/v1/calls/" + c["id"], key=key_s), 404, "not_found")
    assert ids(cp.list_all(key=key_s)) == [mine["id"]]
    assert cp.list_all(key=key_s, query="agent_id=" + agent2) == []
    # POST with an agent of another number -> 404, with its own number -> 201
    assert_error(cp.request("POST", "/v1/calls", {"agent_id": agent2, "to": SIP_TO}, key=key_s),
                 404, "not_found")
    own = cp.create_call(key=key_s)
    assert own["agent_id"] == cp.agent and own["from"] == "+15550001111"
    # the tenant key still sees everything, and other is untouched
    assert cp.get_call(other["id"])["status"] == "queued"
    assert sorted(ids(cp.list_all())) == sorted([mine["id"], other["id"], other_ended["id"], own["id"]])
    # the scoped key can end its own call
    assert cp.end_call(mine["id"], key=key_s)["status"] == "canceled"


# ------------------------------------------------------------ idempotency


def test_idempotency_replay(srv):
    body = json.dumps({"agent_id": srv.agent, "to": SIP_TO, "metadata": {"n": 1}}).encode()
    h = {"Idempotency-Key": "idem-1"}
    r1 = srv.request("POST", "/v1/calls", body, key=srv.key, headers=h)
    assert r1.status == 201, r1
    assert r1.headers.get("Idempotent-Replayed") is None, r1.headers.items()    # a first answer
    r2 = srv.request("POST", "/v1/calls", body, key=srv.key, headers=h)
    assert r2.status == r1.status, r2
    assert r2.json == r1.json, (r1, r2)
    assert r2.raw == r1.raw, (r1.raw, r2.raw)
    assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers.items()
    assert len(srv.list_all()) == 1
    # a different body with the same key is a conflict and creates nothing
    body2 = json.dumps({"agent_id": srv.agent, "to": SIP_TO, "metadata": {"n": 2}}).encode()
    r3 = srv.request("POST", "/v1/calls", body2, key=srv.key, headers=h)
    assert_error(r3, 409, "idempotency_conflict")
    assert len(srv.list_all()) == 1
    # a different idempotency key creates a new call
    r4 = srv.request("POST", "/v1/calls", body, key=srv.key, headers={"Idempotency-Key": "idem-2"})
    assert r4.status == 201 and r4.json["id"] != r1.json["id"], r4
    assert len(srv.list_all()) == 2


def test_idempotency_keys_are_per_api_key(cp):
    cp.setup_world()
    _k2, key2 = cp.key_create(cp.tenant)
    cp.start()
    body = {"agent_id": cp.agent, "to": SIP_TO}
    h = {"Idempotency-Key": "shared-key"}
    r1 = cp.request("POST", "/v1/calls", body, key=cp.key, headers=h)
    assert r1.status == 201, r1
    r2 = cp.request("POST", "/v1/calls", body, key=key2, headers=h)
    assert r2.status == 201, r2
    assert r2.headers.get("Idempotent-Replayed") is None, r2.headers.items()    # key2's first answer
    assert r2.json["id"] != r1.json["id"]
    # key2's retry replays key2's own first response, not key1's
    r3 = cp.request("POST", "/v1/calls", body, key=key2, headers=h)
    assert r3.status == 201 and r3.json == r2.json and r3.headers.get("Idempotent-Replayed") == "true", r3
    assert sorted(ids(cp.list_all())) == sorted([r1.json["id"], r2.json["id"]])


def test_idempotency_on_end_replays_200(srv):
    c = srv.create_call()
    h = {"Idempotency-Key": "end-once"}
    r1 = srv.request("POST", "/v1/calls/%s/end" % c["id"], {"reason": "bye"}, key=srv.key, headers=h)
    assert r1.status == 200, r1
    r2 = srv.request("POST", "/v1/calls/%s/end" % c["id"], {"reason": "bye"}, key=srv.key, headers=h)
    assert r2.status == 200, r2
    assert r2.json == r1.json
    assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers.items()
    # without the key it is a second end: 409
    assert_error(srv.request("POST", "/v1/calls/%s/end" % c["id"], {"reason": "bye"}, key=srv.key),
                 409, "call_not_active")


def test_idempotency_replays_4xx(srv):
    body = {"agent_id": random_uuid(), "to": SIP_TO}
    h = {"Idempotency-Key": "fails-404"}
    r1 = srv.request("POST", "/v1/calls", body, key=srv.key, headers=h)
    assert_error(r1, 404, "not_found")
    r2 = srv.request("POST", "/v1/calls", body, key=srv.key, headers=h)
    assert_error(r2, 404, "not_found")
    assert r2.json == r1.json
    assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers.items()


# ----------------------------------------------------------------- routing


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"), ("GET", "/v1/nope"), ("GET", "/v1"), ("POST", "/v2/calls"),
    ("GET", "/v1/calls/%s/nope" % "00000000-0000-4000-8000-000000000000"),
    ("GET", "/v1/callsx"),
])
def test_unknown_route_404(srv, method, path):
    r = srv.request(method, path, key=srv.key)
    assert_error(r, 404, "not_found")
    request_id(r)


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/v1/calls", "POST, GET"), ("DELETE", "/v1/calls", "POST, GET"),
    ("PATCH", "/v1/calls", "POST, GET"),
    ("PUT", "/v1/calls/{id}", "GET, DELETE"), ("POST", "/v1/calls/{id}", "GET, DELETE"),
    ("GET", "/v1/calls/{id}/end", "POST"), ("DELETE", "/v1/calls/{id}/end", "POST"),
    ("PUT", "/v1/calls/end", "POST, GET, DELETE"),
    ("POST", "/healthz", "GET"),
])
def test_wrong_method_405(srv, method, path, allow):
    """405, with the methods the path is served with in Allow (RFC 9110 15.5.6)."""
    c = srv.create_call()
    p = path.replace("{id}", c["id"])
    body = {"agent_id": srv.agent, "to": SIP_TO} if method in ("PUT", "PATCH", "POST") else None
    r = srv.request(method, p, body, key=srv.key)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers.get("Allow") == allow, r.headers.get("Allow")
    request_id(r)
    assert srv.get_call(c["id"]) == c
    assert ids(srv.list_all()) == [c["id"]]


# ---------------------------------------------------- request ids and logs


def _string_values(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _string_values(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _string_values(v)


def test_request_id_and_log_lines(srv):
    c = srv.create_call()
    cid = c["id"]
    other = random_uuid()
    plan = [
        ("GET", "/healthz", None, None, 200),
        ("GET", "/v1/calls", None, srv.key, 200),
        ("GET", "/v1/calls/" + cid, None, srv.key, 200),
        ("GET", "/v1/calls", None, None, 401),
        ("GET", "/v1/calls/" + other, None, srv.key, 404),
        ("PUT", "/v1/calls", {}, srv.key, 405),
        ("POST", "/v1/calls", b"{", srv.key, 400),
        ("POST", "/v1/calls/%s/end" % cid, None, srv.key, 200),
        ("POST", "/v1/calls/%s/end" % cid, None, srv.key, 409),
        ("DELETE", "/v1/calls/" + cid, None, srv.key, 200),
    ]
    rids = []
    for method, path, body, key, status in plan:
        r = srv.request(method, path, body, key=key)
        assert r.status == status, (method, path, r)
        rids.append(request_id(r))
    assert len(set(rids)) == len(rids), "request ids are not unique: %r" % rids

    deadline = time.monotonic() + 3
    while True:
        text = srv.stderr_text()
        if all(rid in text for rid in rids) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    lines = text.splitlines()
    problems = []
    for rid, (method, path, _b, _k, _s) in zip(rids, plan):
        json_hits = []
        for ln in lines:
            if rid not in ln:
                continue
            try:
                obj = json.loads(ln)
            except ValueError:
                continue
            if isinstance(obj, dict) and rid in set(_string_values(obj)):
                json_hits.append(obj)
        # other lines (domain events) may carry the request id for correlation; the
        # request itself must be logged exactly once (the line naming its method and path)
        request_lines = [o for o in json_hits
                         if method in set(_string_values(o)) and path in set(_string_values(o))]
        if len(request_lines) != 1:
            problems.append("%s %s (request id %s): %d JSON request log lines, %d JSON lines with the id"
                            % (method, path, rid, len(request_lines), len(json_hits)))
    assert not problems, "\n".join(problems) + "\nstderr tail:\n" + "\n".join(lines[-30:])


# ---------------------------------------------------------- one server per database


def test_second_server_on_the_same_database_refuses_to_start(srv):
    """Two servers on one file would end each other's calls as crash leftovers; the second
    one exits with a clear error, the first keeps serving, and the admin CLI still works."""
    call = srv.create_call()
    p = subprocess.run([srv.bin, "serve", "--db", srv.db, "--http", "127.0.0.1:%d" % free_port(),
                        "--sip", "none"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, p       # not a usage error (docs/API.md)
    assert "%s is in use by another callplane server" % srv.db in p.stderr, p.stderr
    assert srv.get_call(call["id"])["status"] == "queued"
    _kid, key2 = srv.key_create(srv.tenant)
    assert srv.request("GET", "/v1/calls/" + call["id"], key=key2).status == 200
