/*
 * http.h - the HTTP boundary: routes, dialects, and the request a route handler sees.
 *
 * The server owns libmicrohttpd: it reads the body (at most 64 KiB), matches the route,
 * authenticates, applies Idempotency-Key, then calls the route's handler (one file per stage,
 * listed in http_internal.h). A handler parses the
 * request, calls the call service, and answers with http_reply_json() or http_reply_error()
 * exactly once -- then or later, from any thread (the connection is suspended meanwhile and
 * resumed by the reply). The server logs one line per request.
 *
 * A dialect (canonical, or a vendor's) is a struct of callbacks that says how its routes
 * authenticate and what its errors look like, so a vendor route is a thin translation over the
 * same call service and the same server machinery.
 */
#ifndef CP_HTTP_H
#define CP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "auth/auth.h"
#include "core/error.h"
#include "metrics/metrics.h"

/* How long an Idempotency-Key is remembered (claims and the server's purge agree on it). */
#define HTTP_IDEMPOTENCY_TTL_MS (24LL * 3600 * 1000)
#define HTTP_MAX_BODY (64 * 1024)
#define HTTP_MAX_PARAMS 4
/* Query parameters a request may carry; more is answered 414 (no route reads more than a few,
 * and libmicrohttpd 0.9.75 stops answering when they fill its per-connection pool). */
#define HTTP_MAX_QUERY_ARGS 64

struct http_request;
struct http_server;

struct http_dialect {
	const char *name;
	/* Renders an error in this dialect's shape and sets *status. */
	json_t *(*render_error)(const struct cp_error *e, unsigned *status);
	/* Authenticates the request; NULL = canonical (Bearer or x-api-key). */
	enum cp_err (*authenticate)(struct http_request *r, struct principal *who,
				    struct cp_error *err);
	/* Paths this dialect owns ("/agents": that path and those under it), so that a path or
	 * method none of its routes serves is answered in its error shape; NULL = none. */
	const char *path_prefix;
	/* Its value of the `dialect` label in /metrics (metrics.h); 0 = canonical. */
	enum metrics_dialect metrics;
};

enum route_flags {
	ROUTE_PUBLIC = 1u << 0, /* no authentication */
};

typedef void (*route_fn)(struct http_request *r);

struct route {
	const char *method;
	const char *pattern; /* "/v1/calls/:id/end": ":name" captures one segment */
	route_fn handler;
	const struct http_dialect *dialect;
	unsigned flags;
};

/* The API's certificate chain and private key, as PEM text (tls.c). */
struct http_tls {
	char *cert, *key; /* heap, NUL-terminated; the key is erased when freed */
	size_t cert_len, key_len;
};
enum http_tls_result {
	HTTP_TLS_OK,
	HTTP_TLS_UNREADABLE, /* a file could not be read */
	HTTP_TLS_INVALID,    /* not PEM, no certificate, or a key not the certificate's */
};
/* Reads cert_path (a chain: the server's certificate first) and key_path (unencrypted) into
 * *out and checks them, each alone then as a pair. Anything but HTTP_TLS_OK leaves *out empty
 * and the problem in why (one line naming the option and the file). */
enum http_tls_result http_tls_load(const char *cert_path, const char *key_path,
				   struct http_tls *out, char *why, size_t size);
void http_tls_free(struct http_tls *t);

struct http_server_config {
	const char *host;
	int port;
	unsigned threads;                    /* 0 = number of cores */
	void *app;                           /* handed to handlers through http_app() */
	struct store *store;                 /* authentication and idempotency records */
	const struct http_dialect *fallback; /* errors for unknown routes */
	unsigned rate_limit;        /* requests/s per key without a limit of its own; 0 = none */
	const struct http_tls *tls; /* HTTPS with this (which must outlive the server); NULL:
				      * plain HTTP */
	unsigned max_conns;         /* connections at once; 0: 10000 */
	unsigned max_conns_per_ip;  /* from one address; 0: 4096 */
	unsigned idle_timeout_s;    /* a connection idle this long is closed; 0: 60. Not a
				      * stream waiting for data: it is parked (stream.c), out of
				      * MHD's timeouts */
};

struct http_server *http_server_start(const struct http_server_config *cfg,
				      const struct route *const *tables, size_t n_tables);
/* From now on new requests get 503 (the first step of a shutdown). */
void http_server_quiesce(struct http_server *srv);
/* Waits (bounded) for requests in flight, ends streams, then stops. */
void http_server_stop(struct http_server *srv);

