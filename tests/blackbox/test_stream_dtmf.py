"""Black-box tests of the media plane's control plumbing (docs/API.md): the agent's and the
call's audio stream URL, and POST /v1/calls/{id}/dtmf.

The stream URL may carry a secret in its query string, so no API reply ever shows it: the
tests read it from the database file (sqlite3) to see what was stored.
"""

import sqlite3

import pytest

from cp import UNDO_OPERATOR_KEYS, UNDO_SIGNING_AND_DIAL, UNDO_TRUNKS, CALL_KEYS, assert_call_shape, assert_error, random_uuid
from sipp_peer import wait_for
from test_sip import SipWorld

SIP_TO = "sip:bob@127.0.0.1:5070"
AGENT_URL = "wss://agent.example.com/twilio?token=agent-s3cret"
CALL_URL = "ws://127.0.0.1:9000/media?token=call-s3cret"

BAD_URLS = [
    "http://agent.example.com/s",
    "https://agent.example.com/s",
    "agent.example.com/s",
    "/relative/path",
    "ws://",
    "wss:///path",
    "ws://:9000/s",
    "ws://host:0/s",
    "ws://host:65536/s",
    "ws://ho st/s",
    "ws://host/a b",
    "ws://host/\tx",
    "ws://host/caf\u00e9",
    "wss://h/" + "a" * 1017,     # 1025 bytes
]


