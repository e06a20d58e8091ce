/*
 * media_internal.h - what the media engine's files share. Everything here is touched only on
 * the media thread (cp-media), except media_engine.stats (atomics) and the mqueue.
 *
 * A session is one answered call's media: its RTP/RTCP sockets, what we send (SSRC, sequence,
 * timestamp, the agent's queued audio, DTMF being played), what we receive (the jitter
 * buffer, RTCP reception statistics, the latched source address) and, when the call has a
 * stream URL, its agent stream (stream.c). Sessions are owned by the engine's table; a
 * session is freed only by session_free(), which unhooks it from the table and the wheel.
 */
#ifndef CP_MEDIA_INTERNAL_H
#define CP_MEDIA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* libre's headers one by one: re.h would bring re_json.h, whose enum clashes with jansson's */
#include <re_types.h>
#include <re_fmt.h>
#include <re_mem.h>
#include <re_mbuf.h>
#include <re_list.h>
#include <re_sa.h>
#include <re_tmr.h>
#include <re_main.h>
#include <re_mqueue.h>
#include <re_sys.h>
#include <re_base64.h>
#include <re_rtp.h>
#include <re_telev.h>
#include <re_tcp.h>
#include <re_msg.h>
#include <re_http.h>
#include <re_dns.h>
#include <re_websock.h>

#include "core/util.h"
#include "media/agent_msg.h"
#include "media/jitter.h"
#include "metrics/metrics.h"
#include "media/media.h"
#include "media/record.h"

#define FRAME_MS 20
#define FRAME_SAMPLES 160    /* 20 ms at 8 kHz */
#define WHEEL_SLOTS FRAME_MS /* one slot per millisecond of the 20 ms frame period */
#define SESSION_TABLE_SIZE 4096
#define RTP_PACKET_MAX 1500 /* what we read of one datagram */
/* room after a packet for what SRTP(C) adds: libsrtp's SRTP_MAX_TRAILER_LEN (a tag and an
 * MKI at most) and SRTCP's index */
#define SRTP_TRAILER_ROOM (16 + 128 + 4)
#define RTCP_INTERVAL_MS 5000
#define LATENCY_BUCKET_US 10 /* the latency histograms: 10 us buckets */
#define LATENCY_BUCKETS 1000 /* up to 10 ms; the last bucket holds everything above */

/* How long audio spends inside callplane, one direction: counted on the media thread, logged
 * when the engine stops. */
struct latency_hist {
	uint64_t bucket[LATENCY_BUCKETS];
};

struct stream;
struct session;
struct srtp_ctx_t_; /* libsrtp's srtp_t (srtp.c) */
struct web;

/*
 * What reaches the agent, as the layers below the stream see it. The media files form one
 * hierarchy: playout.c (the queue) and frame.c (recording, what the agent hears) <- rtp.c (the
 * wire) <- stream.c (the agent's socket) <- engine.c (thread, table, wheel). The only calls that go upward, audio, digits and mark
 * echoes bound for the agent, go through this struct, which stream.c fills in when a session
 * has an agent (session.agent; NULL without one).
 */
struct agent_out {
	/* a far-end frame in order (mu-law), its timestamp in ms since the first */
	void (*media)(struct session *s, const uint8_t *ulaw, size_t n, uint32_t ts_ms);
	void (*dtmf)(struct session *s, char digit);
	/* every byte queued before the mark has been played (or cleared) */
	void (*mark)(struct session *s, const char *name);
};

struct mark {
	struct mark *next;
	uint64_t at; /* played once this many bytes have been played */
	char name[AGENT_MARK_NAME_MAX + 1];
};

struct session {
	struct media_engine *me;
	struct session *hnext;          /* table chain */
	struct session *wnext, **wprev; /* wheel slot list */
	char call_id[MEDIA_CALL_ID_MAX + 1];
	int rtp_fd, rtcp_fd, addr_index;
	bool ending; /* end_call hook called: stop acting on the call */

	/* where we send: the SDP address until the far end's RTP arrives, then (symmetric
	 * RTP) wherever its packets come from */
	struct sa remote, remote_rtcp;
	struct sa sdp_remote; /* the address the far end's SDP gave, last */
	bool have_remote, latched;
	int64_t latched_rx_ms; /* last packet from the latched address */
	int pt, te_pt;

	/* sending */
	uint32_t ssrc, ts, psent, osent;
	uint16_t seq;
	int64_t next_tx_ms; /* when the next 20 ms frame is due */
	int64_t next_rtcp_ms;
	struct telev *telev;
	uint32_t te_ts;

