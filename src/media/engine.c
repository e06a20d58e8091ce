/*
 * engine.c - the media thread: its libre event loop, the messages other threads post to it,
 * the session table and the timer wheel that paces every call.
 *
 * Threading: one thread (cp-media) runs re_main(). The public functions run on the SIP and
 * HTTP threads: they copy their arguments into a message and mqueue_push() it (a pipe
 * write); the loop applies messages in the order they were posted, so a stop can never
 * overtake the start of the same call.
 *
 * The wheel: every session sends one frame each 20 ms. Sessions are spread over 20 slots,
 * one per millisecond of the period, and one libre timer serves the slot due now, so the
 * thread does 1/20 of the sending work every millisecond instead of all of it at once, and
 * there is no timer (let alone a timerfd or a thread) per call. Each session also keeps its
 * own deadline (next_tx_ms): if the loop was late, a session sends the frames it owes (at
 * most three at once) so the far end's clock and ours stay locked. The same visit checks the
 * session's other deadlines: RTCP, the media timeout, the agent's reconnects. With no
 * session the timer is stopped and the thread sleeps.
 */
#include "media/media_internal.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum msg_type { MSG_START, MSG_UPDATE, MSG_STOP, MSG_DTMF, MSG_GOODBYE, MSG_QUIT };

struct media_msg {
	char call_id[MEDIA_CALL_ID_MAX + 1];
	struct media_start start; /* MSG_START: strings below are the copies */
	char *stream_url, *metadata, *account;
	struct media_web web;           /* MSG_START of a web call: start.web points here */
	uint8_t *web_pending;           /* its copy of the bytes read past the handshake */
	struct sockaddr_storage remote; /* MSG_UPDATE */
	socklen_t remote_len;
	int pt, te_pt;
	bool has_srtp; /* MSG_UPDATE: srtp is the call's SRTP now */
	struct media_srtp srtp;
	char digits[64]; /* MSG_DTMF */
	uint8_t *audio;  /* MSG_GOODBYE: a copy */
	size_t audio_len;
	int max_wait_ms;
};

void media_config_defaults(struct media_config *cfg)
{
	cfg->media_timeout_s = 60;
	cfg->agent_grace_ms = 2000;
	cfg->agent_connect_ms = 3000;
	cfg->jitter_ms = 60;
	cfg->playout_max = 8000 * 30;
	cfg->agent_sendq_max = 256 * 1024;
}

/* ---- the table and the wheel ------------------------------------------------------------ */

static unsigned hash_id(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % SESSION_TABLE_SIZE;
}

struct session *session_find(struct media_engine *me, const char *call_id)
{
	for (struct session *s = me->table[hash_id(call_id)]; s; s = s->hnext)
		if (!strcmp(s->call_id, call_id))
			return s;
	return NULL;
}

static void wheel_tick(void *arg);

static void wheel_arm(struct media_engine *me, int64_t now)
{
	int64_t delay = me->wheel_ms - now;
	tmr_start(&me->wheel_tmr, delay > 0 ? (uint64_t)delay : 0, wheel_tick, me);
}

/* Ends the call from the media side: calls hooks.end_call once; the session lives on until
 * the SIP engine stops it (with the BYE). */
static void session_end_call(struct session *s, const char *reason)
{
	if (s->ending)
		return;
	s->ending = true;
	log_json(LOG_INFO, "media_end_call",
		 json_pack("{s:s, s:s}", "call_id", s->call_id, "reason", reason));
	if (s->me->hooks.end_call)
		s->me->hooks.end_call(s->me->hooks.arg, s->call_id, reason);
}

