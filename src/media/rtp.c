/*
 * rtp.c - one session's RTP and RTCP: what goes to the far end every 20 ms and what comes
 * back. The agent's side (its socket, the audio it queued) is stream.c's: this file takes
 * frames from it and hands it what the far end sends, never the other way round.
 *
 * Sending: the wheel (engine.c) calls rtp_send_frame() once per 20 ms. A frame is DTMF while
 * a digit plays (libre's telev makes the RFC 4733 packets: the event keeps its start
 * timestamp, the audio clock keeps running), else 160 bytes of the agent's queued audio,
 * padded with silence, so a call without an agent still carries valid packets and no carrier
 * drops it for silence. SSRC, sequence and timestamp start random and never restart, also
 * across a re-INVITE.
 *
 * Receiving: a packet is parsed by libre (rtp_hdr_decode), checked (version, payload type,
 * length) and must come from the latched source: the first packet's address is latched and
 * becomes where we send (symmetric RTP, RFC 4961, which is what gets media through NAT);
 * packets from a third address are dropped unless the latched one has been silent for 2 s
 * (a NAT rebinding). A new SSRC restarts the receive side. Audio goes through the jitter
 * buffer to the agent (converted to mu-law if the call is PCMA); telephone-events become
 * dtmf hooks and stream messages, once per key press.
 *
 * SRTP (srtp.c), when the call has keys: every packet, RTP and RTCP, is protected as the
 * last step before sendto() and unprotected as the first step after recv(), so everything
 * here (latching, statistics, the jitter buffer) sees plain packets that authenticated.
 *
 * RTCP (RFC 3550): every ~5 s a compound SR (or RR before we send) + SDES CNAME with one
 * report block about the far end's stream; a BYE when the session ends. Received SRs give
 * LSR/DLSR for our reports. At each report, a new SSRC and the session's end, the engine's
 * counters (and the metrics' jitter histogram) take what the far end's stream did since.
 */
#include "media/media_internal.h"
#include "media/g711.h"
#include "core/log.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define RELATCH_MS 2000

