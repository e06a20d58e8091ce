/*
 * serve.c - `callplane serve`: wires store, call service, telephony engine and HTTP server,
 * then hands the main thread to lifecycle.c (signals, the drain, the service manager) and shuts
 * down in reverse order. The options are parsed here and settled (checked, typed) by
 * serve_config.c before anything starts.
 *
 * Signals are blocked in every thread (they inherit the mask before they are created) and taken
 * synchronously by lifecycle.c (a signalfd), so no code runs in signal context.
 *
 * Descriptors: every call holds up to three (RTP, RTCP, the agent's WebSocket), so the soft
 * RLIMIT_NOFILE is raised to the hard limit (with CAP_SYS_RESOURCE the hard limit too, up to
 * the kernel's nr_open, at most 1M). Calls may use all but a reserve of it (FD_RESERVE, or a
 * quarter of a small limit), so a node full of calls still has descriptors left for the API
 * that ends them; a call beyond that fails like one that finds no free RTP port. When the
 * limit is below what the RTP ports allow, a warning at start-up says how many calls the node
 * can hold. The reserve is shared out by caps (fit_connections_to_fd_limit): HTTP connections
 * half, SIP over TCP a quarter, one address a quarter of either, the last quarter for the
 * store's pool, webhook deliveries and the listeners; so a flood of idle connections from
 * anywhere is refused (HTTP) or shut down (SIP over TCP, sip/tcpguard.c) before it reaches the
 * descriptors the rest of the server needs, and idle timeouts free what it held.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "cli.h"
#include "args.h"
#include "lifecycle.h"
#include "serve.h"
#include "serve_trunks.h"
#include "call/call_service.h"
#include "core/log.h"
#include "dialects/dialects.h"
#include "http/event_hub.h"
#include "http/routes.h"
#include "media/record.h"
#include "media/tts.h"
#include "sip/sip.h"
#include "store/store.h"
#include "webhook/webhook.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char serve_usage[] =
	"usage: callplane serve [--db PATH] [--http HOST:PORT] [--sip HOST:PORT|none]\n"
	"                       [--config FILE] [--sync full|normal] [--http-threads N]\n"
	"                       [--log-level debug|info|warn|error]\n"
	"  Service: [--drain-timeout SECONDS] (on SIGTERM, wait this long for live calls; default "
	"0)\n"
	"           [--pid-file FILE] (for `callplane drain`)\n"
	"  HTTPS: [--tls-cert FILE --tls-key FILE] (PEM: the certificate chain, its key)\n"
	"  SIP: [--trunk sip:HOST:PORT] [--trunk-auth USER:PASSWORD] [--ring-timeout SECONDS]\n"
	"       [--trunk-srtp off|optional|required] (SRTP of the --trunk's calls; default off)\n"
	"       [--hangup-rate PER_SECOND] [--hangup-wait-ms MS] [--rtp-ports LOW-HIGH]\n"
	"       [--sip-advertise IP] [--rtp-addrs IP[,IP...]] [--rtp-advertise IP[,IP...]]\n"
	"       (1:1 NAT: the public addresses Contact, Via and SDP carry; docs/CARRIERS.md)\n"
	"       [--sip-tls HOST:PORT [--sip-tls-cert FILE --sip-tls-key FILE] [--sip-tls-ca "
	"FILE]]\n"
	"       (SIP over TLS: trunks with --transport tls, sips: URIs; servers are verified\n"
	"       against --sip-tls-ca, default the system's CA store)\n"
	"       [--allow-any-inbound] [--inbound-rate PER_SECOND] (INVITEs are accepted only from\n"
	"       a trunk's --inbound-cidr and registrations unless --allow-any-inbound; at most\n"
	"       PER_SECOND new INVITEs per source, default 50, 0 = no limit)\n"
	"       [--sip-tcp-max-connections N] [--sip-tcp-max-connections-per-ip N]\n"
	"       [--sip-tcp-idle-timeout SECONDS] (default 300; the caps' defaults come from the\n"
	"       descriptor limit, as the HTTP ones: docs/API.md)\n"
	"  Media: [--media-timeout SECONDS] [--agent-grace-ms MS] [--recordings DIR]\n"
	"  API: [--rate-limit PER_SECOND] (per key without its own limit; default 1000, 0 = none)\n"
	"       [--http-max-connections N] [--http-max-connections-per-ip N]\n"
	"       [--http-idle-timeout SECONDS] (default 30)\n"
	"       [--events-per-key N] (GET /v1/events streams one key may hold; default 10)\n"
	"  Metrics: [--metrics-token TOKEN] (GET /metrics then needs Authorization: Bearer TOKEN)\n"
	"  Webhooks: [--webhook-retry-initial-ms MS] [--webhook-max-age-s SECONDS]\n"
	"            [--webhook-timeout-ms MS] [--webhooks-per-tenant N] (default 20)\n"
	"            [--webhook-allow-private] (targets on private addresses: labs, tests)\n"
	"Defaults: --db " CLI_DEFAULT_DB " --http 127.0.0.1:8080 --sip 127.0.0.1:5060\n"
	"          --recordings: a directory \"recordings\" beside the database file\n"
	"Every option may also come from the environment, CALLPLANE_ and its name in capitals "
	"with\n"
	"'_' for '-' (CALLPLANE_HTTP_THREADS), or from --config FILE, a JSON object keyed by the\n"
	"option names (strings, integers; true/false for flags). A flag wins over the "
	"environment,\n"
	"the environment over the file.\n";

/* Raises the soft descriptor limit to the hard one (with CAP_SYS_RESOURCE the hard one too, to
 * nr_open or 1M); returns the soft limit in force. */
