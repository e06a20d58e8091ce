/*
 * sip_internal.h - what the SIP engine's files share: the engine and leg structures and each
 * file's functions. Everything here is touched only on the engine thread, except where a
 * comment says otherwise.
 *
 * The files form a one-way hierarchy; each calls only files below it:
 *
 *     engine.c              the thread, nua and its events, telephony ops, the media engine
 *       outbound.c  inbound.c  restart.c  register.c  web.c
 *                             dialling out; answering an agent's number; at start-up,
 *                             hanging up what a previous run left up; keeping trunks
 *                             registered; web calls, whose far end is a browser's WebSocket
 *                             instead of a dialog
 *         hangup.c                BYE and CANCEL: paced requests, max duration, shutdown
 *           dialog.c              keeping what ending a dialog after a crash needs
 *             leg.c               leg lifetime, the leg table, events to the call service
 *               media.c  bridge.c  post.c  trunks.c  access.c
 *                 RTP ports and SDP; a leg's media session; messages to the engine thread;
 *                 the trunks (what one may hold, the table of them, whom they admit); the
 *                 per-source INVITE rate and the refusals
 *
 * The declarations below follow that order, bottom first.
 *
 * Lifetimes are named one way: x_create() makes a thing and x_destroy() frees it; x_start()
 * sets something running (a thread, a dialog, a media session) and x_stop() ends it. A leg is
 * reference counted: leg_stop() ends its dialog, and the last leg_unref() destroys it.
 */
#ifndef CP_SIP_INTERNAL_H
#define CP_SIP_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/socket.h>
#include <netinet/in.h>

struct sip_engine;
struct leg;
struct sip_msg;

#define SU_ROOT_MAGIC_T struct sip_engine
#define NUA_MAGIC_T struct sip_engine
#define NUA_HMAGIC_T struct leg
#define SU_TIMER_ARG_T struct leg
#define SU_MSG_ARG_T struct sip_msg

#include <sofia-sip/nta.h>
#include <sofia-sip/nua.h>
#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/tport_tag.h>

#include "sip.h"
#include "sip/sdes.h"
#include "media/media.h"
#include "metrics/metrics.h"

/* Where a leg's dialog stands; only the engine thread reads or changes it. */
enum leg_state {
	LEG_INVITING,    /* outbound: INVITE sent, nothing heard */
	LEG_EARLY,       /* outbound: 18x received */
	LEG_PENDING,     /* inbound: INVITE received, the store is creating the call */
	LEG_ANSWERED,    /* a 200 sent (inbound: answered once the caller ACKs it) or received
			   * (outbound: answered; ACKed once its dialog is kept), no ACK yet */
	LEG_CONFIRMED,   /* dialog up */
	LEG_CANCELING,   /* we sent CANCEL */
	LEG_BYEING,      /* we sent BYE (or will, once the ACK arrives) */
	LEG_WEB_WAITING, /* web: the call waits for its browser to connect (web.c) */
	LEG_STOPPED,     /* terminated; the handle is destroyed */
};