	/* the agent's audio, mu-law, played out at real time: a ring buffer */
	uint8_t *play;
	size_t play_cap, play_head, play_len;
	uint64_t played, queued; /* bytes ever played / queued (for marks) */
	struct mark *marks, **marks_tail;
	/* an agent frame that found the queue empty: when it arrived and where it starts in the
	 * queue (bytes ever queued), so the agent -> RTP histogram learns when it went out */
	int64_t back_from_us; /* 0: none waiting */
	uint64_t back_at;
	/* a goodbye (playout.c): played reaches goodbye_at, or the deadline passes */
	bool goodbye, goodbye_over;
	uint64_t goodbye_from, goodbye_at;
	int64_t goodbye_deadline_ms;

	/* receiving */
	struct jitter jb;
	bool rx_started;
	uint32_t rx_ssrc;
	int64_t last_rx_ms; /* any RTP from the far end (media_timeout) */
	uint32_t rx_first_ts;
	/* RFC 3550 A.1/A.3/A.8 reception statistics, for our receiver reports */
	uint16_t max_seq;
	uint32_t cycles, base_seq, received, expected_prior, received_prior;
	int64_t transit;
	double jitter;
	uint32_t lsr; /* middle 32 bits of the last SR's NTP time */
	int64_t lsr_at_ms;
	struct telev *telev_rx;
	uint16_t rx_seq; /* the packet being received now, and when it */
	int64_t rx_us;   /* arrived (0: none): for the latency histogram */
	/* how much of the reception statistics the engine's counters have (rtp.c rx_account) */
	uint32_t acct_expected;
	int64_t acct_lost;

	/* the recording (record.c), if any: the far end's decoded audio waits in far[] for the
	 * frame we send next, so the two channels stay in step with our 20 ms clock */
	struct recording *rec;
	int16_t far[8 * FRAME_SAMPLES];
	size_t far_len;

	/* SRTP (srtp.c): both NULL for plain RTP; the suite and keys (ours, then the far
	 * end's) they were made of */
	struct srtp_ctx_t_ *srtp_tx, *srtp_rx;
	enum media_srtp_suite srtp_suite;
	uint8_t srtp_keys[2 * MEDIA_SRTP_KEY_LEN];

	/* a web call's far end, the browser's WebSocket (web.c), in place of RTP: no RTP sockets
	 * then; NULL for a phone call */
	struct web *web;

	/* the agent */
	char *stream_url, *metadata, *account;
	struct stream *stream;
	const struct agent_out *agent; /* NULL: no agent to tell */
	int64_t started_ms;
};

struct media_engine {
	struct media_config cfg;
	struct media_hooks hooks;
	pthread_t thread;
	struct mqueue *mq;
	pthread_mutex_t mu; /* guards mq and gone against a stopping thread */
	bool gone;
	int start_status;
	pthread_mutex_t start_mu;
	pthread_cond_t start_cv;
	bool started;

	struct session *table[SESSION_TABLE_SIZE];
	size_t n_sessions;
	struct session *wheel[WHEEL_SLOTS];
	int next_slot;    /* the slot the wheel timer serves next */
	int64_t wheel_ms; /* the millisecond that slot stands for */
	struct tmr wheel_tmr;

	struct web *web_lingering; /* ended web calls' sockets closing (web.c) */
	struct recorder *recorder; /* NULL: no recordings */
	char *recordings_dir;
	struct dnsc *dnsc;
	struct http_cli *http;
	struct websock *ws;
	uint64_t stream_seq; /* for streamSid */
	/* how long an in-order frame takes from its packet's arrival to the agent's socket, and
	 * an agent frame from its message's arrival to the far end's socket */
	struct latency_hist to_agent, to_phone;

	struct {
		atomic_uint_fast64_t sessions, rtp_in, rtp_out, rtp_dropped, agent_in, agent_out,
			playout_dropped, dtmf_in, dtmf_out, rtp_expected, rtp_lost, srtp_dropped;
	} stats;
	struct metrics_collector collector; /* stats, read by the metrics when scraped */
};

/* The monotonic clock in milliseconds: every deadline of the media plane is on it. */
static inline int64_t media_now_ms(void)
{
	return cp_mono_us() / 1000;
}

/* engine.c */
struct session *session_find(struct media_engine *me, const char *call_id);

/* One latency sample (microseconds) into a histogram. */
static inline void latency_add(struct latency_hist *h, int64_t us)
{
	int64_t b = us / LATENCY_BUCKET_US;
	h->bucket[b < 0 ? 0 : b >= LATENCY_BUCKETS ? LATENCY_BUCKETS - 1 : b]++;
}

/* rtp.c */
int rtp_session_open(struct session *s);
void rtp_session_close(struct session *s);
/* Sends the frame due now: DTMF if any is playing, else the agent's audio, else silence. */
void rtp_send_frame(struct session *s);
/* The agent just queued audio: sends whole frames of it now while that keeps the stream at
 * most two frames ahead of the 20 ms clock (see rtp.c). */
