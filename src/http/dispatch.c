/*
 * dispatch.c - from a complete request to its handler.
 *
 * The steps, each of which may answer the request instead of going on:
 *   1. the route (router.c), found first so that every refusal below is in its dialect;
 *   2. 503 while the server stops, 413 for a body over HTTP_MAX_BODY, 400 for a malformed
 *      query, 405/404 without a route;
 *   3. unless the route is public: the key (the dialect's authenticate callback, or Bearer /
 *      x-api-key), 403 for an operator key outside the canonical dialect, then its rate
 *      limit, then the Idempotency-Key (idempotency.c);
 *   4. the handler, which replies then or later (reply.c).
 * A key is looked up in the store on every request (whose key cache follows revocations) and
 * never cached here, so a key revoked with the CLI stops working at once.
 */
#include "http_internal.h"
#include "routes.h"

#include <stdio.h>

enum cp_err http_auth_key(struct http_request *r, bool bearer, bool x_api_key,
			  struct principal *who, struct cp_error *err)
{
	const char *secret =
		auth_secret_from_headers(bearer ? http_header(r, "Authorization") : NULL,
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
	metrics_http_rate_limited(http_dialect_of(r)->metrics);
	snprintf(buf, sizeof buf, "%u", rr.retry_after);
	http_add_header(r, "Retry-After", buf);
	http_reply_fail(r, CP_ERR_RATE_LIMITED, "rate limit of %u requests per second exceeded",
			rr.limit);
	return false;
}

void http_dispatch(struct http_request *r)
{
	bool path_known;
	/* the route first, so that every error below is in the route's dialect */
	r->route = http_route_find(r, &path_known);
	if (atomic_load(&r->srv->stopping)) {
		http_add_header(r, "Connection", "close");
		http_reply_fail(r, CP_ERR_UNAVAILABLE, "shutting down");
		return;
	}
	if (r->bad_framing) {
		/* what follows the body this server read may be another request to a proxy that
		 * read another length: close after the answer */
		http_add_header(r, "Connection", "close");
		http_reply_fail(r, CP_ERR_INVALID,
				"the body's length is ambiguous: conflicting "
				"Content-Length headers, or Content-Length with Transfer-Encoding");
		return;
	}
	if (r->too_many_args) {
		http_reply_fail(r, CP_ERR_URI_TOO_LONG, "more than %d query parameters",
				HTTP_MAX_QUERY_ARGS);
		return;
	}
	if (r->too_large) {
		http_reply_fail(r, CP_ERR_TOO_LARGE, "request body exceeds %d bytes",
				HTTP_MAX_BODY);
		return;
	}
	if (!http_query_decode(r)) {
		http_reply_fail(r, CP_ERR_INVALID, "malformed query string");
		return;
	}
	if (!r->route) {
		if (path_known) {
			http_add_header(r, "Allow", r->allow);
			http_reply_fail(r, CP_ERR_METHOD, "method %s not allowed here", r->method);
		} else {
			http_reply_fail(r, CP_ERR_NOT_FOUND, "no such route");
		}
		return;
	}
	if (!(r->route->flags & ROUTE_PUBLIC)) {
		struct cp_error err = {0};
		const struct http_dialect *d = http_dialect_of(r);
		enum cp_err e = d->authenticate ? d->authenticate(r, &r->who, &err)
						: http_auth_key(r, true, true, &r->who, &err);
		if (e != CP_OK) {
			http_reply_error(r, &err);
			return;
		}
		r->authenticated = true;
		/* an operator key spans tenants, which no vendor's API has a shape for */
		if (r->who.scope.all && d != &canonical_dialect) {
			http_reply_fail(
				r, CP_ERR_FORBIDDEN,
				"an operator key works only on the canonical API (/v1/...)");
			return;
		}
		if (!rate_limit_pass(r))
			return;
		if (http_idempotency_begin(r))
			return;
	}
	r->route->handler(r);
}