/* One dialog (one call) as the engine sees it; its lifetime is described in leg.c. */
struct leg {
	struct sip_engine *eng;
	int refs;
	struct leg *hnext;             /* table chain */
	char call_id[CP_UUID_LEN + 1]; /* callplane call id, the table's key ("" until chosen) */
	char sip_call_id[CALL_PROVIDER_ID_MAX + 1];
	enum call_direction dir;
	enum leg_state state;
	nua_handle_t *nh;
	int rtp_fd, rtcp_fd, rtp_port;      /* ours until the media engine takes them (answer) */
	int rtp_addr;                       /* index in eng->media of the address it is bound on */
	bool media_started;                 /* the media engine has the call (bridge.c) */
	struct sockaddr_storage remote_rtp; /* the far end's RTP address from its SDP */
	socklen_t remote_rtp_len;           /* 0 = not known */
	int te_payload_type;                /* the far end's telephone-event type; -1 = not known
					      * (we offer 101), SDP_TE_NONE = it has none */
	char *stream_url, *metadata;        /* heap: handed to the media engine at answer */
	char tenant_id[CP_UUID_LEN + 1];
	bool record; /* the media engine records the call */
	su_timer_t *ring_timer, *max_timer;
	int max_duration_s;
	int auth_tries;
	/* outbound to a number: the trunk it was dialled through ("" = the default trunk), whose
	 * credentials answer a challenge; false for a sip: URI, which gets none */
	bool via_trunk;
	char trunk_id[CP_UUID_LEN + 1];
	bool tls; /* the dialog runs over TLS: our Contact says so */
	bool ringing_reported;
	bool end_recorded;                    /* the store shows it ended (by us or the far end) */
	enum call_status end_status;          /* what it ended as, when end_recorded */
	char bye_reason[CALL_REASON_MAX + 1]; /* reason of a BYE we owe (crossing, ACK wait) */
	int payload_type;                     /* negotiated codec (0 PCMU, 8 PCMA) */
	/* SRTP (media.c): what the call asks for (outbound: its trunk's), our keys of the offer's
	 * two a=crypto lines (tag 1 _80, tag 2 _32), and what was agreed: srtp.suite NONE is
	 * plain RTP; srtp_tag the agreed line's tag; srtp_savp the m= line's profile.
	 * srtp_refused: a required offer was answered without a key we can use. Wiped when
	 * the leg is freed. */
	enum sip_srtp srtp_mode;
	uint8_t srtp_offer_keys[2][MEDIA_SRTP_KEY_LEN];
	struct media_srtp srtp;
	unsigned long srtp_tag;
	bool srtp_savp, srtp_refused;
	json_t *dialog;    /* what ending the dialog after a crash needs
					      * (dialog.c); NULL = nothing yet */
	bool dialog_kept;  /* posted to the store: leg_stop() forgets it */
	bool awaiting_ack; /* outbound: our INVITE's 2xx is ACKed once its
					      * dialog is durable (dialog.c) */
	/* a goodbye under way (hangup.c): the hang-ups waiting for its BYE, in order (NULL =
	 * none), when it began, and the timer that ends it should the media plane never say */
	struct hangup_req *goodbye_reqs;
	int64_t goodbye_since_us;
	su_timer_t *goodbye_timer;
	char *max_duration_goodbye; /* heap: the call's text for a max_duration end */
	bool max_duration_asked;    /* the call service was asked for that goodbye */
};

/* A hang-up waiting for its turn in the pacer, or (with a goodbye) for the goodbye's end. */
struct hangup_req {
	struct hangup_req *next;
	char call_id[CP_UUID_LEN + 1];
	char reason[CALL_REASON_MAX + 1];
	int64_t deadline_us; /* 0 = none */
	bool goodbye;        /* the BYE waits for a goodbye (struct hangup_goodbye) */
	uint8_t *audio;      /* heap: the goodbye's own audio until the media
					      * engine has its copy; NULL = none */
	size_t audio_len;
	int max_wait_ms;
	hangup_done_fn done;
	void *arg;
};

#define LEG_TABLE_SIZE 65536

/* An address RTP sockets are bound on: one of --rtp-addrs, or the advertise address. */
struct media_addr {
	int family; /* AF_INET or AF_INET6 */
	struct in_addr v4;
	struct in6_addr v6;
	char text[128];      /* as written in SDP (c= and o=): --rtp-advertise */
	char bind_text[128]; /* what the sockets bind (v4/v6), for logs */
	int next_port;       /* where the search for a free port starts */
	atomic_int in_use;   /* port pairs bound on it (the media thread frees) */
};

