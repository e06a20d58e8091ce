"""Black-box tests of operator keys (docs/API.md, "Operator keys"): `key create --operator` mints
a key bound to no tenant, which sees, places and ends calls of every tenant on the canonical API
manages every tenant's webhooks (/v1/webhooks), and is refused by the vendor
dialects. The matrix runs every call route with
the operator's key, a tenant key, a number-scoped key and another tenant's key, and checks that a
tenant key's scope is exactly what it was.

Calls are placed without a SIP engine: they stay queued (active) until ended, which is all the
scope rules need.
"""

import sqlite3
import time

import pytest

from cp import UNDO_OPERATOR_KEYS, UNDO_SIGNING_AND_DIAL, UNDO_TRUNKS, assert_cli_error, assert_error, split_end
from test_dialects import CARTESIA_VERSION
from test_events import Streams, call_ids, check_event, wait_n

NUMBER_A = "+15550001111"
NUMBER_A2 = "+15550002222"
NUMBER_B = "+15550003333"
FORBIDDEN_TENANT_ID = {"error": {"code": "forbidden", "message": "tenant_id is for operator keys"}}


class World:
    """Tenant A (agents A and A2, a tenant key, a key scoped to A's number), tenant B (agent B,
    its key) and an operator key; the server started without SIP."""

    def __init__(self, cp):
        self.cp = cp
        cp.setup_world(number=NUMBER_A)
        self.agent_a2 = cp.agent_create(cp.tenant, "agent-a2", number=NUMBER_A2)
        _nid, self.num_key = cp.key_create(cp.tenant, number=NUMBER_A)
        self.tenant_b = cp.tenant_create("tenant-b")
        self.agent_b = cp.agent_create(self.tenant_b, "agent-b", number=NUMBER_B)
        _bid, self.key_b = cp.key_create(self.tenant_b)
        self.op_id, self.op = cp.key_create_operator()
        cp.start()

    def ids(self, key, query="status=active"):
        return sorted(c["id"] for c in self.cp.list_all(key=key, query=query))


@pytest.fixture
def w(cp):
    return World(cp)


# ------------------------------------------------------------------------------------ CLI


def test_key_create_operator_listed(cp):
    t = cp.tenant_create("t")
    tid, _tkey = cp.key_create(t)
    out = cp.cli("key", "create", "--operator")
    assert set(out) == {"id", "key"} and out["key"].startswith("cp_") and len(out["key"]) == 51, out
    lst = cp.key_list()["data"]
    by_id = {k["id"]: k for k in lst}
    assert set(by_id) == {tid, out["id"]}, lst
    op = by_id[out["id"]]
    assert (op["tenant_id"], op["number"], op["operator"], op["prefix"]) == (None, None, True, out["key"][:10]), op
    assert (by_id[tid]["tenant_id"], by_id[tid]["operator"]) == (t, False), by_id[tid]
    # a tenant's listing holds its own keys only, never the operator's
    assert [k["id"] for k in cp.key_list(tenant=t)["data"]] == [tid]


@pytest.mark.parametrize("args, message", [
    ((), "error: key create needs --tenant ID or --operator (not both)"),
    (("--operator", "--tenant", "TENANT"), "error: key create needs --tenant ID or --operator (not both)"),
    (("--operator", "--number", "+15550001111"), "error: an --operator key has no --number or --sip-uris"),
    (("--operator", "--sip-uris", "any"), "error: an --operator key has no --number or --sip-uris"),
])
def test_key_create_operator_usage_errors(cp, args, message):
    t = cp.tenant_create("t")
    args = tuple(t if a == "TENANT" else a for a in args)
    assert_cli_error(cp.cli_raw("key", "create", *args), 2, message)
    assert cp.key_list()["data"] == []


def test_operator_key_revoked_stops_at_once(w):
    assert w.cp.list_calls(key=w.op) == {"data": [], "next_cursor": None}
    w.cp.key_revoke(w.op_id)
    r = w.cp.request("GET", "/v1/calls", key=w.op)
    assert_error(r, 401, "unauthorized")


