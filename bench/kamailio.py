#!/usr/bin/env python3
"""Reference end rate: Kamailio (Debian `kamailio`) ending sipp calls through dlg.end_dlg.

The same shape as bench.py's `ends` run, with Kamailio in callplane's place:

  sipp UAC (bench/kamailio/uac_wait_bye.xml: INVITE, ACK, then waits for a BYE)
    -> Kamailio (bench/kamailio/kamailio.cfg: record-routing stateful proxy, dialog module
       in memory, dlg_manage() on every initial INVITE)
      -> sipp UAS (bench/kamailio/uas_rr.xml: sipp's built-in uas, echoing Record-Route;
         answers, waits for the BYE)

N calls are placed (500 calls/s) and held until Kamailio reports all N dialogs confirmed
(dlg.stats_active: ongoing == N). Their h_entry/h_id come from dlg.briefing. wrk then sends
one JSON-RPC `dlg.end_dlg` request per dialog over HTTP (xhttp + jsonrpcs; 2 threads, 64
keep-alive connections, as bench.py ends callplane's calls). Kamailio sends a BYE to both
sides of each call; both sipps answer them.

Time: both sipps log every message with its wall-clock time (-trace_shortmsg).
  ends_per_s          = calls ended / (last BYE answered, either side - wrk started)
  ends_per_s_bye_span = calls ended / (last BYE received - first BYE received, either side):
                        the closest match to callplane's figure (first to last end seen by
                        its server), as a BYE reaches a sipp on loopback as it leaves.
wrk is stopped once Kamailio's dlg.stats_active "all" reaches 0 (polled every 50 ms over
the same HTTP RPC) or stalls for 3 s; the timing does not depend on that poll.

Variants (see kamailio.cfg): "stock" is the config as is. Kamailio 5.6's dlg.end_dlg then
loses the callee's BYE for some calls under load (a race fixed upstream in 6.1.0,
kamailio/kamailio#4169); "bye_lock" (-A WITH_BYE_LOCK) works around it in the config so
every BYE is sent. The default runs both; the result is the bye_lock run (every BYE answered,
like callplane's), with the stock run under "stock".

All on 127.0.0.1, every wait bounded; every process started here is stopped at the end.

  python3 bench/kamailio.py [--n 1000] [--variant both|stock|bye_lock] [--keep]

Needs: kamailio (apt-get install -y kamailio), sipp, wrk. Env: KAM_UDP_CHILDREN,
KAM_TCP_CHILDREN (Kamailio workers, default 2 each), KAM_CALL_RATE (default 500),
KAM_WRK_CONNS (default 64), KAM_VARIANT, KAMAILIO_BIN.
"""
import argparse, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
KDIR = os.path.join(HERE, "kamailio")
CFG = os.path.join(KDIR, "kamailio.cfg")
UAC_XML = os.path.join(KDIR, "uac_wait_bye.xml")
UAS_XML = os.path.join(KDIR, "uas_rr.xml")
END_LUA = os.path.join(KDIR, "end_dlg.lua")
KAMAILIO = os.environ.get("KAMAILIO_BIN", shutil.which("kamailio") or "/usr/sbin/kamailio")

