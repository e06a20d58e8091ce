/*
 * serve_config.c - declares the options of `callplane serve` once (serve_options[]) and
 * settles them: the command line first, then CALLPLANE_* environment variables, then the
 * --config file, then the defaults, each value checked and typed (serve.h).
 *
 * One table names every option; the command line, the environment (CALLPLANE_ and the name in
 * capitals, '-' as '_') and the config file (keyed by the name) all read it, so an option
 * added to the table exists in all three. A service manager keeps secrets such as the trunk's
 * credentials in the environment, out of `ps`.
 *
 * Nothing here opens, binds or starts anything, and nothing is printed: a problem comes back
 * as one line for serve.c to print, so a configuration can be checked (and fuzzed) on its own.
 * The config file is any bytes a user wrote: it must be one JSON object whose keys are option
 * names and whose values are strings, integers or (for flags) booleans; anything else is
 * refused with the key named.
 */
#include "serve.h"
#include "cli.h"
#include "core/util.h"
#include "webhook/webhook_registry.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <strings.h>
#include <stdio.h>
#include <string.h>

/* Writes the problem into why; returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return -1;
}

/* An unsigned option's text into *out when given (lo..hi); -1 with the problem in why. */
static int opt_count(const char *text, const char *name, long long lo, long long hi, unsigned *out,
		     char *why, size_t size)
{
	long long v;
	if (!text)
		return 0;
	if (!cp_parse_int(text, lo, hi, &v))
		return fail(why, size, "--%s must be %lld..%lld", name, lo, hi);
	*out = (unsigned)v;
	return 0;
}

#define SLOT(field) offsetof(struct serve_config, field)

/* as written: the options as a table */
/* clang-format off */
const struct serve_option serve_options[] = {
	{"db", SLOT(db), OPT_OPTIONAL}, {"http", SLOT(http), OPT_OPTIONAL},
	{"sip", SLOT(sip), OPT_OPTIONAL}, {"config", SLOT(config), OPT_OPTIONAL},
	{"sync", SLOT(sync), OPT_OPTIONAL}, {"http-threads", SLOT(http_threads), OPT_OPTIONAL},
	{"log-level", SLOT(log_level), OPT_OPTIONAL}, {"trunk", SLOT(trunk), OPT_OPTIONAL},
	{"trunk-auth", SLOT(trunk_auth), OPT_OPTIONAL},
	{"trunk-srtp", SLOT(trunk_srtp), OPT_OPTIONAL},
	{"ring-timeout", SLOT(ring_timeout), OPT_OPTIONAL},
	{"hangup-rate", SLOT(hangup_rate), OPT_OPTIONAL},
	{"hangup-wait-ms", SLOT(hangup_wait), OPT_OPTIONAL},
	{"rtp-ports", SLOT(rtp_ports), OPT_OPTIONAL}, {"rtp-addrs", SLOT(rtp_addrs), OPT_OPTIONAL},
	{"sip-advertise", SLOT(sip_advertise), OPT_OPTIONAL},
	{"rtp-advertise", SLOT(rtp_advertise), OPT_OPTIONAL},
	{"rate-limit", SLOT(rate_limit), OPT_OPTIONAL},
	{"webhook-retry-initial-ms", SLOT(wh_retry), OPT_OPTIONAL},
	{"webhook-max-age-s", SLOT(wh_max_age), OPT_OPTIONAL},
	{"webhook-timeout-ms", SLOT(wh_timeout), OPT_OPTIONAL},
	{"webhooks-per-tenant", SLOT(wh_per_tenant), OPT_OPTIONAL},
	{"media-timeout", SLOT(media_timeout), OPT_OPTIONAL},
	{"agent-grace-ms", SLOT(agent_grace), OPT_OPTIONAL},
	{"recordings", SLOT(recordings), OPT_OPTIONAL},
	{"events-per-key", SLOT(events_per_key), OPT_OPTIONAL},
	{"allow-any-inbound", SLOT(allow_any_inbound), OPT_FLAG},
	{"inbound-rate", SLOT(inbound_rate), OPT_OPTIONAL},
	{"webhook-allow-private", SLOT(wh_allow_private), OPT_FLAG},
	{"metrics-token", SLOT(metrics_token), OPT_OPTIONAL},
	{"drain-timeout", SLOT(drain_timeout), OPT_OPTIONAL},
	{"pid-file", SLOT(pid_file), OPT_OPTIONAL},
	{"tls-cert", SLOT(tls_cert), OPT_OPTIONAL}, {"tls-key", SLOT(tls_key), OPT_OPTIONAL},
	{"sip-tls", SLOT(sip_tls), OPT_OPTIONAL},
	{"sip-tls-cert", SLOT(sip_tls_cert), OPT_OPTIONAL},
	{"sip-tls-key", SLOT(sip_tls_key), OPT_OPTIONAL},
	{"sip-tls-ca", SLOT(sip_tls_ca), OPT_OPTIONAL},
	{"http-max-connections", SLOT(http_max_conns), OPT_OPTIONAL},
	{"http-max-connections-per-ip", SLOT(http_max_conns_per_ip), OPT_OPTIONAL},
	{"http-idle-timeout", SLOT(http_idle), OPT_OPTIONAL},
	{"sip-tcp-max-connections", SLOT(sip_tcp_max_conns), OPT_OPTIONAL},
	{"sip-tcp-max-connections-per-ip", SLOT(sip_tcp_max_conns_per_ip), OPT_OPTIONAL},
	{"sip-tcp-idle-timeout", SLOT(sip_tcp_idle), OPT_OPTIONAL},
};
/* clang-format on */
const size_t serve_n_options = sizeof serve_options / sizeof serve_options[0];
_Static_assert(sizeof serve_options / sizeof serve_options[0] <= SERVE_OPTIONS_MAX,
	       "SERVE_OPTIONS_MAX");