# --------------------------------------------------------------------------- calls: matrix


def test_operator_sees_every_tenant_and_tenant_keys_see_as_before(w):
    cp = w.cp
    a1 = cp.create_call(key=w.op, agent=cp.agent)            # the operator, on tenant A's agent
    a2 = cp.create_call(agent=w.agent_a2)                    # tenant A's key, agent A2
    b1 = cp.create_call(key=w.key_b, agent=w.agent_b)        # tenant B's key
    assert a1["agent_id"] == cp.agent and a1["from"] == NUMBER_A, a1

    everyone = sorted([a1["id"], a2["id"], b1["id"]])
    assert w.ids(w.op) == everyone
    assert w.ids(w.op, "status=active&tenant_id=" + cp.tenant) == sorted([a1["id"], a2["id"]])
    assert w.ids(w.op, "tenant_id=" + w.tenant_b) == [b1["id"]]
    assert w.ids(w.op, "tenant_id=00000000-0000-4000-8000-000000000000") == []
    assert w.ids(w.op, "agent_id=" + w.agent_a2) == [a2["id"]]
    # tenant keys: exactly their scope, as before operator keys existed
    assert w.ids(cp.key) == sorted([a1["id"], a2["id"]])
    assert w.ids(w.num_key) == [a1["id"]]
    assert w.ids(w.key_b) == [b1["id"]]

    # GET: the operator reads any call, the same object its tenant reads
    for c, key in ((a1, cp.key), (a2, cp.key), (b1, w.key_b)):
        assert cp.get_call(c["id"], key=w.op) == cp.get_call(c["id"], key=key)
    # and nobody else's scope grew: another tenant's call is 404, as an unknown one
    for c, key in ((b1, cp.key), (b1, w.num_key), (a1, w.key_b), (a2, w.num_key)):
        assert_error(cp.request("GET", "/v1/calls/%s" % c["id"], key=key), 404, "not_found")


def test_tenant_id_is_refused_from_tenant_keys(w):
    cp = w.cp
    b1 = cp.create_call(key=w.key_b, agent=w.agent_b)
    for key in (cp.key, w.num_key, w.key_b):
        for tenant in (cp.tenant, w.tenant_b):
            r = cp.request("GET", "/v1/calls?tenant_id=" + tenant, key=key)
            assert (r.status, r.json) == (403, FORBIDDEN_TENANT_ID), r
            r = cp.request("POST", "/v1/calls/end", {"tenant_id": tenant}, key=key)
            assert (r.status, r.json) == (403, FORBIDDEN_TENANT_ID), r
    assert cp.get_call(b1["id"], key=w.key_b)["status"] == "queued"


@pytest.mark.parametrize("query", ["tenant_id=", "tenant_id=" + "a" * 37])
def test_operator_bad_tenant_id_400(w, query):
    r = w.cp.request("GET", "/v1/calls?" + query, key=w.op)
    assert (r.status, r.json) == (400, {"error": {"code": "invalid_request",
                                                  "message": "tenant_id must be a tenant id"}}), r


def test_operator_create_needs_an_agent_and_from_of_its_tenant(w):
    cp = w.cp
    r = cp.request("POST", "/v1/calls", {"to": "sip:bob@127.0.0.1:5070"}, key=w.op)
    assert (r.status, r.json) == (400, {"error": {"code": "invalid_request",
                                                  "message": "agent_id is required"}}), r
    b1 = cp.create_call(key=w.op, agent=w.agent_b)
    assert b1["agent_id"] == w.agent_b and b1["from"] == NUMBER_B, b1
    assert cp.get_call(b1["id"], key=w.key_b) == cp.get_call(b1["id"], key=w.op)
    assert_error(cp.request("GET", "/v1/calls/%s" % b1["id"], key=cp.key), 404, "not_found")
    # the caller ID is still the agent's tenant's number: not another tenant's
    r = cp.request("POST", "/v1/calls", {"agent_id": w.agent_b, "to": "sip:bob@127.0.0.1:5070",
                                         "from": NUMBER_A}, key=w.op)
    assert (r.status, r.json) == (403, {"error": {"code": "from_not_allowed",
                                                  "message": "from must be the number of one of the tenant's agents"}}), r
    r = cp.request("POST", "/v1/calls", {"agent_id": "00000000-0000-4000-8000-000000000000",
                                         "to": "sip:bob@127.0.0.1:5070"}, key=w.op)
    assert_error(r, 404, "not_found")


