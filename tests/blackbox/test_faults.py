"""Fault injection while calls end (issue 14; docs/ARCHITECTURE.md, "Faults while calls end").

Each test makes its fault itself, in a namespace of its own, and asserts the contract of an end
under it: `POST /v1/calls/{id}/end` is either refused with a documented JSON error (500
`internal`, "store error", the call left as it was) or recorded durably, never acknowledged
and then lost. Every acknowledged end is checked again once the fault is gone and the server
was killed with SIGKILL and started again: the call is still `completed` with the reason the
end gave, and the outbox holds exactly one `call.ended` for it. The counts (calls, ends
acknowledged, ends refused, ends recorded, lost) are printed (`pytest -s`); lost must be 0.

- Loss and delay on SIP (`test_sip_lossy_slow_path_*`): callplane in a network namespace of
  the test's own, behind a router namespace where iptables drops a share of its SIP packets
  both ways (`-m statistic --mode random`; this kernel has no netem), and a UDP relay of the
  test's between the router and the far end that holds each packet (the delay). Calls are
  placed and ended through the API: every one is answered and ended, its BYE retransmitted by
  sofia until the far end's 200 is seen, its end webhook delivered; nothing is left active.
- The database's disk full (`test_disk_full_*`) or read-only (`test_disk_read_only_*`): the
  database on a small ext4 file system (a loop device) mounted in a mount namespace of the
  test's own (`unshare --mount`, held by a sleeping process; the server runs in it through
  nsenter). Full: a file takes every free block. Read-only: ext4's own error path (the
  `trigger_fs_error` knob, mounted `errors=remount-ro`), the way a disk error turns a
  production file system read-only under a running server (`mount -o remount,ro` is refused
  while the server has the database open for writing).
- SQLite busy (`test_sqlite_busy_*`): another process holds the database's write lock
  (`BEGIN IMMEDIATE`) for less than the server's busy timeout (10 s,
  src/store/sqlite/pool.c), and for more than two of them.

Skipped, with the reason, where the namespace, loop device or tool a test needs is missing
(root is needed; CI is root on Debian 12, where scripts/deps.sh installs iptables, iproute2,
e2fsprogs and mount). Every wait is bounded.
"""

import concurrent.futures
import heapq
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from cp import assert_error
from netns import Routed, Unavailable, built
from receiver import Receiver
from sipp_peer import SipMessage, free_port, wait_for
from test_crash import events_of, via_branch
from test_sip import sip, sipp_done  # noqa: F401 (sip: the SIP world fixture)

CALLS = 12                 # calls of a disk or lock test
BEFORE = 3                 # of them ended before the fault (the baseline)
RING_TIMEOUT = 30          # a lost INVITE is retransmitted; the ring timeout must not cut it
IMAGE_MB = 24


def run(*argv, timeout=30, check=True):
    p = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    if check and p.returncode:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), p.returncode,
                                                 p.stderr.decode(errors="replace").strip()))
    return p


def need_root_and(*tools):
    if os.geteuid() != 0:
        pytest.skip("the fault needs root (namespaces, mounts, iptables)")
    for t in tools:
        if not shutil.which(t):
            pytest.skip("%s is not installed (scripts/deps.sh test)" % t)


def concurrently(fn, items, workers=16):
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(fn, items, timeout=120))


# ------------------------------------------------------------------- loss and delay on SIP

HOST_ADDR = "10.205.0.1"       # this namespace's end: the relay, sipp, the webhook receiver
NS_ADDR = "10.205.1.2"         # callplane's, in the test's namespace behind the router
PATH_CALLS = 10


