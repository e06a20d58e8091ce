/*
 * http_internal.h - what the files of src/http/ share behind http.h: the server, a request, a
 * streaming reply, and the calls between the stages a request goes through.
 *
 * One concern per file. Calls between them go one way, down this list (none calls a file
 * above it):
 *   server.c       libmicrohttpd glue: reads the body, hands the complete request to dispatch,
 *                  suspends the connection until the reply, queues the response; starts and
 *                  stops MHD.
 *   dispatch.c     from a complete request to its handler: refusals, authentication, rate limit.
 *   router.c       route matching and percent-decoding of the path and the query.
 *   idempotency.c  Idempotency-Key: claimed before the handler, completed by the reply.
 *   stream.c       streaming replies (SSE): parked when idle, woken from any thread.
 *   upgrade.c      WebSocket upgrades: the handshake checked and answered, the socket handed
 *                  over and given back.
 *   reply.c        the reply hand-over (any thread), file replies (Range: range.c), error
 *                  rendering, the access log line.
 *   request.c      the request object: its life, its id, and what a handler reads from it.
 *   tls.c          the certificate and key of HTTPS, read and checked before the server starts.
 * A stage above that must see the reply (idempotency.c) sets r->on_reply rather than being
 * called by name from reply.c.
 *
 * Locks: srv->mu guards in_flight and the list of streams; r->mu guards a request's reply
 * hand-over (its state, status, body and headers); s->mu a stream's park/wake hand-over. The
 * only nesting is srv->mu then s->mu (http_streams_end).
 */
#ifndef CP_HTTP_INTERNAL_H
#define CP_HTTP_INTERNAL_H

#include "http.h"
#include "ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <microhttpd.h>

#define MAX_EXTRA_HEADERS 8

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
	int upgraded;                /* sockets upgraded and not yet given back (under mu) */
	atomic_bool stopping;
	/* request ids: a random start and a counter, mixed (see request.c) */
	uint64_t req_seed;
	atomic_uint_fast64_t req_count;
};

/* READING until the body is complete; DISPATCHED while the handler runs; SUSPENDED when it
 * returned without replying; REPLIED once a reply is stored; SENT once handed to MHD. */
enum req_state { REQ_READING, REQ_DISPATCHED, REQ_SUSPENDED, REQ_REPLIED, REQ_SENT };

struct http_request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	const char *method;
	char *path; /* raw path as received */
	char req_id[17];
	int64_t t_start_us;

	char *body;
	size_t body_len;
	bool too_large;
	size_t discarded;   /* bytes of an oversized body read and dropped */
	bool too_many_args; /* more than HTTP_MAX_QUERY_ARGS: answered 414 */
	bool bad_framing;   /* conflicting Content-Length, or it with Transfer-Encoding */

	const struct route *route;
	const struct http_dialect *path_dialect; /* no route: the dialect owning the path */
	char allow[48];                          /* no route: the methods the path is served with */
	char *params[HTTP_MAX_PARAMS];
	struct principal who;
	bool authenticated;

	char idem_key[256]; /* "" = none claimed */
	/* Sees the reply before the client can (on the replying thread); NULL = none. */
	void (*on_reply)(struct http_request *r, unsigned status, const char *text);

	pthread_mutex_t mu;
	enum req_state state;
	unsigned status;
	char *resp;            /* response body text */
	const char *resp_type; /* its Content-Type; NULL: application/json */
	size_t resp_len;       /* its length, or that of the file's part sent */
	int file_fd;           /* a file reply instead of resp (-1: none); owned */
	uint64_t file_off;
	struct {
		char *name, *value;
	} hdr[MAX_EXTRA_HEADERS];
	int n_hdr;
	struct http_stream *stream; /* a streaming reply instead of resp */
	/* a WebSocket upgrade instead of resp (upgrade.c): what runs once the 101 is sent */
	http_websocket_fn on_upgrade;
	char *upgrade_tag;
	struct MHD_UpgradeResponseHandle *urh;
};

