/*
 * sip.h - the SIP engine: callplane's telephony engine, built on sofia-sip's nua.
 *
 * The engine runs sofia's event loop in its own thread and owns every dialog. Other threads
 * reach it only through messages (su_msg_send): sip_telephony_ops implements the call service's
 * telephony boundary (call/telephony.h) by posting messages; the engine reports progress back
 * with call_service_post_event()/call_service_inbound(), which never block it.
 */
#ifndef CP_SIP_H
#define CP_SIP_H

#include <stddef.h>

#include "call/call_service.h"
#include "call/telephony.h"
#include "media/media.h"

#define SIP_RTP_ADDRS_MAX 64
#define SIP_ADDR_TEXT_MAX 46         /* INET6_ADDRSTRLEN */

struct sip_config {
	char host[128];              /* listen address (UDP and TCP) */
	int port;
	char advertise[128];         /* address put in Contact/SDP; default: host */
	char trunk[256];             /* "sip:HOST:PORT" for E.164 destinations; "" = none */
	char trunk_user[128], trunk_password[128];  /* digest credentials; "" = none */
	int ring_timeout_s;          /* CANCEL unanswered INVITEs after this; default 60 */
	int hangup_rate;             /* BYE/CANCEL per second at most (paced); default 5000 */
	int hangup_wait_ms;          /* how long an API hang-up may wait for the engine; 2000 */
	int rtp_port_min, rtp_port_max;  /* RTP ports handed out in SDP (each really bound) */
	/* --rtp-addrs: numeric addresses (canonical text) RTP sockets are bound on, taken in
	 * turn, each with the whole port range; none = the advertise address */
	char rtp_addrs[SIP_RTP_ADDRS_MAX][SIP_ADDR_TEXT_MAX];
	int n_rtp_addrs;
	long max_rtp_sockets;        /* RTP sockets open at most, 0 = no cap (see serve.c) */
	unsigned udp_buffer;         /* SO_RCVBUF/SO_SNDBUF of the SIP socket; default 4 MiB */
	struct media_config media;   /* the media plane the engine starts (src/media) */
};

struct sip_engine;

void sip_config_defaults(struct sip_config *cfg);
/* Parses --rtp-addrs ("IP[,IP...]", IPv4 and IPv6 may be mixed) into cfg. On a bad list
 * returns -1 with the reason in err and leaves cfg unchanged. */
int sip_config_set_rtp_addrs(struct sip_config *cfg, const char *list, char *err,
			     size_t err_size);
/* How many calls the RTP ports allow at once: the even ports of the range on each address. */
long sip_config_rtp_capacity(const struct sip_config *cfg);
/* Creates the engine, starts its thread and the media engine, and binds the SIP sockets;
 * NULL on failure (logged). svc must outlive it. Before it takes any call it sends a BYE (or a
 * CANCEL) for each of the n_left dialogs a previous run left up (call_service_left_dialogs())
 * and waits up to 5 s for their answers, filling in left[i].request and .status; left stays
 * the caller's. */
struct sip_engine *sip_engine_start(const struct sip_config *cfg, struct call_service *svc,
				    struct left_dialog *left, size_t n_left);
/* Hangs up every live dialog (end_reason node_shutdown), shuts nua down, joins the thread.
 * Messages sent after that fail (hang-ups: undeliverable). */
void sip_engine_stop(struct sip_engine *eng);
/* Destroys a stopped engine: once nothing (the call-service worker) can call into it. */
void sip_engine_destroy(struct sip_engine *eng);

/* The telephony boundary, to hand to call_service_set_telephony(). */
struct telephony sip_engine_telephony(struct sip_engine *eng);

#endif
