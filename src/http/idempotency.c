/*
 * idempotency.c - Idempotency-Key on POST requests.
 *
 * A request's identity is the SHA-256 of its path and body. Before the handler runs, the key
 * (per API key) is claimed in the store with that hash; the claim is one store transaction, so
 * of two requests racing with one key only one runs. The reply completes the record with its
 * status and body, or releases the claim on a 5xx so the client can retry. A later request with
 * the key gets the stored reply (and Idempotent-Replayed: true) without running the handler,
 * or 409 when its hash differs or the first is still being processed. Records older than
 * HTTP_IDEMPOTENCY_TTL_MS are claimed anew (and purged by the server's main thread).
 */
#include "http_internal.h"
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* r->on_reply of a request that claimed its key: records the reply, or releases the claim on a
 * 5xx so that the client can retry. */
static void idempotency_end(struct http_request *r, unsigned status, const char *text)
{
	struct http_server *srv = r->srv;
	if (status >= 500)
		STORE(srv->st, idem_release, r->who.key.id, r->idem_key);
	else if (STORE(srv->st, idem_complete, r->who.key.id, r->idem_key, status, text) !=
		 STORE_OK)
		log_msg(LOG_ERROR, "idempotency", "could not record response for %s", r->req_id);
}

bool http_idempotency_begin(struct http_request *r)
{
	const char *key = http_header(r, "Idempotency-Key");
	if (!key || strcmp(r->method, "POST"))
		return false;
	if (!idem_key_valid(key)) {
		http_reply_fail(r, CP_ERR_INVALID,
				"Idempotency-Key must be 1..255 printable ASCII characters");
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
	enum store_result rc = STORE(r->srv->st, idem_claim, r->who.key.id, key, hash, now,
				     now - HTTP_IDEMPOTENCY_TTL_MS, &old);
	if (rc == STORE_OK) {
		snprintf(r->idem_key, sizeof r->idem_key, "%s", key);
		r->on_reply = idempotency_end;
		return false;
	}
	if (rc != STORE_CONFLICT) {
		struct cp_error e;
		store_fail(&e, rc, "idempotency key");
		http_reply_error(r, &e);
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
		http_reply_text(r, old.status, text, strlen(text));
	}
	idem_record_clear(&old);
	return true;
}