class LossyNet(Routed):
    """callplane's namespace behind a router namespace (netns.Routed), where iptables drops a
    share of the UDP packets to and from one port (callplane's SIP), both ways, at random, as
    a lossy network would: silently, in FORWARD (a DROP in callplane's own OUTPUT would fail
    its send with EPERM, which no network does). Nothing else is touched: the API, the
    webhooks and the RTP pass untouched.

        callplane ns 10.205.1.2 --veth-- 10.205.1.1 router ns 10.205.0.2 --veth-- 10.205.0.1
    """

    def __init__(self):
        super().__init__("cpfault", "cpf", inner=NS_ADDR + "/24", gateway="10.205.1.1",
                         router_in="10.205.1.1/24", router_out=["10.205.0.2/24"],
                         outside=HOST_ADDR + "/24", route_back="10.205.1.0/24")

    def drop(self, port, p):
        for side in ("--dport", "--sport"):
            self.on(self.router, "iptables", "-A", "FORWARD", "-p", "udp", side, str(port),
                    "-m", "statistic", "--mode", "random", "--probability", str(p), "-j", "DROP")

    def dropped(self, port):
        """(packets dropped on their way to callplane, on their way from it): the counters."""
        text = self.on(self.router, "iptables", "-L", "FORWARD", "-v", "-x", "-n")
        rows = [ln for ln in text.splitlines() if " DROP " in ln]
        assert len(rows) == 2 and "udp dpt:%d " % port in rows[0] and \
            "udp spt:%d " % port in rows[1], text
        return int(rows[0].split()[0]), int(rows[1].split()[0])


@pytest.fixture
def lossy():
    try:
        with built(LossyNet(), "/tmp/callplane-test-faults-net.lock") as n:
            n.on(n.router, "iptables", "-m", "statistic", "-h")
            yield n
    except Unavailable as e:
        pytest.skip("no network namespaces with iptables' statistic match here: %s" % e)
    except RuntimeError as e:
        pytest.skip("no iptables statistic match here: %s" % e)


class DelayRelay:
    """A UDP relay between callplane and one far end (sipp), holding every packet delay_s
    before passing it on: what comes from the far end goes to callplane (to where callplane
    last sent from), anything else to the far end, but for a retransmitted INVITE or ACK and an
    ACK after the BYE, which a UAS absorbs below its dialog (sipp would abort a call on one
    that comes once its scenario is past it). The far end's answers name the relay as their
    Contact (the scenario's CONTACT), so the requests callplane sends in the dialog (ACK, BYE)
    take the relay too; responses go back where their request came from. It also keeps every
    packet callplane sent through it, as the far end's side of the path saw them."""

    def __init__(self, delay_s):
        self.far = None            # (host, port), set before anything is sent through
        self.delay = delay_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST_ADDR, 0))
        self.sock.settimeout(0.02)
        self.addr = self.sock.getsockname()
        self.callplane = None
        self.passed = {"to_far": 0, "to_callplane": 0}
        self.from_callplane = []   # every packet callplane sent, as it came
        self.seen = set()
        self.byed = set()          # the Call-IDs whose BYE went to the far end
        self.absorbed = 0          # INVITEs and ACKs not passed on (_absorbs)
        self.queue = []            # (due, seq, data, destination)
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _absorbs(self, data):
        """A retransmitted INVITE or ACK, or an ACK after the dialog's BYE (the answer to a
        retransmitted 200 that crossed the BYE): what a UAS absorbs below its dialog."""
        m = SipMessage("sent", data.decode("utf-8", "replace"))
        seen = data in self.seen
        self.seen.add(data)
        if m.method == "BYE":
            self.byed.add(m.call_id)
        return (m.method in ("INVITE", "ACK") and seen) or \
            (m.method == "ACK" and m.call_id in self.byed)

    def _run(self):
        seq = 0
        while not self.stop_ev.is_set():
            try:
                data, src = self.sock.recvfrom(65536)
            except socket.timeout:
                data = None
            if data is not None:
                if src == self.far:
                    dst, way = self.callplane, "to_callplane"
                else:
                    self.callplane = src
                    dst, way = self.far, "to_far"
                    self.from_callplane.append(data)
                    if self._absorbs(data):
                        self.absorbed += 1
                        dst = None
                if dst is not None:
                    seq += 1
                    heapq.heappush(self.queue, (time.monotonic() + self.delay, seq, data, dst))
                    self.passed[way] += 1
            while self.queue and self.queue[0][0] <= time.monotonic():
                _due, _seq, pkt, dst = heapq.heappop(self.queue)
                self.sock.sendto(pkt, dst)

    def stop(self):
        self.stop_ev.set()
        self.thread.join(timeout=5)
        self.sock.close()


