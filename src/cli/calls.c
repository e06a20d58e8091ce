/*
 * calls.c - `callplane calls list|get|end|end-all|tail`: the operator's view of a running
 * server, over its HTTP API, as fs_cli or kamcmd give theirs.
 *
 * Unlike the admin commands, these never open the database: they speak to the server at
 * --url (or CALLPLANE_URL, default http://127.0.0.1:8080) with the API key in CALLPLANE_KEY,
 * so they work from any host, see exactly what that key may see, and end calls the way the API
 * does (a BYE on the wire, the end recorded, webhooks sent). The key is read only from the
 * environment: on a command line it would show in `ps` and in the shell's history.
 *
 * Output: on a terminal, a table (calls) or one line per event (tail); with --json, or when
 * stdout is not a terminal, the API's JSON as it came (one object per line for tail), for
 * scripts. An API error prints `error: CODE: MESSAGE` and exits 1; a server that cannot be
 * reached, `error: cannot reach URL: WHY`, exit 1; a usage error exits 2.
 *
 * tail follows GET /v1/events (Server-Sent Events); when the stream drops it reconnects after
 * a second with Last-Event-ID, so no event is missed across the gap, until interrupted.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "args.h"

static const char calls_usage[] =
	"usage: callplane calls list [--status S|active] [--agent ID] [--limit N] [--json]\n"
	"       callplane calls get CALL_ID [--json]\n"
	"       callplane calls end CALL_ID [--reason TEXT] [--json]\n"
	"       callplane calls end-all [--agent ID] [--reason TEXT] [--json]\n"
	"       callplane calls tail [--json]\n"
	"  every one also takes --url URL (default $CALLPLANE_URL, else http://127.0.0.1:8080);\n"
	"  the API key comes from $CALLPLANE_KEY.\n";

struct client {
	const char *url; /* the server's base URL, without a trailing slash */
	char auth[512];  /* "Authorization: Bearer KEY" */
	bool json;       /* print the API's JSON rather than a table */
};

struct buf {
	char *data;
	size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t add = size * n;
	char *d = realloc(b->data, b->len + add + 1);
	if (!d)
		return 0;
	memcpy(d + b->len, p, add);
	b->len += add;
	d[b->len] = '\0';
	b->data = d;
	return add;
}

/* A handle for one request to url with hdrs, its errors into err; NULL when out of memory. */
static CURL *easy_for(const char *url, struct curl_slist *hdrs, char *err)
{
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	return h;
}

/* Sends one request (body NULL: GET) and parses the JSON answer into *out (the caller's).
 * Returns 0 for a 2xx; otherwise prints the error and returns 1. */
static int call_api(const struct client *cl, const char *method, const char *path, json_t *body,
		    json_t **out)
{
	char url[1024];
	snprintf(url, sizeof url, "%s%s", cl->url, path);
	struct curl_slist *hdrs = curl_slist_append(NULL, cl->auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	char err[CURL_ERROR_SIZE] = "";
	CURL *h = easy_for(url, hdrs, err);
	struct buf b = {0};
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int rc = 1;
	*out = NULL;
	if (!h || !hdrs || (body && !text)) {
		fprintf(stderr, "error: out of memory\n");
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L); /* an end-all of many calls takes a while */
	if (text)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
	CURLcode cr = curl_easy_perform(h);
	if (cr != CURLE_OK) {
		fprintf(stderr, "error: cannot reach %s: %s\n", cl->url,
			err[0] ? err : curl_easy_strerror(cr));
		goto out;
	}
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	json_t *j = b.data ? json_loads(b.data, 0, NULL) : NULL;
	if (status / 100 != 2) {
		json_t *e = json_object_get(j, "error");
		const char *code = json_string_value(json_object_get(e, "code"));
		const char *msg = json_string_value(json_object_get(e, "message"));
		if (code)
			fprintf(stderr, "error: %s: %s\n", code, msg ? msg : "");
		else
			fprintf(stderr, "error: the server answered %ld\n", status);
		json_decref(j);
		goto out;
	}
	if (!j) {
		fprintf(stderr, "error: the server answered %ld without JSON\n", status);
		goto out;
	}
	*out = j;
	rc = 0;
out:
	free(text);
	free(b.data);
	curl_slist_free_all(hdrs);
	if (h)
		curl_easy_cleanup(h);
	return rc;
}

/* A JSON string as it is; anything else as "-". */
static const char *text_or_dash(json_t *v)
{
	return json_is_string(v) ? json_string_value(v) : "-";
}

/* A JSON value as table text: strings as they are, null as "-", numbers in decimal. */
static const char *cell(json_t *v, char *tmp, size_t size)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(tmp, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return tmp;
	}
	return "-";
}