const char **serve_option_slot(struct serve_config *c, const struct serve_option *o)
{
	return (const char **)(void *)((char *)c + o->offset);
}

const struct serve_option *serve_option_named(const char *name)
{
	for (size_t i = 0; i < serve_n_options; i++)
		if (!strcmp(serve_options[i].name, name))
			return &serve_options[i];
	return NULL;
}

void serve_option_env_name(const struct serve_option *o, char *buf, size_t size)
{
	size_t n = (size_t)snprintf(buf, size, "CALLPLANE_%s", o->name);
	for (size_t i = sizeof "CALLPLANE_" - 1; i < n && i < size; i++)
		buf[i] = buf[i] == '-' ? '_' : (char)toupper((unsigned char)buf[i]);
}

/* A flag's value as text ("1" on, NULL off) from what a person writes for yes or no. */
static int flag_text(const char *s, const char **out)
{
	static const char *const on[] = {"1", "true", "yes", "on"};
	static const char *const off[] = {"0", "false", "no", "off", ""};
	for (size_t i = 0; i < sizeof on / sizeof on[0]; i++)
		if (!strcasecmp(s, on[i])) {
			*out = "1";
			return 0;
		}
	for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
		if (!strcasecmp(s, off[i])) {
			*out = NULL;
			return 0;
		}
	return -1;
}

/* Fills options still unset from CALLPLANE_* environment variables (an empty variable counts
 * as unset for a valued option, so `CALLPLANE_TRUNK=` in a unit file leaves the default). Of
 * every variable, only the names of options are read; others (CALLPLANE_URL, …) belong to
 * other commands. seen marks what the environment settled, flags turned off included. */
static int load_env(struct serve_config *c, bool *seen, char *why, size_t size)
{
	for (size_t i = 0; i < serve_n_options; i++) {
		const struct serve_option *o = &serve_options[i];
		const char **slot = serve_option_slot(c, o);
		char name[64];
		serve_option_env_name(o, name, sizeof name);
		const char *v = getenv(name);
		if (*slot || !v)
			continue;
		if (o->kind == OPT_FLAG) {
			if (flag_text(v, slot))
				return fail(why, size, "%s must be 1/true/yes/on or 0/false/no/off",
					    name);
			seen[i] = true;
		} else if (*v) {
			*slot = v;
			seen[i] = true;
		}
	}
	return 0;
}

/* Fills options still unset (by flags or the environment) from the JSON config file: an
 * object keyed by long option names whose values are strings, integers (written as
 * decimal text) or, for flags, booleans. The text of an integer lives in *holder with the
 * file. */
