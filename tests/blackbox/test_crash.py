"""A crash never leaves a far end up (docs/ARCHITECTURE.md, "Failure and restart").

callplane is killed with SIGKILL while sipp far ends hold answered calls (or ring); the
restarted server must hang each of them up from the dialog state it kept: a BYE with the
dialog's Call-ID and tags for an answered call, a CANCEL matching the INVITE (same branch,
Call-ID, CSeq number) for a ringing one, both before it reports ready.  "Before ready" is shown
from the server's own log: the far end's answer to the BYE/CANCEL (which it can only send
after receiving it) is logged before the `ready` line.  What each far end answered is recorded
as a `call.restart_hangup` event.  Every wait is bounded.

`test_crash_loop` kills the server at random points under steady calls and ends, 50 times by
default (about 3 minutes under ASan), and checks what every far end saw; the knobs are below.
"""

import json
import os
import random
import sqlite3
import subprocess
import threading
import time

from cp import ACTIVE_STATUSES, assert_duration, free_port as http_free_port
from receiver import SseReader
from sipp_peer import wait_for
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
    # /healthz answers (cp.start returns) a moment before serve logs its ready line
    def through_ready():
        entries = restart_log(cp)
        return entries if any(n == "ready" for n, _e in entries) else None
    entries = wait_for(through_ready, 5) or restart_log(cp)
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


