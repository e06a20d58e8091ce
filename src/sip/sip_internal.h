/*
 * sip_internal.h - what the SIP engine's files share. Everything here is touched only on the
 * engine thread, except where a comment says otherwise.
 *
 * A leg is one dialog (one call) as the engine sees it. Its life: created when we dial or an
 * INVITE arrives, bound to its nua handle (the handle's magic), entered in the table under the
 * call id, and released when nua reports the call terminated. Legs are reference counted only
 * so that a message in flight (e.g. an inbound call waiting for the store) can hold one; all
 * counting happens on the engine thread.
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
#include "media/media.h"

enum leg_state {
	LEG_INVITING,     /* outbound: INVITE sent, nothing heard */
	LEG_EARLY,        /* outbound: 18x received */
	LEG_PENDING,      /* inbound: INVITE received, the store is creating the call */
	LEG_ANSWERED,     /* inbound: 200 sent, waiting for the ACK */
	LEG_CONFIRMED,    /* dialog up */
	LEG_CANCELING,    /* we sent CANCEL */
	LEG_BYEING,       /* we sent BYE (or will, once the ACK arrives) */
	LEG_STOPPED,      /* terminated; the handle is destroyed */
};

struct leg {
	struct sip_engine *eng;
	int refs;
	struct leg *hnext;                   /* table chain */
	char call_id[CP_UUID_LEN + 1];       /* callplane call id ("" until an inbound call is stored) */
	char sip_call_id[CALL_PROVIDER_ID_MAX + 1];
	enum call_direction dir;
	enum leg_state state;
	nua_handle_t *nh;
	int rtp_fd, rtcp_fd, rtp_port;       /* ours until the media engine takes them (answer) */
	int rtp_addr;                        /* index in eng->media of the address it is bound on */
	bool media_started;                  /* the media engine has the call (bridge.c) */
	struct sockaddr_storage remote_rtp;  /* the far end's RTP address from its SDP */
	socklen_t remote_rtp_len;            /* 0 = not known */
	int te_payload_type;                 /* the far end's telephone-event type; -1 = not known
					      * (we offer 101), SDP_TE_NONE = it has none */
	char *stream_url, *metadata;         /* heap: handed to the media engine at answer */
	char tenant_id[CP_UUID_LEN + 1];
	su_timer_t *ring_timer, *max_timer;
	int max_duration_s;
	int auth_tries;
	bool ringing_reported;
	bool end_recorded;                   /* the store shows it ended (by us or the far end) */
	enum call_status end_status;         /* what it ended as, when end_recorded */
	char bye_reason[CALL_REASON_MAX + 1];   /* reason of a BYE we owe (crossing, ACK wait) */
	int payload_type;                    /* negotiated codec (0 PCMU, 8 PCMA) */
};

/* A hang-up waiting for its turn in the pacer. */
struct hangup_req {
	struct hangup_req *next;
	char call_id[CP_UUID_LEN + 1];
	char reason[CALL_REASON_MAX + 1];
	int64_t deadline_us;                 /* 0 = none */
	hangup_done_fn done;
	void *arg;
};

#define LEG_TABLE_SIZE 65536

/* An address RTP sockets are bound on: one of --rtp-addrs, or the advertise address. */
struct media_addr {
	int family;                          /* AF_INET or AF_INET6 */
	struct in_addr v4;
	struct in6_addr v6;
	char text[128];                      /* as written in SDP (c= and o=) */
	int next_port;                       /* where the search for a free port starts */
	atomic_int in_use;                   /* port pairs bound on it (the media thread frees) */
};

struct sip_engine {
	struct sip_config cfg;
	struct call_service *svc;
	char contact[200];                   /* "sip:callplane@ADVERTISE:PORT" */
	char contact_hdr[220];               /* "<sip:callplane@ADVERTISE:PORT>": our Contact */
	char trunk_host[260];                /* host[:port] of the trunk, "" = none */

	pthread_t thread;
	su_root_t *root;
	nua_t *nua;
	su_home_t home[1];
	int start_status;                    /* set by the thread: 0 ok, -1 failed */
	pthread_mutex_t start_mu;
	pthread_cond_t start_cv;
	bool started;

	struct leg *table[LEG_TABLE_SIZE];
	size_t n_legs;

	/* pacing of BYE/CANCEL: a token bucket drained by pace_timer */
	struct hangup_req *hq_head, *hq_tail;
	double tokens;
	int64_t tokens_at_us;
	su_timer_t *pace_timer;
	bool pace_armed;

	struct media_addr media[SIP_RTP_ADDRS_MAX];
	int n_media;
	int media_turn;                      /* the address the next call tries first */
	atomic_long rtp_open;                /* calls holding RTP sockets, on all addresses */
	struct media_engine *media_engine;   /* RTP and the agents' streams (src/media) */
	bool stopping;
	su_timer_t *stop_timer;
	/* other threads send messages under msg_mu; gone (set before the root is destroyed)
	 * makes every later send fail instead of touching a destroyed root */
	pthread_mutex_t msg_mu;
	bool gone;
};

