"""Black-box RTP receive tests: sipp plays a pcap at callplane, the agent sees the result.

The far end is sipp (sipp/uas_answer_play_pcap.xml): it answers callplane's INVITE with PCMU
only, waits LEAD_MS (the agent's WebSocket opens meanwhile), then `play_pcap_audio`s a pcap
the test writes in pure python (classic libpcap format, link type 1 = Ethernet, IPv4/UDP/RTP).

What sipp 3.6.1 does with the pcap (src/prepare_pcap.c, src/send_packets.c, checked by
experiment): it keeps each packet's UDP header + payload (length from the UDP header), rewrites
only the UDP ports (source = its [media_port] + (dport - lowest dport in the pcap), destination
= the SDP port + the same offset) and the checksum, and sends it through a raw socket bound to
[media_ip], paced by the pcap's timestamps (a packet not later than the previous one goes at
once).  The RTP header and payload are sent byte for byte: sequence numbers, timestamps, SSRC,
version, payload type and garbage are the test's to choose.  All packets here go to one dport.
What sipp cannot do: send from another source address or port (the source is tied to the
destination), so the latching rule ("packets from a third address are dropped") is not
covered here.

Each packet's 160-byte PCMU payload identifies its frame (`frame_payload`), so the assertions
are exact: the list of frames the agent received (from its `media` messages, base64 decoded)
and the steps between their `media.timestamp`s (ms), against docs/MEDIA.md's receive rules
(jitter buffer holding 60 ms, duplicates dropped, malformed RTP dropped, a new SSRC or a big
sequence jump restarts the receive side).

Run alone: `CALLPLANE_BIN=build/asan/callplane /usr/bin/python3 -m pytest -q
tests/blackbox/test_media_rtp.py`.
"""

import base64
import os
import struct
import time

import pytest

from media_world import NUMBER
from sipp_peer import Sipp

GRACE_MS = 500
LEAD_MS = 600          # sipp's pause between the ACK and the first packet
FRAME_MS = 20
SAMPLES = 160          # per 20 ms frame at 8 kHz
SETTLE_S = 0.4         # after the last expected frame: room for extra (wrong) frames to show
EPOCH = 1700000000     # pcap time of the first packet (s)


# ------------------------------------------------------------------------------ RTP + pcap


def frame_payload(n):
    """160 bytes of mu-law that name frame n (1..65535): a marker, n, then a pattern of n."""
    head = bytes([0xA5, 0x5A, (n >> 8) & 0xFF, n & 0xFF])
    return head + bytes(((n * 37 + i * 11) & 0x7F) | 0x10 for i in range(SAMPLES - 4))


def frame_of(payload):
    """The frame number a payload names, or a short description of an unknown payload."""
    if len(payload) == SAMPLES and payload[:2] == b"\xA5\x5A":
        n = (payload[2] << 8) | payload[3]
        if frame_payload(n) == payload:
            return n
    return "?%d:%s" % (len(payload), payload[:6].hex())