static void session_tick(struct session *s, int64_t now)
{
	for (int owed = 0; s->next_tx_ms <= now && owed < 3; owed++) {
		if (s->web)
			web_send_frame(s);
		else
			rtp_send_frame(s);
		s->next_tx_ms += FRAME_MS;
	}
	if (now - s->next_tx_ms > 5 * FRAME_MS)
		s->next_tx_ms = now + FRAME_MS; /* the loop stalled: do not burst */
	rtp_drain(s, now);
	if (s->rtcp_fd >= 0 && now >= s->next_rtcp_ms) {
		rtp_send_rtcp(s, false);
		/* RFC 3550 6.2: randomised over [0.5, 1.5] of the interval */
		s->next_rtcp_ms =
			now + RTCP_INTERVAL_MS / 2 + (int64_t)(rand_u32() % RTCP_INTERVAL_MS);
	}
	goodbye_check(s, now);
	if (s->goodbye || s->goodbye_over)
		return; /* the call is ending already, within the goodbye's deadline */
	const char *browser_gone = s->web ? web_tick(s, now) : NULL;
	if (browser_gone)
		session_end_call(s, browser_gone);
	if (now - s->last_rx_ms > (int64_t)s->me->cfg.media_timeout_s * 1000)
		session_end_call(s, "media_timeout");
	const char *agent_gone = s->stream_url ? stream_tick(s, now) : NULL;
	if (agent_gone)
		session_end_call(s, agent_gone);
}

static void wheel_tick(void *arg)
{
	struct media_engine *me = arg;
	int64_t now = media_now_ms();
	if (now - me->wheel_ms > WHEEL_SLOTS) {
		/* more than a period late: serve every slot once, from now on */
		me->wheel_ms = now - WHEEL_SLOTS + 1;
	}
	while (me->wheel_ms <= now) {
		struct session *next;
		for (struct session *s = me->wheel[me->next_slot]; s; s = next) {
			next = s->wnext; /* a tick may end the call, never free the session */
			session_tick(s, now);
		}
		me->next_slot = (me->next_slot + 1) % WHEEL_SLOTS;
		me->wheel_ms++;
	}
	if (me->n_sessions)
		wheel_arm(me, now);
}

static void session_insert(struct media_engine *me, struct session *s)
{
	unsigned h = hash_id(s->call_id);
	s->hnext = me->table[h];
	me->table[h] = s;
	int64_t now = media_now_ms();
	if (me->n_sessions++ == 0) {
		me->wheel_ms = now;
		wheel_arm(me, now);
	}
	/* spread over the slots by arrival; the first frame goes out on the slot's next turn */
	int slot = (me->next_slot + (int)(me->n_sessions % WHEEL_SLOTS)) % WHEEL_SLOTS;
	s->wnext = me->wheel[slot];
	if (s->wnext)
		s->wnext->wprev = &s->wnext;
	s->wprev = &me->wheel[slot];
	me->wheel[slot] = s;
	s->next_tx_ms = now;
}

static void session_free(struct session *s)
{
	struct media_engine *me = s->me;
	goodbye_abandon(s);
	if (s->stream)
		stream_close(s);
	if (s->web) {
		web_close(s); /* a web call holds no RTP port */
	} else {
		if (s->rtcp_fd >= 0 && s->have_remote)
			rtp_send_rtcp(s, true);
		rtp_session_close(s);
		if (me->hooks.released)
			me->hooks.released(me->hooks.arg, s->addr_index);
	}
	for (struct session **p = &me->table[hash_id(s->call_id)]; *p; p = &(*p)->hnext) {
		if (*p == s) {
			*p = s->hnext;
			break;
		}
	}
	if (s->wprev) {
		*s->wprev = s->wnext;
		if (s->wnext)
			s->wnext->wprev = s->wprev;
	}
	if (--me->n_sessions == 0)
		tmr_cancel(&me->wheel_tmr);
	if (s->rec)
		recording_close(s->rec);
	playout_clear(s);
	free(s->play);
	free(s->stream_url);
	free(s->metadata);
	free(s->account);
	free(s);
}

/* ---- messages --------------------------------------------------------------------------- */

static void msg_free(struct media_msg *m)
{
	if (!m)
		return;
	free(m->stream_url);
	free(m->metadata);
	free(m->account);
	free(m->audio);
	free(m->web_pending);
	explicit_bzero(&m->start.srtp, sizeof m->start.srtp);
	explicit_bzero(&m->srtp, sizeof m->srtp);
	free(m);
}

/* A start that does not happen: the far end's sockets go back (RTP: closed and counted
 * free; a browser's: released to its owner). */
static void close_fds(struct media_engine *me, const struct media_start *ms)
{
	if (ms->web) {
		ms->web->release(ms->web->ctx);
		return;
	}
	if (ms->rtp_fd >= 0)
		close(ms->rtp_fd);
	if (ms->rtcp_fd >= 0)
		close(ms->rtcp_fd);
	if (me->hooks.released)
		me->hooks.released(me->hooks.arg, ms->addr_index);
}