def db_rows(cp, sql, *args):
    con = sqlite3.connect(cp.db, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def stored_stream_url(cp, call_id):
    rows = db_rows(cp, "SELECT stream_url FROM calls WHERE id = ?", call_id)
    assert len(rows) == 1, rows
    return rows[0][0]


# ------------------------------------------------------------------ CLI


def test_agent_create_with_stream_url_listed(cp):
    t = cp.tenant_create("t")
    out = cp.cli("agent", "create", "--tenant", t, "--name", "bot", "--stream-url", AGENT_URL)
    plain = cp.agent_create(t, "plain")
    lst = cp.agent_list()["data"]
    by_id = {a["id"]: a for a in lst}
    assert by_id[out["id"]]["stream_url"] == AGENT_URL, lst
    assert by_id[plain]["stream_url"] is None, lst
    # exactly 1024 bytes is accepted
    url = "wss://h/" + "a" * 1016
    assert len(url) == 1024
    a = cp.cli("agent", "create", "--tenant", t, "--name", "long", "--stream-url", url)["id"]
    assert {x["id"]: x for x in cp.agent_list()["data"]}[a]["stream_url"] == url


@pytest.mark.parametrize("url", BAD_URLS, ids=range(len(BAD_URLS)))
def test_agent_create_bad_stream_url_is_usage_error(cp, url):
    t = cp.tenant_create("t")
    rc, out, err = cp.cli_raw("agent", "create", "--tenant", t, "--name", "bot", "--stream-url", url)
    assert rc == 2, (rc, out, err)
    assert out == "", out
    assert "error: --stream-url must be an absolute ws:// or wss:// URL" in err, err
    assert cp.agent_list()["data"] == []


def test_agent_update_stream_url(cp):
    t = cp.tenant_create("t")
    a = cp.agent_create(t, "bot")
    assert cp.cli("agent", "update", a, "--stream-url", AGENT_URL) == {"id": a, "stream_url": AGENT_URL}
    assert cp.agent_list()["data"][0]["stream_url"] == AGENT_URL
    assert cp.cli("agent", "update", a, "--no-stream-url") == {"id": a, "stream_url": None}
    assert cp.agent_list()["data"][0]["stream_url"] is None
    # usage errors: no id, neither or both options, a bad URL
    for args in (["agent", "update", "--stream-url", AGENT_URL],
                 ["agent", "update", a],
                 ["agent", "update", a, "--stream-url", AGENT_URL, "--no-stream-url"],
                 ["agent", "update", a, "--stream-url", "http://x"]):
        rc, out, err = cp.cli_raw(*args)
        assert rc == 2 and out == "" and err.startswith("error: "), (args, rc, out, err)
    assert cp.agent_list()["data"][0]["stream_url"] is None
    # an unknown agent
    rc, out, err = cp.cli_raw("agent", "update", random_uuid(), "--stream-url", AGENT_URL)
    assert rc == 1 and out == "" and "no such agent" in err, (rc, out, err)


def test_old_database_gains_the_columns(cp):
    """A database of schema 2 (before stream URLs) opens, migrates, and keeps its calls.
    The schema 2 database is today's with every later column dropped: a migration that adds
    columns drops them here too."""
    cp.setup_world()
    cp.start()
    old = cp.create_call(to=SIP_TO)
    cp.stop()
    latest = db_rows(cp, "PRAGMA user_version")
    con = sqlite3.connect(cp.db)
    for table, column in (("agents", "stream_url"), ("calls", "stream_url"),
                          ("agents", "record"), ("calls", "record"),
                          ("agents", "goodbye_text"), ("agents", "max_duration_goodbye")):
        con.execute("ALTER TABLE %s DROP COLUMN %s" % (table, column))
    con.execute("DROP TABLE dialogs")      # migration 6
    con.executescript(UNDO_SIGNING_AND_DIAL)                            # migrations 9, 10
    con.executescript(UNDO_OPERATOR_KEYS)                               # migration 7
    con.executescript(UNDO_TRUNKS)                                      # migration 8
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()
    lst = cp.agent_list()["data"]     # the CLI migrates
    assert [a["stream_url"] for a in lst] == [None], lst
    assert [a["record"] for a in lst] == [False], lst
    assert latest == [(12,)] and db_rows(cp, "PRAGMA user_version") == latest
    cp.start()
    got = cp.get_call(old["id"])
    assert got == old, (got, old)
    assert stored_stream_url(cp, old["id"]) is None
    new = cp.create_call(to=SIP_TO, stream_url=CALL_URL)
    assert stored_stream_url(cp, new["id"]) == CALL_URL


# --------------------------------------------------------- POST /v1/calls


def test_call_stream_url_request_wins_over_agent(cp):
    cp.setup_world()
    cp.cli("agent", "update", cp.agent, "--stream-url", AGENT_URL)
    cp.start()
    # the agent's when the request has none
    a = cp.create_call(to=SIP_TO)
    assert stored_stream_url(cp, a["id"]) == AGENT_URL
    # the request's wins
    r = cp.request("POST", "/v1/calls", {"agent_id": cp.agent, "to": SIP_TO, "stream_url": CALL_URL},
                   key=cp.key)
    assert r.status == 201, r
    assert stored_stream_url(cp, r.json["id"]) == CALL_URL
    # never in the call's JSON: create, get, list, end
    assert_call_shape(r.json)
    assert b"stream_url" not in r.raw and b"s3cret" not in r.raw, r.raw
    for resp in (cp.request("GET", "/v1/calls/%s" % r.json["id"], key=cp.key),
                 cp.request("GET", "/v1/calls", key=cp.key),
                 cp.request("POST", "/v1/calls/%s/end" % r.json["id"], key=cp.key)):
        assert resp.status == 200, resp
        assert b"stream_url" not in resp.raw and b"s3cret" not in resp.raw, resp.raw
    assert set(cp.get_call(a["id"])) == CALL_KEYS


def test_call_without_any_stream_url(srv):
    c = srv.create_call(to=SIP_TO)
    assert_call_shape(c)
    assert stored_stream_url(srv, c["id"]) is None


@pytest.mark.parametrize("url", BAD_URLS + [12, None, True, {"u": "ws://h"}, ""],
                         ids=range(len(BAD_URLS) + 5))
def test_call_bad_stream_url_400(srv, url):
    r = srv.request("POST", "/v1/calls", {"agent_id": srv.agent, "to": SIP_TO, "stream_url": url},
                    key=srv.key)
    assert_error(r, 400, "invalid_request")
    assert "stream_url" in r.json["error"]["message"], r
    assert srv.list_calls()["data"] == []


def test_call_bad_stream_url_message_hides_the_url(srv):
    r = srv.request("POST", "/v1/calls", {"agent_id": srv.agent, "to": SIP_TO,
                                          "stream_url": "http://h/?token=hide-me"}, key=srv.key)
    assert_error(r, 400, "invalid_request")
    assert r.json["error"]["message"] == ("stream_url must be an absolute ws:// or wss:// URL with a"
                                          " host, at most 1024 bytes, without spaces or control"
                                          " characters"), r


# ------------------------------------------------ POST /v1/calls/{id}/dtmf


def dtmf(cp, call_id, body, key=None):
    return cp.request("POST", "/v1/calls/%s/dtmf" % call_id, body, key=key or cp.key)


BAD_DTMF = [
    None,                      # no body
    b"{",                      # malformed
    [],                        # not an object
    {},                        # digits missing
    {"digits": ""},
    {"digits": "a"},
    {"digits": "12d"},
    {"digits": "E"},
    {"digits": "1 2"},
    {"digits": "1,2"},
    {"digits": "1" * 33},
    {"digits": 12},
    {"digits": None},
    {"digits": ["1"]},
    {"digits": "1", "duration_ms": 100},
]


@pytest.mark.parametrize("body", BAD_DTMF, ids=range(len(BAD_DTMF)))
def test_dtmf_invalid_400(srv, body):
    c = srv.create_call(to=SIP_TO)
    assert_error(dtmf(srv, c["id"], body), 400, "invalid_request")
    # validation comes before the lookup
    assert_error(dtmf(srv, random_uuid(), body), 400, "invalid_request")


def test_dtmf_not_visible_404(srv):
    assert_error(dtmf(srv, random_uuid(), {"digits": "1"}), 404, "not_found")
    c = srv.create_call(to=SIP_TO)
    other = srv.tenant_create("tenant-b")
    _kid, other_key = srv.key_create(other)
    assert_error(dtmf(srv, c["id"], {"digits": "1"}, key=other_key), 404, "not_found")
    # a number-scoped key of another number
    srv.agent_create(srv.tenant, "agent-2", number="+15550002222")
    _kid, num_key = srv.key_create(srv.tenant, number="+15550002222")
    assert_error(dtmf(srv, c["id"], {"digits": "1"}, key=num_key), 404, "not_found")
    # and no auth at all
    r = srv.request("POST", "/v1/calls/%s/dtmf" % c["id"], {"digits": "1"})
    assert_error(r, 401, "unauthorized")


def test_dtmf_queued_and_ended_409(srv):
    c = srv.create_call(to=SIP_TO)          # --sip none: stays queued
    r = dtmf(srv, c["id"], {"digits": "12#"})
    assert_error(r, 409, "call_not_in_progress")
    assert r.json["error"]["message"] == "call is queued; digits need an answered call", r
    srv.end_call(c["id"])
    r = dtmf(srv, c["id"], {"digits": "12#"})
    assert_error(r, 409, "call_not_in_progress")
    assert r.json["error"]["message"] == "call is canceled; digits need an answered call", r
    assert srv.get_call(c["id"])["status"] == "canceled"


def test_dtmf_wrong_method_405(srv):
    c = srv.create_call(to=SIP_TO)
    assert_error(srv.request("GET", "/v1/calls/%s/dtmf" % c["id"], key=srv.key), 405,
                 "method_not_allowed")


# An answered call needs the SIP engine (a sipp far end that answers).


@pytest.fixture
def sip(cp, tmp_path):
    cp.setup_world(number="+15550001111")
    w = SipWorld(cp, tmp_path)
    yield w
    w.close()


def test_dtmf_answered_call_202(sip):
    """An answered call takes digits: 202 {"call_id","digits"}, the call itself unchanged.
    (That the digits reach the far end is test_media.py's, with baresip.)"""
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml", pause_ms=800)
    call = sip.dial(far)
    up = sip.wait_status(call["id"], "in_progress", timeout=4)
    r = dtmf(sip.cp, call["id"], {"digits": "12#"})
    assert r.status == 202, r
    assert r.json == {"call_id": call["id"], "digits": "12#"}
    # by provider call id too: the answer names the call by its id
    r = dtmf(sip.cp, up["provider_call_id"].replace("@", "%40"), {"digits": "0"})
    assert r.status == 202, r
    assert r.json == {"call_id": call["id"], "digits": "0"}
    assert sip.cp.get_call(call["id"]) == up
    ended = sip.cp.end_call(call["id"])
    assert ended["status"] == "completed", ended
    assert wait_for(lambda: far.received("BYE"), 3), far.report()