def dialog_kept(db, call_id):
    """Whether the server has made call_id's dialog state durable (read from its database: a
    precondition to wait for, not something the tests assert on)."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return con.execute("SELECT 1 FROM dialogs WHERE call_id = ?", (call_id,)).fetchone() is not None
    finally:
        con.close()


def test_kill9_inbound_answered_call_gets_bye_before_ready(sip):
    sip.start()
    caller = sip.uac("uac_invite_answered.xml", timeout=30)
    assert wait_for(lambda: caller.sent("ACK"), 5), caller.report()
    active = wait_for(lambda: [c for c in sip.active() if c["status"] == "in_progress"], 5)
    assert len(active) == 1 and active[0]["direction"] == "inbound", active
    call = active[0]
    # our tag reaches us in the caller's ACK: the dialog is kept from there on
    assert wait_for(lambda: dialog_kept(sip.cp.db, call["id"]), 5), sip.diagnostics()
    sip.cp.kill9()
    sip.restart()
    assert_answered_before_ready(sip.cp, [call["id"]], "BYE", 200)
    sipp_done(caller, timeout=10)
    invite = caller.sent("INVITE")[0]
    ok = [m for m in caller.received(status=200) if m.cseq[1] == "INVITE"][0]
    byes = caller.received("BYE")
    assert len(byes) == 1 and byes[0].call_id == invite.call_id, caller.report()
    bye = byes[0]
    # From: our tag (the To of our 200); To: the caller's (the From of its INVITE)
    assert tag_of(bye.header("from")) == tag_of(ok.header("to")), (bye.text, ok.text)
    assert tag_of(bye.header("to")) == tag_of(invite.header("from")), (bye.text, invite.text)
    assert bye.first_line.split()[1] == invite.header("contact").strip("<>"), bye.text
    got = sip.call(call["id"])
    assert got["status"] == "completed" and got["end_reason"] == "node_restart", got
    assert sip.active() == []


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


# ------------------------------------------------------------------------------ crash loop

# CRASH_LOOP_CYCLES kill -9 cycles (default 50), within CRASH_LOOP_SECONDS (default 300): the
# loop stops at whichever comes first, and at least CRASH_LOOP_MIN_CYCLES (default: all asked
# for) must have run. CRASH_LOOP_SEED picks the random points (default: from the clock; the
# test prints the one it used). The numbers go to the test's output and, with
# CRASH_LOOP_REPORT=PATH, to a JSON file.
CYCLES = int(os.environ.get("CRASH_LOOP_CYCLES", "50"))
SECONDS = float(os.environ.get("CRASH_LOOP_SECONDS", "300"))
MIN_CYCLES = int(os.environ.get("CRASH_LOOP_MIN_CYCLES", str(CYCLES)))

# what an acknowledged end decided; sip_status may still arrive later (the far end's final
# answer to a CANCELled INVITE, docs/API.md)
END_FIELDS = ("status", "end_reason", "ended_at", "answered_at", "duration_s")


def end_of(call):
    return {k: call[k] for k in END_FIELDS}


class Load:
    """Steady calls and ends against one run of the server, from a thread: a call every 60 ms
    (max_duration_s 2, so calls also end by themselves), and now and then an API end of a
    live one. Only what the server acknowledged (201, 200) is recorded; whatever a kill cuts
    off is not."""

    def __init__(self, cp, to, rng):
        self.cp = cp
        self.to = to
        self.rng = rng
        self.created = {}          # id -> call JSON at creation
        self.ends = {}             # id -> call JSON of the acknowledged end
        self.live = []             # ids created by this load, not ended by it
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _try(self, method, path, body=None):
        try:
            return self.cp.request(method, path, body, key=self.cp.key, timeout=3.0,
                                   _check_alive=False)
        except Exception:     # the server was killed under the request
            return None

    def _run(self):
        while not self.stop_ev.is_set():
            r = self._try("POST", "/v1/calls", {"agent_id": self.cp.agent, "to": self.to,
                                                 "max_duration_s": 2})
            if r is not None and r.status == 201:
                self.created[r.json["id"]] = r.json
                self.live.append(r.json["id"])
            if self.live and self.rng.random() < 0.35:
                cid = self.live.pop(self.rng.randrange(len(self.live)))
                r = self._try("POST", "/v1/calls/%s/end" % cid, {})
                if r is not None and r.status == 200:
                    self.ends[cid] = r.json
            self.stop_ev.wait(0.06)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "load thread did not stop"


def spawn_and_kill(cp, extra, after_s):
    """Starts the server without waiting for it and kills it after_s later: a kill at a
    random point of its start-up (recovery, the restart's BYEs, listening)."""
    argv = [cp.bin, "serve", "--db", cp.db, "--http", "127.0.0.1:%d" % http_free_port()] + extra
    with open(os.path.join(cp.dir, "server-startup-kill.log"), "ab") as log:
        p = subprocess.Popen(argv, cwd=cp.dir, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=log)
        time.sleep(after_s)
        p.kill()
        p.wait(timeout=10)


def restart_hangups(cp):
    """(BYEs, CANCELs) the last start sent, and their answers before ready: [(req, status)]."""
    sent = {"BYE": 0, "CANCEL": 0}
    answers = []
    for name, e in restart_log(cp):
        if name == "sip_restart_hangup":
            sent[e["request"]] += 1
        elif name == "sip_restart_hangup_result":
            answers.append((e["request"], e["status"]))
        elif name == "ready":
            break
    return sent, answers


def test_crash_loop(sip):
    seed = int(os.environ.get("CRASH_LOOP_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    print("crash loop: seed %d, %d cycles within %.0f s" % (seed, CYCLES, SECONDS))
    sip.start("--hangup-rate", "0", ring_timeout=60)
    far = sip.uas("uas_crash_loop.xml", calls=1000000, timeout=int(SECONDS) + 120)
    to = "sip:bob@%s" % far.uri_host
    created, ends = {}, {}
    stats = {"cycles": 0, "startup_kills": 0, "restart_byes": 0, "restart_cancels": 0,
             "restart_answers": {}}
    t0 = time.monotonic()
    while stats["cycles"] < CYCLES and time.monotonic() - t0 < SECONDS:
        load = Load(sip.cp, to, rng).start()
        time.sleep(rng.uniform(0.3, 2.5))
        sip.cp.kill9()                      # at a random point under load
        load.stop()
        created.update(load.created)
        ends.update(load.ends)
        stats["cycles"] += 1
        if rng.random() < 0.2:
            # and now and then again during the restart itself
            spawn_and_kill(sip.cp, sip.extra, rng.uniform(0.05, 0.8))
            stats["startup_kills"] += 1
        sip.restart()
        sent, answers = restart_hangups(sip.cp)
        stats["restart_byes"] += sent["BYE"]
        stats["restart_cancels"] += sent["CANCEL"]
        for a in answers:
            key = "%s %s" % a
            stats["restart_answers"][key] = stats["restart_answers"].get(key, 0) + 1
        # after each restart: nothing a previous run left is active, and the ends it
        # acknowledged are recorded as acknowledged
        active = sip.active()
        assert active == [], "cycle %d: calls left active: %r" % (stats["cycles"], active)
        for cid, e in load.ends.items():
            got = sip.call(cid)
            assert end_of(got) == end_of(e), "cycle %d: acknowledged end of %s changed:\n%r\n%r" % (
                stats["cycles"], cid, e, got)
    elapsed = time.monotonic() - t0

    # the whole history once more: every acknowledged end, nothing active
    listed = {c["id"]: c for c in sip.cp.list_all(limit=200, max_pages=500)}
    assert set(created) <= set(listed), "created calls missing: %r" % (set(created) - set(listed))
    for cid, e in ends.items():
        assert end_of(listed[cid]) == end_of(e), (cid, e, listed[cid])
    assert [c for c in listed.values() if c["status"] in ACTIVE_STATUSES] == []
    sip.cp.stop()                           # graceful: exit 0, no sanitizer report
    time.sleep(1.0)
    far.stop()

    # the far ends, Call-ID by Call-ID (the server chose each call's Call-ID before dialling)
    by_cid = {}
    for m in far.messages():
        by_cid.setdefault(m.call_id, []).append(m)
    answered_wire = acked = byed = unacked_unbyed = left_up = canceled_wire = 0
    lost = []
    for cid, c in listed.items():
        msgs = by_cid.get(c["provider_call_id"], [])
        inv = [m for m in msgs if m.direction == "recv" and m.method == "INVITE"]
        ok = [m for m in msgs if m.direction == "sent" and m.status == 200 and m.cseq[1] == "INVITE"]
        ack = [m for m in msgs if m.direction == "recv" and m.method == "ACK" and ok
               and m.cseq[0] == ok[0].cseq[0] and not any(
                   x.direction == "sent" and x.status == 487 for x in msgs)]
        bye = [m for m in msgs if m.direction == "recv" and m.method == "BYE"]
        if any(m.direction == "recv" and m.method == "CANCEL" for m in msgs) and not ok:
            canceled_wire += 1
        if ok:
            answered_wire += 1
        if ack:
            acked += 1
        if bye:
            byed += 1
            b = bye[0]
            assert tag_of(b.header("from")) == tag_of(inv[0].header("from")), (b.text, inv[0].text)
            assert tag_of(b.header("to")) == tag_of(ok[0].header("to")), (b.text, ok[0].text)
        if ok and not ack and not bye:
            unacked_unbyed += 1             # never ACKed: the far end gives up by itself
        # a far end holding our ACK, or a call recorded answered, must have had its BYE
        if (ack or c["answered_at"]) and not bye:
            left_up += 1
            lost.append((cid, c["status"], c["end_reason"], [repr(m) for m in msgs]))
    stats.update({"seconds": round(elapsed, 1), "calls_created": len(created),
                  "acknowledged_ends": len(ends), "answered_on_wire": answered_wire,
                  "acked_by_us": acked, "far_ends_byed": byed,
                  "answered_not_acked_not_byed": unacked_unbyed,
                  "canceled_on_wire": canceled_wire,
                  "recorded_answered": sum(1 for c in listed.values() if c["answered_at"]),
                  "left_up": left_up, "seed": seed})
    print("crash loop result: %s" % json.dumps(stats, sort_keys=True))
    if os.environ.get("CRASH_LOOP_REPORT"):
        with open(os.environ["CRASH_LOOP_REPORT"], "w") as f:
            json.dump(stats, f, sort_keys=True, indent=1)
    assert lost == [], "far ends left up: %r" % lost[:5]
    assert stats["cycles"] >= MIN_CYCLES, stats
    assert stats["restart_byes"] > 0 and len(ends) > 0, stats