static void count(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static struct mbuf mbuf_over(uint8_t *buf, size_t size, size_t end)
{
	struct mbuf mb = {.buf = buf, .size = size, .pos = 0, .end = end};
	return mb;
}

/* ---- sending ---------------------------------------------------------------------------- */

static void send_packet(struct session *s, bool marker, int pt, uint32_t ts, const uint8_t *payload,
			size_t len)
{
	_Alignas(8) uint8_t pkt[RTP_HEADER_SIZE + 512 + SRTP_TRAILER_ROOM];
	struct mbuf mb = mbuf_over(pkt, RTP_HEADER_SIZE + 512, 0);
	struct rtp_header h = {.ver = RTP_VERSION,
			       .m = marker,
			       .pt = (uint8_t)pt,
			       .seq = s->seq,
			       .ts = ts,
			       .ssrc = s->ssrc};
	if (len > 512 || rtp_hdr_encode(&mb, &h))
		return;
	memcpy(pkt + mb.pos, payload, len);
	size_t total = mb.pos + len;
	s->seq++;
	if ((s->srtp_tx && sec_protect(s, pkt, &total, false)) ||
	    sendto(s->rtp_fd, pkt, total, 0, &s->remote.u.sa, s->remote.len) < 0) {
		count(&s->me->stats.rtp_dropped);
		return;
	}
	s->psent++;
	s->osent += (uint32_t)len;
	count(&s->me->stats.rtp_out);
}

void rtp_send_frame(struct session *s)
{
	uint8_t frame[FRAME_SAMPLES];
	if (s->te_pt >= 0) {
		uint8_t tev[16];
		struct mbuf tmb = mbuf_over(tev, sizeof tev, 0);
		bool marker = false;
		if (telev_poll(s->telev, &marker, &tmb) == 0) {
			if (marker)
				s->te_ts = s->ts;
			if (s->have_remote)
				send_packet(s, marker, s->te_pt, s->te_ts, tev, tmb.end);
			frame_played(s, NULL);
			s->ts += FRAME_SAMPLES;
			return;
		}
	}
	playout_take(s, frame, sizeof frame);
	frame_played(s, frame);
	if (s->have_remote) {
		if (s->pt == 8)
			g711_ulaw_to_alaw(frame, frame, sizeof frame);
		send_packet(s, s->psent == 0, s->pt, s->ts, frame, sizeof frame);
	}
	frame_sent(s);
	s->ts += FRAME_SAMPLES;
	goodbye_check(s, media_now_ms()); /* the BYE follows the goodbye's last packet */
}

/*
 * A frame of the agent's audio that waited for the next 20 ms tick would reach the far end
 * 10 ms late on average, on every turn of the conversation. So whole frames go out as soon as
 * they are queued, as long as none goes out more than AHEAD_FRAMES frames before its tick:
 * the ticks they stand for then find their frames already sent (next_tx_ms has moved on) and
 * send nothing. It works as a token bucket: an agent speaking in real time is forwarded on
 * arrival, with up to AHEAD_FRAMES * 20 ms of its own jitter passed through as it is (as a
 * forwarding SFU passes it) rather than added to every later frame; one faster than real time
 * fills the queue and is paced by the ticks. Timestamps stay contiguous (160 per frame), and a
 * far end's jitter buffer takes packets up to 40 ms early as it takes network jitter.
 */
#define AHEAD_FRAMES 2

void rtp_send_ahead(struct session *s)
{
	int64_t now = media_now_ms();
	while (s->play_len >= FRAME_SAMPLES && s->next_tx_ms <= now + AHEAD_FRAMES * FRAME_MS) {
		rtp_send_frame(s);
		s->next_tx_ms += FRAME_MS;
	}
}

void rtp_queue_dtmf(struct session *s, const char *digits)
{
	if (s->te_pt < 0) {
		log_msg(LOG_WARN, "media_dtmf", "call %s: the far end takes no telephone-event",
			s->call_id);
		return;
	}
	for (const char *d = digits; *d; d++) {
		int code = telev_digit2code(*d);
		if (code < 0)
			continue;
		if (telev_send(s->telev, code, false) || telev_send(s->telev, code, true))
			break;
		count(&s->me->stats.dtmf_out);
	}
}

/* ---- RTCP ------------------------------------------------------------------------------- */

/* Adds to the engine's counters what the far end's stream did since the last account: the
 * packets it sent (by their sequence numbers) and lost (RFC 3550 A.3's cumulative loss,
 * counted as it grows; duplicates can shrink it, which counts nothing), and samples its
 * jitter when packets arrived meanwhile. */
static void rx_account(struct session *s)
{
	if (!s->rx_started)
		return;
	uint32_t expected = s->cycles + s->max_seq - s->base_seq + 1;
	int64_t lost = (int64_t)expected - s->received;
	if (expected != s->acct_expected) {
		atomic_fetch_add_explicit(&s->me->stats.rtp_expected, expected - s->acct_expected,
					  memory_order_relaxed);
		s->acct_expected = expected;
		/* timestamp units of the 8 kHz clock: 125 us each */
		metrics_rtp_jitter((int64_t)(s->jitter * 125.0));
	}
	if (lost > s->acct_lost) {
		atomic_fetch_add_explicit(&s->me->stats.rtp_lost, (uint64_t)(lost - s->acct_lost),
					  memory_order_relaxed);
		s->acct_lost = lost;
	}
}

static int encode_report_block(struct mbuf *mb, void *arg)
{
	struct session *s = arg;
	if (!s->rx_started)
		return 0;
	uint32_t ext_max = s->cycles + s->max_seq;
	uint32_t expected = ext_max - s->base_seq + 1;
	int64_t lost = (int64_t)expected - s->received;
	if (lost > 0x7FFFFF)
		lost = 0x7FFFFF;
	if (lost < -0x800000)
		lost = -0x800000;
	uint32_t exp_int = expected - s->expected_prior;
	uint32_t rec_int = s->received - s->received_prior;
	s->expected_prior = expected;
	s->received_prior = s->received;
	int64_t lost_int = (int64_t)exp_int - rec_int;
	uint32_t fraction =
		exp_int == 0 || lost_int <= 0 ? 0 : (uint32_t)((lost_int << 8) / exp_int);
	uint32_t dlsr = 0;
	if (s->lsr)
		dlsr = (uint32_t)((media_now_ms() - s->lsr_at_ms) * 65536 / 1000);
	int err = mbuf_write_u32(mb, htonl(s->rx_ssrc));
	err |= mbuf_write_u32(mb, htonl((fraction & 0xFF) << 24 | ((uint32_t)lost & 0xFFFFFF)));
	err |= mbuf_write_u32(mb, htonl(ext_max));
	err |= mbuf_write_u32(mb, htonl((uint32_t)s->jitter));
	err |= mbuf_write_u32(mb, htonl(s->lsr));
	err |= mbuf_write_u32(mb, htonl(dlsr));
	return err;
}

static int encode_sdes(struct mbuf *mb, void *arg)
{
	struct session *s = arg;
	char cname[64];
	snprintf(cname, sizeof cname, "callplane-%.8s", s->call_id);
	return rtcp_sdes_encode(mb, s->ssrc, 1, RTCP_SDES_CNAME, cname);
}

void rtp_send_rtcp(struct session *s, bool bye)
{
	rx_account(s);
	if (s->rtcp_fd < 0 || !s->have_remote)
		return;
	struct mbuf *mb = mbuf_alloc(256);
	if (!mb)
		return;
	uint32_t rr = s->rx_started ? 1 : 0;
	int err;
	if (s->psent) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		uint32_t ntp_sec = (uint32_t)tv.tv_sec + 2208988800u;
		uint32_t ntp_frac = (uint32_t)((double)tv.tv_usec * 4294.967296);
		err = rtcp_encode(mb, RTCP_SR, rr, s->ssrc, ntp_sec, ntp_frac, s->ts, s->psent,
				  s->osent, encode_report_block, s);
	} else {
		err = rtcp_encode(mb, RTCP_RR, rr, s->ssrc, encode_report_block, s);
	}
	err |= rtcp_encode(mb, RTCP_SDES, 1, encode_sdes, s);
	if (bye)
		err |= rtcp_encode(mb, RTCP_BYE, 1, &s->ssrc, "call ended");
	/* SRTCP: protected in a copy with room for its index and tag */
	_Alignas(8) uint8_t pkt[RTP_PACKET_MAX + SRTP_TRAILER_ROOM];
	size_t len = mb->end;
	if (!err && len <= RTP_PACKET_MAX) {
		memcpy(pkt, mb->buf, len);
		if (!s->srtp_tx || !sec_protect(s, pkt, &len, true))
			(void)sendto(s->rtcp_fd, pkt, len, 0, &s->remote_rtcp.u.sa,
				     s->remote_rtcp.len);
	}
	mem_deref(mb);
}