def test_operator_ends_one_call_of_any_tenant(w):
    cp = w.cp
    b1 = cp.create_call(key=w.key_b, agent=w.agent_b)
    ended = cp.end_call(b1["id"], key=w.op)
    assert ended["status"] == "canceled" and ended["end_reason"] == "ended_by_api", ended
    assert cp.get_call(b1["id"], key=w.key_b) == ended
    # tenant A's keys still cannot end B's call
    b2 = cp.create_call(key=w.key_b, agent=w.agent_b)
    for key in (cp.key, w.num_key):
        assert_error(cp.request("POST", "/v1/calls/%s/end" % b2["id"], {}, key=key), 404, "not_found")
    assert cp.get_call(b2["id"], key=w.key_b)["status"] == "queued"


def test_emergency_stop_one_tenant_then_all(w):
    cp = w.cp
    a1 = cp.create_call()
    a2 = cp.create_call(agent=w.agent_a2)
    b1 = cp.create_call(key=w.key_b, agent=w.agent_b)
    b2 = cp.create_call(key=w.key_b, agent=w.agent_b)

    r = cp.request("POST", "/v1/calls/end", {"tenant_id": w.tenant_b, "reason": "emergency"}, key=w.op)
    assert (r.status, r.json) == (200, {"ended": 2, "already_ended": 0, "failed": 0}), r
    for c in (b1, b2):
        got = cp.get_call(c["id"], key=w.key_b)
        assert (got["status"], got["end_reason"]) == ("canceled", "emergency"), got
    assert w.ids(cp.key) == sorted([a1["id"], a2["id"]])

    # a tenant key's bulk end still ends only its own scope
    a3 = cp.create_call(key=w.op, agent=cp.agent)
    b3 = cp.create_call(key=w.key_b, agent=w.agent_b)
    r = cp.request("POST", "/v1/calls/end", {}, key=w.num_key)
    assert (r.status, r.json) == (200, {"ended": 2, "already_ended": 0, "failed": 0}), r
    assert w.ids(w.op) == sorted([a2["id"], b3["id"]])

    r = cp.request("POST", "/v1/calls/end", {}, key=w.op)
    assert (r.status, r.json) == (200, {"ended": 2, "already_ended": 0, "failed": 0}), r
    assert w.ids(w.op) == []
    for c in (a1, a3):
        assert cp.get_call(c["id"])["status"] == "canceled"
    r = cp.request("POST", "/v1/calls/end", {}, key=w.op)
    assert (r.status, r.json) == (200, {"ended": 0, "already_ended": 0, "failed": 0}), r


def test_operator_redacts_any_tenants_call(w):
    cp = w.cp
    b1 = cp.create_call(key=w.key_b, agent=w.agent_b, metadata={"who": "b"})
    cp.end_call(b1["id"], key=w.key_b)
    assert_error(cp.request("DELETE", "/v1/calls/%s" % b1["id"], key=cp.key), 404, "not_found")
    r = cp.request("DELETE", "/v1/calls/%s" % b1["id"], key=w.op)
    assert r.status == 200 and r.json["id"] == b1["id"] and r.json["metadata"] is None, r
    assert cp.get_call(b1["id"], key=w.key_b) == r.json


def test_operator_stream_sees_every_tenant(w):
    cp = w.cp
    streams = Streams(cp)
    try:
        so = streams.open(w.op)
        sa = streams.open(cp.key)
        a1 = cp.create_call()
        b1 = cp.create_call(key=w.key_b, agent=w.agent_b)
        cp.end_call(a1["id"])
        cp.end_call(b1["id"], key=w.key_b)
        wait_n(so, 2, 10, "operator events")
        wait_n(sa, 1, 10, "tenant A events")
        time.sleep(0.5)
        # a queued call's only event is its end
        assert call_ids(so.events) == [a1["id"], b1["id"]], so.events
        assert call_ids(sa.events) == [a1["id"]], sa.events
        for e in so.events:
            check_event(e)
    finally:
        streams.close()


