"""One media test's world: a callplane with a SIP engine, baresip far ends, test agents.

`MediaWorld` starts callplane with `--sip 127.0.0.1:PORT` (plus the test's extra arguments, e.g.
`--media-timeout`, `--agent-grace-ms`), creates agents (with or without `--stream-url`), runs
baresip peers (baresip_peer.Baresip) and WebSocket test agents (media_agent.MediaAgent), and
stops them all in teardown.  Every wait is bounded; failures carry the server log, every
baresip's log/events and every agent's record.
"""

import time

from baresip_peer import Baresip
from media_agent import MediaAgent
from sipp_peer import free_port, wait_for, wait_for_call

NUMBER = "+15550001111"


class MediaWorld:
    def __init__(self, cp, tmp_path):
        self.cp = cp
        self.dir = tmp_path
        self.sip_port = None
        self.baresips = []
        self.agents = []
        self.extra = []

    # ----------------------------------------------------------------- server
    def start(self, *extra, ring_timeout=5):
        if self.sip_port is None:
            self.sip_port = free_port(udp=True, tcp=True)
        self.extra = ["--sip", "127.0.0.1:%d" % self.sip_port, "--ring-timeout", str(ring_timeout)] + list(extra)
        self.cp.start(extra_args=self.extra)
        return self

    @property
    def sip_uri_host(self):
        return "127.0.0.1:%d" % self.sip_port

    def inbound_uri(self, number=NUMBER):
        """Where a far end calls to reach the agent with `number`."""
        return "sip:%s@127.0.0.1:%d" % (number, self.sip_port)

    # ------------------------------------------------------------------ peers
    def baresip(self, **kw):
        kw.setdefault("name", "far%d" % (len(self.baresips) + 1))
        b = Baresip(self.dir, **kw)
        self.baresips.append(b)
        return b.start()

    def agent(self, path="/agent"):
        a = MediaAgent(path=path)
        self.agents.append(a)
        return a.start()

    def agent_create(self, name="media-agent", number=None, stream_url=None, max_duration=None,
                     record=False):
        args = ["agent", "create", "--tenant", self.cp.tenant, "--name", name]
        if record:
            args += ["--record"]
        if number is not None:
            args += ["--number", number]
        if stream_url is not None:
            args += ["--stream-url", stream_url]
        if max_duration is not None:
            args += ["--max-duration", str(max_duration)]
        return self.cp.cli(*args)["id"]

    def close(self):
        for b in self.baresips:
            b.stop()
        for a in self.agents:
            a.stop()

    # -------------------------------------------------------------------- API
    def dial(self, far, agent=None, **fields):
        """POST /v1/calls to baresip `far`; returns the call."""
        return self.cp.create_call(agent=agent, to=far.uri, **fields)

    def call(self, call_id):
        return self.cp.get_call(call_id)

    def wait_call(self, call_id, pred, timeout=5.0, what="condition"):
        return wait_for_call(self.cp.get_call, call_id, pred, timeout, what, self.diagnostics)

    def wait_status(self, call_id, status, timeout=5.0):
        return self.wait_call(call_id, lambda c: c["status"] == status, timeout, "status %s" % status)

    def wait_ended(self, call_id, timeout=5.0):
        return self.wait_call(call_id, lambda c: c["status"] not in ("queued", "ringing", "in_progress"),
                              timeout, "an end")

    def wait_inbound(self, timeout=5.0, status="in_progress"):
        """The one inbound call listed with `status`."""
        def listed():
            data = [c for c in self.cp.list_calls()["data"] if c["direction"] == "inbound" and c["status"] == status]
            return data or None
        data = wait_for(listed, timeout, interval=0.05)
        assert data, "no %s inbound call within %ss: %r\n%s" % (status, timeout, self.cp.list_calls(), self.diagnostics())
        assert len(data) == 1, data
        return data[0]

    def diagnostics(self):
        lines = [ln for ln in self.cp.stderr_text().splitlines() if '"http_request"' not in ln]
        out = ["server stderr (no http_request lines):"] + lines[-40:]
        for b in self.baresips:
            out.append(b.report())
        for a in self.agents:
            out.append(a.report())
        return "\n".join(out)


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)