void rtcp_input(struct session *s, uint8_t *buf, size_t n)
{
	if (s->srtp_rx && sec_unprotect(s, buf, &n, true))
		return;
	struct mbuf mb = mbuf_over(buf, n, n);
	while (mbuf_get_left(&mb) >= 4) {
		struct rtcp_msg *msg = NULL;
		if (rtcp_decode(&msg, &mb))
			break;
		if (msg->hdr.pt == RTCP_SR) {
			s->lsr = msg->r.sr.ntp_sec << 16 | msg->r.sr.ntp_frac >> 16;
			s->lsr_at_ms = media_now_ms();
		}
		mem_deref(msg);
	}
}

static void rtcp_recv(int flags, void *arg)
{
	struct session *s = arg;
	(void)flags;
	_Alignas(8) uint8_t buf[RTP_PACKET_MAX];
	for (int i = 0; i < 8; i++) {
		ssize_t n = recv(s->rtcp_fd, buf, sizeof buf, 0);
		if (n <= 0)
			return;
		rtcp_input(s, buf, (size_t)n);
	}
}

/* ---- receiving -------------------------------------------------------------------------- */

static void rx_restart(struct session *s, const struct rtp_header *h, int64_t now)
{
	rx_account(s); /* the stream that ends */
	if (s->rx_started)
		log_json(LOG_INFO, "media_ssrc_change",
			 json_pack("{s:s, s:I, s:I}", "call_id", s->call_id, "old",
				   (json_int_t)s->rx_ssrc, "new", (json_int_t)h->ssrc));
	s->rx_started = true;
	s->rx_ssrc = h->ssrc;
	s->base_seq = h->seq;
	s->max_seq = h->seq;
	s->cycles = 0;
	s->received = s->expected_prior = s->received_prior = 0;
	s->acct_expected = 0;
	s->acct_lost = 0;
	s->transit = 0;
	s->jitter = 0;
	/* the agent's timestamps go on from where they were */
	s->rx_first_ts = h->ts - (uint32_t)((now - s->started_ms) * 8);
	jitter_reset(&s->jb);
}