static void on_start(struct media_engine *me, struct media_msg *m)
{
	if (session_find(me, m->call_id)) {
		log_msg(LOG_WARN, "media", "call %s already has media", m->call_id);
		close_fds(me, &m->start);
		return;
	}
	struct session *s = calloc(1, sizeof *s);
	/* only an agent queues audio: a call without one has no playout ring */
	size_t cap = m->stream_url ? me->cfg.playout_max : 0;
	uint8_t *play = cap ? malloc(cap) : NULL;
	if (!s || (cap && !play)) {
		free(s);
		free(play);
		close_fds(me, &m->start);
		return;
	}
	s->me = me;
	snprintf(s->call_id, sizeof s->call_id, "%s", m->call_id);
	s->rtp_fd = m->start.rtp_fd;
	s->rtcp_fd = m->start.rtcp_fd;
	s->addr_index = m->start.addr_index;
	struct sa remote;
	sa_init(&remote, AF_UNSPEC);
	if (m->start.remote_len)
		sa_set_sa(&remote, (const struct sockaddr *)&m->start.remote);
	rtp_session_update(s, m->start.remote_len ? &remote : NULL, m->start.payload_type,
			   m->start.te_payload_type);
	s->play = play;
	s->play_cap = cap;
	if (m->start.record && me->recorder)
		s->rec = recording_open(me->recorder, s->call_id);
	s->marks_tail = &s->marks;
	s->started_ms = s->last_rx_ms = media_now_ms();
	jitter_init(&s->jb, me->cfg.jitter_ms);
	bool srtp_failed = !m->start.web && sec_open(s, &m->start.srtp);
	if (srtp_failed ||
	    (m->start.web ? web_open(s, m->start.web, m->web_pending) : rtp_session_open(s))) {
		sec_close(s);
		if (s->rec)
			recording_close(s->rec);
		close_fds(me, &m->start);
		free(play);
		free(s);
		return;
	}
	m->web_pending = NULL; /* the session's now, if it was a web call's */
	/* the message's copies are the session's now */
	s->stream_url = m->stream_url;
	s->metadata = m->metadata;
	s->account = m->account;
	m->stream_url = m->metadata = m->account = NULL;
	atomic_fetch_add_explicit(&me->stats.sessions, 1, memory_order_relaxed);
	session_insert(me, s);
	if (s->stream_url && stream_open(s))
		session_end_call(s, "agent_unavailable");
}

/* The upper bound (us) of the bucket holding the q-quantile of the samples; -1 none. */
static long latency_quantile(const struct latency_hist *h, uint64_t total, double q)
{
	if (!total)
		return -1;
	uint64_t want = (uint64_t)((double)total * q), seen = 0;
	for (int b = 0; b < LATENCY_BUCKETS; b++) {
		seen += h->bucket[b];
		if (seen > want || seen == total)
			return (long)(b + 1) * LATENCY_BUCKET_US;
	}
	return -1;
}

/* {"samples", "p50", "p99", "p999"} of a histogram; a new reference. */
static json_t *latency_json(const struct latency_hist *h)
{
	uint64_t total = 0;
	for (int b = 0; b < LATENCY_BUCKETS; b++)
		total += h->bucket[b];
	return json_pack("{s:I, s:i, s:i, s:i}", "samples", (json_int_t)total, "p50",
			 (int)latency_quantile(h, total, 0.50), "p99",
			 (int)latency_quantile(h, total, 0.99), "p999",
			 (int)latency_quantile(h, total, 0.999));
}

/* At stop: what the engine did, for operators and the benchmark (bench/media.py). */
static void log_stats(struct media_engine *me)
{
	struct media_stats st;
	media_engine_stats(me, &st);
	log_json(LOG_INFO, "media_stats",
		 json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
			   "sessions", (json_int_t)st.sessions, "rtp_in", (json_int_t)st.rtp_in,
			   "rtp_out", (json_int_t)st.rtp_out, "rtp_dropped",
			   (json_int_t)st.rtp_dropped, "srtp_dropped", (json_int_t)st.srtp_dropped,
			   "agent_frames_in", (json_int_t)st.agent_frames_in, "agent_frames_out",
			   (json_int_t)st.agent_frames_out, "playout_dropped_bytes",
			   (json_int_t)st.playout_dropped_bytes, "dtmf_in", (json_int_t)st.dtmf_in,
			   "dtmf_out", (json_int_t)st.dtmf_out, "rtp_to_agent_us",
			   latency_json(&me->to_agent), "agent_to_rtp_us",
			   latency_json(&me->to_phone)));
}

