/*
 * web.c - a web call's far end: the browser's WebSocket, in place of RTP (docs/MEDIA.md, "Web
 * calls").
 *
 * The HTTP server upgrades GET /web/ws and the socket comes here through the call service and
 * the SIP engine (which owns the call's leg). From media_session_start() on it is this
 * thread's: libre polls it, wslay frames it (RFC 6455: unmasking, fragments, ping/pong, the
 * close handshake, a WEB_MSG_MAX message limit) and nothing else touches it until release()
 * hands it back to the HTTP server, which closes it. wslay, not libre's websock: libre's
 * server side accepts only connections of its own HTTP server, and this socket is
 * libmicrohttpd's; wslay does framing alone, over callbacks that read and write our socket.
 *
 * The protocol (the page src/http/web_call.html speaks it):
 *   browser -> here   {"event":"hello","sample_rate":N} (text, first, once), then binary
 *                     messages of 16-bit little-endian mono PCM at N Hz, of any length;
 *   here -> browser   {"event":"started","call_id":"..."} when the session starts; after the
 *                     hello, one binary message of 20 ms of 16-bit LE PCM at N Hz per tick;
 *                     {"event":"ended"} and a close frame (1000) when the call ends.
 * speexdsp resamples both ways between N (8000..192000) and the call's 8 kHz. The browser's
 * audio reaches the agent and the recording through frame.c in 20 ms frames, as a phone's RTP
 * does; what we play it is taken from the playout queue by the wheel, a frame per tick. A
 * frame does not go ahead of its tick (rtp.c's send-ahead): the page buffers what it plays,
 * which absorbs the tick's 20 ms.
 *
 * Ending: the browser closing the socket (a close frame, EOF, a reset: the tab was closed)
 * ends the call remote_hangup at the next tick (web_tick). A browser that vanishes without a
 * word sends no more audio: the media timeout ends the call. A browser that does not read:
 * past WEB_SENDQ_MAX queued, frames are dropped (counted), never memory without bound; a live
 * call wants the newest audio, not a backlog. When the session ends (web_close) the browser
 * is told ("ended", then the close frame), and the socket lingers, detached from the session
 * on the engine's list, until the browser's close frame comes back, EOF, or WEB_LINGER_MS;
 * then it is released. Releasing at once could reset the connection with our last frames
 * still unread by the browser.
 */
#include "media/media_internal.h"
#include "media/g711.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <speex/speex_resampler.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#define WEB_MSG_MAX (64 * 1024)    /* one message from the browser, at most */
#define WEB_SENDQ_MAX (256 * 1024) /* queued to a browser that does not read, at most */
#define WEB_LINGER_MS 1000         /* how long an ended call waits for the close reply */
#define WEB_RATE_MIN 8000
#define WEB_RATE_MAX 192000
#define WEB_CHUNK 1024     /* samples resampled at once */
#define RESAMPLE_QUALITY 3 /* speexdsp's VoIP quality: voice, at a small cost */

struct web {
	struct session *s; /* NULL once the session has ended (lingering) */
	struct media_engine *me;
	struct web *next; /* me->web_lingering */
	int fd;
	int listen_flags; /* what libre polls the socket for now */
	wslay_event_context_ptr ctx;
	void (*release)(void *ctx);
	void *release_ctx;
	uint8_t *pending; /* read past the handshake, read before the socket */
	size_t pending_len, pending_off;
	int rate; /* the browser's, from its hello; 0 before */
	SpeexResamplerState *down, *up;
	int16_t heard[FRAME_SAMPLES]; /* the browser's 8 kHz audio short of a whole frame */
	size_t heard_len;
	uint32_t heard_ms; /* the agent's timestamp of the next frame heard */
	bool gone;         /* the browser has left: the call ends */
	bool broken;       /* the socket failed or hit EOF: no more I/O on it */
	bool close_queued; /* our close frame, after everything else queued */
	const char *why;
	struct tmr linger;
	uint64_t frames_in, frames_out, dropped, bad;
};

static void bad_message(struct web *w, const char *why)
{
	if (w->bad++ < 5 && w->s)
		log_json(LOG_WARN, "web_bad_message",
			 json_pack("{s:s, s:s, s:I}", "call_id", w->s->call_id, "why", why, "count",
				   (json_int_t)w->bad));
}