/* The engine: created by sip_engine_start(), destroyed by sip_engine_destroy() (engine.c). */
struct sip_engine {
	struct sip_config cfg;
	struct call_service *svc;
	struct left_dialog *left; /* dialogs a previous run left up (restart.c): */
	size_t n_left;            /* hung up as the thread starts, before nua */
	char contact[200];        /* "sip:callplane@ADVERTISE:PORT" */
	char contact_hdr[220];    /* "<sip:callplane@ADVERTISE:PORT>": our Contact */
	/* "<sip:callplane@ADVERTISE:TLS_PORT;transport=tls>": our Contact where the dialog runs
	 * over TLS; "" without --sip-tls */
	char contact_tls_hdr[240];
	struct sip_trunk default_trunk; /* --trunk, --trunk-auth (trunks.c) */
	bool has_default_trunk;
	struct sip_trunk *trunks; /* the stored trunks, sorted by id (trunks.c) */
	size_t n_trunks;
	struct registration *regs; /* the trunks' registrations (register.c) */
	struct access *access;     /* per-source INVITE buckets, refusals (access.c) */
	su_timer_t *reg_timer;     /* ticks while a registration waits to retry */
	bool reg_timer_armed;

	pthread_t thread;
	su_root_t *root;
	nua_t *nua;
	su_home_t home[1];
	int start_status; /* set by the thread: 0 ok, -1 failed */
	pthread_mutex_t start_mu;
	pthread_cond_t start_cv;
	bool started;

	struct leg *table[LEG_TABLE_SIZE]; /* the legs by call id (leg.c) */
	size_t n_legs;

	/* pacing of BYE/CANCEL: a token bucket drained by pace_timer */
	struct hangup_req *hq_head, *hq_tail;
	double tokens;
	int64_t tokens_at_us;
	su_timer_t *pace_timer;
	su_timer_t *guard_timer; /* runs tcp_guard_sweep() */
	int guard_nl, guard_dir; /* its netlink socket, /proc/self/fd; -1: none */
	bool pace_armed;

	struct media_addr media[SIP_RTP_ADDRS_MAX];
	int n_media;
	int media_turn;                    /* the address the next call tries first */
	atomic_long rtp_open;              /* calls holding RTP sockets, on all addresses */
	struct media_engine *media_engine; /* RTP and the agents' streams (src/media) */
	bool stopping;
	su_timer_t *stop_timer;
	/* other threads send messages under msg_mu; gone (set before the root is destroyed)
	 * makes every later send fail instead of touching a destroyed root */
	pthread_mutex_t msg_mu;
	bool gone;
};

/* ---- post.c: messages to the engine thread ---------------------------------------------- */

typedef void sip_post_fn(struct sip_engine *eng, void *data);
/* Runs fn(eng, copy of data) on the engine thread, after what was posted before; from any
 * thread. data is copied byte for byte (it needs no more alignment than a pointer or an
 * int64_t): heap it points to passes to fn, which frees it. -1 if the engine thread is gone or
 * the message could not be made: fn never runs, and data is still the caller's. */
int sip_post(struct sip_engine *eng, sip_post_fn *fn, const void *data, size_t size);

/* ---- trunks.c: the trunk table ---------------------------------------------------------- */

/* Makes the default trunk of cfg.trunk/trunk_user/trunk_password and copies cfg.trunks into
 * the table; before the engine thread starts. -1 if out of memory. */
int trunks_create(struct sip_engine *eng);
/* Replaces the stored trunks with v[0..n) (the table takes v, a heap array, and sorts it). */
void trunks_replace(struct sip_engine *eng, struct sip_trunk *v, size_t n);
void trunks_destroy(struct sip_engine *eng);
/* The trunk of a call: id "" is the default trunk; NULL if there is none such. */
const struct sip_trunk *trunk_find(const struct sip_engine *eng, const char *id);
/* The credentials to answer a digest challenge (a 401's WWW-Authenticate or a 407's
 * Proxy-Authenticate in sip) with a trunk's user and password, as nua_authenticate() takes
 * them ("scheme:realm:user:password"), into cred; false when the challenge names no realm or
 * the credentials do not fit. */