static int load_config_file(struct serve_config *c, const bool *seen, json_t **holder, char *why,
			    size_t size)
{
	if (!c->config)
		return 0;
	json_error_t je;
	json_t *j = json_load_file(c->config, 0, &je);
	if (!j || !json_is_object(j)) {
		fail(why, size, "config %s: %s", c->config, j ? "not a JSON object" : je.text);
		json_decref(j);
		return -1;
	}
	json_t *texts = json_array();
	*holder = json_pack("{s:o, s:o}", "file", j, "texts", texts);
	if (!*holder)
		return fail(why, size, "out of memory");
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v)
	{
		const struct serve_option *o = serve_option_named(k);
		if (!o || !strcmp(k, "config"))
			return fail(why, size, "config %s: unknown option \"%s\"", c->config, k);
		const char **slot = serve_option_slot(c, o);
		bool taken = *slot || seen[o - serve_options];
		const char *text = NULL;
		if (o->kind == OPT_FLAG) {
			if (!json_is_boolean(v))
				return fail(why, size, "config %s: \"%s\" must be true or false",
					    c->config, k);
			text = json_is_true(v) ? "1" : NULL;
		} else if (json_is_string(v)) {
			text = json_string_value(v);
		} else if (json_is_integer(v)) {
			json_t *t = json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
			if (!t || json_array_append_new(texts, t))
				return fail(why, size, "out of memory");
			text = json_string_value(t);
		} else {
			return fail(why, size, "config %s: \"%s\" must be a string or an integer",
				    c->config, k);
		}
		if (!taken)
			*slot = text;
	}
	return 0;
}

/* "HOST:PORT" or "[V6]:PORT" */
static int split_hostport(const char *s, char *host, size_t hsize, int *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon)
		return -1;
	const char *h = s;
	size_t hl = (size_t)(colon - s);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	long long p;
	if (hl == 0 || hl >= hsize || !cp_parse_int(colon + 1, 0, 65535, &p))
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