static void lost(struct web *w, const char *why)
{
	if (w->gone)
		return;
	w->gone = true;
	w->why = why;
}

/* The socket is of no more use: EOF, a reset, a protocol error. */
static void broke(struct web *w, const char *why)
{
	lost(w, why);
	w->broken = true;
}

/* ---- wslay's I/O callbacks: our socket, and the bytes read past the handshake first ---- */

static ssize_t on_wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
			     void *arg)
{
	struct web *w = arg;
	(void)flags;
	if (w->pending_off < w->pending_len) {
		size_t n = w->pending_len - w->pending_off < len ? w->pending_len - w->pending_off
								 : len;
		memcpy(buf, w->pending + w->pending_off, n);
		w->pending_off += n;
		return (ssize_t)n;
	}
	ssize_t n;
	do
		n = recv(w->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		broke(w, n == 0 ? "closed without a close frame" : "connection reset");
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

static ssize_t on_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
			     int flags, void *arg)
{
	struct web *w = arg;
	ssize_t n;
	do
		n = send(w->fd, data, len, MSG_NOSIGNAL | (flags & WSLAY_MSG_MORE ? MSG_MORE : 0));
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		broke(w, "connection reset");
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

/* ---- what the browser sends --------------------------------------------------------- */

/* The browser's hello: its sample rate, which sets up both resamplers. */
static void on_hello(struct web *w, json_t *msg)
{
	json_t *r = json_object_get(msg, "sample_rate");
	if (w->rate) {
		bad_message(w, "a second hello");
		return;
	}
	if (!json_is_integer(r) || json_integer_value(r) < WEB_RATE_MIN ||
	    json_integer_value(r) > WEB_RATE_MAX) {
		bad_message(w, "hello without a sample_rate in 8000..192000");
		return;
	}
	int rate = (int)json_integer_value(r), err = 0;
	w->down = speex_resampler_init(1, (spx_uint32_t)rate, 8000, RESAMPLE_QUALITY, &err);
	w->up = speex_resampler_init(1, 8000, (spx_uint32_t)rate, RESAMPLE_QUALITY, &err);
	if (!w->down || !w->up) {
		broke(w, "out of memory");
		return;
	}
	w->rate = rate;
	if (w->s)
		log_json(LOG_INFO, "web_hello",
			 json_pack("{s:s, s:i}", "call_id", w->s->call_id, "sample_rate", rate));
}

static void on_text(struct web *w, const uint8_t *text, size_t len)
{
	json_t *msg = json_loadb((const char *)text, len, 0, NULL);
	const char *event = json_string_value(json_object_get(msg, "event"));
	if (!event)
		bad_message(w, "not a JSON object with an event");
	else if (!strcmp(event, "hello"))
		on_hello(w, msg);
	else
		bad_message(w, "unknown event");
	json_decref(msg);
}

/* 8 kHz samples of the browser: whole 20 ms frames go to the agent and the recording. */
static void heard(struct web *w, const int16_t *pcm, size_t n)
{
	struct session *s = w->s;
	for (size_t i = 0; i < n; i++) {
		w->heard[w->heard_len++] = pcm[i];
		if (w->heard_len < FRAME_SAMPLES)
			continue;
		uint8_t ulaw[FRAME_SAMPLES];
		for (int k = 0; k < FRAME_SAMPLES; k++)
			ulaw[k] = g711_ulaw_encode(w->heard[k]);
		w->heard_len = 0;
		frame_heard(s, ulaw, FRAME_SAMPLES, w->heard_ms);
		w->heard_ms += FRAME_MS;
		w->frames_in++;
	}
}

static void on_audio(struct web *w, const uint8_t *data, size_t len)
{
	if (!w->s)
		return; /* the call has ended: nothing listens any more */
	if (!w->rate) {
		bad_message(w, "audio before the hello");
		return;
	}
	if (len % 2) {
		bad_message(w, "audio of an odd number of bytes");
		return;
	}
	size_t n = len / 2;
	spx_int16_t in[WEB_CHUNK], out[WEB_CHUNK];
	for (size_t off = 0; off < n;) {
		size_t k = n - off < WEB_CHUNK ? n - off : WEB_CHUNK;
		for (size_t i = 0; i < k; i++)
			in[i] = (spx_int16_t)(data[2 * (off + i)] | data[2 * (off + i) + 1] << 8);
		spx_uint32_t in_len = (spx_uint32_t)k, out_len = WEB_CHUNK;
		speex_resampler_process_int(w->down, 0, in, &in_len, out, &out_len);
		heard(w, out, out_len);
		off += in_len ? in_len : k; /* a resampler that takes nothing must not loop */
	}
	w->s->last_rx_ms = media_now_ms();
}

static void on_wslay_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
			 void *arg)
{
	struct web *w = arg;
	(void)ctx;
	switch (m->opcode) {
	case WSLAY_TEXT_FRAME: on_text(w, m->msg, m->msg_length); break;
	case WSLAY_BINARY_FRAME: on_audio(w, m->msg, m->msg_length); break;
	case WSLAY_CONNECTION_CLOSE:
		/* wslay queues our close frame in answer; flush() sends it */
		lost(w, "closed by the browser");
		break;
	default: break; /* ping and pong: wslay's */
	}
}

/* ---- the socket --------------------------------------------------------------------- */

static void web_io(int flags, void *arg);

/* Polls for what wslay wants: reading until the close handshake says no more, writing only
 * while something is queued; nothing once the socket is broken. */
static void relisten(struct web *w)
{
	int flags = w->broken ? 0
			      : (wslay_event_want_read(w->ctx) ? FD_READ : 0) |
					(wslay_event_want_write(w->ctx) ? FD_WRITE : 0);
	if (flags == w->listen_flags)
		return;
	w->listen_flags = flags;
	if (!flags)
		fd_close(w->fd);
	else if (fd_listen(w->fd, flags, web_io, w)) {
		broke(w, "cannot poll the socket");
		fd_close(w->fd);
		w->listen_flags = 0;
	}
}

static void flush(struct web *w)
{
	if (!w->broken && wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx))
		broke(w, "send failed");
}