bool trunk_credentials(const char *user, const char *password, sip_t const *sip, char *cred,
		       size_t size);
/* Who an INVITE from sa (NULL: not known) may reach. Counts the stored trunks that admit it
 * (their --inbound-cidr ranges hold it, or they register and sa is their host's or proxy's
 * address; with any, every trunk), and writes their tenants' ids into *tenants (heap,
 * comma-separated, each once; NULL with any or when none admits: the caller frees it).
 * *by_to: ruri_user (may be NULL) is the user of an admitting trunk that registers, so the
 * Request-URI names the registration itself and the dialled number is the To user's. -1 if
 * out of memory. */
int trunks_admit(const struct sip_engine *eng, const struct sockaddr *sa, bool any,
		 const char *ruri_user, char **tenants, bool *by_to);
/* The strictest --srtp of the stored trunks that admit an INVITE from sa (their ranges, their
 * registration; never "any"): what a call from there must have. OFF when none does. */
enum sip_srtp trunks_inbound_srtp(const struct sip_engine *eng, const struct sockaddr *sa);

/* ---- access.c: the per-source INVITE rate, the refusals -------------------------------- */

int access_create(struct sip_engine *eng);
/* Logs the refusal totals and frees the table. */
void access_destroy(struct sip_engine *eng);
/* Takes a token from the bucket of source sa (NULL, or no limit configured: always true);
 * false when it is out of them: the INVITE is refused. */
bool access_rate_ok(struct sip_engine *eng, const struct sockaddr *sa);
/* Counts (and, within the log's own limit, logs) an INVITE from sa refused for its rate or
 * for its source. */
void access_refused(struct sip_engine *eng, const struct sockaddr *sa, bool rate, sip_t const *sip);

/* ---- media.c: RTP ports and SDP --------------------------------------------------------- */

/* Creates the RTP address table (eng->media) from the configuration, trying a bind on each
 * --rtp-addrs address; -1 (logged) if one cannot be bound on this host. Before the engine
 * thread starts. It lives in the engine: there is nothing to destroy. */
int media_create(struct sip_engine *eng);
/* Binds l's RTP/RTCP socket pair on the next free even port (l->rtp_fd, rtcp_fd, rtp_port,
 * rtp_addr); the sockets are l's until bridge_start(). -1 (logged) if no address has a free
 * port or the descriptor cap is reached: l is left without sockets. */
int media_port_create(struct sip_engine *eng, struct leg *l);
/* Closes l's socket pair if it still has it and counts its port free; idempotent. */
void media_port_destroy(struct leg *l);
/* The media engine closed a port pair handed over at answer: counts it free (any thread). */
void media_port_destroyed(struct sip_engine *eng, int addr_index);
/* Writes our SDP for l into buf (truncated to size): an answer with payload_type (0 or 8) and
 * the offer's telephone-event type, or with payload_type < 0 an offer of PCMU, PCMA and 101.
 * SRTP: an offer carries l's two offer keys (media_srtp_offer) unless its mode is off; an
 * answer carries our key of the agreed line when l->srtp has a suite. */
void media_sdp(struct sip_engine *eng, const struct leg *l, int payload_type, char *buf,
	       size_t size);
/* What the far end's SDP says about its audio: the first audio stream with PCMU (0) or PCMA
 * (8), and that stream's telephone-event (a dynamic type). */
#define SDP_TE_NONE (-2)
struct sdp_remote {
	int payload_type;             /* PCMU 0 / PCMA 8, -1 = neither */
	int te_payload_type;          /* telephone-event/8000; SDP_TE_NONE: the offer has
					      * an audio stream without it */
	struct sockaddr_storage addr; /* c= and m= port */
	socklen_t addr_len;           /* 0: no usable address (hold, 0.0.0.0, a name) */
	bool savp;                    /* the stream is RTP/SAVP (then has_crypto) */
	bool has_crypto;              /* crypto: its first a=crypto line we can use */
	struct sdes_crypto crypto;
};
/* Reads sdp (len bytes, not NUL-terminated) into *out; an SDP that does not parse gives
 * payload_type -1, as one without PCMU or PCMA does. */
