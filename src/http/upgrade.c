/*
 * upgrade.c - WebSocket upgrades: the handshake checked (RFC 6455 4.2.1) and answered with
 * 101 Switching Protocols (4.2.2), the socket handed to the route's owner and given back.
 *
 * libmicrohttpd does the switch: a response made by MHD_create_response_for_upgrade() sends
 * the 101 and then calls on_upgraded() with the connection's socket, which MHD no longer
 * reads or writes (for plain HTTP it is the client's socket itself); MHD keeps the connection
 * suspended until MHD_upgrade_action(CLOSE), which may come from any thread (it only marks
 * the connection and resumes it), and then closes the socket and completes the request. The
 * request object lives until then, so it is the release's context. Framing is not done here:
 * the socket goes to whoever the route handler named (the media plane, for a web call).
 *
 * Upgraded sockets are counted (srv->upgraded): MHD aborts the process if stopped with a
 * connection suspended, so the server's stop waits for them like for requests in flight.
 */
#include "http_internal.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 1.3 */
#define UPGRADES_WAIT_S 5

/* Whether a comma-separated header value lists token (case-insensitive, blanks around). */
static bool has_token(const char *value, const char *token)
{
	size_t n = strlen(token);
	for (const char *p = value; p && *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *end = p;
		while (*end && *end != ',')
			end++;
		const char *last = end;
		while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
			last--;
		if ((size_t)(last - p) == n && !strncasecmp(p, token, n))
			return true;
		p = end;
	}
	return false;
}

bool http_websocket_accept(const char *key, char out[HTTP_WS_ACCEPT_LEN + 1])
{
	/* 16 bytes in base64: 22 characters, the last of them with its low 4 bits zero, "==" */
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	if (!key || strlen(key) != 24 || strcmp(key + 22, "==") || strspn(key, abc) != 22 ||
	    (strchr(abc, key[21]) - abc) % 16)
		return false;
	char buf[24 + sizeof WS_GUID];
	snprintf(buf, sizeof buf, "%s" WS_GUID, key);
	unsigned char digest[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)buf, strlen(buf), digest);
	EVP_EncodeBlock((unsigned char *)out, digest, sizeof digest);
	return true;
}

/* The socket's owner is done with it: MHD closes it and completes the request. */
static void release(void *ctx)
{
	struct http_request *r = ctx;
	struct http_server *srv = r->srv;
	/* r may be freed by an MHD thread from the action on */
	MHD_upgrade_action(r->urh, MHD_UPGRADE_ACTION_CLOSE);
	pthread_mutex_lock(&srv->mu);
	if (--srv->upgraded == 0)
		pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mu);
}

static void on_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
			size_t extra_in_size, MHD_socket sock,
			struct MHD_UpgradeResponseHandle *urh)
{
	struct http_request *r = con_cls;
	(void)cls;
	(void)conn;
	r->urh = urh;
	pthread_mutex_lock(&r->srv->mu);
	r->srv->upgraded++;
	pthread_mutex_unlock(&r->srv->mu);
	struct http_upgraded ws = {.fd = sock,
				   .pending = (const uint8_t *)extra_in,
				   .pending_len = extra_in_size,
				   .release = release,
				   .ctx = r};
	r->on_upgrade(r->srv->app, r->upgrade_tag, &ws);
}

struct MHD_Response *http_upgrade_response(struct http_request *r)
{
	(void)r;
	return MHD_create_response_for_upgrade(on_upgraded, NULL);
}

/* The handshake's checks (RFC 6455 4.2.1); accept receives Sec-WebSocket-Accept. */
static bool handshake(struct http_request *r, char accept[HTTP_WS_ACCEPT_LEN + 1])
{
	const char *version = http_header(r, "Sec-WebSocket-Version");
	return !strcmp(r->method, "GET") && has_token(http_header(r, "Upgrade"), "websocket") &&
	       has_token(http_header(r, "Connection"), "upgrade") && version &&
	       !strcmp(version, "13") &&
	       http_websocket_accept(http_header(r, "Sec-WebSocket-Key"), accept);
}

bool http_is_websocket(struct http_request *r)
{
	char accept[HTTP_WS_ACCEPT_LEN + 1];
	return handshake(r, accept);
}

void http_reply_websocket(struct http_request *r, http_websocket_fn on_open, const char *tag)
{
	char accept[HTTP_WS_ACCEPT_LEN + 1];
	if (!handshake(r, accept)) {
		http_add_header(r, "Sec-WebSocket-Version", "13");
		http_reply_fail(r, CP_ERR_INVALID,
				"not a WebSocket handshake (RFC 6455, version 13)");
		return;
	}
	r->upgrade_tag = strdup(tag);
	if (!r->upgrade_tag) {
		http_reply_fail(r, CP_ERR_INTERNAL, "out of memory");
		return;
	}
	http_add_header(r, "Upgrade", "websocket");
	http_add_header(r, "Sec-WebSocket-Accept", accept);
	r->on_upgrade = on_open; /* before the reply: an MHD thread may queue it at once */
	http_reply_empty(r, 101);
}

int http_upgrades_wait(struct http_server *srv)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += UPGRADES_WAIT_S;
	while (srv->upgraded > 0)
		if (pthread_cond_timedwait(&srv->cv, &srv->mu, &until))
			break;
	return srv->upgraded;
}
