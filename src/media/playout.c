/*
 * playout.c - what a call plays to the far end: the agent's audio (and callplane's own, a
 * goodbye), queued in the session's ring until rtp.c takes it, 20 ms per frame.
 *
 * The ring holds 8 kHz mu-law, playout_max bytes (30 s), allocated at answer for calls with
 * an agent. An agent faster than real time loses the oldest audio (counted), never memory
 * without bound. Two byte counters, queued and played, never go back: a mark is echoed once
 * played reaches what had been queued before it; a goodbye ends once played reaches what had
 * been queued before it plus its own audio.
 *
 * A goodbye (media_session_goodbye) is the barrier before a BYE: from the request on, the
 * agent's media and clear are ignored (its last words are those already queued), the
 * goodbye's audio goes after them, and hooks.goodbye_done is called the moment the frame
 * that completes it has been sent, or at the deadline, whichever comes first, or when the
 * session ends first. It is called once per goodbye.
 */
#include "media/media_internal.h"
#include "media/g711.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

static void marks_played(struct session *s, bool all)
{
	while (s->marks && (all || s->marks->at <= s->played)) {
		struct mark *m = s->marks;
		s->marks = m->next;
		if (!s->marks)
			s->marks_tail = &s->marks;
		if (s->agent)
			s->agent->mark(s, m->name);
		free(m);
	}
}

void playout_push(struct session *s, const uint8_t *ulaw, size_t n)
{
	if (!s->play_cap)
		return;
	if (n > s->play_cap) {
		/* more than the queue holds at once: keep the newest */
		atomic_fetch_add_explicit(&s->me->stats.playout_dropped, n - s->play_cap,
					  memory_order_relaxed);
		s->played += n - s->play_cap;
		s->queued += n - s->play_cap;
		ulaw += n - s->play_cap;
		n = s->play_cap;
	}
	if (s->play_len + n > s->play_cap) {
		/* an agent faster than real time: drop the oldest, counted */
		size_t drop = s->play_len + n - s->play_cap;
		s->play_head = (s->play_head + drop) % s->play_cap;
		s->play_len -= drop;
		s->played += drop;
		atomic_fetch_add_explicit(&s->me->stats.playout_dropped, drop,
					  memory_order_relaxed);
		s->back_from_us = 0;
	}
	size_t tail = (s->play_head + s->play_len) % s->play_cap;
	size_t first = s->play_cap - tail < n ? s->play_cap - tail : n;
	memcpy(s->play + tail, ulaw, first);
	memcpy(s->play, ulaw + first, n - first);
	s->play_len += n;
	s->queued += n;
}

void playout_clear(struct session *s)
{
	s->played += s->play_len;
	s->play_len = 0;
	s->play_head = 0;
	s->back_from_us = 0;
	marks_played(s, true); /* Twilio echoes every pending mark on clear */
}

void playout_mark(struct session *s, const char *name)
{
	if (s->queued <= s->played) {
		if (s->agent)
			s->agent->mark(s, name);
		return;
	}
	struct mark *m = calloc(1, sizeof *m);
	if (!m)
		return;
	m->at = s->queued;
	snprintf(m->name, sizeof m->name, "%s", name);
	*s->marks_tail = m;
	s->marks_tail = &m->next;
}

/* Takes up to n bytes of queued audio into out; the rest is silence. */
void playout_take(struct session *s, uint8_t *out, size_t n)
{
	size_t take = s->play_len < n ? s->play_len : n;
	size_t first = s->play_cap - s->play_head < take ? s->play_cap - s->play_head : take;
	if (take) {
		memcpy(out, s->play + s->play_head, first);
		memcpy(out + first, s->play, take - first); /* the ring's wrap */
	}
	memset(out + take, G711_ULAW_SILENCE, n - take);
	if (take) {
		s->play_len -= take;
		/* an agent speaking in real time keeps the queue nearly empty: starting over at the
		 * front then keeps its audio in the ring's first pages, and the rest of the ring
		 * (allocated, never touched) costs no memory */
		s->play_head = s->play_len ? (s->play_head + take) % s->play_cap : 0;
		s->played += take;
		marks_played(s, false);
	}
}

/* ---- goodbye: play what is queued and the goodbye's audio, then let the BYE go ---------- */

/* Makes room for n more bytes without dropping any queued audio: a goodbye is never cut by
 * the ring's size. The ring is laid out again from its front. -1: out of memory. */
static int playout_reserve(struct session *s, size_t n)
{
	if (s->play_len + n <= s->play_cap)
		return 0;
	size_t cap = s->play_len + n;
	uint8_t *ring = malloc(cap);
	if (!ring)
		return -1;
	size_t first =
		s->play_cap - s->play_head < s->play_len ? s->play_cap - s->play_head : s->play_len;
	if (s->play_len) {
		memcpy(ring, s->play + s->play_head, first);
		memcpy(ring + first, s->play, s->play_len - first);
	}
	free(s->play);
	s->play = ring;
	s->play_cap = cap;
	s->play_head = 0;
	return 0;
}

static void goodbye_finish(struct session *s, const char *how)
{
	if (!s->goodbye)
		return;
	s->goodbye = false;
	int ms = (int)((s->played - s->goodbye_from) / (FRAME_SAMPLES / FRAME_MS));
	/* with the monotonic clock: the SIP engine's sip_goodbye_bye line has it too, so the gap
	 * from this (the goodbye's last packet) to the BYE can be measured (bench/goodbye.py) */
	log_json(LOG_INFO, "media_goodbye_done",
		 json_pack("{s:s, s:s, s:i, s:I}", "call_id", s->call_id, "how", how, "goodbye_ms",
			   ms, "mono_us", (json_int_t)cp_mono_us()));
	if (s->me->hooks.goodbye_done)
		s->me->hooks.goodbye_done(s->me->hooks.arg, s->call_id, ms);
}

void goodbye_begin(struct session *s, const uint8_t *audio, size_t len, int64_t deadline_ms)
{
	if (s->goodbye || s->goodbye_over) {
		/* one goodbye per call: a second request joins the first (the layer above only
		 * asks once; this keeps the hook once per session whatever it does) */
		return;
	}
	s->goodbye = true;
	s->goodbye_from = s->played;
	s->goodbye_deadline_ms = deadline_ms;
	if (len && playout_reserve(s, len) == 0)
		playout_push(s, audio, len);
	else if (len)
		log_msg(LOG_WARN, "media_goodbye", "call %s: no memory for the goodbye's audio",
			s->call_id);
	s->goodbye_at = s->queued;
}

void goodbye_check(struct session *s, int64_t now_ms)
{
	if (!s->goodbye)
		return;
	if (s->played >= s->goodbye_at) {
		s->goodbye_over = true;
		goodbye_finish(s, "played");
	} else if (now_ms >= s->goodbye_deadline_ms) {
		s->goodbye_over = true;
		goodbye_finish(s, "deadline");
	}
}

void goodbye_abandon(struct session *s)
{
	s->goodbye_over = true;
	goodbye_finish(s, "session ended");
}
