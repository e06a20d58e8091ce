"""A crash never leaves a far end up (docs/ARCHITECTURE.md, "Failure and restart").

callplane is killed with SIGKILL while sipp far ends hold answered calls (or ring); the
restarted server must hang each of them up from the dialog state it kept: a BYE with the
dialog's Call-ID and tags for an answered call, a CANCEL matching the INVITE (same branch,
Call-ID, CSeq number) for a ringing one, both before it reports ready.  "Before ready" is shown
from the server's own log: the far end's answer to the BYE/CANCEL (which it can only send
after receiving it) is logged before the `ready` line.  What each far end answered is recorded
as a `call.restart_hangup` event.  Every wait is bounded.
"""

import json

from cp import assert_duration
from receiver import SseReader
from test_sip import sip, sipp_done  # noqa: F401 (sip: the SIP world fixture)


def log_lines(text):
    out = []
    for ln in text.splitlines():
        try:
            out.append(json.loads(ln))
        except ValueError:
            continue
    return out


def msg_name(entry):
    return entry.get("msg") or entry.get("event") or entry.get("message")


def restart_log(cp):
    """The log lines of the last start, in order: [(name, entry)]."""
    return [(msg_name(e), e) for e in log_lines(cp.stderr_text())]


def tag_of(header):
    """The tag parameter of a From/To header value."""
    for part in header.split(";")[1:]:
        k, _sep, v = part.strip().partition("=")
        if k.lower() == "tag":
            return v
    return None


def via_branch(msg):
    via = msg.header("via")
    for part in via.split(";")[1:]:
        k, _sep, v = part.strip().partition("=")
        if k.lower() == "branch":
            return v
    return None


def events_of(cp, type_, n, timeout=5.0):
    """The first n events of type_ in the outbox (GET /v1/events from the start), bounded."""
    s = SseReader(cp.port, path="/v1/events?last_event_id=0", key=cp.key)
    s.open()
    assert s.status == 200, s.status
    s.start()
    try:
        got = s.wait_events(n, timeout, lambda ev: ev.event == type_)
        return [ev.json for ev in got if ev.event == type_]
    finally:
        s.close()


def assert_answered_before_ready(cp, call_ids, request, status):
    """The server logged each call's far-end answer to `request` before its `ready` line."""
    entries = restart_log(cp)
    names = [n for n, _e in entries]
    assert "ready" in names, names
    ready_at = names.index("ready")
    answered = {e.get("call_id"): e for n, e in entries[:ready_at]
                if n == "sip_restart_hangup_result"}
    for cid in call_ids:
        e = answered.get(cid)
        assert e is not None, "no answer to the %s of call %s logged before ready:\n%s" % (
            request, cid, cp.stderr_text()[-4000:])
        assert (e["request"], e["status"], e["from_far_end"]) == (request, status, True), e


def test_kill9_answered_calls_get_bye_before_ready(sip):
    sip.start()
    far = sip.uas("uas_answer_wait_bye.xml", calls=3, timeout=30)
    calls = [sip.dial(far) for _ in range(3)]
    for c in calls:
        sip.wait_status(c["id"], "in_progress", timeout=5)
    sip.cp.kill9()
    sip.restart()
    # the restarted server hung up every far end before it reported ready
    assert_answered_before_ready(sip.cp, [c["id"] for c in calls], "BYE", 200)
    sipp_done(far, timeout=10)
    invites = {m.call_id: m for m in far.received("INVITE")}
    answers = {m.call_id: m for m in far.sent(status=200) if m.cseq[1] == "INVITE"}
    byes = far.received("BYE")
    assert sorted(m.call_id for m in byes) == sorted(c["provider_call_id"] for c in calls), far.report()
    for bye in byes:
        inv, ok = invites[bye.call_id], answers[bye.call_id]
        # our tag (From of the INVITE) and theirs (To of their 200), one dialog
        assert tag_of(bye.header("from")) == tag_of(inv.header("from")), (bye.text, inv.text)
        assert tag_of(bye.header("to")) == tag_of(ok.header("to")), (bye.text, ok.text)
        assert bye.cseq == (inv.cseq[0] + 1, "BYE"), (bye.text, inv.text)
        assert bye.first_line.split()[1] == ok.header("contact").strip("<>"), bye.text
    for c in calls:
        got = sip.call(c["id"])
        assert got["status"] == "completed" and got["end_reason"] == "node_restart", got
        assert_duration(got)
    assert sip.active() == []
    evs = events_of(sip.cp, "call.restart_hangup", 3)
    assert sorted((e["data"]["id"], e["request"], e["sip_status"]) for e in evs) == \
        sorted((c["id"], "BYE", 200) for c in calls), evs
    # the kept dialogs are gone: the next restart sends nothing
    sip.cp.kill9()
    sip.restart()
    assert [n for n, _e in restart_log(sip.cp) if n and n.startswith("sip_restart")] == []


def test_kill9_ringing_call_gets_cancel_before_ready(sip):
    sip.start(ring_timeout=60)
    far = sip.uas("uas_ring_wait_cancel.xml", calls=2, timeout=30)
    calls = [sip.dial(far) for _ in range(2)]
    for c in calls:
        sip.wait_status(c["id"], "ringing", timeout=5)
    sip.cp.kill9()
    sip.restart()
    assert_answered_before_ready(sip.cp, [c["id"] for c in calls], "CANCEL", 200)
    # the far end got the CANCEL of its INVITE, answered 487, and got the ACK of that
    sipp_done(far, timeout=10)
    invites = {m.call_id: m for m in far.received("INVITE")}
    cancels = far.received("CANCEL")
    assert sorted(m.call_id for m in cancels) == sorted(c["provider_call_id"] for c in calls), far.report()
    for cancel in cancels:
        inv = invites[cancel.call_id]
        assert via_branch(cancel) == via_branch(inv), (cancel.text, inv.text)
        assert cancel.first_line.split()[1] == inv.first_line.split()[1], (cancel.text, inv.text)
        assert cancel.cseq == (inv.cseq[0], "CANCEL"), (cancel.text, inv.text)
        assert cancel.header("from") == inv.header("from"), (cancel.text, inv.text)
        assert tag_of(cancel.header("to")) is None, cancel.text
    acks = far.received("ACK")
    assert sorted(m.call_id for m in acks) == sorted(c["provider_call_id"] for c in calls), far.report()
    for c in calls:
        got = sip.call(c["id"])
        assert got["status"] == "canceled" and got["end_reason"] == "node_restart", got
    assert sip.active() == []
    evs = events_of(sip.cp, "call.restart_hangup", 2)
    assert sorted((e["data"]["id"], e["request"], e["sip_status"]) for e in evs) == \
        sorted((c["id"], "CANCEL", 200) for c in calls), evs