void media_parse_sdp(const char *sdp, size_t len, struct sdp_remote *out);
/* Keeps an acceptable SDP (r->payload_type >= 0) on the leg: codec, telephone-event type and
 * the far end's RTP address (kept from before when this SDP has none). */
void media_use_remote(struct leg *l, const struct sdp_remote *r);
/* SRTP of an outbound call (l->srtp_mode set): fresh keys for the offer from the CSPRNG. -1
 * if there is no randomness (the call fails rather than go out with a weak key). */
int media_srtp_offer(struct leg *l);
/* The far end's answer to our offer: its key on the line we offered under its tag, or plain
 * RTP; false when the mode is required and there is no usable key (l->srtp_refused). */
bool media_srtp_answered(struct leg *l, const struct sdp_remote *r);
/* Answering an offer (an INVITE or a re-INVITE) for l: SRTP with a fresh key of ours when the
 * offer has a usable key (ours is kept across re-INVITEs of the same suite), else plain
 * RTP. false (488) when plain RTP is not acceptable: l->srtp_mode required, or the call
 * has SRTP already (no downgrade within a call). */
bool media_srtp_answer(struct leg *l, const struct sdp_remote *r);

/* ---- bridge.c: a leg's session in the media plane --------------------------------------- */

/* Keeps on the leg what its media session needs from the call (the agent's URL, metadata,
 * tenant; whether it is recorded) and what it says at max duration; the leg owns the copies
 * (freed when it is destroyed). */
void bridge_keep_call(struct leg *l, const struct call *c);
/* The dialog is answered: hands the leg's sockets and what the agent needs to the media
 * engine, which owns the sockets from then on. Once per leg; nothing without sockets. */
void bridge_start(struct leg *l);
/* A re-INVITE changed the far end's media: tells a started session. */
void bridge_update(struct leg *l);
/* The dialog is ending: media stops. Idempotent. */
void bridge_stop(struct leg *l);
/* Asks the media plane to play what is queued and then audio (len bytes, copied) before the
 * BYE; its goodbye_done hook says when. -1 (nothing asked, no hook will come) when the leg has
 * no media session or the message could not be posted: the BYE may go at once. */
int bridge_goodbye(struct leg *l, const uint8_t *audio, size_t len, int max_wait_ms);
/* The telephony op: queues digits (validated by the caller) for the far end of an answered
 * call (any thread); -1 if there is no media engine or the message could not be posted. */
int bridge_send_dtmf(struct sip_engine *eng, const char *call_id, const char *digits);
/* A web leg is joined: hands the browser's socket (released by the media engine from then
 * on, or here at once when there is no media engine or the leg has media already) and what
 * the agent needs to the media engine. */
void bridge_start_web(struct leg *l, const struct web_socket *ws);

/* ---- leg.c: leg lifetime, the leg table, events ----------------------------------------- */

/* A new leg with one reference (the caller's), no handle, not in the table; NULL if out of
 * memory. */
struct leg *leg_create(struct sip_engine *eng, enum call_direction dir);
void leg_ref(struct leg *l);
/* Drops a reference; the last one destroys the leg: its timers, sockets and copies. */
void leg_unref(struct leg *l);
/* Enters l under l->call_id (which must be set and stay); the table takes a reference. */
void leg_insert(struct sip_engine *eng, struct leg *l);
/* The leg of a call, NULL if none; no reference is taken. */
struct leg *leg_find(struct sip_engine *eng, const char *call_id);
/* Calls fn on every leg in the table; fn may stop its leg (take it out of the table). */
void leg_foreach(struct sip_engine *eng, void (*fn)(struct leg *l, void *arg), void *arg);
/* The dialog is over: stops the leg's timers and media, closes its sockets, destroys its
 * nua handle and takes it out of the table, dropping their references. Idempotent. The leg
 * lives on while a message holds it (state LEG_STOPPED). */