static void on_message(int id, void *data, void *arg)
{
	struct media_engine *me = arg;
	struct media_msg *m = data;
	struct session *s = NULL;
	switch (id) {
	case MSG_START: on_start(me, m); break;
	case MSG_UPDATE:
		s = session_find(me, m->call_id);
		if (s) {
			struct sa sa;
			sa_init(&sa, AF_UNSPEC);
			if (m->remote_len)
				sa_set_sa(&sa, (const struct sockaddr *)&m->remote);
			rtp_session_update(s, m->remote_len ? &sa : NULL, m->pt, m->te_pt);
			if (m->has_srtp && !s->web)
				(void)sec_open(s, &m->srtp); /* logged; the old keys go on */
		}
		break;
	case MSG_STOP:
		s = session_find(me, m->call_id);
		if (s)
			session_free(s);
		break;
	case MSG_DTMF:
		s = session_find(me, m->call_id);
		if (s)
			rtp_queue_dtmf(s, m->digits);
		break;
	case MSG_GOODBYE:
		s = session_find(me, m->call_id);
		if (s) {
			goodbye_begin(s, m->audio, m->audio_len, media_now_ms() + m->max_wait_ms);
			goodbye_check(s, media_now_ms()); /* nothing to play: over at once */
		} else if (me->hooks.goodbye_done) {
			me->hooks.goodbye_done(me->hooks.arg, m->call_id, 0);
		}
		break;
	case MSG_QUIT:
		log_stats(me);
		for (int i = 0; i < SESSION_TABLE_SIZE; i++)
			while (me->table[i])
				session_free(me->table[i]);
		web_close_all(me);
		re_cancel();
		break;
	default: break;
	}
	msg_free(m);
}

static int post(struct media_engine *me, enum msg_type type, struct media_msg *m)
{
	int rc = -1;
	pthread_mutex_lock(&me->mu);
	if (!me->gone && me->mq)
		rc = mqueue_push(me->mq, (int)type, m) ? -1 : 0;
	pthread_mutex_unlock(&me->mu);
	if (rc)
		msg_free(m);
	return rc;
}

static struct media_msg *msg_new(const char *call_id)
{
	struct media_msg *m = calloc(1, sizeof *m);
	if (m)
		snprintf(m->call_id, sizeof m->call_id, "%s", call_id);
	return m;
}

int media_session_start(struct media_engine *me, const struct media_start *ms)
{
	struct media_msg *m = msg_new(ms->call_id);
	if (!m)
		goto fail;
	m->start = *ms;
	m->start.stream_url = m->start.metadata = m->start.account = NULL;
	m->stream_url = ms->stream_url ? strdup(ms->stream_url) : NULL;
	m->metadata = ms->metadata ? strdup(ms->metadata) : NULL;
	m->account = ms->account ? strdup(ms->account) : NULL;
	if (ms->web) {
		m->web = *ms->web;
		m->start.web = &m->web;
		if (ms->web->pending_len && (m->web_pending = malloc(ms->web->pending_len)))
			memcpy(m->web_pending, ms->web->pending, ms->web->pending_len);
		m->web.pending = m->web_pending;
	}
	if ((ms->stream_url && !m->stream_url) || (ms->metadata && !m->metadata) ||
	    (ms->account && !m->account) || (ms->web && ms->web->pending_len && !m->web_pending)) {
		msg_free(m);
		goto fail;
	}
	if (post(me, MSG_START, m) == 0)
		return 0;
fail:
	close_fds(me, ms); /* the sockets are ours: nobody else will close them */
	return -1;
}

int media_session_update(struct media_engine *me, const char *call_id,
			 const struct sockaddr_storage *remote, socklen_t remote_len,
			 int payload_type, int te_payload_type, const struct media_srtp *srtp)
{
	struct media_msg *m = msg_new(call_id);
	if (!m)
		return -1;
	if (remote && remote_len) {
		m->remote = *remote;
		m->remote_len = remote_len;
	}
	m->pt = payload_type;
	m->te_pt = te_payload_type;
	if (srtp) {
		m->has_srtp = true;
		m->srtp = *srtp;
	}
	return post(me, MSG_UPDATE, m);
}