def rtp_packet(seq, ts, ssrc, payload, pt=0, version=2, marker=False, padding=False):
    b0 = (version << 6) | (0x20 if padding else 0)
    b1 = (0x80 if marker else 0) | (pt & 0x7F)
    return struct.pack("!BBHII", b0, b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


class Stream:
    """One RTP sender: frame k (1-based within this stream) has seq0 + k - 1, ts0 + 160 (k - 1)."""

    def __init__(self, ssrc, seq0, ts0):
        self.ssrc, self.seq0, self.ts0 = ssrc, seq0, ts0

    def rtp(self, k, label, **kw):
        return rtp_packet(self.seq0 + k - 1, self.ts0 + SAMPLES * (k - 1), self.ssrc,
                          frame_payload(label), marker=(k == 1), **kw)


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def write_pcap(path, packets, sport=40000, dport=40002):
    """packets: [(send time in ms from the first, UDP payload)] -> classic libpcap file (LE,
    v2.4, microseconds, snaplen 65535, DLT_EN10MB), each Ethernet/IPv4/UDP 10.0.0.1 ->
    10.0.0.2 (sipp replaces addresses and ports)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for ident, (ms, payload) in enumerate(packets):
        udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0,
                          bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        iph = iph[:10] + struct.pack("!H", _csum(iph)) + iph[12:]
        eth = bytes.fromhex("020000000002" "020000000001") + b"\x08\x00"
        frame = eth + iph + udp
        us = int(round(ms * 1000))
        out.append(struct.pack("<IIII", EPOCH + us // 1000000, us % 1000000, len(frame), len(frame)))
        out.append(frame)
    with open(path, "wb") as f:
        f.write(b"".join(out))
    return path


# ---------------------------------------------------------------------------------- world


@pytest.fixture
def sipps():
    out = []
    yield out
    for s in out:
        s.stop()


def play(media, sipps, tmp_path, packets, expect_n, name):
    """callplane dials sipp, which plays `packets`; waits (bounded) for `expect_n` media messages
    at the agent (plus SETTLE_S for extras), ends the call and checks sipp saw the BYE.
    Returns (agent, [(frame, timestamp ms)] in arrival order)."""
    pcap = write_pcap(os.path.join(str(tmp_path), name + ".pcap"), packets)
    media.start("--agent-grace-ms", str(GRACE_MS))
    agent = media.agent()
    agent_id = media.agent_create(number=NUMBER, stream_url=agent.url)
    far = Sipp(tmp_path, "uas_answer_play_pcap.xml", name=name, timeout=15,
               subst={"PCAP": pcap, "LEAD_MS": LEAD_MS})
    sipps.append(far)
    far.start()
    call = media.cp.create_call(agent=agent_id, to="sip:bob@%s" % far.uri_host)
    media.wait_status(call["id"], "in_progress", 5)
    agent.wait_event("start", 5)

    play_s = LEAD_MS / 1000.0 + max(ms for ms, _p in packets) / 1000.0
    deadline = time.monotonic() + play_s + 3.0
    while time.monotonic() < deadline and len(agent.events("media")) < expect_n:
        time.sleep(0.02)
    time.sleep(SETTLE_S)

    got = [(frame_of(base64.b64decode(m["media"]["payload"])), int(m["media"]["timestamp"]))
           for m in agent.events("media")]
    media.cp.end_call(call["id"])
    agent.wait_event("stop", 3)
    rc = far.wait(10)
    assert rc == 0, "sipp exit code %s (BYE not seen?)\n%s" % (rc, far.report())
    screen = far._read(far.screen_file)
    assert "npkts %d" % len(packets) in screen, "sipp did not load %d packets:\n%s" % (
        len(packets), far.screen(20))
    return agent, got


def steps(got):
    return [b[1] - a[1] for a, b in zip(got, got[1:])]


def describe(got, want_frames, want_steps=None, media=None):
    s = ["agent received frames %r" % [f for f, _t in got],
         "expected               %r" % list(want_frames),
         "timestamps             %r" % [t for _f, t in got],
         "timestamp steps        %r" % steps(got)]
    if want_steps is not None:
        s.append("expected steps         %r" % list(want_steps))
    if media is not None:
        s.append(media.diagnostics())
    return "\n".join(s)


def assert_frames(media, got, want_frames, want_steps):
    """Exactly `want_frames` in that order, and the timestamp steps: an int is exact, None means
    only 'later than the previous frame'."""
    frames = [f for f, _t in got]
    assert frames == list(want_frames), describe(got, want_frames, want_steps, media)
    for i, (have, want) in enumerate(zip(steps(got), want_steps)):
        if want is None:
            assert have > 0, "step %d (frame %r -> %r): %d ms\n%s" % (
                i, frames[i], frames[i + 1], have, describe(got, want_frames, want_steps, media))
        else:
            assert have == want, "step %d (frame %r -> %r): %d ms, expected %d\n%s" % (
                i, frames[i], frames[i + 1], have, want, describe(got, want_frames, want_steps, media))


def slots(order, gap_ms=FRAME_MS):
    """[(send ms, item)]: items sent one every gap_ms in the given order."""
    return [(i * gap_ms, x) for i, x in enumerate(order)]


S1 = Stream(ssrc=0x1234ABCD, seq0=1000, ts0=50000)


# ---------------------------------------------------------------------------------- cases


def test_a_in_order_every_frame_once(media, sipps, tmp_path):
    n = 25
    packets = slots([S1.rtp(k, k) for k in range(1, n + 1)])
    _agent, got = play(media, sipps, tmp_path, packets, n, "inorder")
    assert_frames(media, got, range(1, n + 1), [FRAME_MS] * (n - 1))


def test_b_reordering_within_the_hold_is_undone(media, sipps, tmp_path):
    order = [1, 2, 4, 3, 5, 6, 7, 9, 8, 10, 11, 12]
    packets = slots([S1.rtp(k, k) for k in order])
    _agent, got = play(media, sipps, tmp_path, packets, len(order), "reorder")
    assert_frames(media, got, range(1, 13), [FRAME_MS] * 11)


def test_c_loss_is_a_40ms_step(media, sipps, tmp_path):
    n = 16
    lost = {5, 11}
    # each packet in its own 20 ms slot; a lost packet leaves its slot empty
    packets = [((k - 1) * FRAME_MS, S1.rtp(k, k)) for k in range(1, n + 1) if k not in lost]
    want = [k for k in range(1, n + 1) if k not in lost]
    _agent, got = play(media, sipps, tmp_path, packets, len(want), "loss")
    assert_frames(media, got, want, [2 * FRAME_MS if b - a == 2 else FRAME_MS for a, b in zip(want, want[1:])])


def test_d_duplicates_are_delivered_once(media, sipps, tmp_path):
    n = 12
    packets = []
    for k in range(1, n + 1):
        t = (k - 1) * FRAME_MS
        packets.append((t, S1.rtp(k, k)))
        if k in (2, 6, 7):
            packets.append((t + 5, S1.rtp(k, k)))            # right behind
        if k == 9:
            packets.append((t + 3 * FRAME_MS + 5, S1.rtp(3, 3)))   # long after its frame went out
    packets.sort(key=lambda p: p[0])
    _agent, got = play(media, sipps, tmp_path, packets, n, "dups")
    assert_frames(media, got, range(1, n + 1), [FRAME_MS] * (n - 1))


def test_e_malformed_and_foreign_packets_never_reach_the_agent(media, sipps, tmp_path):
    n = 14
    packets = []
    for k in range(1, n + 1):
        t = (k - 1) * FRAME_MS
        seq, ts = S1.seq0 + k - 1, S1.ts0 + SAMPLES * (k - 1)
        # each bad packet claims the sequence number and timestamp of the good one right behind it
        bad = {
            3: rtp_packet(seq, ts, S1.ssrc, frame_payload(901), version=1),
            5: rtp_packet(seq, ts, S1.ssrc, frame_payload(902), pt=18),
            7: b"\x80\x00\x03",                                          # shorter than a header
            8: rtp_packet(seq, ts, S1.ssrc, frame_payload(904)[:-1] + b"\xC8", padding=True),
            10: rtp_packet(seq, ts, S1.ssrc, b""),
            12: rtp_packet(seq, ts, S1.ssrc, frame_payload(906) * 3 + frame_payload(906)[:21]),
        }.get(k)
        if bad is not None:
            packets.append((t, bad))
            packets.append((t + 2, S1.rtp(k, k)))
        else:
            packets.append((t, S1.rtp(k, k)))
    _agent, got = play(media, sipps, tmp_path, packets, n, "malformed")
    assert_frames(media, got, range(1, n + 1), [FRAME_MS] * (n - 1))


def test_f_ssrc_change_restarts_and_keeps_delivering(media, sipps, tmp_path):
    s2 = Stream(ssrc=0x0BADCAFE, seq0=40000, ts0=9000000)
    a, b = 10, 10
    frames = [S1.rtp(k, k) for k in range(1, a + 1)] + [s2.rtp(k, a + k) for k in range(1, b + 1)]
    _agent, got = play(media, sipps, tmp_path, slots(frames), a + b, "ssrc")
    # within each SSRC the RTP clock runs 20 ms a frame; across the change the agent's timestamps
    # go on (docs/MEDIA.md), by how much is not specified: only 'later'
    assert_frames(media, got, range(1, a + b + 1), [FRAME_MS] * (a - 1) + [None] + [FRAME_MS] * (b - 1))


def test_g_huge_sequence_jump_keeps_delivering(media, sipps, tmp_path):
    a, b = 10, 12
    jump = Stream(ssrc=S1.ssrc, seq0=S1.seq0 + a + 5000, ts0=S1.ts0 + SAMPLES * a)   # clock runs on
    frames = [S1.rtp(k, k) for k in range(1, a + 1)] + [jump.rtp(k, a + k) for k in range(1, b + 1)]
    _agent, got = play(media, sipps, tmp_path, slots(frames), a + b, "seqjump")
    assert_frames(media, got, range(1, a + b + 1), [FRAME_MS] * (a + b - 1))


def test_h_sequence_and_timestamp_wrap(media, sipps, tmp_path):
    n = 20
    s = Stream(ssrc=0x55AA55AA, seq0=65530, ts0=(1 << 32) - 5 * SAMPLES)
    _agent, got = play(media, sipps, tmp_path, slots([s.rtp(k, k) for k in range(1, n + 1)]), n, "wrap")
    assert_frames(media, got, range(1, n + 1), [FRAME_MS] * (n - 1))


@pytest.mark.parametrize("bad", ["empty", "oversized"])
def test_i_malformed_packet_of_another_ssrc_does_not_disturb_the_stream(media, sipps, tmp_path, bad):
    # 1, 2, 4 (held, waiting for 3), a malformed packet of another SSRC, 3 (within the 60 ms hold), 5..10:
    # docs/MEDIA.md drops malformed RTP ("an empty or over-480-byte payload") like any other, so
    # the agent must get 1..10 with 20 ms steps, exactly as in test_b without the bad packet
    payload = b"" if bad == "empty" else frame_payload(907) * 3 + frame_payload(907)[:21]
    stray = rtp_packet(7777, 123456789, 0x0DDBA11, payload)
    order = [S1.rtp(1, 1), S1.rtp(2, 2), S1.rtp(4, 4), stray, S1.rtp(3, 3)] + [S1.rtp(k, k) for k in range(5, 11)]
    packets = [(0, order[0]), (20, order[1]), (40, order[2]), (45, order[3]), (50, order[4])] + \
        [(20 * (k - 1), order[k]) for k in range(5, 11)]
    _agent, got = play(media, sipps, tmp_path, packets, 10, "stray-" + bad)
    assert_frames(media, got, range(1, 11), [FRAME_MS] * 9)