static rlim_t raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	rlim_t ceiling = 1u << 20;
	unsigned long long nr_open;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	if (f) {
		if (fscanf(f, "%llu", &nr_open) == 1 && nr_open < ceiling)
			ceiling = (rlim_t)nr_open;
		fclose(f);
	}
	struct rlimit want = {.rlim_cur = ceiling, .rlim_max = ceiling};
	if (rl.rlim_max >= ceiling || setrlimit(RLIMIT_NOFILE, &want) != 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	return rl.rlim_cur;
}

/* Descriptors kept from calls: at most FD_RESERVE, a quarter of a small limit. */
#define FD_RESERVE 1024

/* Descriptors an answered call may hold: RTP, RTCP and the agent's WebSocket. */
#define FDS_PER_CALL 3

/* The descriptors kept from calls under limit; -1 when there is no limit to keep them from. */
static long fd_reserve(rlim_t limit)
{
	if (limit == 0 || limit == RLIM_INFINITY || limit > (rlim_t)LONG_MAX)
		return -1;
	long lim = (long)limit;
	return lim / 4 < FD_RESERVE ? lim / 4 : FD_RESERVE;
}

/* Caps the calls holding media sockets below the descriptor limit; warns when that holds
 * fewer calls than the RTP ports would. */
static void fit_calls_to_fd_limit(struct sip_config *sc, rlim_t limit)
{
	long reserve = fd_reserve(limit);
	if (reserve < 0)
		return;
	long lim = (long)limit;
	sc->max_rtp_sockets = (lim - reserve) / FDS_PER_CALL;
	long ports = sip_config_rtp_capacity(sc);
	if (sc->max_rtp_sockets >= ports)
		return;
	struct rlimit rl = {0};
	getrlimit(RLIMIT_NOFILE, &rl);
	char msg[400];
	snprintf(msg, sizeof msg,
		 "the descriptor limit (RLIMIT_NOFILE %ld, hard %lld) holds at most %ld calls at "
		 "once "
		 "(RTP, RTCP and agent stream sockets: 3 each, %ld descriptors kept for HTTP and "
		 "the store); the RTP ports allow %ld. Raise the hard limit (ulimit -Hn, systemd "
		 "LimitNOFILE=) to hold more",
		 lim, rl.rlim_max == RLIM_INFINITY ? -1LL : (long long)rl.rlim_max,
		 sc->max_rtp_sockets, reserve, ports);
	log_json(LOG_WARN, "fd_limit",
		 json_pack("{s:s, s:I, s:I, s:I}", "message", msg, "limit", (json_int_t)lim,
			   "max_calls", (json_int_t)sc->max_rtp_sockets, "rtp_ports",
			   (json_int_t)ports));
}

/* A total cap not given: 1/share of the reserve (fallback without a limit), at least 1. */
static unsigned cap_of(unsigned given, long reserve, long share, unsigned fallback)
{
	if (given)
		return given;
	if (reserve < 0)
		return fallback;
	return reserve / share > 0 ? (unsigned)(reserve / share) : 1;
}

