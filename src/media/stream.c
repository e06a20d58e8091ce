/*
 * stream.c - the agent's audio WebSocket, in the Twilio Media Streams message format
 * (docs/MEDIA.md has every message and every decision where Twilio's document is silent).
 *
 * callplane is the WebSocket client (libre's websock: framing, masking, ping/pong, close
 * handshake, a 128 KiB frame limit) and connects when the call is answered. Its life:
 *   - connecting: attempts with backoff (100 ms doubling to 1 s) until agent_connect_ms
 *     after the answer; none succeeded: the call ends "agent_unavailable";
 *   - open: "connected" and "start", then audio both ways until the call ends ("stop");
 *   - lost: the socket closed (a close frame, a reset, a full send queue) while the call was
 *     up. It is redialled with the same streamSid (backoff as above) so a restarted agent
 *     picks the call up again; with no open stream agent_grace_ms after the loss the call
 *     ends "agent_disconnected": no phone leg outlives its agent. A stream that reopens but
 *     closes again within agent_grace_ms has not recovered: its loss goes on from when it
 *     began, so an agent that accepts and hangs up at once is not redialled forever. An agent that means to end
 *     the call ends it through the API, which is immediate.
 * A connection that closes is released on the next tick, never inside libre's handler that
 * reports it.
 *
 * The agent's audio goes to the session's playout queue (playout.c), which rtp.c plays out.
 *
 * Sending never blocks: libre queues what the kernel does not take, up to agent_sendq_max
 * bytes; beyond that the agent is not reading and counts as lost.
 */
#include "media/media_internal.h"
#include "media/agent_msg.h"
#include "media/g711.h"
#include "core/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define MSG_MAX 2048

struct stream {
	struct session *s;
	struct websock_conn *conn;
	struct websock_conn *dead; /* closed, released on the next tick */
	bool open, ever_open, redial, lost, over;
	int64_t window_start, retry_at; /* lost: when the loss began (see lost()) */
	int64_t opened_at;              /* when the stream last opened */
	int backoff_ms;
	char sid[40];
	uint64_t seq, chunk;
	uint64_t bad;      /* messages we could not use */
	struct mbuf *frag; /* a fragmented text message being reassembled */
};