void leg_stop(struct leg *l);
/* Stops every leg in the table: the engine thread's last act. */
void leg_stop_all(struct sip_engine *eng);
/* leg_stop() on the next turn of the loop, after whoever is using l now: for a leg without a
 * dialog (a web leg), which nua will never report terminated. */
void leg_stop_soon(struct leg *l);
/* Posts u about l's call to the call service (never blocks); a terminal step is remembered
 * on the leg (end_recorded, end_status). Nothing for a leg without a call id. */
void leg_post_event(struct leg *l, const struct call_update *u);
/* Whether l's call is answered: its dialog is confirmed, or its outbound INVITE got a 2xx
 * (recorded at once); an inbound 200 is answered only once the caller ACKs it. */
bool leg_answered(const struct leg *l);
/* Posts the end, for `reason`, of the call of a leg that is up (LEG_ANSWERED or
 * LEG_CONFIRMED): completed if it is answered, canceled if not (an inbound 200 that still
 * waits for its ACK). */
void leg_post_end(struct leg *l, const char *reason);
/* Answers the INVITE (or re-INVITE) nh serves, as nua_respond() does, and counts the answer
 * in the metrics: every answer the engine gives itself goes through here. */
void leg_respond(nua_handle_t *nh, int status, char const *phrase, tag_type_t tag,
		 tag_value_t value, ...);
/* Answers every hang-up waiting for l's goodbye with (err, kind, goodbye_ms), in the order
 * they came, frees them and stops the goodbye's timer; l has no goodbye afterwards. Callers
 * that end the call another way answer CP_ERR_NOT_ACTIVE after posting their own end, so the
 * call service reads the end they recorded. */
void leg_goodbye_answer(struct leg *l, enum cp_err err, enum hangup_kind kind, int goodbye_ms);

/* ---- dialog.c: what ending a dialog after a crash needs --------------------------------- */

/* Our INVITE got a provisional answer (sip); keeps what its CANCEL needs, once per INVITE (a
 * new branch after a challenge is kept again), in one job with u (may be NULL: the ringing
 * transition). */
void dialog_ringing(struct leg *l, sip_t const *sip, const struct call_update *u);
/* Our INVITE got its 2xx (sip): keeps the dialog's BYE state in one job with u (may be NULL:
 * the answered transition) and ACKs the 2xx once that job is durable (l->awaiting_ack until
 * then). */
void dialog_answered(struct leg *l, sip_t const *sip, const struct call_update *u);
/* An INVITE to us (sip) that we will answer: remembers its route set, remote target and
 * caller; dialog_acked() completes and keeps it. */
void dialog_invited(struct leg *l, sip_t const *sip);
/* The caller's ACK of our 200 (its To carries our tag): keeps the dialog's BYE state. */
void dialog_acked(struct leg *l, sip_t const *ack);
/* The route set of a dialog from a message's Record-Route (NULL: none), as a JSON array of
 * name-addrs: in order for the callee (UAS), reversed for the caller (UAC), RFC 3261 12.1.1
 * and 12.1.2. The caller owns it. */
json_t *dialog_route_set(sip_record_route_t const *rr, bool reverse);
/* A re-INVITE from the far end (sip): a new Contact is the new remote target, kept. */
void dialog_target_refresh(struct leg *l, sip_t const *sip);
/* A response (sip) to a request nua sent in the dialog: our next CSeq follows it, kept. */
void dialog_sent(struct leg *l, sip_t const *sip);

/* ---- hangup.c: BYE and CANCEL ----------------------------------------------------------- */

/* An API hang-up (hangup.c owns req from here): paced, then answered exactly once through
 * req->done; at once as undeliverable when the engine is stopping. With req->goodbye and an
 * answered leg with media, the BYE waits for the goodbye (hangup_goodbye_over). */