static void rx_stats(struct session *s, const struct rtp_header *h, int64_t now)
{
	uint16_t delta = (uint16_t)(h->seq - s->max_seq);
	if (delta < 0x8000) {
		if (h->seq < s->max_seq)
			s->cycles += 0x10000;
		s->max_seq = h->seq;
	}
	s->received++;
	int64_t transit = now * 8 - (int64_t)h->ts;
	if (s->received > 1) {
		int64_t d = transit - s->transit;
		if (d < 0)
			d = -d;
		s->jitter += ((double)d - s->jitter) / 16.0;
	}
	s->transit = transit;
}

void rtp_drain(struct session *s, int64_t now_ms)
{
	const struct jitter_frame *f;
	while ((f = jitter_get(&s->jb, now_ms))) {
		if (!s->agent && !s->rec)
			continue;
		uint8_t ulaw[JITTER_FRAME_MAX];
		if (s->pt == 8)
			g711_alaw_to_ulaw(f->data, ulaw, f->len);
		else
			memcpy(ulaw, f->data, f->len);
		frame_heard(s, ulaw, f->len, (f->ts - s->rx_first_ts) / 8);
		if (s->agent && f->seq == s->rx_seq && s->rx_us)
			latency_add(&s->me->to_agent, cp_mono_us() - s->rx_us);
	}
	s->rx_us = 0;
}

static void on_telephone_event(struct session *s, struct mbuf *mb)
{
	int event = 0;
	bool end = false;
	if (telev_recv(s->telev_rx, mb, &event, &end) || end)
		return;
	int digit = telev_code2digit(event); /* 0-9 * # A-D; -1 for events 16 and up */
	if (digit < 0)
		return;
	count(&s->me->stats.dtmf_in);
	if (s->me->hooks.dtmf)
		s->me->hooks.dtmf(s->me->hooks.arg, s->call_id, (char)digit);
	if (s->agent)
		s->agent->dtmf(s, (char)digit);
}

/* Where we send from now on: RTP to addr, RTCP to the port above it (RFC 3550 11). */
static void set_remote(struct session *s, const struct sa *addr)
{
	s->remote = *addr;
	s->remote_rtcp = *addr;
	sa_set_port(&s->remote_rtcp, (uint16_t)(sa_port(addr) + 1));
	s->have_remote = true;
}

static bool accept_source(struct session *s, const struct sa *src, int64_t now)
{
	if (s->latched && !sa_cmp(src, &s->remote, SA_ALL)) {
		if (now - s->latched_rx_ms < RELATCH_MS)
			return false; /* a third address while ours is alive */
		s->latched = false;
	}
	if (!s->latched) {
		log_json(LOG_DEBUG, "media_latch",
			 json_pack("{s:s, s:i}", "call_id", s->call_id, "port", sa_port(src)));
		set_remote(s, src);
		s->latched = true;
	}
	s->latched_rx_ms = now;
	return true;
}

void rtp_input(struct session *s, uint8_t *buf, size_t n, const struct sa *src, int64_t now,
	       int64_t rx_us)
{
	if (s->srtp_rx && sec_unprotect(s, buf, &n, false))
		goto drop;
	struct mbuf mb = mbuf_over(buf, n, n);
	struct rtp_header h;
	if (n < RTP_HEADER_SIZE || rtp_hdr_decode(&h, &mb) || h.ver != RTP_VERSION)
		goto drop;
	if (h.pad) {
		uint8_t padlen = buf[n - 1];
		if (padlen == 0 || padlen > mbuf_get_left(&mb))
			goto drop;
		mb.end -= padlen;
	}
	if (h.pt != s->pt && h.pt != s->te_pt)
		goto drop; /* CN, a codec we did not answer, garbage */
	/* every check of the packet itself before it may change anything: a bad packet must not
	 * latch an address, feed the media timeout or restart the receive side */
	size_t len = mbuf_get_left(&mb);
	if (h.pt == s->pt && (len == 0 || len > JITTER_FRAME_MAX))
		goto drop;
	if (!accept_source(s, src, now))
		goto drop;
	s->last_rx_ms = now;
	count(&s->me->stats.rtp_in);
	if (!s->rx_started || h.ssrc != s->rx_ssrc)
		rx_restart(s, &h, now);
	rx_stats(s, &h, now);
	if (h.pt == s->te_pt) {
		on_telephone_event(s, &mb);
		return;
	}
	jitter_put(&s->jb, h.seq, h.ts, mbuf_buf(&mb), (uint16_t)len, now);
	s->rx_seq = h.seq;
	s->rx_us = rx_us;
	rtp_drain(s, now);
	return;
drop:
	count(&s->me->stats.rtp_dropped);
}