static void count(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void lost(struct stream *st, bool redial, const char *why)
{
	struct session *s = st->s;
	bool was_open = st->open;
	st->open = false;
	if (st->conn) {
		mem_deref(st->dead);
		st->dead = st->conn;
		st->conn = NULL;
	}
	st->frag = mem_deref(st->frag);
	int64_t now = media_now_ms();
	/* A stream that closes again within agent_grace_ms of reopening has not recovered: its
	 * loss goes on from where it began and the redials keep backing off, so an agent that
	 * accepts and closes at once is given up after one grace, not redialled forever. */
	bool fresh = was_open && (!st->lost || now - st->opened_at >= s->me->cfg.agent_grace_ms);
	if (was_open)
		log_json(LOG_WARN, "agent_stream_lost",
			 json_pack("{s:s, s:s, s:s, s:b}", "call_id", s->call_id, "stream_sid",
				   st->sid, "why", why, "redial", redial));
	st->redial = redial;
	if (fresh) {
		st->lost = true;
		st->window_start = now;
		st->backoff_ms = 100;
		st->retry_at = now;
	} else {
		st->retry_at = now + st->backoff_ms;
		st->backoff_ms = st->backoff_ms * 2 > 1000 ? 1000 : st->backoff_ms * 2;
	}
}

static void send_text(struct stream *st, const char *buf, size_t len)
{
	if (!st->open || !st->conn)
		return;
	int err = websock_send(st->conn, WEBSOCK_TEXT, "%b", buf, len);
	if (err == ENOSPC)
		lost(st, true, "agent not reading (send queue full)");
	else if (err)
		lost(st, true, "send failed");
}

static void send_start(struct stream *st)
{
	struct session *s = st->s;
	static const char connected[] =
		"{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":\"1.0.0\"}";
	send_text(st, connected, sizeof connected - 1);
	size_t meta_len = s->metadata ? strlen(s->metadata) : 0;
	size_t cap = MSG_MAX + meta_len;
	char *buf = malloc(cap);
	if (!buf)
		return;
	int n = snprintf(buf, cap,
			 "{\"event\":\"start\",\"sequenceNumber\":\"%llu\",\"start\":{"
			 "\"accountSid\":\"%s\",\"streamSid\":\"%s\",\"callSid\":\"%s\","
			 "\"tracks\":[\"inbound\"],\"customParameters\":%s,"
			 "\"mediaFormat\":{\"encoding\":\"audio/"
			 "x-mulaw\",\"sampleRate\":8000,\"channels\":1}"
			 "},\"streamSid\":\"%s\"}",
			 (unsigned long long)++st->seq, s->account ? s->account : "", st->sid,
			 s->call_id, meta_len ? s->metadata : "{}", st->sid);
	if (n > 0 && (size_t)n < cap)
		send_text(st, buf, (size_t)n);
	free(buf);
}

/* ---- what the agent sends --------------------------------------------------------------- */

static void bad_message(struct stream *st, const char *why)
{
	if (st->bad++ < 5)
		log_json(LOG_WARN, "agent_stream_bad_message",
			 json_pack("{s:s, s:s, s:I}", "call_id", st->s->call_id, "why", why,
				   "count", (json_int_t)st->bad));
}

static void on_media(struct stream *st, const uint8_t *audio, size_t len, int64_t arrived_us)
{
	struct session *s = st->s;
	count(&s->me->stats.agent_in);
	if (!s->play_len && s->play_cap) {
		s->back_from_us = arrived_us;
		s->back_at = s->queued;
	}
	playout_push(s, audio, len);
	if (!s->web)
		rtp_send_ahead(s); /* a browser buffers what it plays: its frames keep their tick */
}

static void on_text(struct stream *st, const char *text, size_t len)
{
	int64_t arrived_us = cp_mono_us();
	static _Thread_local uint8_t audio[AGENT_AUDIO_MAX];
	struct agent_msg m;
	const char *why = NULL;
	if (agent_msg_parse(text, len, st->sid, &m, audio, &why)) {
		bad_message(st, why);
		return;
	}
	if (st->s->goodbye && m.event != AGENT_MARK)
		return; /* the call is ending: the agent's last words are already queued */
	switch (m.event) {
	case AGENT_MEDIA: on_media(st, audio, m.audio_len, arrived_us); break;
	case AGENT_MARK: playout_mark(st->s, m.mark_name); break;
	case AGENT_CLEAR: playout_clear(st->s); break;
	}
}

/* ---- libre's handlers ------------------------------------------------------------------- */

static void on_estab(void *arg)
{
	struct stream *st = arg;
	struct session *s = st->s;
	tcp_conn_txqsz_set(websock_tcp(st->conn), s->me->cfg.agent_sendq_max);
	bool again = st->ever_open;
	st->open = st->ever_open = true;
	st->opened_at = media_now_ms();
	log_json(LOG_INFO, again ? "agent_stream_reconnected" : "agent_stream_open",
		 json_pack("{s:s, s:s}", "call_id", s->call_id, "stream_sid", st->sid));
	send_start(st);
}

static void on_recv(const struct websock_hdr *hdr, struct mbuf *mb, void *arg)
{
	struct stream *st = arg;
	if (hdr->opcode == WEBSOCK_BIN) {
		bad_message(st, "binary frame");
		return;
	}
	if (hdr->opcode == WEBSOCK_TEXT && hdr->fin) {
		on_text(st, (const char *)mbuf_buf(mb), mbuf_get_left(mb));
		return;
	}
	/* a fragment: collect up to libre's frame limit, then treat it like one frame */
	if (hdr->opcode == WEBSOCK_TEXT) {
		st->frag = mem_deref(st->frag);
		st->frag = mbuf_alloc(mbuf_get_left(mb) * 2 + 64);
	} else if (!st->frag) {
		bad_message(st, "continuation without a start");
		return;
	}
	if (!st->frag || mbuf_write_mem(st->frag, mbuf_buf(mb), mbuf_get_left(mb)) ||
	    st->frag->end > 128 * 1024) {
		bad_message(st, "fragmented message too large");
		st->frag = mem_deref(st->frag);
		return;
	}
	if (hdr->fin) {
		on_text(st, (const char *)st->frag->buf, st->frag->end);
		st->frag = mem_deref(st->frag);
	}
}

static void on_close(int err, void *arg)
{
	struct stream *st = arg;
	/* closed or vanished alike, the agent may come back within the grace (a restarted
	 * agent process, a load balancer moving it): redial with the same streamSid */
	lost(st, true, err ? strerror(err) : "closed by the agent");
}

/* what the layers below send the agent (media_internal.h: struct agent_out) */
static void stream_send_media(struct session *s, const uint8_t *ulaw, size_t n, uint32_t ts_ms);
static void stream_send_dtmf(struct session *s, char digit);
static void stream_send_mark(struct session *s, const char *name);
static const struct agent_out to_agent = {
	.media = stream_send_media,
	.dtmf = stream_send_dtmf,
	.mark = stream_send_mark,
};

/* ---- life ------------------------------------------------------------------------------- */

static void stream_connect(struct stream *st)
{
	struct session *s = st->s;
	int err = websock_connect(&st->conn, s->me->ws, s->me->http, s->stream_url, 0, on_estab,
				  on_recv, on_close, st, "");
	if (err) {
		st->conn = NULL;
		lost(st, true, strerror(err));
	}
}

int stream_open(struct session *s)
{
	struct stream *st = calloc(1, sizeof *st);
	if (!st)
		return -1;
	st->s = s;
	uint64_t id = ++s->me->stream_seq;
	snprintf(st->sid, sizeof st->sid, "MZ%016llx%08x%08x", (unsigned long long)rand_u64(),
		 rand_u32(), (unsigned)id);
	st->window_start = media_now_ms();
	st->backoff_ms = 100;
	s->stream = st;
	s->agent = &to_agent;
	stream_connect(st);
	return 0;
}

const char *stream_tick(struct session *s, int64_t now)
{
	struct stream *st = s->stream;
	if (!st || st->over)
		return NULL;
	st->dead = mem_deref(st->dead);
	if (st->open) {
		if (st->lost && now - st->opened_at >= s->me->cfg.agent_grace_ms) {
			st->lost = false; /* open for a whole grace: recovered */
			st->backoff_ms = 100;
		}
		return NULL;
	}
	if (!st->conn && (!st->ever_open || st->redial) && now >= st->retry_at)
		stream_connect(st);
	const char *reason = NULL;
	if (!st->ever_open && now - st->window_start >= s->me->cfg.agent_connect_ms)
		reason = "agent_unavailable";
	else if (st->ever_open && st->lost && now - st->window_start >= s->me->cfg.agent_grace_ms)
		reason = "agent_disconnected";
	if (reason) {
		st->over = true;
		if (st->conn)
			lost(st, false, "gave up");
	}
	return reason;
}

void stream_close(struct session *s)
{
	struct stream *st = s->stream;
	if (!st)
		return;
	if (st->open) {
		char buf[MSG_MAX];
		int n = snprintf(
			buf, sizeof buf,
			"{\"event\":\"stop\",\"sequenceNumber\":\"%llu\",\"streamSid\":\"%s\","
			"\"stop\":{\"accountSid\":\"%s\",\"callSid\":\"%s\"}}",
			(unsigned long long)++st->seq, st->sid, s->account ? s->account : "",
			s->call_id);
		send_text(st, buf, (size_t)n);
		if (st->conn)
			websock_close(st->conn, WEBSOCK_NORMAL_CLOSURE, "call ended");
	}
	mem_deref(st->conn);
	mem_deref(st->dead);
	mem_deref(st->frag);
	free(st);
	s->stream = NULL;
	s->agent = NULL;
}

static void stream_send_media(struct session *s, const uint8_t *ulaw, size_t n, uint32_t ts_ms)
{
	struct stream *st = s->stream;
	if (!st || !st->open)
		return;
	char b64[JITTER_FRAME_MAX / 3 * 4 + 8];
	size_t b64_len = sizeof b64;
	if (base64_encode(ulaw, n, b64, &b64_len))
		return;
	char buf[MSG_MAX];
	int len = snprintf(
		buf, sizeof buf,
		"{\"event\":\"media\",\"sequenceNumber\":\"%llu\",\"media\":{\"track\":\"inbound\","
		"\"chunk\":\"%llu\",\"timestamp\":\"%u\",\"payload\":\"%.*s\"},\"streamSid\":\"%"
		"s\"}",
		(unsigned long long)++st->seq, (unsigned long long)++st->chunk, ts_ms, (int)b64_len,
		b64, st->sid);
	if (len > 0 && (size_t)len < sizeof buf) {
		send_text(st, buf, (size_t)len);
		count(&s->me->stats.agent_out);
	}
}

static void stream_send_dtmf(struct session *s, char digit)
{
	struct stream *st = s->stream;
	if (!st || !st->open)
		return;
	char buf[MSG_MAX];
	int len = snprintf(buf, sizeof buf,
			   "{\"event\":\"dtmf\",\"streamSid\":\"%s\",\"sequenceNumber\":\"%llu\","
			   "\"dtmf\":{\"track\":\"inbound_track\",\"digit\":\"%c\"}}",
			   st->sid, (unsigned long long)++st->seq, digit);
	send_text(st, buf, (size_t)len);
}

static void stream_send_mark(struct session *s, const char *name)
{
	struct stream *st = s->stream;
	if (!st || !st->open)
		return;
	/* the agent's name is any JSON string: jansson escapes it */
	char seq[24];
	snprintf(seq, sizeof seq, "%llu", (unsigned long long)++st->seq);
	json_t *m = json_pack("{s:s, s:s, s:s, s:{s:s}}", "event", "mark", "sequenceNumber", seq,
			      "streamSid", st->sid, "mark", "name", name);
	char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
	if (text)
		send_text(st, text, strlen(text));
	free(text);
	json_decref(m);
}
