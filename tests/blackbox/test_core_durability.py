"""Durability: acknowledged writes survive kill -9 (default --sync full)."""

from cp import assert_call_shape

CREATION_FIELDS = ("id", "agent_id", "direction", "from", "to", "created_at", "metadata",
                   "max_duration_s", "provider_call_id", "answered_at", "redacted_at")


def assert_same_call_after_restart(got, before):
    """docs/API.md: with `--sip none` "new calls stay queued" (there is no engine that could
    have dialled them), so a restart must not change a queued call at all."""
    assert_call_shape(got)
    for k in CREATION_FIELDS:
        assert got[k] == before[k], (k, got, before)
    assert got == before, "queued call changed across restart with --sip none:\n%r\n%r" % (got, before)


def test_end_survives_kill9(srv):
    c = srv.create_call(metadata={"k": "v"})
    e = srv.end_call(c["id"])
    assert e["status"] == "canceled" and e["ended_at"]
    srv.kill9()
    srv.start()
    g = srv.get_call(c["id"])
    assert_call_shape(g)
    assert g["status"] == "canceled", g
    assert g["ended_at"] == e["ended_at"], (g, e)
    assert g["end_reason"] == "ended_by_api"
    assert g == e, "call changed across kill -9: %r vs %r" % (g, e)
    # still not endable again
    r = srv.request("POST", "/v1/calls/%s/end" % c["id"], key=srv.key)
    assert r.status == 409, r


def test_created_calls_survive_kill9(srv):
    created = [srv.create_call(metadata={"i": i}) for i in range(20)]
    srv.kill9()
    srv.start()
    listed = srv.list_all()
    assert sorted(c["id"] for c in listed) == sorted(c["id"] for c in created)
    by_id = {c["id"]: c for c in listed}
    for c in created:
        assert_same_call_after_restart(by_id[c["id"]], c)
        assert srv.get_call(c["id"]) == by_id[c["id"]]


def test_redaction_survives_kill9(srv):
    c = srv.create_call(metadata={"secret": "s"})
    srv.end_call(c["id"])
    r = srv.request("DELETE", "/v1/calls/" + c["id"], key=srv.key)
    assert r.status == 200, r
    srv.kill9()
    srv.start()
    g = srv.get_call(c["id"])
    assert g == r.json
    assert g["from"] is None and g["to"] is None and g["metadata"] is None


def test_graceful_restart_keeps_data(srv):
    c = srv.create_call(metadata={"q": 1})
    ended = srv.create_call(metadata={"q": 2})
    e = srv.end_call(ended["id"], body={"reason": "before_restart"})
    srv.restart()  # SIGTERM (asserted exit 0) then start on the same DB
    assert_same_call_after_restart(srv.get_call(c["id"]), c)
    # terminal states never change
    assert srv.get_call(ended["id"]) == e
    srv.restart()
    assert srv.get_call(ended["id"]) == e
    assert sorted(x["id"] for x in srv.list_all()) == sorted([c["id"], ended["id"]])


def test_idempotency_survives_restart(srv):
    body = {"agent_id": srv.agent, "to": "+15557654321"}
    h = {"Idempotency-Key": "durable-1"}
    r1 = srv.request("POST", "/v1/calls", body, key=srv.key, headers=h)
    assert r1.status == 201, r1
    srv.kill9()
    srv.start()
    r2 = srv.request("POST", "/v1/calls", body, key=srv.key, headers=h)
    assert r2.status == 201 and r2.json == r1.json, (r1, r2)
    assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers.items()
    assert len(srv.list_all()) == 1