/* A streaming reply. The wake/park hand-over is guarded by mu, like a late reply: a wake that
 * comes while read() runs is remembered so the connection is not parked past new data. */
struct http_stream {
	struct http_server *srv;
	struct http_stream *prev, *next; /* srv->streams */
	struct MHD_Connection *conn;
	pthread_mutex_t mu;
	bool parked, wake_pending, closing;
	http_stream_read_fn read;
	void (*done)(void *cls);
	void *cls;
};

/* ---- request.c -------------------------------------------------------------------------- */
/* A new request of conn with a fresh id (owned by the caller; NULL when out of memory). */
struct http_request *http_request_new(struct http_server *srv, struct MHD_Connection *conn,
				      const char *method, const char *url);
/* Frees r and what it owns, except r->stream: a stream never handed to MHD is the caller's
 * to end (http_stream_free) first. */
void http_request_free(struct http_request *r);

/* ---- dispatch.c ------------------------------------------------------------------------- */
/* Runs the complete request up to its handler; every refusal on the way is replied. */
void http_dispatch(struct http_request *r);

/* ---- router.c --------------------------------------------------------------------------- */
/* The route of r's method and path, its captures copied into r->params; NULL when none,
 * with *path_known telling a 405 (another method matches; r->allow then lists the methods
 * that do, "GET, DELETE") from a 404, and r->path_dialect set to the dialect owning the path
 * (http_dialect.path_prefix), if one does. */
const struct route *http_route_find(struct http_request *r, bool *path_known);
/* Decodes r's query values in place; false on a bad escape or an escaped name. */
bool http_query_decode(struct http_request *r);
/* MHD's unescape callback: leaves everything raw for the router to decode. */
size_t http_no_unescape(void *cls, struct MHD_Connection *c, char *s);
/* Percent-decodes in place ("+" -> " " when plus_is_space); false on a bad escape or a NUL. */
bool http_percent_decode(char *s, bool plus_is_space);

/* ---- idempotency.c ---------------------------------------------------------------------- */
/* Claims r's Idempotency-Key (POST only), and sets r->on_reply to record the reply. True when
 * r was answered here instead (a replay, a key in use or mismatched, an error): the handler
 * must not run. */
bool http_idempotency_begin(struct http_request *r);

/* ---- reply.c ---------------------------------------------------------------------------- */
/* Stores r's reply (takes text, malloc'd or NULL) and resumes r's connection if suspended.
 * Exactly once per request, from any thread. */
void http_reply_text(struct http_request *r, unsigned status, char *text, size_t len);
/* The same for a reply without a body (a 101 whose r->on_upgrade is set). */
void http_reply_empty(struct http_request *r, unsigned status);
/* Writes r's access log line and counts it in the metrics (once its response is queued). */
void http_reply_log(struct http_request *r);
/* The dialect r's errors are rendered in: its route's, else the one owning its path, else
 * the server's fallback. */
const struct http_dialect *http_dialect_of(struct http_request *r);

/* ---- upgrade.c -------------------------------------------------------------------------- */
#define HTTP_WS_ACCEPT_LEN 28
/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2); false when key is not 16
 * bytes in base64 (out untouched). */
bool http_websocket_accept(const char *key, char out[HTTP_WS_ACCEPT_LEN + 1]);
/* The 101 of r's WebSocket upgrade (r->on_upgrade set); NULL if out of memory. */
struct MHD_Response *http_upgrade_response(struct http_request *r);
/* With srv->mu held: waits (bounded) until every upgraded socket has been given back; returns
 * how many were not. */
int http_upgrades_wait(struct http_server *srv);

/* ---- stream.c --------------------------------------------------------------------------- */
/* An MHD response that reads from s; MHD owns s from then on (frees it with the response). */
struct MHD_Response *http_stream_response(struct http_stream *s);
/* Unlists s, runs its done callback and frees it (cls is the stream: an MHD free callback). */
void http_stream_free(void *cls);
/* With srv->mu held: ends every open stream and waits (bounded) until MHD has freed them. */
void http_streams_end(struct http_server *srv);

#endif
