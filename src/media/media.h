/*
 * media.h - the media plane: RTP for every answered call, bridged to the voice agent's audio
 * WebSocket (the Twilio Media Streams message format; docs/MEDIA.md).
 *
 * One thread (cp-media) runs one libre event loop for every call: the RTP and RTCP sockets,
 * the agents' WebSockets and one timer wheel that paces every call's 20 ms frames. Nothing
 * here runs on the SIP or HTTP threads. Other threads reach the engine only through the
 * functions below, which copy what they are given and post it to the loop (a libre mqueue);
 * none of them blocks on the media thread.
 *
 * The boundary, both ways:
 *   - SIP engine -> media: media_session_start() when a dialog is confirmed (it hands over
 *     the call's RTP/RTCP sockets, which the media thread closes from then on),
 *     media_session_update() on a re-INVITE, media_session_stop() when the dialog ends;
 *   - call service -> media (through the SIP engine's telephony op): media_send_dtmf();
 *   - media -> the layers above: struct media_hooks, called on the media thread. They must
 *     not block: each posts to its own thread's queue.
 * The media layer includes nothing of sip/ or call/: it knows calls by their id only.
 */
#ifndef CP_MEDIA_H
#define CP_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MEDIA_CALL_ID_MAX 36

struct media_config {
	int media_timeout_s;  /* no RTP from the far end this long: end "media_timeout" (60) */
	int agent_grace_ms;   /* agent socket lost: reconnect within this, else end (2000) */
	int agent_connect_ms; /* stream URL unreachable this long: end "agent_unavailable" (3000) */
	int jitter_ms;        /* how long an out-of-order frame waits for the gap (60) */
	size_t playout_max;   /* agent audio queued at most, bytes of 8 kHz mu-law (30 s) */
	size_t agent_sendq_max;     /* bytes queued to an agent that does not read (256 KiB) */
	const char *recordings_dir; /* where recordings go (copied); NULL = no recording */
};

struct media_hooks {
	void *arg;
	/* The media plane decided the call is over (media_timeout, agent_unavailable,
	 * agent_disconnected): hang it up with this end_reason. Once per session at most. */
	void (*end_call)(void *arg, const char *call_id, const char *reason);
	/* The far end pressed a key (RFC 4733), once per key press: 0-9 * # A-D. */
	void (*dtmf)(void *arg, const char *call_id, char digit);
	/* A session's sockets are closed: the port pair bound on rtp address addr_index is
	 * free again (port accounting lives with whoever bound them). */
	void (*released)(void *arg, int addr_index);
	/* A goodbye (media_session_goodbye) is over: everything queued before it and its own
	 * audio has been sent, or its deadline passed, or the session ended first. goodbye_ms:
	 * audio played since the request. Once per goodbye; the moment to send the BYE. */
	void (*goodbye_done)(void *arg, const char *call_id, int goodbye_ms);
};

struct media_engine;

/* SRTP (RFC 3711) with keys exchanged in SDP (SDES, RFC 4568): the suite both ends agreed on
 * and the two master keys (AES-128 key then 112-bit salt, as a=crypto carries them). */
enum media_srtp_suite {
	MEDIA_SRTP_NONE = 0,       /* plain RTP and RTCP */
	MEDIA_SRTP_AES128_SHA1_80, /* AES_CM_128_HMAC_SHA1_80 */
	MEDIA_SRTP_AES128_SHA1_32, /* AES_CM_128_HMAC_SHA1_32 (RTCP keeps an 80-bit tag) */
};
#define MEDIA_SRTP_KEY_LEN 30
struct media_srtp {
	enum media_srtp_suite suite;
	uint8_t tx_key[MEDIA_SRTP_KEY_LEN]; /* ours: what we protect with */
	uint8_t rx_key[MEDIA_SRTP_KEY_LEN]; /* the far end's: what we unprotect with */
};

/* A web call's far end: the browser's WebSocket, upgraded by the HTTP server (docs/MEDIA.md,
 * "Web calls"), given instead of RTP sockets. The media engine reads and writes fd and never
 * close()s it: when it is done it calls release(ctx), exactly once (on its thread; on the
 * caller's when media_session_start() fails), and the owner closes it. */
struct media_web {
	int fd;                 /* connected, non-blocking or not (made non-blocking) */
	const uint8_t *pending; /* bytes the server read past the handshake: read first */
	size_t pending_len;     /* (copied) */
	void (*release)(void *ctx);
	void *ctx;
};

