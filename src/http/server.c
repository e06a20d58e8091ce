/*
 * server.c - libmicrohttpd glue: one epoll thread pool, suspend/resume for late replies.
 *
 * Life of a request (MHD calls on_request several times per request):
 *   1st call      headers only: allocate struct http_request, refuse an announced oversized body;
 *   next calls    body chunks: append up to HTTP_MAX_BODY, then only remember it was too large;
 *   last call     (*upload_size == 0) dispatch(): route, authenticate, Idempotency-Key, handler.
 *                 If the handler replied already the response is queued now. Otherwise the
 *                 connection is suspended; the reply (from any thread) resumes it and MHD calls
 *                 on_request once more, which queues the response.
 * We never queue a response on the first call when a body may follow: MHD would then close the
 * connection (the pitfall noted in shared/reference). The reply/suspend hand-over is guarded by
 * r->mu so a reply racing the handler's return is never lost.
 *
 * Idempotency-Key (POST only): the request is claimed in the store before the handler runs; the
 * reply completes the record (or releases it on 5xx so the client can retry); a replay returns
 * the stored status and body without running the handler again.
 */
#include "http.h"
#include "ratelimit.h"
#include "core/log.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>

#define MAX_EXTRA_HEADERS 8
#define MAX_SEGMENTS 12
#define HTTP_MAX_DISCARD (16u * 1024 * 1024)

struct http_server {
	struct MHD_Daemon *d;
	const struct route *const *tables;
	size_t n_tables;
	void *app;
	struct store *st;
	const struct http_dialect *fallback;
	struct ratelimit *rl;
	unsigned rate_limit;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int in_flight;               /* dispatched, not yet replied */
	struct http_stream *streams; /* open streaming replies (under mu) */
	atomic_bool stopping;
	/* request ids: a random start and a counter, mixed (see request_id()) */
	uint64_t req_seed;
	atomic_uint_fast64_t req_count;
};

enum req_state { REQ_READING, REQ_DISPATCHED, REQ_SUSPENDED, REQ_REPLIED, REQ_SENT };

struct http_request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	const char *method;
	char *path;                  /* raw path as received */
	char req_id[17];
	int64_t t_start_us;

	char *body;
	size_t body_len;
	bool too_large;
	size_t discarded;            /* bytes of an oversized body read and dropped */

	const struct route *route;
	char *params[HTTP_MAX_PARAMS];
	struct principal who;
	bool authenticated;

	char idem_key[256];          /* "" = none claimed */

	pthread_mutex_t mu;
	enum req_state state;
	unsigned status;
	char *resp;                  /* response body text */
	size_t resp_len;
	struct { char *name, *value; } hdr[MAX_EXTRA_HEADERS];
	int n_hdr;
	struct http_stream *stream;  /* a streaming reply instead of resp */
};

/* A streaming reply. The wake/park hand-over is guarded by mu, like a late reply: a wake that
 * comes while read() runs is remembered so the connection is not parked past new data. */
struct http_stream {
	struct http_server *srv;
	struct http_stream *prev, *next;     /* srv->streams */
	struct MHD_Connection *conn;
	pthread_mutex_t mu;
	bool parked, wake_pending, closing;
	http_stream_read_fn read;
	void (*done)(void *cls);
	void *cls;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool http_percent_decode(char *s, bool plus_is_space)
{
	char *w = s;
	for (const char *p = s; *p; p++) {
		if (*p == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return false;
			*w++ = (char)(hi * 16 + lo);
			p += 2;
		} else {
			*w++ = plus_is_space && *p == '+' ? ' ' : *p;
		}
	}
	*w = '\0';
	return true;
}

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);    /* we decode path segments ourselves, after splitting on '/' */
}

static void stream_free(void *cls);

/* A request id: 16 hex digits, unique within the process and unlikely to repeat across runs.
 * splitmix64 of (random seed + counter) is a bijection, so no two requests of a run share an
 * id. Log correlation needs no more, and the previous RAND_bytes() per request (a lock and a
 * DRBG step in OpenSSL) was a measurable part of a cached GET. */