/*
 * One wake-up, one recvmmsg: what the socket holds now, up to a bounded batch (so one flooded
 * call cannot starve the others). A loop of recvfrom would end every wake-up with a second
 * call that says EAGAIN, a quarter of the media plane's system calls.
 */
#define RECV_BATCH 16

static void rtp_recv(int flags, void *arg)
{
	struct session *s = arg;
	(void)flags;
	static _Thread_local _Alignas(8) uint8_t bufs[RECV_BATCH][RTP_PACKET_MAX];
	struct sockaddr_storage from[RECV_BATCH];
	struct iovec iov[RECV_BATCH];
	struct mmsghdr msgs[RECV_BATCH];
	for (int i = 0; i < RECV_BATCH; i++) {
		iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = RTP_PACKET_MAX};
		msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &from[i],
						       .msg_namelen = sizeof from[i],
						       .msg_iov = &iov[i],
						       .msg_iovlen = 1}};
	}
	int got = recvmmsg(s->rtp_fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
	if (got <= 0)
		return;
	int64_t now = media_now_ms(), rx_us = cp_mono_us();
	for (int i = 0; i < got; i++) {
		struct sa src;
		sa_init(&src, AF_UNSPEC);
		sa_set_sa(&src, (struct sockaddr *)&from[i]);
		rtp_input(s, bufs[i], msgs[i].msg_len, &src, now, rx_us);
	}
}

/* ---- lifetime --------------------------------------------------------------------------- */

int rtp_session_open(struct session *s)
{
	s->ssrc = rand_u32();
	s->seq = rand_u16();
	s->ts = rand_u32();
	s->next_rtcp_ms = media_now_ms() + RTCP_INTERVAL_MS / 2;
	if (telev_alloc(&s->telev, FRAME_MS) || telev_alloc(&s->telev_rx, FRAME_MS))
		goto fail;
	if (fd_listen(s->rtp_fd, FD_READ, rtp_recv, s))
		goto fail;
	if (s->rtcp_fd >= 0 && fd_listen(s->rtcp_fd, FD_READ, rtcp_recv, s)) {
		fd_close(s->rtp_fd);
		goto fail;
	}
	return 0;
fail:
	s->telev = mem_deref(s->telev);
	s->telev_rx = mem_deref(s->telev_rx);
	log_msg(LOG_ERROR, "media", "call %s: cannot listen on its RTP socket", s->call_id);
	return -1;
}

void rtp_session_close(struct session *s)
{
	rx_account(s);
	if (s->rtp_fd >= 0) {
		fd_close(s->rtp_fd);
		close(s->rtp_fd);
	}
	if (s->rtcp_fd >= 0) {
		fd_close(s->rtcp_fd);
		close(s->rtcp_fd);
	}
	s->rtp_fd = s->rtcp_fd = -1;
	s->telev = mem_deref(s->telev);
	s->telev_rx = mem_deref(s->telev_rx);
	sec_close(s);
}

void rtp_session_update(struct session *s, const struct sa *remote, int pt, int te_pt)
{
	/* a session refresh repeats the SDP: only a new address releases the latch (behind NAT
	 * the SDP's address is not where the far end's packets come from) */
	if (remote && !(s->have_remote && sa_cmp(remote, &s->sdp_remote, SA_ALL))) {
		s->sdp_remote = *remote;
		set_remote(s, remote);
		s->latched = false;
	}
	if (pt == 0 || pt == 8)
		s->pt = pt;
	s->te_pt = te_pt;
}