/* True when s can go into a SIP header or SDP as it is: no space, no control character. */
static bool wire_token(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

/* Copies a file option's path into buf; -1 (why set) when it is empty or too long. */
static int path_option(const char *name, const char *path, char *buf, size_t bsize, char *why,
		       size_t size)
{
	if (!*path || strlen(path) >= bsize)
		return fail(why, size, "--%s must be a file path", name);
	memcpy(buf, path, strlen(path) + 1);
	return 0;
}

/* The SIP over TLS options into sc: --sip-tls HOST:PORT turns the transport on, the files
 * need it, the certificate and its key go together. The files are read later (serve.c, with
 * sip_tls_check()), before anything starts. */
static int sip_tls_from(const struct serve_config *c, struct sip_config *sc, char *why, size_t size)
{
	if (!c->sip_tls) {
		if (c->sip_tls_cert || c->sip_tls_key || c->sip_tls_ca)
			return fail(why, size,
				    "--sip-tls-cert, --sip-tls-key and --sip-tls-ca need"
				    " --sip-tls HOST:PORT");
		return 0;
	}
	if (split_hostport(c->sip_tls, sc->tls_host, sizeof sc->tls_host, &sc->tls_port) ||
	    sc->tls_port == 0)
		return fail(why, size, "--sip-tls must be HOST:PORT (a port above 0), got '%s'",
			    c->sip_tls);
	if (!c->sip_tls_cert != !c->sip_tls_key)
		return fail(why, size,
			    "--sip-tls-cert and --sip-tls-key go together: give both"
			    " or neither");
	if ((c->sip_tls_cert && (path_option("sip-tls-cert", c->sip_tls_cert, sc->tls_cert,
					     sizeof sc->tls_cert, why, size) ||
				 path_option("sip-tls-key", c->sip_tls_key, sc->tls_key,
					     sizeof sc->tls_key, why, size))) ||
	    (c->sip_tls_ca &&
	     path_option("sip-tls-ca", c->sip_tls_ca, sc->tls_ca, sizeof sc->tls_ca, why, size)))
		return -1;
	return 0;
}

/* Fills the SIP engine's configuration; -1 with the problem in why on a bad value. */
static int sip_config_from(const struct serve_config *c, struct sip_config *sc, char *why,
			   size_t size)
{
	long long v;
	sip_config_defaults(sc);
	if (split_hostport(c->sip, sc->host, sizeof sc->host, &sc->port))
		return fail(why, size, "--sip must be HOST:PORT or none, got '%s'", c->sip);
	/* both are written into Contact, the Request-URI and SDP as they are */
	if (c->sip_advertise) {
		if (strlen(c->sip_advertise) >= sizeof sc->advertise ||
		    !wire_token(c->sip_advertise))
			return fail(why, size,
				    "--sip-advertise must be an IP address or host name "
				    "(at most %zu bytes, no spaces or control characters)",
				    sizeof sc->advertise - 1);
		snprintf(sc->advertise, sizeof sc->advertise, "%s", c->sip_advertise);
	}
	if (c->trunk) {
		if (strncmp(c->trunk, "sip:", 4) || strlen(c->trunk) < 5 ||
		    strlen(c->trunk) >= sizeof sc->trunk || !wire_token(c->trunk))
			return fail(why, size, "--trunk must be sip:HOST[:PORT]");
		snprintf(sc->trunk, sizeof sc->trunk, "%s", c->trunk);
	}
	if (c->trunk_auth) {
		const char *colon = strchr(c->trunk_auth, ':');
		if (!colon || colon == c->trunk_auth ||
		    (size_t)(colon - c->trunk_auth) >= sizeof sc->trunk_user ||
		    strlen(colon + 1) >= sizeof sc->trunk_password)
			return fail(why, size, "--trunk-auth must be USER:PASSWORD");
		memcpy(sc->trunk_user, c->trunk_auth, (size_t)(colon - c->trunk_auth));
		snprintf(sc->trunk_password, sizeof sc->trunk_password, "%s", colon + 1);
	}
	if (c->trunk_srtp && !sip_srtp_parse(c->trunk_srtp, &sc->trunk_srtp))
		return fail(why, size, "--trunk-srtp must be off, optional or required");
	if (c->ring_timeout) {
		if (!cp_parse_int(c->ring_timeout, 1, 3600, &v))
			return fail(why, size, "--ring-timeout must be 1..3600 seconds");
		sc->ring_timeout_s = (int)v;
	}
	if (c->hangup_rate) {
		if (!cp_parse_int(c->hangup_rate, 0, 1000000, &v))
			return fail(why, size, "--hangup-rate must be 0 (unpaced)..1000000");
		sc->hangup_rate = (int)v;
	}
	if (c->media_timeout) {
		if (!cp_parse_int(c->media_timeout, 1, 3600, &v))
			return fail(why, size, "--media-timeout must be 1..3600 seconds");
		sc->media.media_timeout_s = (int)v;
	}
	if (c->agent_grace) {
		if (!cp_parse_int(c->agent_grace, 0, 60000, &v))
			return fail(why, size, "--agent-grace-ms must be 0..60000");
		sc->media.agent_grace_ms = (int)v;
	}
	if (c->hangup_wait) {
		if (!cp_parse_int(c->hangup_wait, 1, 60000, &v))
			return fail(why, size, "--hangup-wait-ms must be 1..60000");
		sc->hangup_wait_ms = (int)v;
	}
	if (c->rtp_ports) {
		long long lo, hi;
		char buf[64];
		snprintf(buf, sizeof buf, "%s", c->rtp_ports);
		char *dash = strchr(buf, '-');
		if (dash)
			*dash = '\0';
		if (!dash || !cp_parse_int(buf, 1024, 65534, &lo) ||
		    !cp_parse_int(dash + 1, lo + 1, 65535, &hi))
			return fail(why, size, "--rtp-ports must be LOW-HIGH within 1024-65535");
		sc->rtp_port_min = (int)lo;
		sc->rtp_port_max = (int)hi;
	}
	sc->allow_any_inbound = c->allow_any_inbound != NULL;
	if (c->inbound_rate) {
		if (!cp_parse_int(c->inbound_rate, 0, 1000000, &v))
			return fail(why, size, "--inbound-rate must be 0 (no limit)..1000000");
		sc->inbound_rate = (int)v;
	}
	if (sip_tls_from(c, sc, why, size))
		return -1;
	if (c->rtp_addrs) {
		char err[160];
		if (sip_config_set_rtp_addrs(sc, c->rtp_addrs, err, sizeof err))
			return fail(why, size, "--rtp-addrs must be IP[,IP...]: %s", err);
	}
	if (opt_count(c->sip_tcp_max_conns, "sip-tcp-max-connections", 1, 1000000,
		      &sc->tcp_max_conns, why, size) ||
	    opt_count(c->sip_tcp_max_conns_per_ip, "sip-tcp-max-connections-per-ip", 1, 1000000,
		      &sc->tcp_max_conns_per_ip, why, size) ||
	    opt_count(c->sip_tcp_idle, "sip-tcp-idle-timeout", 1, 86400, &sc->tcp_idle_s, why,
		      size))
		return -1;
	if (c->rtp_advertise) {
		char err[160];
		if (sip_config_set_rtp_advertise(sc, c->rtp_advertise, err, sizeof err))
			return fail(why, size, "--rtp-advertise must be IP[,IP...]: %s", err);
		int want = sc->n_rtp_addrs ? sc->n_rtp_addrs : 1;
		if (sc->n_rtp_advertise != want)
			return fail(why, size,
				    "--rtp-advertise must name %d address%s, one for each "
				    "RTP address (--rtp-addrs, or the --sip address)",
				    want, want == 1 ? "" : "es");
		for (int i = 0; i < sc->n_rtp_advertise; i++) {
			const char *bound = sc->n_rtp_addrs ? sc->rtp_addrs[i] : sc->host;
			bool v6 = strchr(bound, ':') != NULL;
			if (v6 != (strchr(sc->rtp_advertise[i], ':') != NULL))
				return fail(why, size,
					    "--rtp-advertise %s is not of the family of "
					    "the RTP address %s it stands for",
					    sc->rtp_advertise[i], bound);
		}
	}
	return 0;
}

/* --metrics-token into s (none: ""): -1 with the problem in why unless it is 16..256 visible
 * ASCII characters, which an HTTP header carries as they are; a shorter one is guessable. */
static int metrics_token_from(const char *token, struct serve_settings *s, char *why, size_t size)
{
	if (!token)
		return 0;
	size_t n = strlen(token);
	bool visible = true;
	for (const char *p = token; *p; p++)
		visible = visible && *p > ' ' && *p < 0x7f;
	if (n < SERVE_METRICS_TOKEN_MIN || n > SERVE_METRICS_TOKEN_MAX || !visible)
		return fail(why, size,
			    "--metrics-token must be %d..%d visible ASCII characters "
			    "(no spaces)",
			    SERVE_METRICS_TOKEN_MIN, SERVE_METRICS_TOKEN_MAX);
	memcpy(s->metrics_token, token, n + 1);
	return 0;
}

/* The default recordings directory: "recordings" beside the database file (the directory
 * part of its path as given). */
static int default_recordings_dir(const char *db, char *buf, size_t size)
{
	const char *slash = strrchr(db, '/');
	int n = slash ? snprintf(buf, size, "%.*s/recordings", (int)(slash - db), db)
		      : snprintf(buf, size, "recordings"); /* "/db" gives "/recordings" */
	return n > 0 && (size_t)n < size ? 0 : -1;
}

int serve_settle(struct serve_config *c, json_t **holder, struct serve_settings *s, char *why,
		 size_t why_size)
{
	long long v;
	memset(s, 0, sizeof *s);
	*holder = NULL;
	bool seen[sizeof serve_options / sizeof serve_options[0]] = {0};
	if (load_env(c, seen, why, why_size) || load_config_file(c, seen, holder, why, why_size))
		return -1;
	if (!c->db)
		c->db = CLI_DEFAULT_DB;
	if (!c->http)
		c->http = "127.0.0.1:8080";
	if (!c->sip)
		c->sip = "127.0.0.1:5060";
	if (!c->sync)
		c->sync = "full";
	if (!c->log_level)
		c->log_level = "info";

	if (split_hostport(c->http, s->http_host, sizeof s->http_host, &s->http_port))
		return fail(why, why_size, "--http must be HOST:PORT, got '%s'", c->http);
	if (strcmp(c->sync, "full") && strcmp(c->sync, "normal"))
		return fail(why, why_size, "--sync must be full or normal");
	s->sync_full = !strcmp(c->sync, "full");
	if (c->http_threads) {
		if (!cp_parse_int(c->http_threads, 1, 256, &v))
			return fail(why, why_size, "--http-threads must be 1..256");
		s->http_threads = (unsigned)v;
	}
	s->http_idle_s = 30;
	if (opt_count(c->http_max_conns, "http-max-connections", 1, 1000000, &s->http_max_conns,
		      why, why_size) ||
	    opt_count(c->http_max_conns_per_ip, "http-max-connections-per-ip", 1, 1000000,
		      &s->http_max_conns_per_ip, why, why_size) ||
	    opt_count(c->http_idle, "http-idle-timeout", 1, 86400, &s->http_idle_s, why, why_size))
		return -1;
	s->rate_limit = 1000;
	if (c->rate_limit) {
		if (!cp_parse_int(c->rate_limit, 0, 1000000, &v))
			return fail(why, why_size, "--rate-limit must be 0..1000000");
		s->rate_limit = (unsigned)v;
	}
	webhook_config_defaults(&s->webhooks);
	if (c->wh_retry) {
		if (!cp_parse_int(c->wh_retry, 1, 3600000, &v))
			return fail(why, why_size, "--webhook-retry-initial-ms must be 1..3600000");
		s->webhooks.retry_initial_ms = (int)v;
	}
	if (c->wh_max_age) {
		if (!cp_parse_int(c->wh_max_age, 1, 30LL * 86400, &v))
			return fail(why, why_size, "--webhook-max-age-s must be 1..2592000");
		s->webhooks.max_age_ms = v * 1000;
	}
	if (c->wh_timeout) {
		if (!cp_parse_int(c->wh_timeout, 100, 600000, &v))
			return fail(why, why_size, "--webhook-timeout-ms must be 100..600000");
		s->webhooks.timeout_ms = (int)v;
	}
	s->events_per_key = 10;
	if (c->events_per_key) {
		if (!cp_parse_int(c->events_per_key, 1, 1000, &v))
			return fail(why, why_size, "--events-per-key must be 1..1000");
		s->events_per_key = (int)v;
	}
	s->webhooks_per_tenant = WEBHOOKS_PER_TENANT_DEFAULT;
	if (c->wh_per_tenant) {
		if (!cp_parse_int(c->wh_per_tenant, 1, WEBHOOKS_PER_TENANT_MAX, &v))
			return fail(why, why_size, "--webhooks-per-tenant must be 1..%d",
				    WEBHOOKS_PER_TENANT_MAX);
		s->webhooks_per_tenant = (int)v;
	}
	s->webhooks.allow_private = c->wh_allow_private != NULL;
	if (c->recordings) {
		if (!*c->recordings || strlen(c->recordings) >= sizeof s->recordings)
			return fail(why, why_size, "--recordings must be a directory path");
		snprintf(s->recordings, sizeof s->recordings, "%s", c->recordings);
	} else if (default_recordings_dir(c->db, s->recordings, sizeof s->recordings)) {
		return fail(why, why_size,
			    "--db path too long for the recordings directory beside it");
	}
	if (metrics_token_from(c->metrics_token, s, why, why_size))
		return -1;
	if (c->drain_timeout) {
		if (!cp_parse_int(c->drain_timeout, 0, 86400, &v))
			return fail(why, why_size, "--drain-timeout must be 0..86400 seconds");
		s->drain_timeout_s = (int)v;
	}
	if (c->pid_file) {
		if (!*c->pid_file)
			return fail(why, why_size, "--pid-file must be a file path");
		s->pid_file = c->pid_file;
	}
	if (!c->tls_cert != !c->tls_key)
		return fail(why, why_size,
			    "--tls-cert and --tls-key go together: give both or neither");
	if (c->tls_cert && (!*c->tls_cert || !*c->tls_key))
		return fail(why, why_size, "--tls-cert and --tls-key must be file paths");
	s->tls_cert = c->tls_cert;
	s->tls_key = c->tls_key;
	static const char *const levels[] = {"debug", "info", "warn", "error"};
	int level = -1;
	for (int i = 0; i < 4; i++)
		if (!strcmp(c->log_level, levels[i]))
			level = i;
	if (level < 0)
		return fail(why, why_size, "--log-level must be debug, info, warn or error");
	s->log_level = (enum log_level)level;
	s->with_sip = strcmp(c->sip, "none") != 0;
	if (s->with_sip && sip_config_from(c, &s->sip, why, why_size))
		return -1;
	if (s->with_sip)
		s->sip.media.recordings_dir = s->recordings; /* repaired when the engine starts */
	return 0;
}
