/*
 * serve.c - `callplane serve`: wires store, call service, telephony engine and HTTP server,
 * then waits for SIGTERM/SIGINT and shuts down in reverse order.
 *
 * Signals are blocked in every thread (they inherit the mask before they are created) and taken
 * synchronously with sigwait() here, so no code runs in signal context.
 *
 * Descriptors: every call holds up to three (RTP, RTCP, the agent's WebSocket), so the soft
 * RLIMIT_NOFILE is raised to the hard limit (with CAP_SYS_RESOURCE the hard limit too, up to
 * the kernel's nr_open, at most 1M). Calls may use all but a reserve of it (FD_RESERVE: HTTP
 * connections, the store's pool, SIP over TCP, webhooks), so a node full of calls still has
 * descriptors left for the API that ends them (up to ~1,000 concurrent connections; HTTP's own
 * limit is higher, so a flood of connections can still exhaust them); a call beyond that fails
 * like one that finds no free RTP port. When the limit is below what the RTP ports allow, a
 * warning at start-up says how many calls the node can hold.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "cli.h"
#include "args.h"
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
#include "webhook/webhook_registry.h"

#include <sys/resource.h>
#include <time.h>


static const char serve_usage[] =
	"usage: callplane serve [--db PATH] [--http HOST:PORT] [--sip HOST:PORT|none]\n"
	"                       [--config FILE] [--sync full|normal] [--http-threads N]\n"
	"                       [--log-level debug|info|warn|error]\n"
	"  SIP: [--trunk sip:HOST:PORT] [--trunk-auth USER:PASSWORD] [--ring-timeout SECONDS]\n"
	"       [--hangup-rate PER_SECOND] [--hangup-wait-ms MS] [--rtp-ports LOW-HIGH]\n"
	"       [--sip-advertise IP] [--rtp-addrs IP[,IP...]]\n"
	"  Media: [--media-timeout SECONDS] [--agent-grace-ms MS] [--recordings DIR]\n"
	"  API: [--rate-limit PER_SECOND] (per key without its own limit; default 1000, 0 = none)\n"
	"  Webhooks: [--webhook-retry-initial-ms MS] [--webhook-max-age-s SECONDS]\n"
	"            [--webhook-timeout-ms MS] [--webhooks-per-tenant N] (default 20)\n"
	"Defaults: --db " CLI_DEFAULT_DB " --http 127.0.0.1:8080 --sip 127.0.0.1:5060\n"
	"          --recordings: a directory \"recordings\" beside the database file\n"
	"--config FILE is a JSON object keyed by the long option names; flags win over it.\n";

struct serve_config {
	const char *db, *http, *sip, *config, *sync, *http_threads, *log_level;
	const char *trunk, *trunk_auth, *ring_timeout, *hangup_rate, *hangup_wait, *rtp_ports,
		*rtp_addrs, *sip_advertise, *rate_limit, *wh_retry, *wh_max_age, *wh_timeout,
		*wh_per_tenant, *media_timeout, *agent_grace, *recordings;
};

/* Fills options not given on the command line from the JSON config file. */
static int load_config_file(struct serve_config *c, json_t **holder)
{
	if (!c->config)
		return 0;
	json_error_t je;
	json_t *j = json_load_file(c->config, 0, &je);
	if (!j || !json_is_object(j)) {
		fprintf(stderr, "error: config %s: %s\n", c->config, j ? "not a JSON object" : je.text);
		json_decref(j);
		return -1;
	}
	struct { const char *key; const char **slot; } map[] = {
		{"db", &c->db}, {"http", &c->http}, {"sip", &c->sip}, {"sync", &c->sync},
		{"http-threads", &c->http_threads}, {"log-level", &c->log_level},
		{"trunk", &c->trunk}, {"trunk-auth", &c->trunk_auth},
		{"ring-timeout", &c->ring_timeout}, {"hangup-rate", &c->hangup_rate},
		{"hangup-wait-ms", &c->hangup_wait}, {"rtp-ports", &c->rtp_ports},
		{"rtp-addrs", &c->rtp_addrs}, {"sip-advertise", &c->sip_advertise},
		{"rate-limit", &c->rate_limit},
		{"webhook-retry-initial-ms", &c->wh_retry}, {"webhook-max-age-s", &c->wh_max_age},
		{"webhook-timeout-ms", &c->wh_timeout}, {"webhooks-per-tenant", &c->wh_per_tenant},
		{"media-timeout", &c->media_timeout}, {"agent-grace-ms", &c->agent_grace},
		{"recordings", &c->recordings},
	};
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v) {
		size_t i;
		for (i = 0; i < sizeof map / sizeof map[0]; i++)
			if (!strcmp(k, map[i].key))
				break;
		if (i == sizeof map / sizeof map[0] || !json_is_string(v)) {
			fprintf(stderr, "error: config %s: unknown key or non-string value \"%s\"\n",
				c->config, k);
			json_decref(j);
			return -1;
		}
		if (!*map[i].slot)
			*map[i].slot = json_string_value(v);
	}
	*holder = j;
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

