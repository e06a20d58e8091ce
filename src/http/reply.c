/*
 * reply.c - replying: the hand-over from any thread, error rendering, the access log line.
 *
 * A handler replies exactly once, on the MHD thread that dispatched it or later from any other
 * (the call-service worker, typically). The reply is stored in the request under r->mu; if
 * the handler had already returned, the connection is suspended and the reply resumes it, and
 * MHD then calls server.c once more, which queues the response on an MHD thread. A reply
 * racing the handler's return is never lost: whichever side comes second under r->mu sees the
 * other's state. A stage above may ask to see the reply first (r->on_reply: idempotency.c
 * records it), still before the client can. A file reply (http_reply_file) hands the
 * descriptor over the same way; MHD sends it from the kernel (sendfile). Errors are rendered by
 * the route's dialect (for requests no route matched: the dialect owning the path, else the
 * server's fallback). server.c writes one log line per request
 * with http_reply_log() once the response is queued.
 */
#include "http_internal.h"
#include "range.h"
#include "core/log.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Counts r in the metrics (by dialect and status class), then logs it, hand-formatted: it runs
 * for every request and jansson's object building cost more than the rest of a cached GET. */
void http_reply_log(struct http_request *r)
{
	metrics_http_request(http_dialect_of(r)->metrics, r->status);
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
		off += (size_t)snprintf(f + off, sizeof f - off, ",\"key_id\":\"%s\"",
					r->who.key.id);
	if (off < sizeof f && r->route && r->route->dialect)
		snprintf(f + off, sizeof f - off, ",\"dialect\":\"%s\"", r->route->dialect->name);
	log_fields(LOG_INFO, "http_request", f);
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

/* The hand-over: text (owned) of len bytes and type (NULL: JSON), or, when fd >= 0 (owned),
 * len bytes of that file from off. */
static void reply_store(struct http_request *r, unsigned status, char *text, size_t len,
			const char *type, int fd, uint64_t off)
{
	struct http_server *srv = r->srv;
	if (r->on_reply)
		r->on_reply(r, status, text);
	pthread_mutex_lock(&r->mu);
	if (r->state >= REQ_REPLIED) { /* a handler bug: replying twice */
		pthread_mutex_unlock(&r->mu);
		log_msg(LOG_ERROR, "http_double_reply", "request %s replied twice", r->req_id);
		free(text);
		if (fd >= 0)
			close(fd);
		return;
	}
	bool resume = r->state == REQ_SUSPENDED; /* else DISPATCHED: replies follow dispatch */
	struct MHD_Connection *conn = r->conn;
	r->status = status;
	r->resp = text;
	r->resp_len = len;
	r->resp_type = type;
	r->file_fd = fd;
	r->file_off = off;
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

void http_reply_text(struct http_request *r, unsigned status, char *text, size_t len)
{
	reply_store(r, status, text, len, NULL, -1, 0);
}

void http_reply_typed(struct http_request *r, unsigned status, const char *content_type, char *text,
		      size_t len)
{
	if (!text) {
		http_reply_fail(r, CP_ERR_INTERNAL, "out of memory");
		return;
	}
	reply_store(r, status, text, len, content_type, -1, 0);
}

void http_reply_empty(struct http_request *r, unsigned status)
{
	reply_store(r, status, NULL, 0, NULL, -1, 0);
}

void http_reply_file(struct http_request *r, int fd, const char *content_type)
{
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		http_reply_fail(r, CP_ERR_INTERNAL, "the file could not be read");
		return;
	}
	uint64_t size = (uint64_t)st.st_size, off = 0, len = size;
	char buf[96];
	enum http_range range = http_range_parse(http_header(r, "Range"), size, &off, &len);
	http_add_header(r, "Accept-Ranges", "bytes");
	if (range == HTTP_RANGE_UNSATISFIABLE) {
		close(fd);
		snprintf(buf, sizeof buf, "bytes */%llu", (unsigned long long)size);
		http_add_header(r, "Content-Range", buf);
		http_reply_fail(r, CP_ERR_RANGE, "the range selects none of the %llu bytes",
				(unsigned long long)size);
		return;
	}
	if (range == HTTP_RANGE_PARTIAL) {
		snprintf(buf, sizeof buf, "bytes %llu-%llu/%llu", (unsigned long long)off,
			 (unsigned long long)(off + len - 1), (unsigned long long)size);
		http_add_header(r, "Content-Range", buf);
	}
	http_add_header(r, "Content-Type", content_type);
	reply_store(r, range == HTTP_RANGE_PARTIAL ? 206 : 200, NULL, (size_t)len, NULL, fd, off);
}

void http_reply_json(struct http_request *r, unsigned status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : strdup("");
	json_decref(body);
	if (!text) {
		text = strdup("{}");
		status = 500;
	}
	http_reply_text(r, status, text, text ? strlen(text) : 0);
}

void http_reply_json_text(struct http_request *r, unsigned status, char *text, size_t len)
{
	if (!text) {
		text = strdup("{}");
		len = text ? 2 : 0;
		status = 500;
	}
	http_reply_text(r, status, text, len);
}

const struct http_dialect *http_dialect_of(struct http_request *r)
{
	if (r->route && r->route->dialect)
		return r->route->dialect;
	return r->path_dialect ? r->path_dialect : r->srv->fallback;
}

void http_reply_error(struct http_request *r, const struct cp_error *e)
{
	/* a message may quote what the client sent, which need not be UTF-8; JSON must be */
	struct cp_error clean = *e;
	cp_utf8_scrub(clean.message);
	e = &clean;
	unsigned status = cp_err_status(e->code);
	if (e->code == CP_ERR_UNAVAILABLE) { /* draining or stopping: come back later */
		char retry[16];
		snprintf(retry, sizeof retry, "%d", CP_RETRY_AFTER_S);
		http_add_header(r, "Retry-After", retry);
	}
	json_t *body = http_dialect_of(r)->render_error(e, &status);
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