static const char *const columns[] = {"id",   "status",     "direction",  "to",
				      "from", "created_at", "duration_s", "end_reason"};
static const int widths[] = {36, 11, 8, 24, 16, 24, 8, 0};
#define N_COLUMNS (sizeof columns / sizeof columns[0])

/* One cell, padded to its column's width; the last column ends the line. */
static void print_cell(size_t i, const char *s)
{
	if (i + 1 < N_COLUMNS)
		printf("%-*s  ", widths[i], s);
	else
		printf("%s\n", s);
}

static void print_header(void)
{
	for (size_t i = 0; i < N_COLUMNS; i++)
		print_cell(i, columns[i]);
}

static void print_row(json_t *call)
{
	for (size_t i = 0; i < N_COLUMNS; i++) {
		char tmp[32];
		print_cell(i, cell(json_object_get(call, columns[i]), tmp, sizeof tmp));
	}
}

/* Prints v (and frees it): its JSON for scripts, or the table of its calls. */
static int show(const struct client *cl, json_t *v, bool list)
{
	if (cl->json)
		return cli_print(v);
	print_header();
	if (list) {
		size_t i;
		json_t *c;
		json_array_foreach(json_object_get(v, "data"), i, c) print_row(c);
	} else {
		print_row(v);
	}
	json_decref(v);
	return 0;
}

/* Appends "&name=value" (URL-escaped) to q. */
static void query_add(char *q, size_t size, const char *name, const char *value)
{
	if (!value)
		return;
	char *e = curl_easy_escape(NULL, value, 0); /* no handle needed since libcurl 7.82 */
	size_t n = strlen(q);
	snprintf(q + n, size - n, "%c%s=%s", n ? '&' : '?', name, e ? e : "");
	curl_free(e);
}

/* ---- tail -------------------------------------------------------------------------------- */

struct sse {
	const struct client *cl;
	struct buf line; /* the line being received */
	char id[32];     /* the last event's id: where a reconnect resumes */
	char event[64];
	struct buf data;
};

/* One complete event: print it. */
static void sse_dispatch(struct sse *s)
{
	if (!s->data.len)
		return;
	if (s->cl->json) {
		printf("%s\n", s->data.data);
	} else {
		json_t *j = json_loads(s->data.data, 0, NULL);
		json_t *c = json_object_get(j, "data"); /* the call, as the event left it */
		printf("%-24s  %-22s  %-36s  %-11s  %s\n",
		       text_or_dash(json_object_get(j, "created_at")), s->event,
		       text_or_dash(json_object_get(c, "id")),
		       text_or_dash(json_object_get(c, "status")),
		       text_or_dash(json_object_get(c, "end_reason")));
		json_decref(j);
	}
	fflush(stdout);
	s->data.len = 0;
	s->event[0] = '\0';
}

/* One line of the stream (without its line break), as the SSE specification reads it. */
static void sse_line(struct sse *s, const char *l)
{
	if (!*l) {
		sse_dispatch(s);
		return;
	}
	if (*l == ':')
		return; /* a keepalive comment */
	const char *colon = strchr(l, ':');
	size_t nlen = colon ? (size_t)(colon - l) : strlen(l);
	const char *v = colon ? colon + 1 + (colon[1] == ' ') : "";
	if (nlen == 2 && !strncmp(l, "id", 2)) {
		snprintf(s->id, sizeof s->id, "%s", v);
	} else if (nlen == 5 && !strncmp(l, "event", 5)) {
		snprintf(s->event, sizeof s->event, "%s", v);
	} else if (nlen == 4 && !strncmp(l, "data", 4)) {
		if (s->data.len)
			collect("\n", 1, 1, &s->data);
		collect((char *)v, 1, strlen(v), &s->data);
	}
}