def hangup_results(cp):
    """{call id: [status of each final answer to our BYE]} from the server's log."""
    out = {}
    for e in cp.log_events("sip_hangup_result"):
        if e["request"] == "BYE":
            out.setdefault(e["call_id"], []).append(e["status"])
    return out


@pytest.mark.parametrize("loss,delay_s", [(0.15, 0.0), (0.0, 0.3), (0.15, 0.3)],
                         ids=["loss", "delay", "loss_and_delay"])
def test_sip_lossy_slow_path_calls_still_end(sip, lossy, loss, delay_s):
    """Calls placed and ended through the API while a share of the SIP packets is lost each
    way (`loss`), or each is held `delay_s` each way, or both. Each call is answered (INVITE,
    200 and ACK retransmitted as needed) and ended; its BYE is retransmitted by sofia until
    the far end's 200 comes back (all one transaction: same CSeq, same branch), and at 0.3 s
    each way without loss at least twice as the far end's side sees it (its 200 cannot be back
    before the first retransmission, T1 = 0.5 s); each call is recorded completed with the
    end's reason, its call.ended webhook delivered once; none left active."""
    cp = sip.cp
    cp.argv_prefix = ["ip", "netns", "exec", lossy.inner]
    cp.http_bind = cp.http_host = NS_ADDR
    rcv = Receiver(host=HOST_ADDR).start()
    relay = DelayRelay(delay_s).start()
    reason = "ended_on_a_bad_path"
    try:
        cp.cli("webhook", "create", "--tenant", cp.tenant, "--url", rcv.url)
        sip.sip_port = free_port(udp=True, tcp=True)
        if loss:
            lossy.drop(sip.sip_port, loss)
        cp.start(extra_args=["--sip", "%s:%d" % (NS_ADDR, sip.sip_port), "--ring-timeout",
                             str(RING_TIMEOUT), "--log-level", "debug"])
        far = sip.uas("uas_answer_wait_bye_retrans.xml", calls=PATH_CALLS, timeout=120,
                      subst={"CONTACT": "%s:%d" % relay.addr}, local_ip=HOST_ADDR)
        relay.far = (HOST_ADDR, far.port)
        ids = [cp.create_call(to="sip:bob@%s:%d" % relay.addr)["id"] for _ in range(PATH_CALLS)]
        for cid in ids:
            sip.wait_status(cid, "in_progress", timeout=40)
        for cid in ids:
            r = cp.request("POST", "/v1/calls/%s/end" % cid, {"reason": reason}, key=cp.key)
            assert r.status == 200, r
            assert (r.json["status"], r.json["end_reason"]) == ("completed", reason), r
        # every BYE answered 200 by the far end, once per call (a transaction has one final
        # answer), within its transaction's life (64*T1 = 32 s)
        assert wait_for(lambda: len(hangup_results(cp)) == PATH_CALLS, 40), \
            (hangup_results(cp), sip.diagnostics())
        assert hangup_results(cp) == {cid: [200] for cid in ids}
        rcv.wait_for(PATH_CALLS, 15, pred=lambda q: q.json["type"] == "call.ended",
                     what="call.ended webhooks")
        time.sleep(0.5)
        hooks = rcv.snapshot(lambda q: q.json["type"] == "call.ended")
        assert sorted(q.json["data"]["id"] for q in hooks) == sorted(ids), hooks
        for q in hooks:
            d = q.json["data"]
            assert (d["status"], d["end_reason"]) == ("completed", reason), d
        assert sip.active() == []
        done = cp.list_all(query="status=completed")
        assert sorted(c["id"] for c in done) == sorted(ids)
        assert all(c["end_reason"] == reason for c in done), done
        to_cp, from_cp = lossy.dropped(sip.sip_port) if loss else (0, 0)
        far.stop()
    finally:
        relay.stop()
        rcv.stop()
    # every BYE callplane sent that got past the loss, as the relay saw it: one transaction a
    # call, sent as often as it took; each call's BYE reached the far end
    pcids = {cp.get_call(cid)["provider_call_id"] for cid in ids}
    byes = {}
    for data in relay.from_callplane:
        m = SipMessage("sent", data.decode("utf-8", "replace"))
        if m.method == "BYE":
            byes.setdefault(m.call_id, []).append(m)
    assert set(byes) == pcids, byes
    for msgs in byes.values():
        assert len({(m.cseq, via_branch(m)) for m in msgs}) == 1, [m.text for m in msgs]
        if delay_s > 0.25 and not loss:
            assert len(msgs) >= 2, [m.text for m in msgs]
    assert {m.call_id for m in far.received("BYE")} == pcids, far.report()
    if loss:
        # the fault bit: packets were dropped (at 15 %, none of the hundred or so is about
        # one run in 10^7)
        assert to_cp + from_cp > 0, (to_cp, from_cp)
    report("sip_path", loss=loss, delay_ms=int(delay_s * 1000), calls=PATH_CALLS,
           acked=PATH_CALLS, recorded=len(done), bye_answered_200=PATH_CALLS,
           byes_sent=sum(len(v) for v in byes.values()), webhooks=len(hooks),
           dropped_to_callplane=to_cp, dropped_from_callplane=from_cp,
           retransmissions_absorbed=relay.absorbed, lost=0)


