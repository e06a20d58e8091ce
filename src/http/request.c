/*
 * request.c - the request object: its life, its id, and what a handler reads from it.
 *
 * A request is allocated on MHD's first call for it (server.c) and freed when MHD reports the
 * connection's request complete, whatever happened in between. Everything a handler reads is
 * owned by the request or by MHD for the request's lifetime, so the pointers the accessors
 * return stay valid until the handler has replied. Path captures and query values are already
 * percent-decoded (router.c) when the handler runs; the body is at most HTTP_MAX_BODY bytes,
 * NUL-terminated.
 */
#include "http_internal.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A request id: 16 hex digits, unique within the process and unlikely to repeat across runs.
 * splitmix64 of (random seed + counter) is a bijection, so no two requests of a run share an
 * id. Log correlation needs no more, and RAND_bytes() per request (a lock and a DRBG step in
 * OpenSSL) would be a measurable part of a cached GET. */
static void request_id(struct http_server *srv, char out[17])
{
	uint64_t z = srv->req_seed +
		     atomic_fetch_add_explicit(&srv->req_count, 1, memory_order_relaxed) *
			     0x9e3779b97f4a7c15u;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	z ^= z >> 31;
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(z >> (56 - 8 * i));
	cp_hex(b, sizeof b, out);
	out[16] = '\0';
}

struct http_request *http_request_new(struct http_server *srv, struct MHD_Connection *conn,
				      const char *method, const char *url)
{
	struct http_request *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->srv = srv;
	r->conn = conn;
	r->method = method;
	r->path = strdup(url);
	r->file_fd = -1;
	r->t_start_us = cp_mono_us();
	pthread_mutex_init(&r->mu, NULL);
	if (!r->path) {
		http_request_free(r);
		return NULL;
	}
	request_id(srv, r->req_id);
	return r;
}

void http_request_free(struct http_request *r)
{
	if (r->file_fd >= 0) /* a file reply never handed to MHD */
		close(r->file_fd);
	free(r->path);
	free(r->body);
	for (int i = 0; i < HTTP_MAX_PARAMS; i++)
		free(r->params[i]);
	free(r->resp);
	free(r->upgrade_tag);
	for (int i = 0; i < r->n_hdr; i++) {
		free(r->hdr[i].name);
		free(r->hdr[i].value);
	}
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* ---- for handlers ----------------------------------------------------------------------- */

void *http_app(struct http_request *r)
{
	return r->srv->app;
}
const char *http_req_id(struct http_request *r)
{
	return r->req_id;
}
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
	/* decoded in place by http_query_decode() before the handler ran */
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
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
