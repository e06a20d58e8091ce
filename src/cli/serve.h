/*
 * serve.h - what `callplane serve` is assembled from, shared by serve.c (which runs it),
 * serve_config.c (which settles its options) and the fuzz targets that feed them hostile input:
 * the options as given, the typed settings they settle into, and the HTTP route tables.
 *
 * Options come from the command line first, then from CALLPLANE_* environment variables, then
 * from the --config file (a JSON object keyed by the long option names; strings, integers,
 * booleans for flags), then from the defaults. serve_settle()
 * checks every value before anything is opened or started, so a bad value exits 2 with one
 * line saying which option is wrong and what it must be.
 */
#ifndef CP_SERVE_H
#define CP_SERVE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "args.h"
#include "core/log.h"
#include "http/http.h"
#include "sip/sip.h"
#include "webhook/webhook.h"

/* The options as given: each NULL until the command line, the environment or the config file
 * sets it; the strings belong to argv, the environment or the config file's JSON. */
struct serve_config {
	const char *db, *http, *sip, *config, *sync, *http_threads, *log_level;
	const char *trunk, *trunk_auth, *trunk_srtp, *ring_timeout, *hangup_rate, *hangup_wait,
		*rtp_ports, *rtp_addrs, *rtp_advertise, *sip_advertise, *rate_limit, *wh_retry,
		*wh_max_age, *wh_timeout, *wh_per_tenant, *media_timeout, *agent_grace, *recordings,
		*events_per_key, *allow_any_inbound, *inbound_rate;
	const char *wh_allow_private; /* a flag: "1" when given */
	const char *metrics_token;
	const char *drain_timeout, *pid_file, *tls_cert, *tls_key;
	const char *sip_tls, *sip_tls_cert, *sip_tls_key, *sip_tls_ca;
	const char *http_max_conns, *http_max_conns_per_ip, *http_idle, *sip_tcp_max_conns,
		*sip_tcp_max_conns_per_ip, *sip_tcp_idle;
};

/* One option of serve: its long name (also the config file's key and, in capitals, the
 * CALLPLANE_ environment variable's), where struct serve_config keeps its text, and whether
 * it takes a value (args.h). */
struct serve_option {
	const char *name;
	size_t offset;
	enum opt_kind kind;
};
#define SERVE_OPTIONS_MAX 64 /* room for serve_options[] in a fixed array */
extern const struct serve_option serve_options[];
extern const size_t serve_n_options;

/* The slot of c that holds o's text. */
const char **serve_option_slot(struct serve_config *c, const struct serve_option *o);
/* The option called name (no leading "--"), or NULL. */
const struct serve_option *serve_option_named(const char *name);
/* Writes o's environment variable's name ("CALLPLANE_HTTP_THREADS") into buf. */
void serve_option_env_name(const struct serve_option *o, char *buf, size_t size);

/* --metrics-token: 16..SERVE_METRICS_TOKEN_MAX visible ASCII characters. */
#define SERVE_METRICS_TOKEN_MIN 16
#define SERVE_METRICS_TOKEN_MAX 256

/* The options settled: checked, typed, defaults applied. */
struct serve_settings {
	char http_host[256];
	int http_port;
	bool sync_full;
	unsigned http_threads; /* 0 = one per core */
	unsigned rate_limit;   /* per key without its own; 0 = none */
	enum log_level log_level;
	struct webhook_config webhooks;
	int webhooks_per_tenant;   /* webhooks one tenant may register */
	int events_per_key;        /* GET /v1/events streams one key may hold */
	char recordings[PATH_MAX]; /* where recordings live */
	char metrics_token[SERVE_METRICS_TOKEN_MAX + 1]; /* GET /metrics needs it; "" = open */
	int drain_timeout_s;                             /* 0: SIGTERM ends every call at once */
	const char *pid_file;           /* NULL: none; points into struct serve_config */
	const char *tls_cert, *tls_key; /* both or neither (NULL: plain HTTP); likewise */
	/* HTTP connections at once, from one address, and how long one may stay idle; 0 (the
	 * caps): derived from RLIMIT_NOFILE by serve.c */
	unsigned http_max_conns, http_max_conns_per_ip, http_idle_s;
	bool with_sip; /* false for --sip none: sip is then unset */
	struct sip_config sip;
};

/* Fills what c leaves NULL from the file c->config names (if any), then from the defaults,
 * and checks every value into *s. 0 on success; -1 with the problem (one line, no "error: "
 * prefix) in why. c's strings may point into the file's JSON, which *holder owns from then on,
 * success or not: json_decref(*holder) once c is no longer read. */
int serve_settle(struct serve_config *c, json_t **holder, struct serve_settings *s, char *why,
		 size_t why_size);

/* The route tables the HTTP server serves, in the order they are searched. */
extern const struct route *const serve_route_tables[];
extern const size_t serve_n_route_tables;

#endif