# ------------------------------------------------------------------- the database's disk


class DbDisk:
    """A small ext4 file system on a loop device, mounted in a mount namespace of the test's
    own. The namespace is held by a sleeping process; commands run in it through nsenter
    (`prefix`). When the holder and everything in the namespace are gone, the kernel unmounts
    the file system and frees the loop device (autoclear): a killed test leaves nothing."""

    def __init__(self, tmp_path):
        self.image = str(tmp_path / "db.img")
        self.mnt = str(tmp_path / "dbfs")
        self.holder = None
        self.dev = None

    @property
    def prefix(self):
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--"]

    def ns(self, *argv, check=True, timeout=30):
        return run(*(self.prefix + list(argv)), check=check, timeout=timeout)

    def path(self, name):
        return os.path.join(self.mnt, name)

    def create(self):
        os.mkdir(self.mnt)
        run("truncate", "-s", "%dM" % IMAGE_MB, self.image)
        # -m 0: no blocks kept for root (the server runs as root here), so full is full
        run("mkfs.ext4", "-q", "-F", "-m", "0", self.image)
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                        "sleep", "900"], stdin=subprocess.DEVNULL)
        own = os.readlink("/proc/self/ns/mnt")
        if not wait_for(lambda: self._entered(own), 5):
            raise RuntimeError("unshare --mount did not make a namespace")
        self.mount()

    def _entered(self, own):
        try:
            with open("/proc/%d/comm" % self.holder.pid) as f:
                comm = f.read().strip()
            return comm == "sleep" and os.readlink("/proc/%d/ns/mnt" % self.holder.pid) != own
        except OSError:
            return False

    def mount(self):
        self.ns("mount", "-o", "loop,errors=remount-ro", self.image, self.mnt)
        self.dev = self.ns("findmnt", "-n", "-o", "SOURCE", self.mnt).stdout.decode().strip()

    def umount(self):
        self.ns("umount", self.mnt)
        self.dev = None

    def fsck(self):
        """e2fsck -fy: 0 (clean) or 1 (errors corrected) are both a usable file system."""
        p = run("e2fsck", "-f", "-y", self.image, check=False, timeout=60)
        assert p.returncode in (0, 1), "e2fsck exit %d: %s" % (p.returncode, p.stdout.decode())

    def fill(self):
        """Takes every free block; a write of a new block then fails with ENOSPC. Filled in
        rounds: ext4 gives back, at writeback, blocks it had set aside while the last round
        wrote (delayed allocation), which the next round takes."""
        self.ns("sh", "-c", "for i in 1 2 3 4; do dd if=/dev/zero of=%s$i bs=4k 2>/dev/null; "
                "sync; done" % self.path("filler"), check=False, timeout=120)
        p = self.ns("sh", "-c", "head -c 4096 /dev/zero > %s" % self.path("probe"), check=False)
        assert p.returncode != 0 and b"No space left" in p.stderr, \
            "the file system is not full: %r" % (p,)
        size = self.ns("stat", "-c", "%s", self.path("probe")).stdout.decode().strip()
        assert size == "0", "the file system had %s bytes left" % size
        self.ns("rm", "-f", self.path("probe"))

    def free(self):
        self.ns("sh", "-c", "rm -f %s*" % self.path("filler"))
        self.ns("sync")

    def make_read_only(self):
        """ext4's own error path: with errors=remount-ro the file system goes read-only at once,
        whatever is open for writing (a remount would be refused while the server writes)."""
        knob = "/sys/fs/ext4/%s/trigger_fs_error" % os.path.basename(self.dev)
        self.ns("sh", "-c", "echo fault-injection > %s" % knob)
        p = self.ns("sh", "-c", "echo x > %s" % self.path("probe"), check=False)
        assert p.returncode != 0 and b"Read-only file system" in p.stderr, \
            "the file system is not read-only: %r" % (p,)

    def destroy(self):
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait(timeout=10)
            self.holder = None