static void request_id(struct http_server *srv, char out[17])
{
	uint64_t z = srv->req_seed + atomic_fetch_add_explicit(&srv->req_count, 1,
							       memory_order_relaxed) * 0x9e3779b97f4a7c15u;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	z ^= z >> 31;
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(z >> (56 - 8 * i));
	cp_hex(b, sizeof b, out);
	out[16] = '\0';
}

static void request_free(struct http_request *r)
{
	if (r->stream)        /* never handed to MHD (the client left first) */
		stream_free(r->stream);
	free(r->path);
	free(r->body);
	for (int i = 0; i < HTTP_MAX_PARAMS; i++)
		free(r->params[i]);
	free(r->resp);
	for (int i = 0; i < r->n_hdr; i++) {
		free(r->hdr[i].name);
		free(r->hdr[i].value);
	}
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* ---- accessors -------------------------------------------------------------------------- */

void *http_app(struct http_request *r) { return r->srv->app; }
const char *http_method(struct http_request *r) { return r->method; }
const char *http_req_id(struct http_request *r) { return r->req_id; }
const struct principal *http_principal(struct http_request *r)
{
	return r->authenticated ? &r->who : NULL;
}

const char *http_param(struct http_request *r, int i)
{
	return i >= 0 && i < HTTP_MAX_PARAMS ? r->params[i] : NULL;
}

const char *http_header(struct http_request *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(struct http_request *r, const char *name)
{
	/* decoded in place by decode_query() before the handler ran */
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result decode_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				  const char *value)
{
	bool *ok = cls;
	(void)kind;
	/* MHD owns these buffers for the request's lifetime and we are their only user; with
	 * no_unescape they arrive raw, so this is where values are decoded, once. Names are not
	 * decoded (MHD matches them by their stored length): an escaped name is refused. */
	if (strchr(key, '%') || (value && !http_percent_decode((char *)value, true)))
		*ok = false;
	return MHD_YES;
}

static bool decode_query(struct http_request *r)
{
	bool ok = true;
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, decode_arg, &ok);
	return ok;
}

const char *http_body(struct http_request *r, size_t *len)
{
	if (len)
		*len = r->body_len;
	return r->body;
}

void http_add_header(struct http_request *r, const char *name, const char *value)
{
	pthread_mutex_lock(&r->mu);
	if (r->n_hdr < MAX_EXTRA_HEADERS && r->state < REQ_REPLIED) {
		r->hdr[r->n_hdr].name = strdup(name);
		r->hdr[r->n_hdr].value = strdup(value);
		r->n_hdr++;
	}
	pthread_mutex_unlock(&r->mu);
}

bool http_json_body(struct http_request *r, bool allow_empty, json_t **out, struct cp_error *err)
{
	*out = NULL;
	size_t len = r->body_len;
	const char *b = r->body;
	size_t i = 0;
	while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
		i++;
	if (i == len) {
		if (allow_empty)
			return true;
		cp_fail(err, CP_ERR_INVALID, "a JSON object body is required");
		return false;
	}
	json_error_t je;
	json_t *j = json_loadb(b, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		cp_fail(err, CP_ERR_INVALID, "malformed JSON: %s (line %d, column %d)", je.text,
			je.line, je.column);
		return false;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		cp_fail(err, CP_ERR_INVALID, "the body must be a JSON object");
		return false;
	}
	*out = j;
	return true;
}

/* ---- replying --------------------------------------------------------------------------- */

/* One line per request. Hand-formatted: it runs for every request and jansson's object
 * building cost more than the rest of a cached GET. */
static void log_request(struct http_request *r)
{
	if (!log_enabled(LOG_INFO))
		return;
	/* bounded inputs: method <= 32 and path <= 200 bytes, at most 6x longer once escaped,
	 * so every append below fits in f */
	char f[1536], path[200], method[32];
	snprintf(path, sizeof path, "%s", r->path);
	snprintf(method, sizeof method, "%s", r->method);
	size_t off = (size_t)snprintf(f, sizeof f, "\"req_id\":\"%s\",\"method\":", r->req_id);
	log_json_string(f, sizeof f, &off, method);
	off += (size_t)snprintf(f + off, sizeof f - off, ",\"path\":");
	log_json_string(f, sizeof f, &off, path);
	off += (size_t)snprintf(f + off, sizeof f - off, ",\"status\":%u,\"ms\":%.3f", r->status,
				(double)(cp_mono_us() - r->t_start_us) / 1000.0);
	if (off < sizeof f && r->authenticated)
		off += (size_t)snprintf(f + off, sizeof f - off, ",\"key_id\":\"%s\"", r->who.key.id);
	if (off < sizeof f && r->route && r->route->dialect)
		snprintf(f + off, sizeof f - off, ",\"dialect\":\"%s\"", r->route->dialect->name);
	log_fields(LOG_INFO, "http_request", f);
}

static void reply_text(struct http_request *r, unsigned status, char *text, size_t len)
{
	struct http_server *srv = r->srv;
	if (r->idem_key[0]) {
		if (status >= 500)
			STORE(srv->st, idem_release, r->who.key.id, r->idem_key);
		else if (STORE(srv->st, idem_complete, r->who.key.id, r->idem_key, status, text) != STORE_OK)
			log_msg(LOG_ERROR, "idempotency", "could not record response for %s", r->req_id);
	}
	pthread_mutex_lock(&r->mu);
	if (r->state >= REQ_REPLIED) {      /* a handler bug: replying twice */
		pthread_mutex_unlock(&r->mu);
		log_msg(LOG_ERROR, "http_double_reply", "request %s replied twice", r->req_id);
		free(text);
		return;
	}
	bool resume = r->state == REQ_SUSPENDED;   /* else DISPATCHED: replies follow dispatch */
	struct MHD_Connection *conn = r->conn;
	r->status = status;
	r->resp = text;
	r->resp_len = len;
	r->state = REQ_REPLIED;
	pthread_mutex_unlock(&r->mu);
	/* With no lock of r held: once resumed, an MHD thread may send the reply and free r at
	 * any moment (a suspended connection stays valid until it is resumed). Before the
	 * in-flight count drops, so http_server_stop() never stops MHD with it still suspended. */
	if (resume)
		MHD_resume_connection(conn);
	pthread_mutex_lock(&srv->mu);
	if (--srv->in_flight == 0)
		pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
}

void http_reply_json(struct http_request *r, unsigned status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : strdup("");
	json_decref(body);
	if (!text) {
		text = strdup("{}");
		status = 500;
	}
	reply_text(r, status, text, text ? strlen(text) : 0);
}

void http_reply_json_text(struct http_request *r, unsigned status, char *text, size_t len)
{
	if (!text) {
		text = strdup("{}");
		len = text ? 2 : 0;
		status = 500;
	}
	reply_text(r, status, text, len);
}

static const struct http_dialect *dialect_of(struct http_request *r)
{
	return r->route && r->route->dialect ? r->route->dialect : r->srv->fallback;
}

void http_reply_error(struct http_request *r, const struct cp_error *e)
{
	unsigned status = cp_err_status(e->code);
	json_t *body = dialect_of(r)->render_error(e, &status);
	http_reply_json(r, status, body);
}

void http_reply_fail(struct http_request *r, enum cp_err code, const char *fmt, ...)
{
	struct cp_error e = {.code = code};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof e.message, fmt, ap);
	va_end(ap);
	http_reply_error(r, &e);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_stream *s = cls;
	(void)pos;
	pthread_mutex_lock(&s->mu);
	s->wake_pending = false;
	bool closing = s->closing;
	pthread_mutex_unlock(&s->mu);
	if (closing)
		return MHD_CONTENT_READER_END_OF_STREAM;
	long n = s->read(s->cls, buf, max);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n > 0)
		return (ssize_t)n;
	/* nothing to send: park the connection (returning 0 without suspending would spin) */
	pthread_mutex_lock(&s->mu);
	closing = s->closing;           /* the server may have started stopping meanwhile */
	if (!s->wake_pending && !closing) {
		s->parked = true;
		MHD_suspend_connection(s->conn);
	}
	pthread_mutex_unlock(&s->mu);
	return closing ? MHD_CONTENT_READER_END_OF_STREAM : 0;
}