/* A per-address cap: as given, or a quarter of the total (at least 1); never above it. */
static unsigned per_ip_of(unsigned given, unsigned total)
{
	unsigned v = given ? given : total / 4 > 0 ? total / 4 : 1;
	return v < total ? v : total;
}

/* The connection caps not given, from the reserve kept from calls: HTTP connections half of
 * it, SIP over TCP a quarter, the last quarter left to the store's pool, webhook deliveries,
 * listening sockets and logs; one address a quarter of either cap. Idle connections are
 * closed by their own timeouts; the caps hold a flood of connections below the reserve, so
 * the API that ends calls, the store and the SIP engine keep descriptors. */
static void fit_connections_to_fd_limit(struct serve_settings *set, rlim_t limit)
{
	long reserve = fd_reserve(limit);
	set->http_max_conns = cap_of(set->http_max_conns, reserve, 2, 10000);
	set->http_max_conns_per_ip = per_ip_of(set->http_max_conns_per_ip, set->http_max_conns);
	json_t *o = json_pack("{s:I, s:I, s:I}", "http_max_connections",
			      (json_int_t)set->http_max_conns, "http_max_connections_per_ip",
			      (json_int_t)set->http_max_conns_per_ip, "http_idle_timeout_s",
			      (json_int_t)set->http_idle_s);
	if (set->with_sip) {
		struct sip_config *sc = &set->sip;
		sc->tcp_max_conns = cap_of(sc->tcp_max_conns, reserve, 4, 4096);
		sc->tcp_max_conns_per_ip = per_ip_of(sc->tcp_max_conns_per_ip, sc->tcp_max_conns);
		json_object_set_new(o, "sip_tcp_max_connections", json_integer(sc->tcp_max_conns));
		json_object_set_new(o, "sip_tcp_max_connections_per_ip",
				    json_integer(sc->tcp_max_conns_per_ip));
		json_object_set_new(o, "sip_tcp_idle_timeout_s", json_integer(sc->tcp_idle_s));
	}
	json_object_set_new(o, "fd_limit", json_integer(reserve < 0 ? -1 : (json_int_t)limit));
	log_json(LOG_INFO, "connection_limits", o);
}

const struct route *const serve_route_tables[] = {
	canonical_routes, webhook_routes,  admin_routes,       event_routes,
	openapi_routes,   metrics_routes,  web_routes,         dashboard_routes,
	talkover_routes,  voxworks_routes, pilotstatus_routes, cartesia_routes,
};
const size_t serve_n_route_tables = sizeof serve_route_tables / sizeof serve_route_tables[0];

/* For SIP bound on every address (0.0.0.0 or ::) without --sip-advertise: the address of the
 * interface the kernel routes outgoing packets from (a UDP socket connected to a documentation
 * address, RFC 5737 / RFC 3849: connect() sends nothing), written into sc->advertise. A far end
 * must be told an address it can reach in Contact and SDP; 127.0.0.1 would silently break every
 * call from another host. 0 when there is nothing to choose or it is chosen; -1 (printed) when
 * there is no route to choose from. */
static int choose_advertise(struct sip_config *sc)
{
	bool v6 = !strcmp(sc->host, "::");
	if (sc->advertise[0] || (strcmp(sc->host, "0.0.0.0") && !v6))
		return 0;
	struct sockaddr_storage dst = {0}, src;
	socklen_t len = sizeof src;
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&dst;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(9);
		inet_pton(AF_INET6, "2001:db8::1", &a->sin6_addr);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&dst;
		a->sin_family = AF_INET;
		a->sin_port = htons(9);
		inet_pton(AF_INET, "192.0.2.1", &a->sin_addr);
	}
	int fd = socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int ok = fd >= 0 &&
		 connect(fd, (struct sockaddr *)&dst,
			 v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)) == 0 &&
		 getsockname(fd, (struct sockaddr *)&src, &len) == 0;
	if (fd >= 0)
		close(fd);
	if (ok)
		ok = inet_ntop(src.ss_family,
			       v6 ? (void *)&((struct sockaddr_in6 *)&src)->sin6_addr
				  : (void *)&((struct sockaddr_in *)&src)->sin_addr,
			       sc->advertise, sizeof sc->advertise) != NULL;
	if (!ok) {
		sc->advertise[0] = '\0';
		fprintf(stderr,
			"error: --sip %s:%d listens on every address, and this host has no "
			"route out to take an address from for Contact and SDP: give "
			"--sip-advertise IP\n",
			v6 ? "[::]" : sc->host, sc->port);
		return -1;
	}
	log_json(LOG_INFO, "sip_advertise_chosen",
		 json_pack("{s:s, s:s}", "address", sc->advertise, "why",
			   "--sip binds every address; "
			   "--sip-advertise sets it"));
	return 0;
}