void hangup_request(struct sip_engine *eng, struct hangup_req *req);
/* The media plane says l's goodbye is over (goodbye_ms played): the BYE goes out now and
 * every hang-up waiting for it is answered. Nothing when l has no goodbye under way (another
 * end cut it and answered its hang-ups). */
void hangup_goodbye_over(struct sip_engine *eng, struct leg *l, int goodbye_ms);
/* Sends the BYE of an answered leg now (or once its ACK arrives) with a Q.850 16 Reason, and
 * stops its media; a leg without a dialog (a web leg) has only its media to stop, and leaves
 * the table. The caller records the end. */
void hangup_leg_now(struct sip_engine *eng, struct leg *l, const char *reason);
/* CANCELs an unanswered outbound INVITE. The caller records the end. */
void hangup_cancel_leg(struct sip_engine *eng, struct leg *l, int q850_cause, const char *reason);
/* Arms l's max-duration timer (l->max_duration_s, none if 0): at expiry it ends the call as
 * max_duration. */
void hangup_arm_max_duration(struct sip_engine *eng, struct leg *l);
/* Ends a leg that is up for `reason` (max_duration, media_timeout, node_shutdown...): records
 * the end (leg_post_end) and sends the BYE (once the ACK comes, for an inbound 200 still
 * waiting for it). false (nothing done) if the leg is not up. */
bool hangup_answered(struct sip_engine *eng, struct leg *l, const char *reason);
/* Ends every leg for `reason`: CANCELs each unanswered outbound INVITE (recorded canceled),
 * records each web call still waiting for its browser canceled, and ends each answered leg as
 * hangup_answered() does; the rest are ending already, or are inbound calls not answered yet,
 * which inbound.c refuses once the engine is stopping. */
void hangup_drain_all(struct sip_engine *eng, const char *reason);
/* Answers every hang-up still waiting in the pacer as undeliverable. */
void hangup_fail_queue(struct sip_engine *eng);

/* A final answer the far end never gave: a 503 nta made itself, because the request could not
 * be sent (connection refused, a name that did not resolve, ICMP unreachable) or its
 * connection closed before any answer (a TLS handshake refused: engine.c sets
 * TPTAG_SDWN_ERROR so that nta says so). */
static inline bool sip_not_reached(int status, sip_t const *sip)
{
	return status == 503 && nta_sip_is_internal(sip);
}

/* ---- outbound.c, inbound.c: calls out and in -------------------------------------------- */

/* Dials c (INVITE with our offer, ring timer armed), or records it failed at once (no
 * route, no media port, stopping, out of memory). c stays the caller's. */
void outbound_dial(struct sip_engine *eng, const struct call *c);
/* nua_r_invite: a provisional keeps what a CANCEL needs (18x: ringing); a 2xx keeps the
 * answer's SDP and is recorded answered (in_progress) with its dialog, ACKed once that is
 * durable; 401/407 answered once with the trunk's credentials; other finals end the call
 * (phrase: the response's, logged when nta made it itself). */
void outbound_on_invite_response(struct sip_engine *eng, struct leg *l, int status,
				 char const *phrase, sip_t const *sip);
/* nua_i_invite without a leg: refuses it at once (403 from a source no trunk admits, 503
 * over the source's rate, 404, 488, 503 stopping) or makes a pending leg and asks the call
 * service to store the call; the answer comes back as a message. */
void inbound_on_invite(struct sip_engine *eng, nua_handle_t *nh, sip_t const *sip);
/* What an INVITE's headers say about the call (sofia parsed them; this reads them). */
struct invite_facts {
	char number[STORE_NUMBER_MAX + 2];      /* the dialled number, "+" in front */
	char from[CALL_ADDR_MAX + 1];           /* the From URI ("" for none), truncated */
	char to[CALL_ADDR_MAX + 1];             /* the Request-URI, truncated */
	char call_id[CALL_PROVIDER_ID_MAX + 1]; /* the Call-ID ("" for none), truncated */
};
/* Fills *f from sip (a request): the dialled number from the Request-URI user, or with by_to
 * (the Request-URI names a registration of ours) from the To user; false when that is no
 * E.164 number (with or without its "+"): the INVITE is then refused 404. */