# -------------------------------------------------------------------- where operators may not


def err(code, message):
    return {"error": {"code": code, "message": message}}


NO_NUMBER_KEYS = err("forbidden", "webhooks need a tenant-scoped key")
UNKNOWN_TENANT = "00000000-0000-4000-8000-00000000dead"


def seed_failed_delivery(cp, tenant, agent, webhook_id, n):
    """Delivery n of event n (tenant's), failed as the worker leaves one that gave up: the API
    makes none without waiting out every retry, and replay needs a failed one."""
    con = sqlite3.connect(cp.db, timeout=10)
    try:
        con.execute("INSERT INTO events(seq, id, tenant_id, agent_id, call_id, type, created_at,"
                    " payload) VALUES (?, ?, ?, ?, ?, 'call.ended', 1, '{}')",
                    (n, "event-%d" % n, tenant, agent, "call-%d" % n))
        con.execute("INSERT INTO deliveries(id, event_seq, webhook_id, status, attempts,"
                    " next_attempt_at, last_status, last_error, created_at)"
                    " VALUES (?, ?, ?, 'failed', 1, 1, 500, 'seeded', 1)", (n, n, webhook_id))
        con.commit()
    finally:
        con.close()


def hook_rows(r):
    assert r.status == 200, r
    return sorted((h["id"], h["tenant_id"], h["agent_id"], h["url"]) for h in r.json["data"])


def delivery_rows(r):
    assert r.status == 200, r
    return [(d["id"], d["event_id"], d["webhook_id"], d["status"]) for d in r.json["data"]]


