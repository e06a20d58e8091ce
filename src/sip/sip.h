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

#include <limits.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "call/call_service.h"
#include "call/telephony.h"
#include "core/netaddr.h"
#include "media/media.h"
#include "store/store.h"

#define SIP_RTP_ADDRS_MAX 64
#define SIP_ADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN */

#define SIP_TRUNK_CIDRS_MAX 32   /* --inbound-cidr ranges of one trunk */
#define SIP_TRUNK_HEADERS_MAX 16 /* --header lines of one trunk */
#define SIP_TRUNK_ADDRS_MAX 8    /* addresses a trunk's host and proxy resolve to */
#define SIP_PASSWORD_MAX 256

enum sip_caller_id { SIP_CALLER_ID_NONE, SIP_CALLER_ID_PAI, SIP_CALLER_ID_RPID };
/* SRTP with SDES keys on a trunk's calls (docs/CARRIERS.md, "SRTP"): none; offered and
 * taken when the far end takes it (RTP/AVP with a=crypto); or the only way (RTP/SAVP,
 * a plain answer or offer is refused). Ordered: the stricter, the greater. */
enum sip_srtp { SIP_SRTP_OFF, SIP_SRTP_OPTIONAL, SIP_SRTP_REQUIRED };
/* "off" | "optional" | "required" into *out; false for anything else. */
bool sip_srtp_parse(const char *text, enum sip_srtp *out);

/* A trunk as the engine uses it: a stored trunk (struct trunk) with its password read and its
 * host and proxy resolved, by whoever loads it (cli/serve_trunks.c), or the default trunk the
 * engine makes of --trunk. Text fields are as they go on the wire. */
struct sip_trunk {
	char id[CP_UUID_LEN + 1];        /* "" = the default trunk (--trunk) */
	char tenant_id[CP_UUID_LEN + 1]; /* "" = the default trunk's: any tenant's */
	/* "HOST[:PORT][;transport=tcp|tls]", IPv6 in brackets: the Request-URI of a number is
	 * sip:NUMBER@target, the registrar's sip:target */
	char target[TRUNK_HOST_MAX + 48];
	bool tcp, tls;                 /* transport tcp or tls (neither: udp) */
	char user[TRUNK_TEXT_MAX + 1]; /* digest user and registered user; "" = none */
	char password[SIP_PASSWORD_MAX + 1];
	bool do_register;
	char aor_domain[TRUNK_HOST_MAX + 3];    /* the host of the registered address (AoR) */
	char outbound_proxy[TRUNK_URI_MAX + 1]; /* "" = none */
	char from_user[TRUNK_TEXT_MAX + 1];     /* "" = the caller's number */
	char from_domain[TRUNK_HOST_MAX + 3];   /* "" = our advertise address */
	enum sip_caller_id caller_id;
	enum sip_srtp srtp;
	struct cidr cidrs[SIP_TRUNK_CIDRS_MAX]; /* INVITEs from these are the trunk's */
	int n_cidrs;
	char headers[TRUNK_HEADERS_MAX + 1]; /* extra INVITE headers, CRLF between lines */
	/* where its host and outbound proxy resolved when it was loaded: with do_register,
	 * INVITEs from these arrive on its registration */
	struct sockaddr_storage addrs[SIP_TRUNK_ADDRS_MAX];
	int n_addrs;
	char problem[TRUNK_TEXT_MAX + 64]; /* why it has no password it needs; "" = none */
};

/* What a stored trunk may hold. The admin CLI refuses anything else before storing it; the
 * loader skips a stored trunk that breaks them (written by hand). */
/* A user part (digest user, From user): 1..TRUNK_TEXT_MAX of letters, digits and
 * -_.!~*'()&=+$,;?/% (RFC 3261 user characters without the escapes checked). */
bool sip_trunk_user_valid(const char *user);
/* An outbound proxy: sip:HOST[:PORT][;params] within TRUNK_URI_MAX bytes, no spaces, no
 * control characters, no <>" (it goes into a Route). */
bool sip_trunk_proxy_valid(const char *uri);
/* One --header: "Name: value", Name an RFC 3261 token of at most 64 bytes that is not a header
 * the engine writes itself (Via, From, To, Contact, Route, Reason, the caller-id headers...,
 * any one-letter compact form), value printable (spaces and tabs allowed, no CR or LF), the
 * line at most 512 bytes. why (may be NULL) receives the reason for a refusal. */
bool sip_trunk_header_valid(const char *line, char *why, size_t why_size);
/* Parses "CIDR[,CIDR...]" (at most SIP_TRUNK_CIDRS_MAX) into out; *n their count. false
 * (why set) on a malformed entry or too many. */
bool sip_trunk_cidrs_parse(const char *list, struct cidr *out, int *n, char *why, size_t why_size);