/* post.c */
typedef void sip_post_fn(struct sip_engine *eng, void *data);
/* Runs fn(eng, copy of data) on the engine thread; from any thread. -1 if the engine thread
 * is gone or the message could not be made: fn never runs, and data is still the caller's. */
int sip_post(struct sip_engine *eng, sip_post_fn *fn, const void *data, size_t size);

/* leg.c */
struct leg *leg_create(struct sip_engine *eng, enum call_direction dir);
void leg_ref(struct leg *l);
void leg_unref(struct leg *l);
void leg_insert(struct sip_engine *eng, struct leg *l);       /* by l->call_id */
struct leg *leg_find(struct sip_engine *eng, const char *call_id);
/* Calls fn on every leg in the table; fn may take its leg out (leg_stop). */
void leg_foreach(struct sip_engine *eng, void (*fn)(struct leg *l, void *arg), void *arg);
/* Releases the handle and the table's reference: the leg is gone. */
void leg_stop(struct leg *l);
void leg_stop_all(struct sip_engine *eng);
void leg_post_event(struct leg *l, const struct call_update *u);

/* media.c */
/* Sets up eng->media from the configuration; -1 (logged) if an --rtp-addrs address cannot
 * be bound on this host. Before the engine thread starts. */
int media_create(struct sip_engine *eng);
int media_port_create(struct sip_engine *eng, struct leg *l);     /* binds an RTP port */
void media_port_destroy(struct leg *l);
/* A port pair handed to the media engine is closed (any thread). */
void media_port_destroyed(struct sip_engine *eng, int addr_index);
/* Writes our SDP offer/answer; payload_type < 0 offers PCMU+PCMA. */
void media_sdp(struct sip_engine *eng, const struct leg *l, int payload_type, char *buf,
	       size_t size);
/* What the far end's SDP says about its audio: the first audio stream with PCMU or PCMA. */
#define SDP_TE_NONE (-2)
struct sdp_remote {
	int payload_type;                    /* PCMU 0 / PCMA 8, -1 = neither */
	int te_payload_type;                 /* telephone-event/8000; SDP_TE_NONE: the offer has
					      * an audio stream without it */
	struct sockaddr_storage addr;        /* c= and m= port */
	socklen_t addr_len;                  /* 0: no usable address (hold, 0.0.0.0, a name) */
};
void media_parse_sdp(const char *sdp, size_t len, struct sdp_remote *out);
/* Keeps an acceptable SDP (r->payload_type >= 0) on the leg: codec, telephone-event type and
 * the far end's RTP address (kept from before when this SDP has none). */
void media_use_remote(struct leg *l, const struct sdp_remote *r);

/* bridge.c: the SIP engine's side of the media plane */
/* Keeps on the leg what the agent's stream needs from the call (URL, metadata, tenant). */
void bridge_keep_call(struct leg *l, const struct call *c);
/* The dialog is answered: hands the leg's sockets and what the agent needs to the media
 * engine. Once per leg. */
void bridge_start(struct leg *l);
/* A re-INVITE changed the far end's media. */
void bridge_update(struct leg *l);
/* The dialog is ending: media stops. Idempotent. */
void bridge_stop(struct leg *l);
/* The telephony op: digits to the far end of an answered call. */
int bridge_send_dtmf(struct sip_engine *eng, const char *call_id, const char *digits);

/* outbound.c */
void outbound_dial(struct sip_engine *eng, const struct call *c);
void outbound_on_invite_response(struct sip_engine *eng, struct leg *l, int status,
				 sip_t const *sip);

/* inbound.c */
void inbound_on_invite(struct sip_engine *eng, nua_handle_t *nh, sip_t const *sip);

/* hangup.c */
void hangup_request(struct sip_engine *eng, struct hangup_req *req);
void hangup_leg_now(struct sip_engine *eng, struct leg *l, const char *reason);
/* CANCELs an unanswered outbound INVITE (the caller records the end). */
void hangup_cancel_leg(struct sip_engine *eng, struct leg *l, int q850_cause, const char *reason);
void hangup_arm_max_duration(struct sip_engine *eng, struct leg *l);
/* Ends an answered leg for `reason` (max_duration, media_timeout, node_shutdown...): records
 * in_progress -> completed and sends the BYE. false (nothing done) if the leg is not up. */
bool hangup_answered(struct sip_engine *eng, struct leg *l, const char *reason);
void hangup_drain_all(struct sip_engine *eng, const char *reason);
void hangup_fail_queue(struct sip_engine *eng);

#endif