/* Fills the SIP engine's configuration; prints the problem and returns -1 on bad values. */
static int sip_config_from(const struct serve_config *c, struct sip_config *sc)
{
	long long v;
	sip_config_defaults(sc);
	if (split_hostport(c->sip, sc->host, sizeof sc->host, &sc->port)) {
		fprintf(stderr, "error: --sip must be HOST:PORT or none, got '%s'\n", c->sip);
		return -1;
	}
	if (c->sip_advertise)
		snprintf(sc->advertise, sizeof sc->advertise, "%s", c->sip_advertise);
	if (c->trunk) {
		if (strncmp(c->trunk, "sip:", 4) || strlen(c->trunk) < 5 ||
		    strlen(c->trunk) >= sizeof sc->trunk) {
			fprintf(stderr, "error: --trunk must be sip:HOST[:PORT]\n");
			return -1;
		}
		snprintf(sc->trunk, sizeof sc->trunk, "%s", c->trunk);
	}
	if (c->trunk_auth) {
		const char *colon = strchr(c->trunk_auth, ':');
		if (!colon || colon == c->trunk_auth ||
		    (size_t)(colon - c->trunk_auth) >= sizeof sc->trunk_user ||
		    strlen(colon + 1) >= sizeof sc->trunk_password) {
			fprintf(stderr, "error: --trunk-auth must be USER:PASSWORD\n");
			return -1;
		}
		memcpy(sc->trunk_user, c->trunk_auth, (size_t)(colon - c->trunk_auth));
		snprintf(sc->trunk_password, sizeof sc->trunk_password, "%s", colon + 1);
	}
	if (c->ring_timeout) {
		if (!cp_parse_int(c->ring_timeout, 1, 3600, &v)) {
			fprintf(stderr, "error: --ring-timeout must be 1..3600 seconds\n");
			return -1;
		}
		sc->ring_timeout_s = (int)v;
	}
	if (c->hangup_rate) {
		if (!cp_parse_int(c->hangup_rate, 0, 1000000, &v)) {
			fprintf(stderr, "error: --hangup-rate must be 0 (unpaced)..1000000\n");
			return -1;
		}
		sc->hangup_rate = (int)v;
	}
	if (c->media_timeout) {
		if (!cp_parse_int(c->media_timeout, 1, 3600, &v)) {
			fprintf(stderr, "error: --media-timeout must be 1..3600 seconds\n");
			return -1;
		}
		sc->media.media_timeout_s = (int)v;
	}
	if (c->agent_grace) {
		if (!cp_parse_int(c->agent_grace, 0, 60000, &v)) {
			fprintf(stderr, "error: --agent-grace-ms must be 0..60000\n");
			return -1;
		}
		sc->media.agent_grace_ms = (int)v;
	}
	if (c->hangup_wait) {
		if (!cp_parse_int(c->hangup_wait, 1, 60000, &v)) {
			fprintf(stderr, "error: --hangup-wait-ms must be 1..60000\n");
			return -1;
		}
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
		    !cp_parse_int(dash + 1, lo + 1, 65535, &hi)) {
			fprintf(stderr, "error: --rtp-ports must be LOW-HIGH within 1024-65535\n");
			return -1;
		}
		sc->rtp_port_min = (int)lo;
		sc->rtp_port_max = (int)hi;
	}
	if (c->rtp_addrs) {
		char why[160];
		if (sip_config_set_rtp_addrs(sc, c->rtp_addrs, why, sizeof why)) {
			fprintf(stderr, "error: --rtp-addrs must be IP[,IP...]: %s\n", why);
			return -1;
		}
	}
	return 0;
}

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