struct sip_config {
	char host[128]; /* listen address (UDP and TCP) */
	int port;
	char advertise[128]; /* address put in Contact/SDP; default: host */
	char trunk[256];     /* "sip:HOST:PORT" for E.164 destinations; "" = none */
	char trunk_user[128], trunk_password[128]; /* digest credentials; "" = none */
	enum sip_srtp trunk_srtp;       /* --trunk-srtp: SRTP of the default trunk's calls (off) */
	int ring_timeout_s;             /* CANCEL unanswered INVITEs after this; default 60 */
	int hangup_rate;                /* BYE/CANCEL per second at most (paced); default 5000 */
	int hangup_wait_ms;             /* how long an API hang-up may wait for the engine; 2000 */
	int rtp_port_min, rtp_port_max; /* RTP ports handed out in SDP (each really bound) */
	/* --rtp-addrs: numeric addresses (canonical text) RTP sockets are bound on, taken in
	 * turn, each with the whole port range; none = the advertise address */
	char rtp_addrs[SIP_RTP_ADDRS_MAX][SIP_ADDR_TEXT_MAX];
	int n_rtp_addrs;
	/* --rtp-advertise (1:1 NAT): what SDP says instead of each RTP address, in the same order
	 * (one when there is no --rtp-addrs: RTP then binds the SIP listen address); 0 = none */
	char rtp_advertise[SIP_RTP_ADDRS_MAX][SIP_ADDR_TEXT_MAX];
	int n_rtp_advertise;
	long max_rtp_sockets; /* RTP sockets open at most, 0 = no cap (see serve.c) */
	unsigned udp_buffer;  /* SO_RCVBUF/SO_SNDBUF of the SIP socket; default 4 MiB */
	/* SIP over TCP: connections at once, from one address (more are shut down within a
	 * second, the most idle first), and how long one may stay unused; 0 (the caps): no cap */
	unsigned tcp_max_conns, tcp_max_conns_per_ip, tcp_idle_s;
	struct media_config media; /* the media plane the engine starts (src/media) */
	/* the stored trunks the engine starts with (copied by sip_engine_start) */
	const struct sip_trunk *trunks;
	size_t n_trunks;
	/* who may reach us: INVITEs from any address (labs), or only from the addresses a
	 * stored trunk admits (its --inbound-cidr ranges, the far end of its registration) */
	bool allow_any_inbound;
	int inbound_rate; /* new INVITEs per second per source address (bursts of
				      * twice as many); 0 = no limit; default 50 */
	/* SIP over TLS (--sip-tls HOST:PORT): tls_port 0 = none. tls_cert and tls_key (PEM: the
	 * chain, its unencrypted key; both or neither) are what the listener presents; without
	 * them the transport only connects out. tls_ca: the certificates servers are checked
	 * against; "" = the system's store (OpenSSL's default file). */
	char tls_host[128];
	int tls_port;
	char tls_cert[PATH_MAX], tls_key[PATH_MAX], tls_ca[PATH_MAX];
};

struct sip_engine;

/* Reads and checks the TLS files of cfg (cfg->tls_port set) before anything starts: 0; 1 when
 * a file cannot be read, 2 when one does not hold what it must (no certificate, no
 * unencrypted key, a key that is not the certificate's, a CA file without certificates), the
 * problem in why, naming the option and the file. */
int sip_tls_check(const struct sip_config *cfg, char *why, size_t size);

void sip_config_defaults(struct sip_config *cfg);
/* Parses --rtp-addrs ("IP[,IP...]", IPv4 and IPv6 may be mixed) into cfg. On a bad list
 * returns -1 with the reason in err and leaves cfg unchanged. */
int sip_config_set_rtp_addrs(struct sip_config *cfg, const char *list, char *err, size_t err_size);
/* Parses --rtp-advertise ("IP[,IP...]", as --rtp-addrs) into cfg; -1 with the reason in err
 * on a bad list. Whether it matches --rtp-addrs is the caller's to check. */
int sip_config_set_rtp_advertise(struct sip_config *cfg, const char *list, char *err,
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
/* Replaces the engine's stored trunks with trunks[0..n) (copied): calls dialled from then on
 * use them. From any thread; -1 if the engine cannot take them (it keeps the ones it has). */
int sip_engine_set_trunks(struct sip_engine *eng, const struct sip_trunk *trunks, size_t n);
/* Hangs up every live dialog (end_reason reason: node_shutdown, drain_timeout), shuts nua
 * down, joins the thread. Messages sent after that fail (hang-ups: undeliverable). */
void sip_engine_stop(struct sip_engine *eng, const char *reason);
/* Destroys a stopped engine: once nothing (the call-service worker) can call into it. */
void sip_engine_destroy(struct sip_engine *eng);

/* The telephony boundary, to hand to call_service_set_telephony(). */
struct telephony sip_engine_telephony(struct sip_engine *eng);

#endif