@pytest.fixture
def disk(tmp_path):
    need_root_and("unshare", "nsenter", "mount", "mkfs.ext4", "e2fsck", "findmnt")
    if not os.path.exists("/dev/loop-control"):
        pytest.skip("no loop devices here (/dev/loop-control)")
    d = DbDisk(tmp_path)
    try:
        try:
            d.create()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            pytest.skip("no ext4 on a loop device in a mount namespace here: %s" % e)
        if not os.path.exists("/sys/fs/ext4/%s" % os.path.basename(d.dev)):
            pytest.skip("ext4 has no sysfs knobs here (/sys/fs/ext4/%s)" % os.path.basename(d.dev))
        yield d
    finally:
        d.destroy()


def start_on_disk(sip, disk):
    """The world's database moved onto the disk, and the server started in its namespace."""
    cp = sip.cp
    disk.ns("cp", cp.db, disk.path("callplane.db"))
    # on disk before the fault, as a database long in use is (cp writes no further than the
    # page cache, which a file system gone read-only drops)
    disk.ns("sync")
    cp.db = disk.path("callplane.db")
    cp.argv_prefix = disk.prefix
    sip.start(ring_timeout=RING_TIMEOUT)


class Ledger:
    """What each end was answered, and what each call is recorded as afterwards."""

    def __init__(self):
        self.acked = {}            # call id -> the reason its acknowledged end gave
        self.refused = {}          # call id -> the refusal (a Response)
        self.talkover = set()      # call ids ended through the Talkover dialect

    def end(self, cp, call_id, reason, timeout=40):
        r = cp.request("POST", "/v1/calls/%s/end" % call_id, {"reason": reason}, key=cp.key,
                       timeout=timeout)
        if r.status == 200:
            assert (r.json["id"], r.json["status"], r.json["end_reason"]) == \
                (call_id, "completed", reason), r
            self.acked[call_id] = reason
        else:
            self.refused[call_id] = r
        return r

    def end_talkover(self, cp, call_id, timeout=40):
        """The end through a dialect (docs/dialects.md, Talkover): its reason is always
        ended_by_api, its refusals are in its own error shape."""
        self.talkover.add(call_id)
        r = cp.request("POST", "/api/v1/agents/%s/end-call" % cp.agent, {"call_sid": call_id},
                       key=cp.key, timeout=timeout)
        if r.status == 200:
            d = r.json["data"]
            assert r.json["success"] is True and (d["id"], d["status"], d["ended_reason"]) == \
                (call_id, "completed", "ended_by_api"), r
            self.acked[call_id] = "ended_by_api"
        else:
            self.refused[call_id] = r
        return r

    def assert_refusals(self):
        """Each refusal is the store's 500 in its route's error shape (docs/API.md, Errors;
        docs/dialects.md)."""
        for cid, r in self.refused.items():
            if cid in self.talkover:
                assert (r.status, r.json) == \
                    (500, {"success": False, "message": "Internal server error"}), r
            else:
                assert_error(r, 500, "internal")
                assert r.json["error"]["message"] == "store error", r

    def check_recorded(self, cp):
        """Every acknowledged end is recorded as it was acknowledged; returns how many."""
        lost = []
        for cid, reason in self.acked.items():
            c = cp.get_call(cid)
            if (c["status"], c["end_reason"]) != ("completed", reason):
                lost.append((cid, reason, c["status"], c["end_reason"]))
        assert lost == [], "%d acknowledged ends lost (id, acknowledged reason, now status, " \
            "reason): %r" % (len(lost), lost)
        return len(self.acked)