/* Authenticates with the credentials a dialect accepts: "Authorization: Bearer KEY" when
 * bearer, "x-api-key: KEY" when x_api_key. For dialects' authenticate callbacks. */
enum cp_err http_auth_key(struct http_request *r, bool bearer, bool x_api_key,
			  struct principal *who, struct cp_error *err);

/* ---- for handlers ----------------------------------------------------------------------- */
void *http_app(struct http_request *r);
const char *http_param(struct http_request *r, int i);            /* decoded ":name" captures */
const char *http_query(struct http_request *r, const char *name); /* decoded, or NULL */
const char *http_header(struct http_request *r, const char *name);
const struct principal *http_principal(struct http_request *r);
const char *http_req_id(struct http_request *r);

/* Adds a response header; call before replying. */
void http_add_header(struct http_request *r, const char *name, const char *value);
/* Replies (exactly once, any thread). Takes ownership of body; NULL = no body (e.g. 204). */
void http_reply_json(struct http_request *r, unsigned status, json_t *body);
/* The same with JSON already written as text (malloc'd, owned; NULL: out of memory, 500). */
void http_reply_json_text(struct http_request *r, unsigned status, char *text, size_t len);
/* The same with a body of another type: content_type must outlive the request (a literal). */
void http_reply_typed(struct http_request *r, unsigned status, const char *content_type, char *text,
		      size_t len);
/* Replies with an error in the route's dialect. */
void http_reply_error(struct http_request *r, const struct cp_error *e);
void http_reply_fail(struct http_request *r, enum cp_err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Replies with a file (any thread): fd is read from its start, owned from now on (closed
 * whatever happens). Honours a Range header (http/range.h): 200 with the whole file, 206 with
 * Content-Range, or 416 (an error in the route's dialect, Content-Range: bytes * / size).
 * Every answer says Accept-Ranges: bytes. */
void http_reply_file(struct http_request *r, int fd, const char *content_type);

/* A WebSocket, upgraded from its request: the socket and the bytes the server read past the
 * handshake (valid during on_open only: copy them). Whoever holds it never close()s fd; calling
 * release(ctx) once, from any thread, gives it back and the server closes it. */
struct http_upgraded {
	int fd;
	const uint8_t *pending;
	size_t pending_len;
	void (*release)(void *ctx);
	void *ctx;
};
/* Whether r is a WebSocket handshake http_reply_websocket() would accept. */
bool http_is_websocket(struct http_request *r);
/* on_open runs on an MHD thread once the 101 is sent; it must not block, and owns ws from then
 * on. app is http_app(), tag the handler's (a copy). */
typedef void (*http_websocket_fn)(void *app, const char *tag, const struct http_upgraded *ws);
/* Answers a WebSocket handshake (RFC 6455 4.2) with 101 and Sec-WebSocket-Accept, then hands
 * the socket to on_open with tag. A request that is not a version 13 handshake (GET, Upgrade:
 * websocket, Connection: upgrade, a Sec-WebSocket-Key of 16 bytes in base64) is answered 400
 * in the route's dialect instead, and on_open never runs; so when the client leaves before the
 * 101 is sent. Upgraded sockets count as requests in flight for the server's stop. */
void http_reply_websocket(struct http_request *r, http_websocket_fn on_open, const char *tag);

/* A streaming reply (Server-Sent Events). read() runs on an MHD thread whenever the socket can
 * take more: it returns the bytes it wrote into buf (at most max), 0 when it has nothing now
 * (the connection is then parked until http_stream_wake()), or -1 to end the stream.
 * done(cls) runs once when the connection is gone; after it the stream must not be woken. */
struct http_stream;
typedef long (*http_stream_read_fn)(void *cls, char *buf, size_t max);
struct http_stream *http_reply_stream(struct http_request *r, const char *content_type,
				      http_stream_read_fn read, void (*done)(void *cls), void *cls);
/* Any thread: there may be more to read. */
void http_stream_wake(struct http_stream *s);
/* Whether the client of s has closed its side or the connection broke (the stream ends at its
 * next read). Any thread, while s exists (its done callback has not returned). */
bool http_stream_client_gone(struct http_stream *s);

/* Parses a JSON object body. Empty body -> *out = NULL and true when allow_empty. On failure
 * fills err (CP_ERR_INVALID) and returns false. */
bool http_json_body(struct http_request *r, bool allow_empty, json_t **out, struct cp_error *err);

#endif