/* What a confirmed dialog hands to the media plane. Everything is copied; the sockets are
 * owned by the media engine from the call on (closed by it, also when the call fails). */
struct media_start {
	const char *call_id;
	int rtp_fd, rtcp_fd;            /* bound, non-blocking; rtcp_fd -1 = no RTCP */
	int addr_index;                 /* passed back in hooks.released */
	struct sockaddr_storage remote; /* the far end's RTP address from its SDP */
	socklen_t remote_len;           /* 0 = unknown until its first packet */
	int payload_type;               /* 0 PCMU or 8 PCMA */
	int te_payload_type;    /* telephone-event payload type, -1 = the far end has none */
	const char *stream_url; /* the agent's WebSocket; NULL = RTP only (comfort noise) */
	const char *metadata;   /* the call's metadata (JSON object text) or NULL: the
				      * agent's start.customParameters */
	const char *account;    /* the tenant id: the agent's start.accountSid */
	bool record;            /* write DIR/<call_id>.wav (ignored without recordings_dir) */
	struct media_srtp srtp; /* suite NONE: plain RTP (copied; wiped once used) */
	/* a web call: the browser's socket instead of RTP (rtp_fd, rtcp_fd -1, remote unset,
	 * addr_index unused: hooks.released is not called for it); NULL for a phone call */
	const struct media_web *web;
};

void media_config_defaults(struct media_config *cfg);

/* Starts the media thread (and, with recordings_dir, repairs what a crash left open there,
 * then starts the recording writer); NULL on failure (logged). */
struct media_engine *media_engine_start(const struct media_config *cfg,
					const struct media_hooks *hooks);
/* Stops every session (agents get "stop", sockets closed, hooks.released called), then the
 * thread. Posting after this fails quietly. */
void media_engine_stop(struct media_engine *me);
/* Frees what media_engine_start() made, once media_engine_stop() has returned; NULL is a
 * no-op. */
void media_engine_destroy(struct media_engine *me);

/* SIP engine -> media. 0 if posted; -1 if the engine is gone or out of memory (start: the
 * sockets are closed and released, or the web socket released, before it returns). */
int media_session_start(struct media_engine *me, const struct media_start *ms);
/* A re-INVITE changed the far end's address or codec; SSRC, sequence and timestamp go on.
 * srtp: the call's SRTP as the new offer and answer agreed (NULL: as it was); keys that
 * changed rekey the session. */
int media_session_update(struct media_engine *me, const char *call_id,
			 const struct sockaddr_storage *remote, socklen_t remote_len,
			 int payload_type, int te_payload_type, const struct media_srtp *srtp);
/* The dialog ended: the agent gets "stop", RTP stops, the sockets are closed. Idempotent;
 * unknown ids are ignored. */
int media_session_stop(struct media_engine *me, const char *call_id);
/* Queues RFC 4733 digits (validated by the caller: 0-9 * # A-D) for an answered call. */
int media_send_dtmf(struct media_engine *me, const char *call_id, const char *digits);
/* The call is about to end: play what is queued, then audio (len bytes of 8 kHz mu-law,
 * copied; 0 = nothing of our own), then call hooks.goodbye_done, after max_wait_ms at the
 * latest. The agent's further media and clear are ignored. A call without media gets the
 * hook at once (goodbye_ms 0). -1 if the engine is gone or out of memory (no hook). */
int media_session_goodbye(struct media_engine *me, const char *call_id, const uint8_t *audio,
			  size_t len, int max_wait_ms);

/* Counters since start, for logs and the benchmark. Read from any thread (relaxed). */
struct media_stats {
	uint64_t sessions, rtp_in, rtp_out, rtp_dropped, agent_frames_in, agent_frames_out,
		playout_dropped_bytes, dtmf_in, dtmf_out;
	/* of the far ends' streams (RFC 3550 A.3), counted at each RTCP report and at their end:
	 * packets sent, by their sequence numbers, and never received */
	uint64_t rtp_expected, rtp_lost;
	/* SRTP and SRTCP packets that failed authentication or replay checks, or did not
	 * parse as such (also in rtp_dropped when RTP) */
	uint64_t srtp_dropped;
};
void media_engine_stats(struct media_engine *me, struct media_stats *out);

#endif