def assert_ended_events(cp, ids):
    """The outbox holds exactly one call.ended per call, saying what the call is recorded as
    (it is written in the end's own transaction). Waits 2 s for any extra one."""
    evs = events_of(cp, "call.ended", len(ids) + 1, timeout=2.0)
    got = sorted((e["data"]["id"], e["data"]["status"], e["data"]["end_reason"]) for e in evs)
    want = []
    for cid in ids:
        c = cp.get_call(cid)
        want.append((cid, c["status"], c["end_reason"]))
    assert got == sorted(want), evs


def answered_calls(sip, far, n):
    calls = [sip.dial(far) for _ in range(n)]
    for c in calls:
        sip.wait_status(c["id"], "in_progress", timeout=15)
    return [c["id"] for c in calls]


def report(name, **counts):
    print("\n%s: %s" % (name, ", ".join("%s=%s" % kv for kv in counts.items())))


def disk_fault_test(sip, disk, inject, recover, name):
    """CALLS answered calls; BEFORE of them ended; the fault; the rest ended under it (all at
    once, one in three through the Talkover dialect). Then recover(), which removes the fault
    and returns True when the server went on running through it: every refused end is then
    tried again and succeeds. Then kill -9 and a start: every acknowledged end still recorded
    as acknowledged, each refused one not tried again ended by the restart (node_restart),
    nothing active, every far end's BYE traced once."""
    cp = sip.cp
    start_on_disk(sip, disk)
    far = sip.uas("uas_answer_wait_bye.xml", calls=CALLS, timeout=120)
    ids = answered_calls(sip, far, CALLS)
    ledger = Ledger()
    for cid in ids[:BEFORE]:
        assert ledger.end(cp, cid, "before_fault").status == 200
    inject()
    # one in three through a dialect
    concurrently(lambda i: ledger.end_talkover(cp, ids[i]) if i % 3 == 0 else
                 ledger.end(cp, ids[i], "under_fault"), range(BEFORE, CALLS))
    under_acked = sum(1 for cid in ids[BEFORE:] if cid in ledger.acked)
    refused = dict(ledger.refused)
    ledger.assert_refusals()
    # reads go on from what is stored: a refused end left its call as it was
    for cid in refused:
        assert cp.get_call(cid)["status"] == "in_progress"
    ledger.refused.clear()
    retried = 0
    if recover():
        # the server recovers on its own: a refused end tried again now succeeds
        for cid in refused:
            assert ledger.end(cp, cid, "after_fault").status == 200, ledger.refused
            retried += 1
        cp.kill9()
        sip.restart()
    recorded = ledger.check_recorded(cp)
    for cid in refused:
        if cid not in ledger.acked:
            c = cp.get_call(cid)
            assert (c["status"], c["end_reason"]) == ("completed", "node_restart"), c
    assert sip.active() == []
    assert_ended_events(cp, ids)
    sipp_done(far, timeout=30)
    assert sorted(b.call_id for b in far.received("BYE")) == \
        sorted(cp.get_call(cid)["provider_call_id"] for cid in ids), far.report()
    # the fault bit: an end needs new blocks of the WAL, which the fault refuses
    assert refused, "no end was refused under the fault: it did not reach the database"
    # a dialog whose state could not be forgotten is hung up again by the next start
    rebyed = {e["call_id"] for e in cp.log_events("sip_restart_hangup") if e["request"] == "BYE"}
    assert rebyed <= set(ids), rebyed
    if not retried:
        assert set(refused) <= rebyed, (sorted(refused), sorted(rebyed))
    report(name, calls=CALLS, ended_before=BEFORE, ends_under_fault=CALLS - BEFORE,
           acked_under_fault=under_acked, refused_under_fault=len(refused),
           refused_talkover=len(set(refused) & ledger.talkover), refused_retried_ok=retried,
           acked_total=len(ledger.acked), recorded=recorded, rebyed_at_start=len(rebyed),
           lost=0)