int media_session_stop(struct media_engine *me, const char *call_id)
{
	struct media_msg *m = msg_new(call_id);
	return m ? post(me, MSG_STOP, m) : -1;
}

int media_send_dtmf(struct media_engine *me, const char *call_id, const char *digits)
{
	struct media_msg *m = msg_new(call_id);
	if (!m)
		return -1;
	snprintf(m->digits, sizeof m->digits, "%s", digits);
	return post(me, MSG_DTMF, m);
}

int media_session_goodbye(struct media_engine *me, const char *call_id, const uint8_t *audio,
			  size_t len, int max_wait_ms)
{
	struct media_msg *m = msg_new(call_id);
	if (!m)
		return -1;
	if (len) {
		m->audio = malloc(len);
		if (!m->audio) {
			msg_free(m);
			return -1;
		}
		memcpy(m->audio, audio, len);
		m->audio_len = len;
	}
	m->max_wait_ms = max_wait_ms < 0 ? 0 : max_wait_ms;
	return post(me, MSG_GOODBYE, m);
}

void media_engine_stats(struct media_engine *me, struct media_stats *out)
{
	out->sessions = atomic_load_explicit(&me->stats.sessions, memory_order_relaxed);
	out->rtp_in = atomic_load_explicit(&me->stats.rtp_in, memory_order_relaxed);
	out->rtp_out = atomic_load_explicit(&me->stats.rtp_out, memory_order_relaxed);
	out->rtp_dropped = atomic_load_explicit(&me->stats.rtp_dropped, memory_order_relaxed);
	out->agent_frames_in = atomic_load_explicit(&me->stats.agent_in, memory_order_relaxed);
	out->agent_frames_out = atomic_load_explicit(&me->stats.agent_out, memory_order_relaxed);
	out->playout_dropped_bytes =
		atomic_load_explicit(&me->stats.playout_dropped, memory_order_relaxed);
	out->dtmf_in = atomic_load_explicit(&me->stats.dtmf_in, memory_order_relaxed);
	out->dtmf_out = atomic_load_explicit(&me->stats.dtmf_out, memory_order_relaxed);
	out->rtp_expected = atomic_load_explicit(&me->stats.rtp_expected, memory_order_relaxed);
	out->rtp_lost = atomic_load_explicit(&me->stats.rtp_lost, memory_order_relaxed);
	out->srtp_dropped = atomic_load_explicit(&me->stats.srtp_dropped, memory_order_relaxed);
}

/* The collector: the engine's counters, as the metrics name them. */
static void collect_stats(void *arg, struct metrics_sample *out)
{
	struct media_stats st;
	media_engine_stats(arg, &st);
	out->media_sessions += (int64_t)st.sessions;
	out->rtp_in += (int64_t)st.rtp_in;
	out->rtp_out += (int64_t)st.rtp_out;
	out->rtp_dropped += (int64_t)st.rtp_dropped;
	out->rtp_expected += (int64_t)st.rtp_expected;
	out->rtp_lost += (int64_t)st.rtp_lost;
	out->agent_frames_in += (int64_t)st.agent_frames_in;
	out->agent_frames_out += (int64_t)st.agent_frames_out;
	out->dtmf_in += (int64_t)st.dtmf_in;
	out->dtmf_out += (int64_t)st.dtmf_out;
	out->playout_dropped_bytes += (int64_t)st.playout_dropped_bytes;
}

/* ---- the thread ------------------------------------------------------------------------- */

static void started(struct media_engine *me, int status)
{
	pthread_mutex_lock(&me->start_mu);
	me->start_status = status;
	me->started = true;
	pthread_cond_signal(&me->start_cv);
	pthread_mutex_unlock(&me->start_mu);
}