static void stream_free(void *cls)
{
	struct http_stream *s = cls;
	struct http_server *srv = s->srv;
	pthread_mutex_lock(&srv->mu);
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
	s->done(s->cls);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void http_stream_wake(struct http_stream *s)
{
	pthread_mutex_lock(&s->mu);
	if (s->parked) {
		s->parked = false;
		MHD_resume_connection(s->conn);
	} else {
		s->wake_pending = true;
	}
	pthread_mutex_unlock(&s->mu);
}

struct http_stream *http_reply_stream(struct http_request *r, const char *content_type,
				      http_stream_read_fn read, void (*done)(void *cls),
				      void *cls)
{
	struct http_stream *s = calloc(1, sizeof *s);
	if (!s) {
		done(cls);
		http_reply_fail(r, CP_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	s->srv = r->srv;
	s->conn = r->conn;
	s->read = read;
	s->done = done;
	s->cls = cls;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_lock(&r->srv->mu);
	s->next = r->srv->streams;
	if (s->next)
		s->next->prev = s;
	r->srv->streams = s;
	pthread_mutex_unlock(&r->srv->mu);
	r->stream = s;
	http_add_header(r, "Content-Type", content_type);
	http_add_header(r, "Cache-Control", "no-cache");
	reply_text(r, 200, NULL, 0);
	return s;
}

static enum MHD_Result queue_reply(struct http_request *r)
{
	struct MHD_Response *resp;
	if (r->stream)
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader,
							 r->stream, stream_free);
	else
		resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		return MHD_NO;
	r->resp = NULL;   /* owned by the response now */
	r->stream = NULL;
	if (r->resp_len)
		MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "X-Request-Id", r->req_id);
	for (int i = 0; i < r->n_hdr; i++)
		MHD_add_response_header(resp, r->hdr[i].name, r->hdr[i].value);
	enum MHD_Result ret = MHD_queue_response(r->conn, r->status, resp);
	MHD_destroy_response(resp);
	r->state = REQ_SENT;
	log_request(r);
	return ret;
}

/* ---- routing ---------------------------------------------------------------------------- */

/* Splits a raw path into decoded segments (in a scratch copy). Returns count or -1. */
static int split_path(const char *path, char *scratch, size_t size, char **seg)
{
	snprintf(scratch, size, "%s", path);
	if (scratch[0] != '/')
		return -1;
	int n = 0;
	char *p = scratch + 1;
	if (!*p)
		return 0;
	for (;;) {
		if (n == MAX_SEGMENTS)
			return -1;
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		if (!http_percent_decode(p, false))
			return -1;
		seg[n++] = p;
		if (!slash)
			break;
		p = slash + 1;
	}
	return n;
}

/* Matches pattern against the segments; captures into caps. */
static bool match(const char *pattern, char **seg, int n, char **caps, int *n_caps)
{
	char pat[256];
	snprintf(pat, sizeof pat, "%s", pattern);
	int i = 0;
	*n_caps = 0;
	char *save = NULL;
	for (char *t = strtok_r(pat + 1, "/", &save); t; t = strtok_r(NULL, "/", &save), i++) {
		if (i >= n)
			return false;
		if (t[0] == ':') {
			if (!seg[i][0] || *n_caps >= HTTP_MAX_PARAMS)
				return false;
			caps[(*n_caps)++] = seg[i];
		} else if (strcmp(t, seg[i])) {
			return false;
		}
	}
	return i == n;
}

/* Finds the route; *path_known tells a 405 from a 404. */
static const struct route *find_route(struct http_request *r, bool *path_known)
{
	char scratch[2048];
	char *seg[MAX_SEGMENTS];
	*path_known = false;
	if (strlen(r->path) >= sizeof scratch)
		return NULL;
	int n = split_path(r->path, scratch, sizeof scratch, seg);
	if (n < 0)
		return NULL;
	for (size_t t = 0; t < r->srv->n_tables; t++) {
		for (const struct route *rt = r->srv->tables[t]; rt->pattern; rt++) {
			char *caps[HTTP_MAX_PARAMS];
			int n_caps;
			if (!match(rt->pattern, seg, n, caps, &n_caps))
				continue;
			*path_known = true;
			if (strcmp(rt->method, r->method))
				continue;
			for (int i = 0; i < n_caps; i++)
				r->params[i] = strdup(caps[i]);
			return rt;
		}
	}
	return NULL;
}

/* ---- dispatch --------------------------------------------------------------------------- */

enum cp_err http_auth_key(struct http_request *r, bool bearer, bool x_api_key,
			  struct principal *who, struct cp_error *err)
{
	const char *secret = auth_secret_from_headers(bearer ? http_header(r, "Authorization") : NULL,
						      x_api_key ? http_header(r, "x-api-key") : NULL);
	if (!secret)
		return cp_fail(err, CP_ERR_UNAUTHORIZED, "missing API key: send %s",
			       !x_api_key ? "Authorization: Bearer KEY"
			       : !bearer  ? "x-api-key: KEY"
					  : "Authorization: Bearer KEY or x-api-key: KEY");
	/* no cache on purpose: a key revoked with the CLI must stop working at once */
	enum cp_err e = auth_check(r->srv->st, secret, who);
	if (e == CP_ERR_UNAUTHORIZED)
		return cp_fail(err, e, "invalid API key");
	if (e != CP_OK)
		return cp_fail(err, e, "authentication failed");
	return CP_OK;
}

static bool idem_key_valid(const char *k)
{
	size_t n = strlen(k);
	if (n < 1 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if (k[i] < 0x20 || k[i] > 0x7e)
			return false;
	return true;
}

/* Returns true if the request was answered from (or refused by) the idempotency record. */
static bool idempotency_begin(struct http_request *r)
{
	const char *key = http_header(r, "Idempotency-Key");
	if (!key || strcmp(r->method, "POST"))
		return false;
	if (!idem_key_valid(key)) {
		http_reply_fail(r, CP_ERR_INVALID, "Idempotency-Key must be 1..255 printable ASCII characters");
		return true;
	}
	/* the request's identity: route + body */
	size_t plen = strlen(r->path);
	char *buf = malloc(plen + 1 + r->body_len + 1);
	if (!buf) {
		http_reply_fail(r, CP_ERR_INTERNAL, "out of memory");
		return true;
	}
	memcpy(buf, r->path, plen);
	buf[plen] = '\n';
	if (r->body_len)
		memcpy(buf + plen + 1, r->body, r->body_len);
	char hash[CP_SHA256_HEX_LEN + 1];
	cp_sha256_hex(buf, plen + 1 + r->body_len, hash);
	free(buf);

	int64_t now = cp_now_ms();
	struct idem_record old = {0};
	int rc = STORE(r->srv->st, idem_claim, r->who.key.id, key, hash, now, now - HTTP_IDEMPOTENCY_TTL_MS, &old);
	if (rc == STORE_OK) {
		snprintf(r->idem_key, sizeof r->idem_key, "%s", key);
		return false;
	}
	if (rc != STORE_CONFLICT) {
		http_reply_fail(r, CP_ERR_INTERNAL, "store error");
		return true;
	}
	if (strcmp(old.request_hash, hash)) {
		http_reply_fail(r, CP_ERR_IDEMPOTENCY,
				"Idempotency-Key was already used with a different request");
	} else if (old.status == 0) {
		http_reply_fail(r, CP_ERR_IDEMPOTENCY,
				"a request with this Idempotency-Key is still being processed");
	} else {
		http_add_header(r, "Idempotent-Replayed", "true");
		char *text = old.body ? old.body : strdup("");
		old.body = NULL;
		reply_text(r, old.status, text, strlen(text));
	}
	idem_record_clear(&old);
	return true;
}

/* Takes a token from the key's bucket and adds the X-RateLimit-* headers every authenticated
 * response carries; refuses with 429 + Retry-After (in the route's dialect) when empty. */
static bool rate_limit_pass(struct http_request *r)
{
	unsigned rate = r->who.key.rate_limit ? r->who.key.rate_limit : r->srv->rate_limit;
	struct ratelimit_result rr;
	char buf[32];
	ratelimit_take(r->srv->rl, r->who.key.id, rate, &rr);
	if (!rate)
		return true;
	snprintf(buf, sizeof buf, "%u", rr.limit);
	http_add_header(r, "X-RateLimit-Limit", buf);
	snprintf(buf, sizeof buf, "%u", rr.remaining);
	http_add_header(r, "X-RateLimit-Remaining", buf);
	snprintf(buf, sizeof buf, "%lld", (long long)rr.reset_unix);
	http_add_header(r, "X-RateLimit-Reset", buf);
	if (rr.allowed)
		return true;
	snprintf(buf, sizeof buf, "%u", rr.retry_after);
	http_add_header(r, "Retry-After", buf);
	http_reply_fail(r, CP_ERR_RATE_LIMITED, "rate limit of %u requests per second exceeded",
			rr.limit);
	return false;
}

static void dispatch(struct http_request *r)
{
	bool path_known;
	/* the route first, so that every error below is in the route's dialect */
	r->route = find_route(r, &path_known);
	if (atomic_load(&r->srv->stopping)) {
		http_add_header(r, "Connection", "close");
		http_reply_fail(r, CP_ERR_UNAVAILABLE, "shutting down");
		return;
	}
	if (r->too_large) {
		http_reply_fail(r, CP_ERR_TOO_LARGE, "request body exceeds %d bytes", HTTP_MAX_BODY);
		return;
	}
	if (!decode_query(r)) {
		http_reply_fail(r, CP_ERR_INVALID, "malformed query string");
		return;
	}
	if (!r->route) {
		if (path_known)
			http_reply_fail(r, CP_ERR_METHOD, "method %s not allowed here", r->method);
		else
			http_reply_fail(r, CP_ERR_NOT_FOUND, "no such route");
		return;
	}
	if (!(r->route->flags & ROUTE_PUBLIC)) {
		struct cp_error err = {0};
		const struct http_dialect *d = dialect_of(r);
		enum cp_err e = d->authenticate ? d->authenticate(r, &r->who, &err)
						: http_auth_key(r, true, true, &r->who, &err);
		if (e != CP_OK) {
			http_reply_error(r, &err);
			return;
		}
		r->authenticated = true;
		if (!rate_limit_pass(r))
			return;
		if (idempotency_begin(r))
			return;
	}
	r->route->handler(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *r = *con_cls;
	(void)version;

	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		r->srv = srv;
		r->conn = conn;
		r->method = method;
		r->path = strdup(url);
		r->t_start_us = cp_mono_us();
		pthread_mutex_init(&r->mu, NULL);
		if (!r->path) {
			request_free(r);
			return MHD_NO;
		}
		request_id(srv, r->req_id);
		*con_cls = r;
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		long long announced;
		if (cl && cp_parse_int(cl, 0, (long long)1 << 62, &announced) && announced > HTTP_MAX_BODY)
			r->too_large = true;   /* answered once the body is drained (or refused below) */
		return MHD_YES;
	}

	if (r->state == REQ_READING && *upload_size) {
		if (!r->too_large && r->body_len + *upload_size <= HTTP_MAX_BODY) {
			char *nb = realloc(r->body, r->body_len + *upload_size + 1);
			if (!nb)
				return MHD_NO;
			memcpy(nb + r->body_len, upload_data, *upload_size);
			r->body = nb;
			r->body_len += *upload_size;
			r->body[r->body_len] = '\0';
		} else {
			/* Read and discard the rest, then answer 413 like any other reply: a
			 * server that closes while the client is still sending makes the kernel
			 * reset the connection and the client never sees the 413. */
			r->too_large = true;
			r->discarded += *upload_size;
			if (r->discarded > HTTP_MAX_DISCARD)
				return MHD_NO;   /* absurd upload: drop the connection */
		}
		*upload_size = 0;
		return MHD_YES;
	}

	if (r->state == REQ_READING) {
		pthread_mutex_lock(&srv->mu);
		srv->in_flight++;
		pthread_mutex_unlock(&srv->mu);
		r->state = REQ_DISPATCHED;
		dispatch(r);
		pthread_mutex_lock(&r->mu);
		if (r->state == REQ_REPLIED) {
			pthread_mutex_unlock(&r->mu);
			return queue_reply(r);
		}
		r->state = REQ_SUSPENDED;
		MHD_suspend_connection(conn);
		pthread_mutex_unlock(&r->mu);
		return MHD_YES;
	}

	if (r->state == REQ_REPLIED)
		return queue_reply(r);
	if (*upload_size) {
		*upload_size = 0;     /* body bytes after we already answered: drop */
		return MHD_YES;
	}
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct http_request *r = *con_cls;
	if (r)
		request_free(r);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char buf[512];
	vsnprintf(buf, sizeof buf, fmt, ap);
	size_t n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	log_json(LOG_WARN, "http_server", json_pack("{s:s}", "message", buf));
}

struct http_server *http_server_start(const struct http_server_config *cfg,
				      const struct route *const *tables, size_t n_tables)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
	struct addrinfo *ai = NULL;
	char port[16];
	snprintf(port, sizeof port, "%d", cfg->port);
	if (getaddrinfo(cfg->host, port, &hints, &ai) || !ai) {
		log_msg(LOG_ERROR, "http_server", "bad listen address %s:%d", cfg->host, cfg->port);
		return NULL;
	}
	struct http_server *srv = calloc(1, sizeof *srv);
	if (!srv) {
		freeaddrinfo(ai);
		return NULL;
	}
	srv->tables = tables;
	srv->n_tables = n_tables;
	srv->app = cfg->app;
	srv->st = cfg->store;
	srv->fallback = cfg->fallback;
	srv->rate_limit = cfg->rate_limit;
	srv->rl = ratelimit_create();
	if (!srv->rl || cp_random(&srv->req_seed, sizeof srv->req_seed)) {
		ratelimit_destroy(srv->rl);
		free(srv);
		freeaddrinfo(ai);
		return NULL;
	}
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cv, NULL);
	unsigned threads = cfg->threads;
	if (!threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (unsigned)n : 1;
	}
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv->d = MHD_start_daemon(
		flags, (uint16_t)cfg->port, NULL, NULL, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,   /* must come first */
		MHD_OPTION_SOCK_ADDR, ai->ai_addr,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_LIMIT, 10000u,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, 4096u,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
		MHD_OPTION_CONNECTION_TIMEOUT, 60u,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
		MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!srv->d) {
		log_msg(LOG_ERROR, "http_server", "cannot listen on %s:%d", cfg->host, cfg->port);
		ratelimit_destroy(srv->rl);
		pthread_mutex_destroy(&srv->mu);
		pthread_cond_destroy(&srv->cv);
		free(srv);
		return NULL;
	}
	return srv;
}

