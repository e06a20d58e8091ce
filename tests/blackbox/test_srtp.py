"""Black-box SRTP tests: SDES keys (RFC 4568 a=crypto) on a trunk's calls, docs/CARRIERS.md "SRTP".

Far ends:
- a real baresip (baresip_peer.Baresip) with its srtp module: `mediaenc=srtp-mand` offers and
  answers RTP/SAVP with a=crypto only, `mediaenc=srtp` offers RTP/AVP with a=crypto and takes a
  plain answer; without mediaenc, no srtp module at all.  Audio is checked by frequency both
  ways, as test_media.py does: baresip plays 440 Hz, the agent 1000 Hz.
- sipp answering with a key this test chose and with its media address on a UDP socket this
  test holds: the packets callplane puts on the wire are read there and checked against RFC 3711
  in Python (session keys derived from the key callplane offered, HMAC-SHA1 tag verified,
  payload decrypted to the silence callplane sends without an agent) -- no pcap needed.

The default trunk (`serve --trunk sip:127.0.0.1:PORT --trunk-srtp MODE`) points at the far end,
and the agent dials a number, so each INVITE goes out through the trunk.
"""

import base64
import hashlib
import hmac
import os
import re
import socket
import struct
import time

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import media_audio
from media_world import NUMBER
from sipp_peer import Sipp, wait_for


FAR_HZ = 440          # what baresip plays
AGENT_HZ = 1000       # what the agent plays
DIALLED = "+15550002222"


def serve_with_trunk(media, far_port, mode, *extra):
    media.start("--trunk", "sip:127.0.0.1:%d" % far_port, "--trunk-srtp", mode, *extra)


def assert_bye(media, far, timeout=5.0):
    ev = far.wait_closed(timeout)
    assert ev["param"] == "Connection reset by peer", "baresip's call did not end by a BYE: %r\n%s" % (
        ev, media.diagnostics())


def audio_both_ways(media, agent, far, call_id):
    """The far end's tone reaches the agent and the agent's reaches the far end; the call is
    then ended through the API with a BYE."""
    pcm = agent.wait_audio(1.5, timeout=6)
    media_audio.assert_frequency(pcm, FAR_HZ, 0.03, what="audio the agent received over SRTP")
    agent.send_tone(AGENT_HZ, 1.5, realtime=True)
    time.sleep(0.4)
    assert far.closed() is None, "baresip closed the call\n%s" % media.diagnostics()
    ended = media.cp.end_call(call_id)
    assert ended["status"] == "completed" and ended["end_reason"] == "ended_by_api", ended
    assert_bye(media, far)
    heard = far.dec_samples()
    assert media_audio.tone_seconds(heard, AGENT_HZ) >= 1.0, (
        "baresip heard %.1f s of the agent's %d Hz\n%s"
        % (media_audio.tone_seconds(heard, AGENT_HZ), AGENT_HZ, media.diagnostics()))
    media_audio.assert_frequency(media_audio.loudest_window(heard, 4000), AGENT_HZ, 0.03,
                                 what="audio baresip decrypted")


# ------------------------------------------------------------------------ baresip, outbound


@pytest.mark.parametrize("mode,mediaenc", [("required", "srtp-mand"), ("optional", "srtp")])
def test_outbound_srtp_carries_audio_both_ways(media, mode, mediaenc):
    far = media.baresip(rtp_timeout=3, mediaenc=mediaenc, user=DIALLED)
    serve_with_trunk(media, far.port, mode)
    agent = media.agent()
    agent_id = media.agent_create(number=NUMBER, stream_url=agent.url)
    call = media.cp.create_call(agent=agent_id, to=DIALLED)
    far.wait_established(5)
    media.wait_status(call["id"], "in_progress", 5)
    agent.wait_event("start", 5)
    audio_both_ways(media, agent, far, call["id"])


def test_outbound_required_against_a_plain_far_end_fails(media):
    far = media.baresip(rtp_timeout=3, user=DIALLED)
    serve_with_trunk(media, far.port, "required")
    agent_id = media.agent_create(number=NUMBER)
    call = media.cp.create_call(agent=agent_id, to=DIALLED)
    c = media.wait_ended(call["id"], 5)
    assert (c["status"], c["end_reason"]) == ("failed", "failed"), c
    assert c["sip_status"] == 488, c


def test_outbound_optional_falls_back_to_plain_rtp(media):
    far = media.baresip(rtp_timeout=3, user=DIALLED)
    serve_with_trunk(media, far.port, "optional")
    agent = media.agent()
    agent_id = media.agent_create(number=NUMBER, stream_url=agent.url)
    call = media.cp.create_call(agent=agent_id, to=DIALLED)
    far.wait_established(5)
    media.wait_status(call["id"], "in_progress", 5)
    audio_both_ways(media, agent, far, call["id"])


# ------------------------------------------------------------------------- baresip, inbound