static int loop_setup(struct media_engine *me)
{
	struct rlimit rl;
	int maxfds = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		maxfds = rl.rlim_cur > 1048576 ? 1048576 : (int)rl.rlim_cur;
	/* libre indexes its handlers by descriptor: room for every descriptor we may have */
	if (fd_setsize(maxfds))
		return -1;
	if (mqueue_alloc(&me->mq, on_message, me))
		return -1;
	struct sa ns[4];
	uint32_t n = 4;
	char domain[64] = "";
	if (dns_srv_get(domain, sizeof domain, ns, &n) || n == 0) {
		/* no resolver configured: numeric stream URLs still work */
		sa_set_str(&ns[0], "127.0.0.1", 53);
		n = 1;
	}
	if (dnsc_alloc(&me->dnsc, NULL, ns, n))
		return -1;
	if (http_client_alloc(&me->http, me->dnsc))
		return -1;
	if (websock_alloc(&me->ws, NULL, NULL))
		return -1;
	return 0;
}

static void *thread_main(void *arg)
{
	struct media_engine *me = arg;
	pthread_setname_np(pthread_self(), "cp-media");
	if (libre_init()) {
		started(me, -1);
		return NULL;
	}
	if (loop_setup(me)) {
		log_msg(LOG_ERROR, "media", "cannot set up the media event loop");
		pthread_mutex_lock(&me->mu);
		me->gone = true;
		me->mq = mem_deref(me->mq);
		pthread_mutex_unlock(&me->mu);
		me->ws = mem_deref(me->ws);
		me->http = mem_deref(me->http);
		me->dnsc = mem_deref(me->dnsc);
		libre_close();
		started(me, -1);
		return NULL;
	}
	started(me, 0);
	re_main(NULL);
	pthread_mutex_lock(&me->mu);
	me->gone = true;
	pthread_mutex_unlock(&me->mu);
	tmr_cancel(&me->wheel_tmr);
	me->ws = mem_deref(me->ws);
	me->http = mem_deref(me->http);
	me->dnsc = mem_deref(me->dnsc);
	pthread_mutex_lock(&me->mu);
	me->mq = mem_deref(me->mq);
	pthread_mutex_unlock(&me->mu);
	libre_close();
	return NULL;
}

struct media_engine *media_engine_start(const struct media_config *cfg,
					const struct media_hooks *hooks)
{
	struct media_engine *me = calloc(1, sizeof *me);
	if (!me)
		return NULL;
	me->cfg = *cfg;
	me->hooks = *hooks;
	if (cfg->recordings_dir) {
		me->recordings_dir = strdup(cfg->recordings_dir);
		if (!me->recordings_dir) {
			free(me);
			return NULL;
		}
		me->cfg.recordings_dir = me->recordings_dir;
		/* before any call can open a recording there */
		if (recorder_repair(me->recordings_dir) < 0)
			log_msg(LOG_WARN, "recorder", "cannot read %s", me->recordings_dir);
		me->recorder = recorder_start(me->recordings_dir);
		if (!me->recorder) {
			free(me->recordings_dir);
			free(me);
			return NULL;
		}
	}
	pthread_mutex_init(&me->mu, NULL);
	pthread_mutex_init(&me->start_mu, NULL);
	pthread_cond_init(&me->start_cv, NULL);
	tmr_init(&me->wheel_tmr);
	if (pthread_create(&me->thread, NULL, thread_main, me)) {
		free(me);
		return NULL;
	}
	pthread_mutex_lock(&me->start_mu);
	while (!me->started)
		pthread_cond_wait(&me->start_cv, &me->start_mu);
	pthread_mutex_unlock(&me->start_mu);
	if (me->start_status) {
		pthread_join(me->thread, NULL);
		media_engine_destroy(me);
		return NULL;
	}
	me->collector = (struct metrics_collector){.collect = collect_stats, .arg = me};
	metrics_collector_add(&me->collector);
	return me;
}

void media_engine_stop(struct media_engine *me)
{
	if (!me)
		return;
	if (post(me, MSG_QUIT, NULL) == 0)
		pthread_join(me->thread, NULL);
	recorder_stop(me->recorder); /* every session closed its recording: finish them */
	me->recorder = NULL;
}

void media_engine_destroy(struct media_engine *me)
{
	if (!me)
		return;
	metrics_collector_remove(&me->collector);
	pthread_mutex_destroy(&me->mu);
	pthread_mutex_destroy(&me->start_mu);
	pthread_cond_destroy(&me->start_cv);
	recorder_stop(me->recorder);
	free(me->recordings_dir);
	free(me);
}