/* Caps the calls holding media sockets below the descriptor limit; warns when that holds
 * fewer calls than the RTP ports would. */
static void fit_calls_to_fd_limit(struct sip_config *sc, rlim_t limit)
{
	if (limit == 0 || limit == RLIM_INFINITY || limit > (rlim_t)LONG_MAX)
		return;
	long lim = (long)limit;
	long reserve = lim / 4 < FD_RESERVE ? lim / 4 : FD_RESERVE;
	sc->max_rtp_sockets = (lim - reserve) / FDS_PER_CALL;
	long ports = sip_config_rtp_capacity(sc);
	if (sc->max_rtp_sockets >= ports)
		return;
	struct rlimit rl = {0};
	getrlimit(RLIMIT_NOFILE, &rl);
	char msg[400];
	snprintf(msg, sizeof msg,
		 "the descriptor limit (RLIMIT_NOFILE %ld, hard %lld) holds at most %ld calls at once "
		 "(RTP, RTCP and agent stream sockets: 3 each, %ld descriptors kept for HTTP and "
		 "the store); the RTP ports allow %ld. Raise the hard limit (ulimit -Hn, systemd "
		 "LimitNOFILE=) to hold more",
		 lim, rl.rlim_max == RLIM_INFINITY ? -1LL : (long long)rl.rlim_max,
		 sc->max_rtp_sockets, reserve, ports);
	log_json(LOG_WARN, "fd_limit",
		 json_pack("{s:s, s:I, s:I, s:I}", "message", msg, "limit", (json_int_t)lim,
			   "max_calls", (json_int_t)sc->max_rtp_sockets, "rtp_ports", (json_int_t)ports));
}

/* The default recordings directory: "recordings" beside the database file (the directory
 * part of its path as given). */
static int default_recordings_dir(const char *db, char *buf, size_t size)
{
	const char *slash = strrchr(db, '/');
	int n = slash ? snprintf(buf, size, "%.*s/recordings", (int)(slash - db), db)
		      : snprintf(buf, size, "recordings");   /* "/db" gives "/recordings" */
	return n > 0 && (size_t)n < size ? 0 : -1;
}

/* A transition's outbox event committed: wake whoever delivers events. */
static void on_event(void *arg)
{
	struct app *app = arg;
	webhook_worker_wake(app->hooks);
	event_hub_wake(app->events);
}