def test_inbound_savp_offer_is_answered_with_our_key(media):
    media.start()
    agent = media.agent()
    media.agent_create(number=NUMBER, stream_url=agent.url)
    far = media.baresip(rtp_timeout=3, mediaenc="srtp-mand")
    far.dial(media.inbound_uri(NUMBER))
    far.wait_established(5)
    call = media.wait_inbound(5)
    agent.wait_event("start", 5)
    audio_both_ways(media, agent, far, call["id"])


# ------------------------------------------------------------- the wire, read by this test


def aes_cm(key, iv, n):
    """n bytes of AES counter-mode keystream from the 128-bit counter iv (RFC 3711 4.1.1)."""
    return Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor().update(b"\0" * n)


def session_keys(master, rtcp=False):
    """(cipher key, auth key, salt) derived from a 30-byte master key (RFC 3711 4.3.1, kdr 0):
    labels 0-2 for SRTP, 3-5 for SRTCP."""
    key, salt = master[:16], int.from_bytes(master[16:], "big")
    base = 3 if rtcp else 0
    return tuple(aes_cm(key, (salt ^ ((base + label) << 48)) << 16, n)
                 for label, n in ((0, 16), (1, 20), (2, 14)))


def srtp_open(master, pkt, tag_len):
    """The payload of the SRTP packet pkt (first packet of its stream: ROC 0) after its tag is
    verified; AssertionError if it does not authenticate."""
    k_e, k_a, k_s = session_keys(master)
    body, tag = pkt[:-tag_len], pkt[-tag_len:]
    want = hmac.new(k_a, body + struct.pack("!I", 0), hashlib.sha1).digest()[:tag_len]
    assert hmac.compare_digest(tag, want), "SRTP tag does not verify: %s" % pkt.hex()
    seq, ssrc = struct.unpack("!H", body[2:4])[0], struct.unpack("!I", body[8:12])[0]
    iv = (int.from_bytes(k_s, "big") << 16) ^ (ssrc << 64) ^ (seq << 16)
    enc = body[12:]
    return bytes(a ^ b for a, b in zip(enc, aes_cm(k_e, iv, len(enc))))


def srtcp_open(master, pkt):
    """The SRTCP packet pkt decrypted (its 80-bit tag verified, E flag set): the RTCP compound."""
    k_e, k_a, k_s = session_keys(master, rtcp=True)
    body, tag = pkt[:-10], pkt[-10:]
    want = hmac.new(k_a, body, hashlib.sha1).digest()[:10]
    assert hmac.compare_digest(tag, want), "SRTCP tag does not verify: %s" % pkt.hex()
    e_index = struct.unpack("!I", body[-4:])[0]
    assert e_index >> 31 == 1, "SRTCP packet not encrypted (E flag clear)"
    ssrc = struct.unpack("!I", body[4:8])[0]
    iv = (int.from_bytes(k_s, "big") << 16) ^ (ssrc << 64) ^ ((e_index & 0x7FFFFFFF) << 16)
    enc = body[8:-4]
    return body[:8] + bytes(a ^ b for a, b in zip(enc, aes_cm(k_e, iv, len(enc))))


def udp_pair():
    """Two UDP sockets on 127.0.0.1, RTP on an even port and RTCP on the one above."""
    for _ in range(200):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port % 2:
                raise OSError("odd")
            b.bind(("127.0.0.1", port + 1))
            a.settimeout(5)
            b.settimeout(8)
            return a, b
        except OSError:
            a.close()
            b.close()
    raise AssertionError("no free even/odd UDP port pair")


def offered_keys(invite_body):
    """{tag: (suite, 30-byte key)} of the a=crypto lines of callplane's offer."""
    out = {}
    for tag, suite, key in re.findall(r"a=crypto:(\d+) (\S+) inline:(\S+)", invite_body):
        out[int(tag)] = (suite, base64.b64decode(key))
    return out


@pytest.fixture
def wire(media):
    socks = udp_pair()
    peers = []
    yield socks, peers
    for s in peers:
        s.stop()
    for s in socks:
        s.close()


def uas(media, peers, rtp_port, profile, attribute):
    s = Sipp(media.dir, "uas_sdp_answer_wait_bye.xml", timeout=20,
             subst={"MEDIA_PORT": rtp_port, "PROFILE": profile, "ATTRIBUTE": attribute})
    peers.append(s)
    return s.start()


FAR_KEY = bytes(range(1, 31))


@pytest.mark.parametrize("tag,suite,tag_len", [(1, "AES_CM_128_HMAC_SHA1_80", 10),
                                               (2, "AES_CM_128_HMAC_SHA1_32", 4)])