/* Gives the socket back: nothing of it is used afterwards. */
static void finish(struct web *w)
{
	for (struct web **p = &w->me->web_lingering; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	tmr_cancel(&w->linger);
	fd_close(w->fd);
	wslay_event_context_free(w->ctx);
	if (w->down)
		speex_resampler_destroy(w->down);
	if (w->up)
		speex_resampler_destroy(w->up);
	free(w->pending);
	w->release(w->release_ctx);
	free(w);
}

/* A lingering socket is done once the close handshake is over, or the socket is broken. */
static bool linger_done(struct web *w)
{
	return w->broken ||
	       (wslay_event_get_close_received(w->ctx) && !wslay_event_want_write(w->ctx));
}

/* An ended call's close frame goes once everything queued before it is sent: wslay sends
 * control frames ahead of queued messages, and nothing after a close. */
static void close_when_flushed(struct web *w)
{
	static const char reason[] = "call ended";
	if (w->s || w->close_queued || w->gone || wslay_event_get_queued_msg_count(w->ctx))
		return;
	w->close_queued = true;
	if (wslay_event_queue_close(w->ctx, WSLAY_CODE_NORMAL_CLOSURE, (const uint8_t *)reason,
				    sizeof reason - 1))
		broke(w, "cannot queue the close");
	flush(w);
}

static void web_io(int flags, void *arg)
{
	struct web *w = arg;
	if ((flags & (FD_READ | FD_EXCEPT)) && !w->broken && wslay_event_recv(w->ctx))
		broke(w, "protocol error");
	flush(w);
	close_when_flushed(w);
	if (!w->s && linger_done(w)) {
		finish(w);
		return;
	}
	relisten(w);
}

static void send_text(struct web *w, const char *text)
{
	struct wslay_event_msg msg = {.opcode = WSLAY_TEXT_FRAME,
				      .msg = (const uint8_t *)text,
				      .msg_length = strlen(text)};
	if (wslay_event_queue_msg(w->ctx, &msg))
		broke(w, "cannot queue a message");
}

int web_open(struct session *s, const struct media_web *mw, uint8_t *pending)
{
	static const struct wslay_event_callbacks callbacks = {
		.recv_callback = on_wslay_recv,
		.send_callback = on_wslay_send,
		.on_msg_recv_callback = on_wslay_msg,
	};
	struct web *w = calloc(1, sizeof *w);
	if (!w)
		return -1;
	if (wslay_event_context_server_init(&w->ctx, &callbacks, w)) {
		free(w);
		return -1;
	}
	wslay_event_config_set_max_recv_msg_length(w->ctx, WEB_MSG_MAX);
	w->s = s;
	w->me = s->me;
	w->fd = mw->fd;
	w->release = mw->release;
	w->release_ctx = mw->ctx;
	w->pending = pending; /* ours now */
	w->pending_len = pending ? mw->pending_len : 0;
	tmr_init(&w->linger);
	int fl = fcntl(w->fd, F_GETFL);
	if (fl >= 0)
		fcntl(w->fd, F_SETFL, fl | O_NONBLOCK);
	s->web = w;
	char started[96];
	snprintf(started, sizeof started, "{\"event\":\"started\",\"call_id\":\"%s\"}", s->call_id);
	send_text(w, started);
	log_json(LOG_INFO, "web_session_open", json_pack("{s:s}", "call_id", s->call_id));
	/* what came with the handshake (the hello, typically), then whatever the socket holds */
	web_io(FD_READ, w);
	return 0;
}

/* ---- the session's side ------------------------------------------------------------- */

void web_send_frame(struct session *s)
{
	struct web *w = s->web;
	uint8_t frame[FRAME_SAMPLES];
	playout_take(s, frame, sizeof frame);
	frame_played(s, frame);
	if (w->rate && !w->gone) {
		if (wslay_event_get_queued_msg_length(w->ctx) > WEB_SENDQ_MAX) {
			w->dropped++;
		} else {
			spx_int16_t pcm[FRAME_SAMPLES], out[WEB_RATE_MAX / 50 + 64];
			uint8_t bytes[sizeof out];
			for (int i = 0; i < FRAME_SAMPLES; i++)
				pcm[i] = g711_ulaw_decode(frame[i]);
			spx_uint32_t in_len = FRAME_SAMPLES, out_len = sizeof out / sizeof out[0];
			speex_resampler_process_int(w->up, 0, pcm, &in_len, out, &out_len);
			for (spx_uint32_t i = 0; i < out_len; i++) {
				bytes[2 * i] = (uint8_t)(out[i] & 0xFF);
				bytes[2 * i + 1] = (uint8_t)((uint16_t)out[i] >> 8);
			}
			struct wslay_event_msg msg = {.opcode = WSLAY_BINARY_FRAME,
						      .msg = bytes,
						      .msg_length = 2 * (size_t)out_len};
			if (wslay_event_queue_msg(w->ctx, &msg))
				broke(w, "cannot queue audio");
			else
				w->frames_out++;
			flush(w);
			relisten(w);
		}
	}
	goodbye_check(s, media_now_ms()); /* the end follows the goodbye's last frame */
}

const char *web_tick(struct session *s, int64_t now_ms)
{
	(void)now_ms;
	return s->web && s->web->gone ? "remote_hangup" : NULL;
}

static void linger_over(void *arg)
{
	finish(arg);
}

void web_close(struct session *s)
{
	struct web *w = s->web;
	if (!w)
		return;
	s->web = NULL;
	w->s = NULL;
	log_json(LOG_INFO, "web_session_done",
		 json_pack("{s:s, s:I, s:I, s:I, s:I, s:s}", "call_id", s->call_id, "frames_in",
			   (json_int_t)w->frames_in, "frames_out", (json_int_t)w->frames_out,
			   "dropped_frames", (json_int_t)w->dropped, "bad_messages",
			   (json_int_t)w->bad, "why", w->gone ? w->why : "call ended"));
	if (!w->gone) {
		send_text(w, "{\"event\":\"ended\"}");
		flush(w);
		close_when_flushed(w);
	}
	if (linger_done(w)) {
		finish(w);
		return;
	}
	relisten(w);
	w->next = w->me->web_lingering;
	w->me->web_lingering = w;
	tmr_start(&w->linger, WEB_LINGER_MS, linger_over, w);
}

void web_close_all(struct media_engine *me)
{
	while (me->web_lingering)
		finish(me->web_lingering);
}