int cli_serve(int argc, char **argv)
{
	struct serve_config c = {0};
	struct opt opts[] = {{"db", &c.db, OPT_OPTIONAL}, {"http", &c.http, OPT_OPTIONAL},
			     {"sip", &c.sip, OPT_OPTIONAL}, {"config", &c.config, OPT_OPTIONAL},
			     {"sync", &c.sync, OPT_OPTIONAL}, {"http-threads", &c.http_threads, OPT_OPTIONAL},
			     {"log-level", &c.log_level, OPT_OPTIONAL}, {"trunk", &c.trunk, OPT_OPTIONAL},
			     {"trunk-auth", &c.trunk_auth, OPT_OPTIONAL},
			     {"ring-timeout", &c.ring_timeout, OPT_OPTIONAL},
			     {"hangup-rate", &c.hangup_rate, OPT_OPTIONAL},
			     {"hangup-wait-ms", &c.hangup_wait, OPT_OPTIONAL},
			     {"rtp-ports", &c.rtp_ports, OPT_OPTIONAL},
			     {"rtp-addrs", &c.rtp_addrs, OPT_OPTIONAL},
			     {"sip-advertise", &c.sip_advertise, OPT_OPTIONAL},
			     {"rate-limit", &c.rate_limit, OPT_OPTIONAL},
			     {"webhook-retry-initial-ms", &c.wh_retry, OPT_OPTIONAL},
			     {"webhook-max-age-s", &c.wh_max_age, OPT_OPTIONAL},
			     {"webhook-timeout-ms", &c.wh_timeout, OPT_OPTIONAL},
			     {"webhooks-per-tenant", &c.wh_per_tenant, OPT_OPTIONAL},
			     {"media-timeout", &c.media_timeout, OPT_OPTIONAL},
			     {"agent-grace-ms", &c.agent_grace, OPT_OPTIONAL},
			     {"recordings", &c.recordings, OPT_OPTIONAL}, {0}};
	const char *pos[1];
	int n_pos;
	enum args_result ar = args_parse(argc, argv, opts, pos, 0, &n_pos, serve_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	json_t *file = NULL;
	if (load_config_file(&c, &file))
		return 2;
	if (!c.db) c.db = CLI_DEFAULT_DB;
	if (!c.http) c.http = "127.0.0.1:8080";
	if (!c.sip) c.sip = "127.0.0.1:5060";
	if (!c.sync) c.sync = "full";
	if (!c.log_level) c.log_level = "info";

	int rc = 2;
	char http_host[256];
	int http_port;
	long long threads = 0, rate_limit = 1000;
	if (split_hostport(c.http, http_host, sizeof http_host, &http_port)) {
		fprintf(stderr, "error: --http must be HOST:PORT, got '%s'\n", c.http);
		goto out_cfg;
	}
	if (strcmp(c.sync, "full") && strcmp(c.sync, "normal")) {
		fprintf(stderr, "error: --sync must be full or normal\n");
		goto out_cfg;
	}
	if (c.http_threads && !cp_parse_int(c.http_threads, 1, 256, &threads)) {
		fprintf(stderr, "error: --http-threads must be 1..256\n");
		goto out_cfg;
	}
	if (c.rate_limit && !cp_parse_int(c.rate_limit, 0, 1000000, &rate_limit)) {
		fprintf(stderr, "error: --rate-limit must be 0..1000000\n");
		goto out_cfg;
	}
	struct webhook_config whc;
	webhook_config_defaults(&whc);
	long long v;
	if (c.wh_retry) {
		if (!cp_parse_int(c.wh_retry, 1, 3600000, &v)) {
			fprintf(stderr, "error: --webhook-retry-initial-ms must be 1..3600000\n");
			goto out_cfg;
		}
		whc.retry_initial_ms = (int)v;
	}
	if (c.wh_max_age) {
		if (!cp_parse_int(c.wh_max_age, 1, 30LL * 86400, &v)) {
			fprintf(stderr, "error: --webhook-max-age-s must be 1..2592000\n");
			goto out_cfg;
		}
		whc.max_age_ms = v * 1000;
	}
	if (c.wh_timeout) {
		if (!cp_parse_int(c.wh_timeout, 100, 600000, &v)) {
			fprintf(stderr, "error: --webhook-timeout-ms must be 100..600000\n");
			goto out_cfg;
		}
		whc.timeout_ms = (int)v;
	}
	long long per_tenant = WEBHOOKS_PER_TENANT_DEFAULT;
	if (c.wh_per_tenant && !cp_parse_int(c.wh_per_tenant, 1, WEBHOOKS_PER_TENANT_MAX, &per_tenant)) {
		fprintf(stderr, "error: --webhooks-per-tenant must be 1..%d\n", WEBHOOKS_PER_TENANT_MAX);
		goto out_cfg;
	}
	static const char *const levels[] = {"debug", "info", "warn", "error"};
	int level = -1;
	for (int i = 0; i < 4; i++)
		if (!strcmp(c.log_level, levels[i]))
			level = i;
	if (level < 0) {
		fprintf(stderr, "error: --log-level must be debug, info, warn or error\n");
		goto out_cfg;
	}
	log_set_level((enum log_level)level);
	char recordings[PATH_MAX];
	if (c.recordings && (!*c.recordings || strlen(c.recordings) >= sizeof recordings)) {
		fprintf(stderr, "error: --recordings must be a directory path\n");
		goto out_cfg;
	}
	if (c.recordings)
		snprintf(recordings, sizeof recordings, "%s", c.recordings);
	else if (default_recordings_dir(c.db, recordings, sizeof recordings)) {
		fprintf(stderr, "error: --db path too long for the recordings directory beside it\n");
		goto out_cfg;
	}
	bool with_sip = strcmp(c.sip, "none") != 0;
	struct sip_config sipc;
	if (with_sip && sip_config_from(&c, &sipc))
		goto out_cfg;
	if (with_sip)
		sipc.media.recordings_dir = recordings;    /* repaired when the media engine starts */
	else if (recorder_repair(recordings) < 0)      /* no engine: served, never written */
		log_msg(LOG_WARN, "recorder", "cannot read %s", recordings);
	rlim_t fd_limit = raise_fd_limit();
	if (with_sip)
		fit_calls_to_fd_limit(&sipc, fd_limit);
	webhook_global_init();

	/* every thread created from here on inherits this mask */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = 1;
	struct store_options sopt = {.sync_full = !strcmp(c.sync, "full"), .server = true};
	struct store *st = cli_open_store(c.db, &sopt);
	if (!st)
		goto out_cfg;
	struct call_service *svc = call_service_create(st);
	if (!svc || call_service_set_recordings(svc, recordings)) {
		call_service_destroy(svc);
		store_close(st);
		goto out_cfg;
	}
	struct app app = {.calls = svc, .store = st, .webhooks_per_tenant = (int)per_tenant};
	struct sip_engine *sip = NULL;
	struct http_server *http = NULL;
	struct webhook_worker *hooks = webhook_worker_start(st, &whc);
	app.events = event_hub_create(st);
	if (!hooks || !app.events)
		goto out_svc;
	call_service_on_event(svc, on_event, &app);
	app.hooks = hooks;

	/* dialogs of a previous run are gone with its process: end what it left active, and
	 * (the engine, as it starts) hang up the far ends it left up */
	struct left_dialog *left = NULL;
	size_t n_left = 0;
	if ((with_sip && call_service_left_dialogs(svc, &left, &n_left) < 0) ||
	    call_service_recover(svc, with_sip) < 0 || call_service_start(svc))
		goto out_left;
	if (with_sip) {
		sip = sip_engine_start(&sipc, svc, left, n_left);
		if (!sip)
			goto out_left;
		call_service_left_dialogs_done(svc, left, n_left);
		left = NULL;
		n_left = 0;
		struct telephony tel = sip_engine_telephony(sip);
		call_service_set_telephony(svc, &tel);
	}

	static const struct route *const tables[] = {canonical_routes, webhook_routes,
						     event_routes, talkover_routes,
						     voxworks_routes, pilotstatus_routes,
						     cartesia_routes};
	struct http_server_config hc = {.host = http_host, .port = http_port,
					.threads = (unsigned)threads, .app = &app, .store = st,
					.fallback = &canonical_dialect,
					.rate_limit = (unsigned)rate_limit};
	http = http_server_start(&hc, tables, sizeof tables / sizeof tables[0]);
	if (!http)
		goto out_svc;
	log_json(LOG_INFO, "ready", json_pack("{s:s, s:s, s:s, s:s, s:s}", "http", c.http, "sip",
					      c.sip, "db", c.db, "sync", c.sync, "recordings",
					      recordings));

	/* the main thread keeps house while it waits for a signal */
	int sig = -1;
	struct timespec tick = {.tv_sec = 60};
	while (sig < 0) {
		sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig < 0)
			STORE(st, idem_purge, cp_now_ms() - HTTP_IDEMPOTENCY_TTL_MS);
	}
	log_json(LOG_INFO, "shutdown", json_pack("{s:i}", "signal", sig));
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
		sip_engine_stop(sip);
	call_service_stop(svc);
	http_server_stop(http);
	call_service_set_telephony(svc, NULL);
	sip_engine_destroy(sip);
	webhook_worker_stop(hooks);
	event_hub_destroy(app.events);
	call_service_destroy(svc);
	tts_shutdown();          /* no goodbye is being rendered: HTTP and the speaker stopped */
	store_close(st);
out_cfg:
	json_decref(file);
	return rc;
}
