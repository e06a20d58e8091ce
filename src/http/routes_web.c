/*
 * routes_web.c - web calls (docs/API.md, "Web calls"): POST /v1/web-calls creates one, and its
 * browser joins with the access token it returned: GET /web/call serves the page, GET /web/ws
 * is the call's audio WebSocket.
 *
 * The browser has no API key: the two /web/ routes are public and the token is the
 * credential. The page checks it without using it (a reload of the page before the call has
 * started works); the WebSocket takes it, and every refusal is the same 401 whatever the
 * reason (the log has it). Once the upgrade is sent, the socket goes to the call service and
 * from there to the engine, which answers the call.
 *
 * The token travels in the query string. The access log never shows query strings, and the
 * page is sent with Referrer-Policy: no-referrer and Cache-Control: no-store so that neither
 * its links nor a cache keep it.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct call_service *svc_of(struct http_request *r)
{
	return ((struct app *)http_app(r))->calls;
}

static void create(struct http_request *r)
{
	static const char *const fields[] = {"agent_id", "metadata", "record", "token_ttl_s", NULL};
	struct cp_error err = {0};
	json_t *body = NULL;
	char *meta_text = NULL;
	struct web_call_request req = {0};
	struct web_call_access access = {0};
	struct call c = {0};

	if (!http_json_body(r, false, &body, &err) || !json_only_fields(body, fields, &err) ||
	    !json_opt_string(body, "agent_id", &req.agent_id, &err))
		goto fail;
	if (!req.agent_id) {
		cp_fail(&err, CP_ERR_INVALID, "agent_id is required");
		goto fail;
	}
	if (!json_opt_int(body, "token_ttl_s", 1, WEB_TOKEN_TTL_MAX_S, &req.token_ttl_s, &err) ||
	    !json_opt_record(body, &req.record, &err) || !json_opt_metadata(body, &meta_text, &err))
		goto fail;
	req.metadata = meta_text;
	if (call_web_create(svc_of(r), &http_principal(r)->scope, &req, http_req_id(r), &c, &access,
			    &err) != CP_OK)
		goto fail;
	/* the call object, and after its members the three of access (token: base64url, id: a
	 * UUID; nothing to escape) */
	size_t len = 0;
	char *text = call_to_json_text(&c, &len);
	char expires[CP_RFC3339_LEN + 1];
	cp_rfc3339(access.expires_at, expires);
	size_t cap = len + 3 * WEB_TOKEN_LEN + 256;
	char *out = text ? malloc(cap) : NULL;
	int n = out ? snprintf(out, cap,
			       "%.*s,\"access_token\":\"%s\",\"access_token_expires_at\":\"%s\","
			       "\"web_url\":\"/web/call?call_id=%s&token=%s\"}",
			       (int)len - 1, text, access.token, expires, c.id, access.token)
		    : -1;
	free(text);
	if (n < 0 || (size_t)n >= cap) {
		free(out);
		out = NULL;
	}
	http_reply_json_text(r, 201, out, out ? (size_t)n : 0);
	goto out;
fail:
	http_reply_error(r, &err);
out:
	call_clear(&c);
	free(meta_text);
	json_decref(body);
}

static void add_page_headers(struct http_request *r)
{
	http_add_header(r, "Cache-Control", "no-store");
	http_add_header(r, "Referrer-Policy", "no-referrer");
	http_add_header(r, "X-Content-Type-Options", "nosniff");
}

static const char refused_page[] =
	"<!doctype html>\n<html lang=\"en\"><head><meta "
	"charset=\"utf-8\"><title>Call</title></head>\n"
	"<body data-call-state=\"ended\"><main><h1>This call link is not valid</h1>\n"
	"<p>It has expired, was used already, or its call has ended.</p></main></body></html>\n";

static void page(struct http_request *r)
{
	struct cp_error err = {0};
	add_page_headers(r);
	bool ok = call_web_check(svc_of(r), http_query(r, "token"), http_query(r, "call_id"),
				 &err) == CP_OK;
	const char *html = ok ? (const char *)web_call_html : refused_page;
	size_t len = ok ? web_call_html_len : sizeof refused_page - 1;
	char *body = malloc(len);
	if (body)
		memcpy(body, html, len);
	http_reply_typed(r, ok ? 200 : 401, "text/html; charset=utf-8", body, len);
}

/* The 101 is sent: the socket goes to the call, through the service. */
static void joined(void *app, const char *call_id, const struct http_upgraded *up)
{
	struct web_socket ws = {.fd = up->fd,
				.pending = up->pending,
				.pending_len = up->pending_len,
				.release = up->release,
				.ctx = up->ctx};
	call_web_join(((struct app *)app)->calls, call_id, &ws);
}

static void socket_route(struct http_request *r)
{
	struct cp_error err = {0};
	char call_id[CP_UUID_LEN + 1];
	const char *token = http_query(r, "token"), *wanted = http_query(r, "call_id");
	/* the credential first, as on every route; then the handshake, checked before the token is
	 * used: a request that could not be upgraded must not use it up */
	if (call_web_check(svc_of(r), token, wanted, &err) != CP_OK) {
		http_reply_error(r, &err);
		return;
	}
	if (!http_is_websocket(r)) {
		http_add_header(r, "Sec-WebSocket-Version", "13");
		http_reply_fail(r, CP_ERR_INVALID,
				"not a WebSocket handshake (RFC 6455, version 13)");
		return;
	}
	if (call_web_take(svc_of(r), token, wanted, call_id, &err) != CP_OK) {
		http_reply_error(r, &err);
		return;
	}
	http_reply_websocket(r, joined, call_id);
}

const struct route web_routes[] = {
	{"POST", "/v1/web-calls", create, &canonical_dialect, 0},
	{"GET", "/web/call", page, &canonical_dialect, ROUTE_PUBLIC},
	{"GET", "/web/ws", socket_route, &canonical_dialect, ROUTE_PUBLIC},
	{0},
};