void rtp_send_ahead(struct session *s);
void rtp_send_rtcp(struct session *s, bool bye);
/* One packet from the far end's RTP port (src, arrived at now / rx_us): checked, latched,
 * counted, and handed to the jitter buffer or the DTMF receiver. buf is modified. */
void rtp_input(struct session *s, uint8_t *buf, size_t n, const struct sa *src, int64_t now,
	       int64_t rx_us);
/* One compound RTCP packet from the far end: what its sender reports feed ours. */
void rtcp_input(struct session *s, uint8_t *buf, size_t n);
/* Delivers what the jitter buffer holds and is due to the agent (the wheel calls it for
 * frames held behind a gap). */
void rtp_drain(struct session *s, int64_t now_ms);
void rtp_queue_dtmf(struct session *s, const char *digits);
/* A re-INVITE: new far end address / codec, the latch is released. */
void rtp_session_update(struct session *s, const struct sa *remote, int pt, int te_pt);

/* srtp.c: SRTP and SRTCP (RFC 3711) of a session with keys (docs/CARRIERS.md, "SRTP") */
/* libsrtp's one-time set-up (any thread, once); 0 or -1. */
int sec_init(void);
/* Sets up (or, for new keys, redoes) the session's contexts from k; suite NONE takes them
 * down. -1 (logged) if libsrtp cannot: the session keeps what it had. */
int sec_open(struct session *s, const struct media_srtp *k);
void sec_close(struct session *s);
/* Protects the packet in pkt (len bytes; 4-byte aligned, SRTP_TRAILER_ROOM writable after
 * it) in place; *len grows. -1 if libsrtp refuses (the packet is not to be sent). */
int sec_protect(struct session *s, uint8_t *pkt, size_t *len, bool rtcp);
/* Authenticates and decrypts the packet in pkt (4-byte aligned) in place; *len shrinks. -1
 * (counted in stats.srtp_dropped) if it does not authenticate, is a replay, or is no SRTP. */
int sec_unprotect(struct session *s, uint8_t *pkt, size_t *len, bool rtcp);

/* frame.c: what every far end does with a frame (rtp.c for a phone, web.c for a browser). */
/* The frame just played (mu-law, 160 bytes; NULL: a DTMF event, silence): the recording's
 * right channel, paired with the far end's oldest audio not yet recorded on the left. */
void frame_played(struct session *s, const uint8_t *ulaw);
/* The frame is on its way to the far end: closes an agent -> far end latency sample. */
void frame_sent(struct session *s);
/* n bytes of the far end's audio (mu-law), in order, its timestamp in ms since the first:
 * for the recording's left channel and the agent. */
void frame_heard(struct session *s, const uint8_t *ulaw, size_t n, uint32_t ts_ms);

/* playout.c: the audio queued for the far end; rtp.c takes a frame of it every 20 ms, and
 * the agent's marks are echoed as their audio is taken */
void playout_push(struct session *s, const uint8_t *ulaw, size_t n);
void playout_clear(struct session *s);
void playout_mark(struct session *s, const char *name);
/* Takes up to n bytes of queued audio into out; the rest is silence. */
void playout_take(struct session *s, uint8_t *out, size_t n);
/* playout.c: a goodbye. begin: what is queued, then audio (copied), then hooks.goodbye_done,
 * at deadline_ms at the latest; check: called after every frame sent and every tick;
 * abandon: the session ends before the goodbye did (the hook is still called, once). */
void goodbye_begin(struct session *s, const uint8_t *audio, size_t len, int64_t deadline_ms);
void goodbye_check(struct session *s, int64_t now_ms);
void goodbye_abandon(struct session *s);

/* web.c: a web call's far end, the browser's WebSocket (docs/MEDIA.md, "Web calls") */
/* Takes over the browser's socket for s (pending: a heap copy of what was read past the
 * handshake, or NULL; taken over too) and tells the browser the call started. -1 if out of
 * memory: nothing was taken over. */
int web_open(struct session *s, const struct media_web *mw, uint8_t *pending);
/* Sends the frame due now to the browser: what is queued, else silence. */
void web_send_frame(struct session *s);
/* Called by the wheel: "remote_hangup" once the browser has left, else NULL. */
const char *web_tick(struct session *s, int64_t now_ms);
/* The session ends: the browser is told ("ended", a close frame); its socket lingers for the
 * close handshake (WEB_LINGER_MS at most), then is released. */
void web_close(struct session *s);
/* The engine stops: every lingering socket is released now. */
void web_close_all(struct media_engine *me);

/* stream.c: the agent's WebSocket */
int stream_open(struct session *s);
/* Sends "stop" and closes; frees the stream. */
void stream_close(struct session *s);
/* Called by the wheel every frame: connect retries and the grace period. Returns the
 * end_reason once the agent is given up ("agent_unavailable", "agent_disconnected"), else
 * NULL. */
const char *stream_tick(struct session *s, int64_t now_ms);

#endif