def test_operator_webhooks_every_tenant(w):
    """An operator key manages every tenant's webhooks; tenant_id names one. A tenant key keeps
    its tenant, and naming a tenant is refused; a number-scoped key is refused as before."""
    cp = w.cp
    a, b = cp.tenant, w.tenant_b
    req = cp.request

    # create: an operator names the tenant
    r = req("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/a"}, key=w.op)
    assert (r.status, r.json) == (400, err("invalid_request", "tenant_id is required with an"
                                           " operator key: a webhook belongs to a tenant")), r
    r = req("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/a", "tenant_id": UNKNOWN_TENANT},
            key=w.op)
    assert_error(r, 404, "not_found")
    r = req("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/a", "tenant_id": ""}, key=w.op)
    assert (r.status, r.json) == (400, err("invalid_request", "tenant_id must be a tenant id")), r
    r = req("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/a", "tenant_id": a,
                                     "agent_id": w.agent_b}, key=w.op)
    assert_error(r, 404, "not_found")                # agent B is not tenant A's
    r = req("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/a", "tenant_id": a}, key=w.op)
    assert r.status == 201 and (r.json["tenant_id"], r.json["agent_id"]) == (a, None), r
    assert r.json["secret"].startswith("whsec_"), r
    ha = r.json["id"]
    r = req("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/b", "tenant_id": b,
                                     "agent_id": w.agent_b}, key=w.op)
    assert r.status == 201 and (r.json["tenant_id"], r.json["agent_id"]) == (b, w.agent_b), r
    hb = r.json["id"]
    r = req("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/x", "tenant_id": a}, key=cp.key)
    assert (r.status, r.json) == (403, FORBIDDEN_TENANT_ID), r
    r = req("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/x"}, key=w.num_key)
    assert (r.status, r.json) == (403, NO_NUMBER_KEYS), r

    # list
    both = sorted([(ha, a, None, "http://127.0.0.1:9/a"), (hb, b, w.agent_b, "http://127.0.0.1:9/b")])
    assert hook_rows(req("GET", "/v1/webhooks", key=w.op)) == both
    assert hook_rows(req("GET", "/v1/webhooks?tenant_id=" + b, key=w.op)) == [(hb, b, w.agent_b, "http://127.0.0.1:9/b")]
    assert hook_rows(req("GET", "/v1/webhooks?tenant_id=" + UNKNOWN_TENANT, key=w.op)) == []
    assert hook_rows(req("GET", "/v1/webhooks", key=cp.key)) == [(ha, a, None, "http://127.0.0.1:9/a")]
    assert hook_rows(req("GET", "/v1/webhooks", key=w.key_b)) == [(hb, b, w.agent_b, "http://127.0.0.1:9/b")]
    r = req("GET", "/v1/webhooks?tenant_id=" + b, key=cp.key)
    assert (r.status, r.json) == (403, FORBIDDEN_TENANT_ID), r
    r = req("GET", "/v1/webhooks", key=w.num_key)
    assert (r.status, r.json) == (403, NO_NUMBER_KEYS), r

    # read and change any tenant's by id; a tenant key reaches its own only
    r = req("GET", "/v1/webhooks/" + hb, key=w.op)
    assert r.status == 200 and (r.json["id"], r.json["tenant_id"]) == (hb, b) and "secret" not in r.json, r
    for method, body in (("GET", None), ("PATCH", {"url": "http://127.0.0.1:9/z"}), ("DELETE", None)):
        r = req(method, "/v1/webhooks/" + hb, body, key=cp.key)
        assert_error(r, 404, "not_found")
    r = req("PATCH", "/v1/webhooks/" + hb, {"url": "http://127.0.0.1:9/b2", "agent_id": None}, key=w.op)
    assert r.status == 200 and (r.json["tenant_id"], r.json["agent_id"], r.json["url"]) == \
        (b, None, "http://127.0.0.1:9/b2") and "secret" not in r.json, r
    r = req("PATCH", "/v1/webhooks/" + hb, {"tenant_id": a}, key=w.op)
    assert (r.status, r.json) == (400, err("invalid_request", 'unknown field "tenant_id"')), r
    assert hook_rows(req("GET", "/v1/webhooks", key=w.key_b)) == [(hb, b, None, "http://127.0.0.1:9/b2")]

    # deliveries: every tenant's, or one's
    seed_failed_delivery(cp, a, cp.agent, ha, 1001)
    seed_failed_delivery(cp, b, w.agent_b, hb, 1002)
    da = (1001, "event-1001", ha, "failed")
    db = (1002, "event-1002", hb, "failed")
    assert delivery_rows(req("GET", "/v1/webhooks/deliveries", key=w.op)) == [db, da]
    assert delivery_rows(req("GET", "/v1/webhooks/deliveries?status=failed&tenant_id=" + a,
                             key=w.op)) == [da]
    assert delivery_rows(req("GET", "/v1/webhooks/deliveries", key=cp.key)) == [da]
    assert delivery_rows(req("GET", "/v1/webhooks/deliveries", key=w.key_b)) == [db]
    r = req("GET", "/v1/webhooks/deliveries?tenant_id=" + a, key=w.key_b)
    assert (r.status, r.json) == (403, FORBIDDEN_TENANT_ID), r
    for method, path in (("GET", "/v1/webhooks/deliveries"), ("POST", "/v1/webhooks/deliveries/replay"),
                         ("POST", "/v1/webhooks/deliveries/1001/replay")):
        r = req(method, path, key=w.num_key)
        assert (r.status, r.json) == (403, NO_NUMBER_KEYS), (method, path, r)

    # replay: a tenant key never reaches another's; an operator's tenant_id narrows
    r = req("POST", "/v1/webhooks/deliveries/1002/replay", key=cp.key)
    assert (r.status, r.json) == (404, err("not_found", "no failed delivery with that id")), r
    r = req("POST", "/v1/webhooks/deliveries/1002/replay?tenant_id=" + a, key=w.op)
    assert (r.status, r.json) == (404, err("not_found", "no failed delivery with that id")), r
    r = req("POST", "/v1/webhooks/deliveries/replay?tenant_id=" + a, key=cp.key)
    assert (r.status, r.json) == (403, FORBIDDEN_TENANT_ID), r
    r = req("POST", "/v1/webhooks/deliveries/replay?tenant_id=" + a, key=w.op)
    assert (r.status, r.json) == (200, {"replayed": 1}), r
    assert delivery_rows(req("GET", "/v1/webhooks/deliveries?status=failed", key=w.op)) == [db]
    r = req("POST", "/v1/webhooks/deliveries/1002/replay", key=w.op)
    assert (r.status, r.json) == (200, {"replayed": 1}), r
    r = req("POST", "/v1/webhooks/deliveries/replay", key=w.op)
    assert (r.status, r.json) == (200, {"replayed": 0}), r

    # delete any tenant's
    r = req("DELETE", "/v1/webhooks/" + ha, key=w.op)
    assert (r.status, r.json) == (200, {"id": ha, "deleted": True}), r
    r = req("DELETE", "/v1/webhooks/" + ha, key=w.op)
    assert_error(r, 404, "not_found")
    assert hook_rows(req("GET", "/v1/webhooks", key=cp.key)) == []
    assert [h[0] for h in hook_rows(req("GET", "/v1/webhooks", key=w.op))] == [hb]