def test_disk_full_while_calls_end(sip, disk):
    def recover():
        disk.free()
        return True
    disk_fault_test(sip, disk, disk.fill, recover, "disk_full")


def test_disk_read_only_while_calls_end(sip, disk):
    """A file system gone read-only stays so until it is checked and mounted again, which
    needs the server gone: kill -9, e2fsck, mount, start."""
    def recover():
        sip.cp.kill9()
        disk.umount()
        disk.fsck()
        disk.mount()
        sip.restart()
        return False
    disk_fault_test(sip, disk, disk.make_read_only, recover, "disk_read_only")


# ----------------------------------------------------------------------------- SQLite busy

BUSY_TIMEOUT_S = 10        # src/store/sqlite/pool.c, BUSY_TIMEOUT_MS

# Another process's long admin transaction: holds the database's write lock (BEGIN IMMEDIATE)
# for argv[2] seconds, saying when it has it and when it lets it go.
LOCK_HOLDER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
print("releasing", flush=True)
db.execute("ROLLBACK")
db.close()
"""


class LockHolder:
    def __init__(self, db, hold_s):
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", LOCK_HOLDER, db, str(hold_s)],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert self.proc.stdout.readline() == b"locked\n"
        self.locked_at = time.monotonic()
        self.released_at = None

    def wait(self, timeout):
        line = self.proc.stdout.readline()
        self.released_at = time.monotonic()
        assert line == b"releasing\n", line
        assert self.proc.wait(timeout=timeout) == 0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def busy_test(sip, hold_s, name):
    """CALLS answered calls; BEFORE ended; another process takes the write lock for hold_s;
    the rest ended at once (each end on its own thread, its reply timed; one in three through
    the Talkover dialect) while it holds it.
    Returns (ledger, under-lock ids, reply times, the holder) for the test's own asserts."""
    cp = sip.cp
    sip.start(ring_timeout=RING_TIMEOUT)
    far = sip.uas("uas_answer_wait_bye.xml", calls=CALLS, timeout=120)
    ids = answered_calls(sip, far, CALLS)
    ledger = Ledger()
    for cid in ids[:BEFORE]:
        assert ledger.end(cp, cid, "before_lock").status == 200
    # the far ends' 200s to those BYEs come back within milliseconds, and the worker forgets
    # their dialogs: done before the lock, so the first job held by it is an end
    time.sleep(1.0)
    holder = LockHolder(cp.db, hold_s)
    replied = {}
    try:
        def end(i):
            # one in three through a dialect
            wait = hold_s + 3 * BUSY_TIMEOUT_S
            if i % 3 == 0:
                ledger.end_talkover(cp, ids[i], timeout=wait)
            else:
                ledger.end(cp, ids[i], "under_lock", timeout=wait)
            replied[ids[i]] = time.monotonic()
        ex = concurrent.futures.ThreadPoolExecutor(max_workers=CALLS)
        futures = [ex.submit(end, i) for i in range(BEFORE, CALLS)]
        # reads go on while the lock is held (WAL): they do not wait for it
        time.sleep(0.5)
        t0 = time.monotonic()
        r = cp.request("GET", "/readyz")
        assert r.status == 200 and r.json["store"] == "ok", r
        assert cp.get_call(ids[-1])["status"] == "in_progress"
        assert time.monotonic() - t0 < 2.0, "reads waited for the lock"
        assert holder.proc.poll() is None, "the lock was let go before the reads"
        holder.wait(timeout=hold_s + 10)
        for f in futures:
            f.result(timeout=3 * BUSY_TIMEOUT_S + 10)
        ex.shutdown()
    finally:
        holder.kill()
    return far, ids, ledger, replied, holder