void http_server_quiesce(struct http_server *srv)
{
	if (srv)
		atomic_store(&srv->stopping, true);
}

void http_server_stop(struct http_server *srv)
{
	if (!srv)
		return;
	/* New requests get 503 from now on. (Not MHD_quiesce_daemon(): with an epoll thread pool
	 * in libmicrohttpd 0.9.75 it can race the workers' epoll sets and abort the process.) */
	atomic_store(&srv->stopping, true);
	/* let requests in flight (e.g. hang-ups waiting on the engine) finish, bounded */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&srv->mu);
	while (srv->in_flight > 0) {
		if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until))
			break;
	}
	int left = srv->in_flight;
	/* end every stream: a parked connection must be resumed before MHD can stop */
	for (struct http_stream *s = srv->streams; s; s = s->next) {
		pthread_mutex_lock(&s->mu);
		s->closing = true;
		if (s->parked) {
			s->parked = false;
			MHD_resume_connection(s->conn);
		}
		pthread_mutex_unlock(&s->mu);
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	while (srv->streams) {
		if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until))
			break;
	}
	pthread_mutex_unlock(&srv->mu);
	if (left) {
		/* MHD aborts the process if stopped with a connection suspended: leave it to the
		 * process exit instead (nothing of it is durable-pending: replies come after writes) */
		log_msg(LOG_WARN, "http_server", "%d requests still in flight at shutdown", left);
		return;
	}
	MHD_stop_daemon(srv->d);
	ratelimit_destroy(srv->rl);
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cv);
	free(srv);
}