def test_packets_on_the_wire_are_srtp_with_the_offered_key(media, wire, tag, suite, tag_len):
    (rtp, rtcp), peers = wire
    port = rtp.getsockname()[1]
    far = uas(media, peers, port, "RTP/SAVP", "a=crypto:%d %s inline:%s" % (
        tag, suite, base64.b64encode(FAR_KEY).decode()))
    serve_with_trunk(media, far.port, "required")
    agent_id = media.agent_create(number=NUMBER)       # no agent stream: silence goes out
    call = media.cp.create_call(agent=agent_id, to=DIALLED)
    media.wait_status(call["id"], "in_progress", 5)

    # the offer: RTP/SAVP, both suites, fresh 30-byte keys, different for each line
    invite = far.received("INVITE")[0].body
    assert re.search(r"^m=audio \d+ RTP/SAVP 0 8 101$", invite, re.M), invite
    keys = offered_keys(invite.replace("\r", ""))
    assert sorted(keys) == [1, 2], invite
    assert keys[1][0] == "AES_CM_128_HMAC_SHA1_80" and keys[2][0] == "AES_CM_128_HMAC_SHA1_32", keys
    assert len(keys[1][1]) == 30 and len(keys[2][1]) == 30 and keys[1][1] != keys[2][1], keys

    # the first packet: not plain PCMU (12-byte header + 160 bytes of 0xFF silence) but SRTP
    # under the key of the line the far end took, which decrypts to exactly that silence
    pkt, _src = rtp.recvfrom(2048)
    assert len(pkt) == 12 + 160 + tag_len, (len(pkt), pkt.hex())
    assert pkt[0] == 0x80 and pkt[1] & 0x7F == 0, pkt[:2].hex()
    assert pkt[12:172] != b"\xff" * 160, "the payload went out in the clear"
    assert srtp_open(keys[tag][1], pkt, tag_len) == b"\xff" * 160

    # RTCP is SRTCP (80-bit tag whatever the suite): an SR with our CNAME inside
    sr, _src = rtcp.recvfrom(2048)
    assert b"callplane-" not in sr, "the RTCP went out in the clear"
    plain = srtcp_open(keys[tag][1], sr)
    assert plain[1] == 200 and b"callplane-" + call["id"][:8].encode() in plain, plain.hex()

    media.cp.end_call(call["id"])
    assert far.wait(25) == 0, far.report()


def test_required_against_a_plain_answer_fails_with_srtp_required(media, wire):
    (rtp, _rtcp), peers = wire
    far = uas(media, peers, rtp.getsockname()[1], "RTP/AVP", "a=sendrecv")
    serve_with_trunk(media, far.port, "required")
    agent_id = media.agent_create(number=NUMBER)
    call = media.cp.create_call(agent=agent_id, to=DIALLED)
    c = media.wait_ended(call["id"], 5)
    assert (c["status"], c["end_reason"]) == ("failed", "srtp_required"), c
    # the far end's answer is ACKed and BYEd; no media was ever sent to it
    assert far.wait(25) == 0, far.report()
    bye = far.received("BYE")[0]
    assert ("x-callplane-end-reason", "srtp_required") in bye.headers, bye.text
    rtp.settimeout(0.5)
    with pytest.raises(socket.timeout):
        rtp.recvfrom(2048)


def test_optional_offers_avp_with_keys_and_takes_a_plain_answer(media, wire):
    (rtp, _rtcp), peers = wire
    far = uas(media, peers, rtp.getsockname()[1], "RTP/AVP", "a=sendrecv")
    serve_with_trunk(media, far.port, "optional")
    agent_id = media.agent_create(number=NUMBER)
    call = media.cp.create_call(agent=agent_id, to=DIALLED)
    media.wait_status(call["id"], "in_progress", 5)
    invite = far.received("INVITE")[0].body
    assert re.search(r"^m=audio \d+ RTP/AVP 0 8 101$", invite, re.M), invite
    assert sorted(offered_keys(invite.replace("\r", ""))) == [1, 2], invite
    pkt, _src = rtp.recvfrom(2048)
    assert len(pkt) == 12 + 160 and pkt[12:] == b"\xff" * 160, pkt.hex()
    media.cp.end_call(call["id"])
    assert far.wait(25) == 0, far.report()


def test_inbound_plain_offer_refused_where_a_trunk_requires_srtp(media):
    """A stored trunk admitting 127.0.0.1 requires SRTP: a plain offer from there gets 488 and
    no call; an RTP/SAVP offer from there is answered."""
    media.cp.cli("trunk", "create", "--tenant", media.cp.tenant, "--host", "192.0.2.1",
                 "--inbound-cidr", "127.0.0.1", "--srtp", "required")
    media.start()
    media.agent_create(number=NUMBER)
    plain = media.baresip(rtp_timeout=0)
    plain.dial(media.inbound_uri(NUMBER))
    ev = plain.wait_closed(5)
    assert ev["param"].startswith("488"), (ev, media.diagnostics())
    assert media.cp.list_calls()["data"] == []
    secure = media.baresip(rtp_timeout=0, mediaenc="srtp-mand")
    secure.dial(media.inbound_uri(NUMBER))
    secure.wait_established(5)
    call = media.wait_inbound(5)
    secure.hangup()
    assert media.wait_ended(call["id"], 5)["status"] == "completed"