def busy_finish(sip, far, ids, ledger, name, refused):
    """The server recovers once the lock is gone: every refused end tried again succeeds; after
    kill -9 and a start every acknowledged end is recorded; nothing active; one BYE each."""
    cp = sip.cp
    ledger.refused.clear()
    for cid in refused:
        assert ledger.end(cp, cid, "after_lock").status == 200, ledger.refused
    cp.kill9()
    sip.restart()
    recorded = ledger.check_recorded(cp)
    assert recorded == CALLS
    assert sip.active() == []
    assert_ended_events(cp, ids)
    sipp_done(far, timeout=30)
    assert sorted(b.call_id for b in far.received("BYE")) == \
        sorted(cp.get_call(cid)["provider_call_id"] for cid in ids), far.report()
    return recorded


def test_sqlite_busy_shorter_than_timeout(sip):
    """A lock held 3 s: every end waits for it and succeeds, none answered before it goes."""
    hold = 3
    far, ids, ledger, replied, holder = busy_test(sip, hold, "busy_short")
    assert ledger.refused == {}, ledger.refused
    assert sorted(ledger.acked) == sorted(ids)
    # each end under the lock was answered only once the lock was let go (the write waited)
    early = [cid for cid in ids[BEFORE:] if replied[cid] < holder.released_at]
    assert early == [], "%d ends answered while the lock was held" % len(early)
    recorded = busy_finish(sip, far, ids, ledger, "busy_short", {})
    report("busy_%ds" % hold, calls=CALLS, ends_under_lock=CALLS - BEFORE,
           acked_under_lock=CALLS - BEFORE, refused_under_lock=0, recorded=recorded, lost=0)


def test_sqlite_busy_longer_than_timeout(sip):
    """A lock held past two busy timeouts: the group commit's BEGIN gives up after one, the
    first end applied on its own after the second (refused: 500 internal, its call left
    in_progress); those after it wait for the lock and succeed. None answered 200 before the
    lock went, none acknowledged and lost, and the server recovers on its own."""
    hold = 2 * BUSY_TIMEOUT_S + 6
    far, ids, ledger, replied, holder = busy_test(sip, hold, "busy_long")
    refused = dict(ledger.refused)
    assert refused, "no end was refused under a lock held %d s" % hold
    ledger.assert_refusals()
    for cid in refused:
        assert sip.cp.get_call(cid)["status"] == "in_progress"
    under = ids[BEFORE:]
    acked = [cid for cid in under if cid in ledger.acked]
    assert len(acked) + len(refused) == len(under)
    early = [cid for cid in acked if replied[cid] < holder.released_at]
    assert early == [], "%d ends acknowledged while the lock was held" % len(early)
    recorded = busy_finish(sip, far, ids, ledger, "busy_long", refused)
    report("busy_%ds" % hold, calls=CALLS, ends_under_lock=len(under),
           acked_under_lock=len(acked), refused_under_lock=len(refused),
           refused_talkover=len(set(refused) & ledger.talkover),
           refused_retried_ok=len(refused), recorded=recorded, lost=0)