static size_t sse_feed(char *p, size_t size, size_t n, void *arg)
{
	struct sse *s = arg;
	size_t len = size * n;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n') {
			if (s->line.len && s->line.data[s->line.len - 1] == '\r')
				s->line.len--;
			if (s->line.data)
				s->line.data[s->line.len] = '\0';
			sse_line(s, s->line.data ? s->line.data : "");
			s->line.len = 0;
		} else if (!collect(&p[i], 1, 1, &s->line)) {
			return 0;
		}
	}
	return len;
}

static volatile sig_atomic_t stop_tail;

static void on_stop(int sig)
{
	(void)sig;
	stop_tail = 1;
}

static int progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)arg, (void)a, (void)b, (void)c, (void)d;
	return stop_tail; /* non-zero aborts the transfer */
}

static int tail(const struct client *cl)
{
	struct sse s = {.cl = cl};
	char url[1024];
	snprintf(url, sizeof url, "%s/v1/events", cl->url);
	struct sigaction sa = {.sa_handler = on_stop};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (!cl->json) {
		printf("%-24s  %-22s  %-36s  %-11s  %s\n", "time", "event", "call", "status",
		       "end_reason");
		fflush(stdout);
	}
	int rc = 0;
	while (!stop_tail) {
		struct curl_slist *hdrs = curl_slist_append(NULL, cl->auth);
		char last[64];
		if (s.id[0]) {
			snprintf(last, sizeof last, "Last-Event-ID: %s", s.id);
			hdrs = curl_slist_append(hdrs, last);
		}
		char err[CURL_ERROR_SIZE] = "";
		CURL *h = easy_for(url, hdrs, err);
		if (!h) {
			curl_slist_free_all(hdrs);
			fprintf(stderr, "error: out of memory\n");
			rc = 1;
			break;
		}
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sse_feed);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
		curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
		CURLcode cr = curl_easy_perform(h);
		long status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_slist_free_all(hdrs);
		curl_easy_cleanup(h);
		if (stop_tail)
			break;
		if (status == 401 || status == 403) {
			fprintf(stderr, "error: the server refused the key (%ld)\n", status);
			rc = 1;
			break;
		}
		fprintf(stderr, "tail: stream ended (%s); reconnecting\n",
			cr == CURLE_OK ? "closed by the server"
			: err[0]       ? err
				       : curl_easy_strerror(cr));
		s.line.len = 0;
		s.data.len = 0;
		sleep(1);
	}
	free(s.line.data);
	free(s.data.data);
	return rc;
}

/* ---- the command ------------------------------------------------------------------------- */

