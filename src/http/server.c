/*
 * server.c - libmicrohttpd glue: one epoll thread pool, suspend/resume for late replies.
 *
 * Life of a request (MHD calls on_request several times per request):
 *   1st call      headers only: allocate struct http_request, note an announced oversized body;
 *   next calls    body chunks: append up to HTTP_MAX_BODY, then only count what is dropped;
 *   last call     (*upload_size == 0) http_dispatch() (dispatch.c): route, authenticate,
 *                 Idempotency-Key, handler. If the handler replied already the response is
 *                 queued now. Otherwise the connection is suspended; the reply (from any
 *                 thread, reply.c) resumes it and MHD calls on_request once more, which queues
 *                 the response.
 * A response is never queued on the first call when a body may follow: MHD would then close
 * the connection.
 *
 * Before the first call, on_uri() sees the request line. A query of more than
 * HTTP_MAX_QUERY_ARGS parameters is answered 414 by dispatch: libmicrohttpd 0.9.75 stores each
 * parameter in the connection's fixed pool, and when they do not fit it queues a 431 and then
 * overwrites its own state and waits for the client until the connection times out (60 s), a
 * cheap way to hold descriptors. on_uri() therefore joins such a query into one parameter
 * before MHD parses it (MHD hands the callback its own request-line buffer, which it is about
 * to cut up itself) and marks the request. A request whose body length is ambiguous (two
 * different Content-Length headers, or one with Transfer-Encoding) is answered 400 and the
 * connection closed: behind a proxy that reads the other length, the rest would be a second,
 * smuggled request.
 *
 * HTTPS (--tls-cert, --tls-key): the same daemon with MHD_USE_TLS, GnuTLS underneath, from the
 * PEM text tls.c read and checked; nothing above this file knows whether a request came over
 * TLS.
 *
 * Stopping is in two steps: http_server_quiesce() makes new requests 503 at once;
 * http_server_stop() then waits (bounded) for the requests in flight, ends the streams
 * (stream.c) and stops MHD.
 */
#include "http_internal.h"
#include "core/log.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HTTP_MAX_DISCARD (16u * 1024 * 1024)
/* GnuTLS's defaults, less the protocol versions before TLS 1.2 (RFC 8996) */
#define HTTP_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* *con_cls before the first call of a request whose query on_uri() joined */
static char too_many_args_mark;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)cls;
	(void)conn;
	char *q = strchr(uri, '?');
	if (!q)
		return NULL;
	size_t n = 1;
	for (const char *p = q + 1; *p; p++)
		n += *p == '&';
	if (n <= HTTP_MAX_QUERY_ARGS)
		return NULL;
	for (char *p = q + 1; *p; p++) /* MHD's own buffer: see the top of this file */
		if (*p == '&')
			*p = ';';
	return &too_many_args_mark;
}

struct framing {
	int n_length, n_encoding;
	const char *length;
	bool conflict;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
				     const char *value)
{
	struct framing *f = cls;
	(void)kind;
	if (!strcasecmp(key, "Content-Length")) {
		if (f->n_length++ && strcmp(f->length, value ? value : ""))
			f->conflict = true;
		f->length = value ? value : "";
	} else if (!strcasecmp(key, "Transfer-Encoding")) {
		f->n_encoding++;
	}
	return MHD_YES;
}

/* Whether the headers leave the body's length in doubt (RFC 9112, 6.3). */
static bool ambiguous_framing(struct MHD_Connection *conn)
{
	struct framing f = {0};
	MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing, &f);
	return f.conflict || (f.n_length && f.n_encoding);
}

/* Hands the stored reply to MHD and logs the request. */
static enum MHD_Result queue_reply(struct http_request *r)
{
	struct MHD_Response *resp;
	bool file = r->file_fd >= 0;
	if (r->on_upgrade)
		resp = http_upgrade_response(r);
	else if (r->stream)
		resp = http_stream_response(r->stream);
	else if (file)
		resp = MHD_create_response_from_fd_at_offset64(r->resp_len, r->file_fd,
							       r->file_off);
	else
		resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		return MHD_NO;
	r->resp = NULL; /* owned by the response now */
	r->stream = NULL;
	r->file_fd = -1;
	if (r->resp_len && !file)
		MHD_add_response_header(resp, "Content-Type",
					r->resp_type ? r->resp_type : "application/json");
	MHD_add_response_header(resp, "X-Request-Id", r->req_id);
	for (int i = 0; i < r->n_hdr; i++)
		MHD_add_response_header(resp, r->hdr[i].name, r->hdr[i].value);
	enum MHD_Result ret = MHD_queue_response(r->conn, r->status, resp);
	MHD_destroy_response(resp);
	r->state = REQ_SENT;
	http_reply_log(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *r = *con_cls;
	(void)version;

	if (!r || *con_cls == &too_many_args_mark) {
		r = http_request_new(srv, conn, method, url);
		if (!r)
			return MHD_NO;
		r->too_many_args = *con_cls == &too_many_args_mark;
		r->bad_framing = ambiguous_framing(conn);
		*con_cls = r;
		const char *cl =
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		long long announced;
		if (cl && cp_parse_int(cl, 0, (long long)1 << 62, &announced) &&
		    announced > HTTP_MAX_BODY)
			r->too_large =
				true; /* answered once the body is drained (or refused below) */
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
				return MHD_NO; /* absurd upload: drop the connection */
		}
		*upload_size = 0;
		return MHD_YES;
	}

	if (r->state == REQ_READING) {
		pthread_mutex_lock(&srv->mu);
		srv->in_flight++;
		pthread_mutex_unlock(&srv->mu);
		r->state = REQ_DISPATCHED;
		http_dispatch(r);
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
		*upload_size = 0; /* body bytes after we already answered: drop */
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
	if (r && *con_cls != &too_many_args_mark) {
		if (r->stream) /* never handed to MHD (the client left first) */
			http_stream_free(r->stream);
		http_request_free(r);
	}
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
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
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
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* HTTPS: MHD hands the PEM text to GnuTLS as it starts (tls.c checked it already) */
	struct MHD_OptionItem tls[] = {
		{MHD_OPTION_HTTPS_MEM_CERT, 0, cfg->tls ? cfg->tls->cert : NULL},
		{MHD_OPTION_HTTPS_MEM_KEY, 0, cfg->tls ? cfg->tls->key : NULL},
		{MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)HTTP_TLS_PRIORITIES},
		{MHD_OPTION_END, 0, NULL},
	};
	if (cfg->tls)
		flags |= MHD_USE_TLS;
	else
		tls[0].option = MHD_OPTION_END;
	/* as written: an option and its values per line */
	/* clang-format off */
	srv->d = MHD_start_daemon(
		flags, (uint16_t)cfg->port, NULL, NULL, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,   /* must come first */
		MHD_OPTION_SOCK_ADDR, ai->ai_addr,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_LIMIT, cfg->max_conns ? cfg->max_conns : 10000u,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		cfg->max_conns_per_ip ? cfg->max_conns_per_ip : 4096u,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
		MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s ? cfg->idle_timeout_s : 60u,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
		MHD_OPTION_UNESCAPE_CALLBACK, http_no_unescape, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
		MHD_OPTION_ARRAY, tls,
		MHD_OPTION_END);
	/* clang-format on */
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
	http_streams_end(srv); /* bounded too */
	left += http_upgrades_wait(srv);
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