/* The trunks as the engine has them: their generation in the store when they were loaded. */
struct trunk_reload {
	struct store *st;
	struct sip_engine *sip; /* NULL: no engine (yet): nothing to reload */
	int64_t gen;
};

/* Each second, on the main thread: hands the engine the stored trunks again when their
 * generation moved (the admin CLI, another process, changed one). */
static void reload_trunks(void *arg)
{
	struct trunk_reload *r = arg;
	int64_t now;
	if (!r->sip || STORE(r->st, trunk_generation, &now) != STORE_OK || now == r->gen)
		return;
	struct sip_trunk *v;
	size_t n;
	if (serve_trunks_load(r->st, &v, &n, &now) == 0 && sip_engine_set_trunks(r->sip, v, n) == 0)
		r->gen = now;
	free(v);
}

/* Who hears of each committed outbox event. */
struct listeners {
	struct app *app;
	struct lifecycle *life;
};

/* A transition's outbox event committed: wake whoever delivers events, and a drain waiting
 * for the last call to end. */
static void on_event(void *arg)
{
	struct listeners *l = arg;
	webhook_worker_wake(l->app->hooks);
	event_hub_wake(l->app->events);
	lifecycle_wake(l->life);
}

int cli_serve(int argc, char **argv)
{
	struct serve_config c = {0};
	struct opt opts[SERVE_OPTIONS_MAX + 1];
	for (size_t i = 0; i < serve_n_options; i++)
		opts[i] = (struct opt){serve_options[i].name,
				       serve_option_slot(&c, &serve_options[i]),
				       serve_options[i].kind};
	opts[serve_n_options] = (struct opt){0};
	const char *pos[1];
	int n_pos;
	enum args_result ar = args_parse(argc, argv, opts, pos, 0, &n_pos, serve_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	json_t *file = NULL;
	struct http_tls tls = {0};
	struct serve_settings set;
	char why[512];
	int rc = 2;
	if (serve_settle(&c, &file, &set, why, sizeof why)) {
		fprintf(stderr, "error: %s\n", why);
		goto out_cfg;
	}
	log_set_level(set.log_level);
	/* the files are read now, before anything starts: unreadable 1, not a pair 2 */
	if (set.tls_cert) {
		enum http_tls_result tr =
			http_tls_load(set.tls_cert, set.tls_key, &tls, why, sizeof why);
		if (tr != HTTP_TLS_OK) {
			fprintf(stderr, "error: %s\n", why);
			rc = tr == HTTP_TLS_UNREADABLE ? 1 : 2;
			goto out_cfg;
		}
	}
	if (set.with_sip && set.sip.tls_port) {
		int tr = sip_tls_check(&set.sip, why, sizeof why);
		if (tr) {
			fprintf(stderr, "error: %s\n", why);
			rc = tr;
			goto out_cfg;
		}
	}
	if (!set.with_sip &&
	    recorder_repair(set.recordings) < 0) /* no engine: served, never written */
		log_msg(LOG_WARN, "recorder", "cannot read %s", set.recordings);
	if (set.with_sip && choose_advertise(&set.sip))
		goto out_cfg;
	rlim_t fd_limit = raise_fd_limit();
	if (set.with_sip)
		fit_calls_to_fd_limit(&set.sip, fd_limit);
	fit_connections_to_fd_limit(&set, fd_limit);
	webhook_global_init();

	/* every thread created from here on inherits this mask */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = 1;
	struct lifecycle *life = NULL;
	struct store_options sopt = {.sync_full = set.sync_full, .server = true};
	struct store *st = cli_open_store(c.db, &sopt);
	if (!st)
		goto out_cfg;
	struct call_service *svc = call_service_create(st);
	if (!svc || call_service_set_recordings(svc, set.recordings)) {
		call_service_destroy(svc);
		store_close(st);
		goto out_cfg;
	}
	struct app app = {.calls = svc,
			  .store = st,
			  .webhooks_per_tenant = set.webhooks_per_tenant,
			  .webhook_allow_private = set.webhooks.allow_private,
			  .metrics_token = set.metrics_token[0] ? set.metrics_token : NULL};
	struct sip_engine *sip = NULL;
	struct http_server *http = NULL;
	const char *end_reason = "node_shutdown";
	struct trunk_reload reload = {.st = st};
	struct lifecycle_config lcfg = {.svc = svc,
					.st = st,
					.drain_timeout_s = set.drain_timeout_s,
					.pid_file = set.pid_file,
					.each_second = reload_trunks,
					.arg = &reload};
	life = lifecycle_create(&lcfg, why, sizeof why);
	if (!life)
		fprintf(stderr, "error: %s\n", why);
	struct webhook_worker *hooks = life ? webhook_worker_start(st, &set.webhooks) : NULL;
	app.events = life ? event_hub_create(st, set.events_per_key) : NULL;
	if (!hooks || !app.events)
		goto out_svc;
	struct listeners listeners = {.app = &app, .life = life};
	call_service_on_event(svc, on_event, &listeners);
	app.hooks = hooks;

	/* dialogs of a previous run are gone with its process: end what it left active, and
	 * (the engine, as it starts) hang up the far ends it left up */
	struct left_dialog *left = NULL;
	size_t n_left = 0;
	struct sip_trunk *trunks = NULL;
	if ((set.with_sip && call_service_left_dialogs(svc, &left, &n_left) < 0) ||
	    call_service_recover(svc, set.with_sip) < 0 || call_service_start(svc) ||
	    (set.with_sip && serve_trunks_load(st, &trunks, &set.sip.n_trunks, &reload.gen) < 0))
		goto out_left;
	if (set.with_sip) {
		set.sip.trunks = trunks;
		sip = sip_engine_start(&set.sip, svc, left, n_left);
		free(trunks);
		if (!sip)
			goto out_left;
		call_service_left_dialogs_done(svc, left, n_left);
		left = NULL;
		n_left = 0;
		struct telephony tel = sip_engine_telephony(sip);
		call_service_set_telephony(svc, &tel);
		reload.sip = sip;
	}

	struct http_server_config hc = {.host = set.http_host,
					.port = set.http_port,
					.threads = set.http_threads,
					.app = &app,
					.store = st,
					.fallback = &canonical_dialect,
					.rate_limit = set.rate_limit,
					.tls = set.tls_cert ? &tls : NULL,
					.max_conns = set.http_max_conns,
					.max_conns_per_ip = set.http_max_conns_per_ip,
					.idle_timeout_s = set.http_idle_s};
	http = http_server_start(&hc, serve_route_tables, serve_n_route_tables);
	if (!http)
		goto out_svc;
	log_json(LOG_INFO, "ready",
		 json_pack("{s:s, s:s, s:s, s:s, s:s}", "http", c.http, "sip", c.sip, "db", c.db,
			   "sync", c.sync, "recordings", set.recordings));

	/* the main thread keeps house until a signal, and drains if asked to */
	if (lifecycle_run(life) == LIFECYCLE_DRAIN_TIMEOUT)
		end_reason = "drain_timeout";
	rc = 0;
out_left:
	for (size_t i = 0; i < n_left; i++)
		free(left[i].state);
	free(left);
out_svc:
	/* Outside in. New requests get 503; the engine hangs up every dialog (its answers and
	 * events go to the worker); the worker drains, which answers every suspended request;
	 * only then can HTTP stop (MHD must not stop with a connection suspended). */
	http_server_quiesce(http);
	if (sip)
		sip_engine_stop(sip, end_reason);
	call_service_stop(svc);
	http_server_stop(http);
	call_service_set_telephony(svc, NULL);
	sip_engine_destroy(sip);
	webhook_worker_stop(hooks);
	event_hub_destroy(app.events);
	call_service_destroy(svc);
	tts_shutdown(); /* no goodbye is being rendered: HTTP and the speaker stopped */
	store_close(st);
	lifecycle_destroy(life); /* last: the pid file goes once nothing is left to stop */
out_cfg:
	http_tls_free(&tls);
	json_decref(file);
	return rc;
}