bool inbound_read_invite(sip_t const *sip, bool by_to, struct invite_facts *f);

/* ---- register.c: trunks' registrations ------------------------------------------------- */

/* The stored trunks are about to be v[0..n) (before the table is replaced, and once after
 * nua is created): registrations of trunks gone or changed end (un-REGISTER), trunks with
 * --register that have none start one. */
void register_reconcile(struct sip_engine *eng, const struct sip_trunk *v, size_t n);
/* nua_r_register / nua_r_unregister on a registration's handle (nh). */
void register_on_response(struct sip_engine *eng, nua_handle_t *nh, nua_event_t event, int status,
			  char const *phrase, sip_t const *sip);
/* Whether nh is a registration's handle (not a request nua made a handle for). */
bool register_owns(struct sip_engine *eng, nua_handle_t *nh);
/* After nua's shutdown: reports every registration left unregistered and frees them. */
void register_stop(struct sip_engine *eng);

/* ---- web.c: web calls ------------------------------------------------------------------- */

/* A web call c waits for its browser (c stays the caller's): a leg without a dialog, in the
 * table, that ends the call no_answer ("token_expired") unless joined within join_ms. */
void web_leg_open(struct sip_engine *eng, const struct call *c, int join_ms);
/* The browser of call_id connected: a waiting leg is answered (in_progress) and ws becomes its
 * media session's far end; otherwise ws is released (the browser sees its socket close). */
void web_leg_join(struct sip_engine *eng, const char *call_id, const struct web_socket *ws);

/* ---- tls.c: the files of SIP over TLS -------------------------------------------------- */

/* The CA file servers are checked against: --sip-tls-ca, else OpenSSL's default file. */
const char *sip_tls_ca_file(const struct sip_config *cfg);
/* Makes a private directory (its path into dir) holding the checked files as sofia's TLS
 * transport reads them (cafile.pem; agent.pem with --sip-tls-cert); -1 (why set, nothing
 * left behind) on failure. The caller binds, then removes it with sip_tls_unstage(). */
int sip_tls_stage(const struct sip_config *cfg, char *dir, size_t size, char *why, size_t why_size);
/* Removes what sip_tls_stage() made in dir (nothing when dir is ""); dir becomes "". */
void sip_tls_unstage(char *dir);
/* The Contact for a dialog over TLS (tls true) or not. */
const char *sip_contact_hdr(const struct sip_engine *eng, bool tls);

/* ---- restart.c: dialogs a previous run left up ------------------------------------------ */

/* Before nua listens on url: sends a BYE (or CANCEL) for each of left[0..n) from its kept
 * state through an nta agent of its own on url (and, with sips_url not empty, on that TLS
 * address, its files in tls_dir, for the dialogs kept over TLS), waits up to wait_ms for
 * their final answers and fills in left[i].request and .status. -1 (logged) if it cannot
 * listen on url. */
int restart_hangup(struct sip_engine *eng, const char *url, const char *sips_url,
		   const char *tls_dir, struct left_dialog *left, size_t n, int wait_ms);

/* tcpguard.c: shuts down SIP over TCP connections unused for --sip-tcp-idle-timeout, and
 * those beyond --sip-tcp-max-connections (in all) and --sip-tcp-max-connections-per-ip (from
 * one address), the most idle first. tcp_guard_open() takes the two descriptors a sweep needs
 * at start (a flood must not leave it none), tcp_guard_close() gives them back; each sweep
 * (SIP thread) returns whether it shut any down. */
void tcp_guard_open(struct sip_engine *eng);
bool tcp_guard_sweep(struct sip_engine *eng);
void tcp_guard_close(struct sip_engine *eng);

#endif