def test_operator_refused_by_vendor_dialects(w):
    """Each vendor's 403 in its own shape: an operator key spans tenants, which no vendor API
    has a shape for."""
    cp = w.cp
    msg = "an operator key works only on the canonical API (/v1/...)"
    c = cp.create_call()
    r = cp.request("POST", "/api/v1/agents/%s/end-call" % cp.agent, {}, key=w.op)
    assert (r.status, r.json) == (403, {"success": False, "message": msg}), r
    r = cp.request("POST", "/api/v1/end-web-call/%s" % c["id"], {}, key=w.op)
    assert (r.status, r.json) == (403, {"success": False, "message": msg}), r
    for method, path in (("POST", "/agents/calls/%s/cancel" % c["id"]), ("GET", "/agents/calls")):
        r = cp.request(method, path, key=w.op, headers={"Cartesia-Version": CARTESIA_VERSION})
        assert (r.status, r.json) == (403, {"error": msg}), r
    # pilotstatus answers number endpoints for number-scoped keys only, and says so
    r = cp.request("POST", "/v1/calls/%s/terminate" % c["id"], {}, key=w.op, header_style="x-api-key")
    assert (r.status, r.json) == (403, {"error": "Tenant-scoped keys cannot call number endpoints",
                                        "code": "TENANT_SCOPE_NOT_ALLOWED"}), r
    assert cp.get_call(c["id"])["status"] == "queued"


# ---------------------------------------------------------------------------------- upgrade


def test_schema_6_database_keeps_its_keys(cp):
    """A database of schema 6 (keys always bound to a tenant) migrates: every key stays the
    tenant key it was, and an operator key can be added."""
    cp.setup_world()
    _nid, num_key = cp.key_create(cp.tenant, number=cp.number)
    before = cp.key_list()["data"]
    con = sqlite3.connect(cp.db)
    con.executescript(UNDO_SIGNING_AND_DIAL)                            # migrations 9, 10
    con.executescript(UNDO_TRUNKS)
    con.executescript(UNDO_OPERATOR_KEYS)
    con.execute("PRAGMA user_version = 6")
    con.commit()
    con.close()
    after = cp.key_list()["data"]     # the CLI migrates
    assert after == before and [k["operator"] for k in after] == [False, False], after
    con = sqlite3.connect(cp.db)
    try:
        assert con.execute("PRAGMA user_version").fetchall() == [(12,)]
    finally:
        con.close()
    _oid, op = cp.key_create_operator()
    cp.start()
    c = cp.create_call(key=num_key)
    assert [x["id"] for x in cp.list_calls()["data"]] == [c["id"]]
    assert [x["id"] for x in cp.list_calls(key=op)["data"]] == [c["id"]]
    ended, _ms = split_end(cp.request("POST", "/v1/calls/%s/end" % c["id"], {}, key=op).json)
    assert ended["status"] == "canceled", ended