# Kamailio processes: UDP (SIP) and TCP (HTTP JSON-RPC) workers. This machine has 2 cores,
# shared with both sipps and wrk; 2 + 2 did best there (4 + 4 and 8 + 8 were slower).
UDP_CHILDREN = int(os.environ.get("KAM_UDP_CHILDREN", "2"))
TCP_CHILDREN = int(os.environ.get("KAM_TCP_CHILDREN", "2"))
WRK_THREADS = 2
WRK_CONNS = int(os.environ.get("KAM_WRK_CONNS", "64"))
# calls/s placed by the UAC: at 1000/s the sipps fell behind on this machine (INVITE
# retransmissions, failed calls); setup is not part of the measure
CALL_RATE = int(os.environ.get("KAM_CALL_RATE", "500"))


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def group_members(pgid):
    """Pids of the live processes in process group pgid (from /proc)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            if int(stat[stat.rindex(")") + 2:].split()[2]) == pgid:
                pids.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return pids


class Procs:
    """Every process started here, each in a process group of its own (kamailio forks its
    workers into it), stopped by id: SIGTERM to the group, SIGKILL to what is left."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, out, **kw):
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        self.procs.append((name, p))
        return p

    def stop(self, p, wait=5):
        if p.returncode is None:
            # not reaped yet: while the leader is alive or a zombie the group id is ours
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.time() + wait
            while time.time() < deadline:
                try:
                    if os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                        break
                except ChildProcessError:
                    break
                time.sleep(0.05)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        else:
            # leader already reaped: anything left in its group, one by one
            for pid in group_members(p.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop_all(self):
        for name, p in reversed(self.procs):
            self.stop(p, wait=5 if name == "kamailio" else 2)


def rpc(port, method, params=None, timeout=10):
    body = {"jsonrpc": "2.0", "method": method, "id": 1}
    if params is not None:
        body["params"] = params
    r = urllib.request.Request("http://127.0.0.1:%d/RPC" % port, data=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(r, timeout=timeout) as resp:
        out = json.loads(resp.read())
    if "error" in out:
        raise RuntimeError("%s: %s" % (method, out["error"]))
    return out.get("result")


def sipp_argv(xml, port, n, stat, short, timeout_s, extra=()):
    return (["sipp"] + list(extra) +
            ["-sf", xml, "-i", "127.0.0.1", "-p", str(port), "-m", str(n),
             "-timeout", "%ds" % timeout_s, "-timeout_error", "-buff_size", "4194304",
             "-max_socket", "65000", "-nostdin", "-trace_stat", "-stf", stat, "-fd", "1",
             "-trace_shortmsg", "-shortmessage_file", short])


def successful(stat):
    """SuccessfulCall(C) of the last line of a sipp statistics file."""
    try:
        rows = open(stat).read().strip().splitlines()
    except OSError:
        return None
    if len(rows) < 2:
        return None
    head, last = rows[0].split(";"), rows[-1].split(";")
    return int(last[head.index("SuccessfulCall(C)")])


def bye_times(short):
    """From a sipp short-message log: {call_id: (BYE received at, its 200 sent at)}, epoch s,
    for every call whose BYE this sipp answered (first occurrences: retransmissions ignored).
    Lines: date, time, epoch, S|R, Call-ID, "CSeq:N METHOD", first line."""
    got, ans = {}, {}
    try:
        f = open(short, errors="replace")
    except OSError:
        return {}
    with f:
        for line in f:
            c = line.rstrip("\n").split("\t")
            if len(c) < 7 or not c[5].endswith(" BYE"):
                continue
            t, d, cid = float(c[2]), c[3], c[4]
            if d == "R" and c[6].startswith("BYE "):
                got.setdefault(cid, t)
            elif d == "S" and c[6].startswith("SIP/2.0 200"):
                ans.setdefault(cid, t)
    return {cid: (got.get(cid), ans[cid]) for cid in ans}


def wait_until(cond, timeout, every=0.2, abort=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        if abort and abort():
            return False
        time.sleep(every)
    return cond()


def run_once(work, n, bye_lock):
    """One Kamailio run: place n calls, hold them, end them all by RPC. See the module doc."""
    os.makedirs(work, exist_ok=True)
    t_start = time.time()
    kport, hport = free_port(socket.SOCK_DGRAM), free_port()
    uas_port, uac_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    setup_s = max(60, 2 * n // CALL_RATE + 30)
    end_timeout = max(60, n // 50)
    hold_s = setup_s + end_timeout + 120      # sipp's own global timeout, a last resort
    P = Procs()
    outs = []
    res = {"calls": n, "variant": "bye_lock" if bye_lock else "stock",
           "rpc": "JSON-RPC over HTTP (xhttp+jsonrpcs), wrk %d threads / %d keep-alive "
                  "connections, one dlg.end_dlg request per call" % (WRK_THREADS, WRK_CONNS),
           "kamailio_children": {"udp": UDP_CHILDREN, "tcp": TCP_CHILDREN}}
    try:
        def out(name):
            f = open(os.path.join(work, name), "wb")
            outs.append(f)
            return f

        uas_stat, uac_stat = os.path.join(work, "uas_stat.csv"), os.path.join(work, "uac_stat.csv")
        uas_short, uac_short = os.path.join(work, "uas_short.log"), os.path.join(work, "uac_short.log")
        uas = P.start("sipp-uas", sipp_argv(UAS_XML, uas_port, n, uas_stat, uas_short, hold_s),
                      out("uas.out"), cwd=work)
        kam = P.start("kamailio", [
            KAMAILIO, "-DD", "-E", "-f", CFG,
            "-l", "udp:127.0.0.1:%d" % kport, "-l", "tcp:127.0.0.1:%d" % hport,
            "-A", 'UAS_URI="sip:127.0.0.1:%d"' % uas_port] +
            (["-A", "WITH_BYE_LOCK"] if bye_lock else []) + [
            "-Y", work, "-w", work, "-P", os.path.join(work, "kamailio.pid"),
            "-m", "512", "-M", "64", "-n", str(UDP_CHILDREN), "-N", str(TCP_CHILDREN)],
            out("kamailio.log"))

        def rpc_up():
            try:
                return rpc(hport, "dlg.stats_active", timeout=1) is not None
            except (OSError, ValueError, RuntimeError):
                return False
        if not wait_until(rpc_up, 15, 0.1, abort=lambda: kam.poll() is not None):
            raise RuntimeError("kamailio did not start: " +
                               open(os.path.join(work, "kamailio.log"), errors="replace").read()[-2000:])
        res["kamailio_version"] = rpc(hport, "core.version").strip()

        # 1. place n calls and hold them until Kamailio has all n dialogs confirmed
        t0 = time.time()
        uac = P.start("sipp-uac", sipp_argv(UAC_XML, uac_port, n, uac_stat, uac_short, hold_s,
                                            extra=["127.0.0.1:%d" % kport, "-r", str(CALL_RATE),
                                                   "-l", str(n)]),
                      out("uac.out"), cwd=work)
        stats, moved = {}, {"all": -1, "t": time.time()}

        def all_up():
            stats.update(rpc(hport, "dlg.stats_active"))
            if stats["all"] != moved["all"]:
                moved["all"], moved["t"] = stats["all"], time.time()
            return stats.get("ongoing", 0) >= n

        def setup_failed():      # sipp gave up, Kamailio died, or nothing moved for 15 s
            return (uac.poll() is not None or kam.poll() is not None
                    or time.time() - moved["t"] > 15)
        wait_until(all_up, setup_s, 0.2, abort=setup_failed)
        res["setup_s"] = round(time.time() - t0, 2)
        res["confirmed"] = stats.get("ongoing", 0)
        if res["confirmed"] < n:
            raise RuntimeError("only %s of %d dialogs confirmed (%s); calls failed in setup, "
                               "try a lower KAM_CALL_RATE" % (res["confirmed"], n, stats))

        dlgs = rpc(hport, "dlg.briefing", ["s"], timeout=60) or []
        ids = [(d["h_entry"], d["h_id"]) for d in dlgs if d.get("state") == 4]
        ids_path = os.path.join(work, "dlg_ids.txt")
        with open(ids_path, "w") as f:
            f.write("".join("%d %d\n" % i for i in ids))

        # 2. end them all: one dlg.end_dlg JSON-RPC per dialog, as fast as wrk sends them;
        # stop wrk once Kamailio has no dialog left, or nothing moved for 3 s
        env = dict(os.environ, KAM_IDS=ids_path, KAM_THREADS=str(WRK_THREADS))
        t_wrk = time.time()
        wrk = P.start("wrk", ["wrk", "-t%d" % WRK_THREADS, "-c%d" % WRK_CONNS,
                              "-d%ds" % end_timeout, "-s", END_LUA, "http://127.0.0.1:%d/" % hport],
                      out("wrk.out"), env=env)
        st = {"all": None, "t": time.time()}

        def done_or_stalled():
            try:
                a = rpc(hport, "dlg.stats_active", timeout=5)["all"]
            except (OSError, ValueError, RuntimeError, TypeError):
                return False
            if a != st["all"]:
                st["all"], st["t"] = a, time.time()
            return a == 0 or time.time() - st["t"] > 3.0
        wait_until(done_or_stalled, end_timeout, 0.05, abort=lambda: wrk.poll() is not None)
        res["client_wall_s"] = round(time.time() - t_wrk, 3)
        if wrk.poll() is None:
            wrk.send_signal(signal.SIGINT)        # wrk prints its summary and done()
            try:
                wrk.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        P.stop(wrk)
        wtxt = open(os.path.join(work, "wrk.out"), errors="replace").read()
        m = re.search(r"ENDS ok=(\d+) err=(\d+)", wtxt)
        res["rpc_ok"], res["rpc_err"] = (int(m.group(1)), int(m.group(2))) if m else (None, None)

        # dialogs wrk did not end (should be none): ended here one by one, kept out of the rate
        swept = set()
        for d in rpc(hport, "dlg.briefing", ["cs"], timeout=60) or []:
            if d.get("state") == 4:
                try:
                    rpc(hport, "dlg.end_dlg", [d["h_entry"], d["h_id"]])
                    swept.add(d.get("call-id"))
                except (OSError, RuntimeError, ValueError):
                    pass
        res["swept_after_wrk"] = len(swept)

        # 3. the UAC exits once every call got its BYE; the UAS 4 s after its last BYE
        # (timewait), unless some BYE never reached it
        wait_until(lambda: uac.poll() is not None, 30)
        wait_until(lambda: uas.poll() is not None, 10)
        res["uac_exit"], res["uas_exit"] = uac.poll(), uas.poll()
        res["active_after"] = rpc(hport, "dlg.stats_active")["all"]
        klog = open(os.path.join(work, "kamailio.log"), errors="replace").read()
        res["kamailio_bye_not_sent"] = klog.count("terminating non-confirmed dialogs not supported")
        P.stop(uac)
        P.stop(uas)

        b_uac, b_uas = bye_times(uac_short), bye_times(uas_short)
        res["byes_answered_uac"] = len(b_uac)
        res["byes_answered_uas"] = len(b_uas)
        res["successful_calls_uac"] = successful(uac_stat)
        res["successful_calls_uas"] = successful(uas_stat)
        res["ended"] = len(set(b_uac) | set(b_uas))        # at least one leg got its BYE
        res["ended_both_legs"] = len(set(b_uac) & set(b_uas))
        timed_calls = (set(b_uac) | set(b_uas)) - swept
        legs = [v for c, v in list(b_uac.items()) + list(b_uas.items()) if c not in swept]
        answered = [v[1] for v in legs]
        received = [v[0] for v in legs if v[0]]
        res["seconds"] = res["span_s"] = res["ends_per_s"] = res["ends_per_s_bye_span"] = None
        if answered and received:
            span = max(answered) - t_wrk
            res["seconds"] = res["span_s"] = round(span, 4)
            res["ends_per_s"] = round(len(timed_calls) / span, 1) if span > 0 else None
            res["first_bye_after_wrk_start_ms"] = round((min(received) - t_wrk) * 1000, 1)
            bspan = max(received) - min(received)
            res["bye_span_s"] = round(bspan, 4)
            res["ends_per_s_bye_span"] = round(len(timed_calls) / bspan, 1) if bspan > 0 else None
        return res
    finally:
        P.stop_all()
        for f in outs:
            f.close()
        res["total_s"] = round(time.time() - t_start, 1)


def bench_kamailio(work: str, n: int, variant: str = None) -> dict:
    """Kamailio's end rate for n calls, run in work (a directory). variant: "stock" (the
    config as is), "bye_lock" (-A WITH_BYE_LOCK: every BYE sent), or "both" (default: the
    result is the bye_lock run, with the stock run under "stock")."""
    variant = variant or os.environ.get("KAM_VARIANT", "both")
    for tool in ("sipp", "wrk"):
        if not shutil.which(tool):
            raise RuntimeError("%s not installed" % tool)
    if not os.path.exists(KAMAILIO):
        raise RuntimeError("kamailio not installed (apt-get install -y kamailio)")
    if variant == "stock":
        return run_once(os.path.join(work, "stock"), n, False)
    if variant == "bye_lock":
        return run_once(os.path.join(work, "bye_lock"), n, True)
    if variant != "both":
        raise ValueError("variant: both, stock or bye_lock")
    stock = run_once(os.path.join(work, "stock"), n, False)
    res = run_once(os.path.join(work, "bye_lock"), n, True)
    res["stock"] = stock
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--variant", choices=["both", "stock", "bye_lock"], default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    a = ap.parse_args()
    # SIGTERM/SIGHUP/SIGINT unwind once, so the finally clauses stop every process; a second
    # signal (timeout(1) and a shell both sending one) must not interrupt that cleanup
    def unwind(s, f):
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        sys.exit(128 + s)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, unwind)
    work = tempfile.mkdtemp(prefix="cpbench-kamailio-")
    ok = False
    try:
        res = bench_kamailio(work, a.n, a.variant)
        ok = res.get("ended_both_legs") == a.n
        print(json.dumps(res, indent=2))
    finally:
        if a.keep or not ok:
            print("logs in %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