int cli_calls(int argc, char **argv)
{
	if (argc < 1) {
		fprintf(stderr, "%s", calls_usage);
		return 2;
	}
	const char *sub = argv[0];
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		printf("%s", calls_usage);
		return 0;
	}
	const char *url = NULL, *json = NULL, *status = NULL, *agent = NULL, *limit = NULL,
		   *reason = NULL;
	struct opt list_opts[] = {
		{"url", &url, OPT_OPTIONAL},       {"json", &json, OPT_FLAG},
		{"status", &status, OPT_OPTIONAL}, {"agent", &agent, OPT_OPTIONAL},
		{"limit", &limit, OPT_OPTIONAL},   {0}};
	struct opt get_opts[] = {{"url", &url, OPT_OPTIONAL}, {"json", &json, OPT_FLAG}, {0}};
	struct opt end_opts[] = {{"url", &url, OPT_OPTIONAL},
				 {"json", &json, OPT_FLAG},
				 {"reason", &reason, OPT_OPTIONAL},
				 {0}};
	struct opt end_all_opts[] = {{"url", &url, OPT_OPTIONAL},
				     {"json", &json, OPT_FLAG},
				     {"agent", &agent, OPT_OPTIONAL},
				     {"reason", &reason, OPT_OPTIONAL},
				     {0}};
	struct opt *opts;
	int max_pos = 0;
	if (!strcmp(sub, "list"))
		opts = list_opts;
	else if (!strcmp(sub, "get"))
		opts = get_opts, max_pos = 1;
	else if (!strcmp(sub, "end"))
		opts = end_opts, max_pos = 1;
	else if (!strcmp(sub, "end-all"))
		opts = end_all_opts;
	else if (!strcmp(sub, "tail"))
		opts = get_opts;
	else
		return args_unknown_command("calls", sub, calls_usage);
	const char *pos[1];
	int n_pos;
	enum args_result ar =
		args_parse(argc - 1, argv + 1, opts, pos, max_pos, &n_pos, calls_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	if (max_pos && n_pos != 1) {
		fprintf(stderr, "error: calls %s needs the call id\n%s", sub, calls_usage);
		return 2;
	}
	const char *key = getenv("CALLPLANE_KEY");
	if (!key || !*key) {
		fprintf(stderr, "error: CALLPLANE_KEY must hold the API key (it is never taken "
				"from the command line)\n");
		return 2;
	}
	if (!url)
		url = getenv("CALLPLANE_URL");
	if (!url || !*url)
		url = "http://127.0.0.1:8080";
	char base[512];
	if (strlen(url) >= sizeof base ||
	    (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
		fprintf(stderr,
			"error: --url must be http://HOST:PORT or https://… (at most 511 "
			"bytes), got '%s'\n",
			url);
		return 2;
	}
	snprintf(base, sizeof base, "%s", url);
	for (size_t n = strlen(base); n && base[n - 1] == '/'; n--)
		base[n - 1] = '\0';
	struct client cl = {.url = base, .json = json || !isatty(STDOUT_FILENO)};
	if ((size_t)snprintf(cl.auth, sizeof cl.auth, "Authorization: Bearer %s", key) >=
	    sizeof cl.auth) {
		fprintf(stderr, "error: CALLPLANE_KEY is too long\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = 1;
	json_t *v = NULL;
	char path[1024];
	if (!strcmp(sub, "tail")) {
		rc = tail(&cl);
	} else if (!strcmp(sub, "list")) {
		char q[768] = "";
		query_add(q, sizeof q, "status", status);
		query_add(q, sizeof q, "agent_id", agent);
		query_add(q, sizeof q, "limit", limit);
		snprintf(path, sizeof path, "/v1/calls%s", q);
		if (!call_api(&cl, "GET", path, NULL, &v))
			rc = show(&cl, v, true);
	} else {
		char *id = max_pos ? curl_easy_escape(NULL, pos[0], 0) : NULL;
		json_t *body = json_object();
		if (reason)
			json_object_set_new(body, "reason", json_string(reason));
		if (agent)
			json_object_set_new(body, "agent_id", json_string(agent));
		if (!strcmp(sub, "get") && id) {
			snprintf(path, sizeof path, "/v1/calls/%s", id);
			if (!call_api(&cl, "GET", path, NULL, &v))
				rc = show(&cl, v, false);
		} else if (!strcmp(sub, "end") && id) {
			snprintf(path, sizeof path, "/v1/calls/%s/end", id);
			if (!call_api(&cl, "POST", path, body, &v))
				rc = show(&cl, v, false);
		} else if (!strcmp(sub, "end-all")) {
			if (!call_api(&cl, "POST", "/v1/calls/end", body, &v)) {
				/* a hang-up that failed leaves a call up: a script must see it */
				int failed =
					json_integer_value(json_object_get(v, "failed")) ? 1 : 0;
				if (cl.json) {
					rc = cli_print(v) || failed;
				} else {
					printf("ended %" JSON_INTEGER_FORMAT
					       ", already ended %" JSON_INTEGER_FORMAT
					       ", failed %" JSON_INTEGER_FORMAT "\n",
					       json_integer_value(json_object_get(v, "ended")),
					       json_integer_value(
						       json_object_get(v, "already_ended")),
					       json_integer_value(json_object_get(v, "failed")));
					json_decref(v);
					rc = failed;
				}
			}
		}
		json_decref(body);
		curl_free(id);
	}
	curl_global_cleanup();
	return rc;
}
