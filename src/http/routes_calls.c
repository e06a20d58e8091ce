/*
 * routes_calls.c - the canonical REST API (/v1/calls, /healthz, /readyz) and the canonical
 * dialect.
 *
 * Each handler is parse -> call service -> render; rules live in the call service. The request
 * shapes are documented in docs/API.md.
 */
#include "routes.h"
#include "core/log.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 50
#define LIST_MAX 200

static json_t *canonical_error(const struct cp_error *e, unsigned *status)
{
	*status = cp_err_status(e->code);
	return json_pack("{s:{s:s, s:s}}", "error", "code", cp_err_code(e->code), "message",
			 e->message[0] ? e->message : cp_err_code(e->code));
}

const struct http_dialect canonical_dialect = {
	.name = "canonical",
	.metrics = METRICS_CANONICAL,
	.render_error = canonical_error,
};

static struct call_service *svc_of(struct http_request *r)
{
	return ((struct app *)http_app(r))->calls;
}

static void reply_call(struct http_request *r, unsigned status, const struct call *c)
{
	size_t len = 0;
	char *text = call_to_json_text(c, &len);
	http_reply_json_text(r, status, text, len);
}

/* Rejects members other than the allowed ones. */
bool json_only_fields(json_t *obj, const char *const *allowed, struct cp_error *err)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		bool ok = false;
		for (int i = 0; allowed[i] && !ok; i++)
			ok = !strcmp(k, allowed[i]);
		if (!ok) {
			cp_fail(err, CP_ERR_INVALID, "unknown field \"%s\"", k);
			return false;
		}
	}
	return true;
}

/* A member that must be a string if present. */
bool json_opt_string(json_t *obj, const char *name, const char **out, struct cp_error *err)
{
	json_t *v = json_object_get(obj, name);
	*out = NULL;
	if (!v)
		return true;
	if (!json_is_string(v)) {
		cp_fail(err, CP_ERR_INVALID, "%s must be a string", name);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

bool request_scope(struct http_request *r, const char *tenant_id, struct scope *out)
{
	const struct principal *p = http_principal(r);
	*out = p->scope;
	if (!tenant_id)
		return true;
	if (!p->scope.all) {
		http_reply_fail(r, CP_ERR_FORBIDDEN, "tenant_id is for operator keys");
		return false;
	}
	if (!*tenant_id || strlen(tenant_id) > CP_UUID_LEN) {
		http_reply_fail(r, CP_ERR_INVALID, "tenant_id must be a tenant id");
		return false;
	}
	memset(out, 0, sizeof *out);
	snprintf(out->tenant_id, sizeof out->tenant_id, "%s", tenant_id);
	return true;
}

bool json_opt_int(json_t *obj, const char *name, long long min, long long max, int *out,
		  struct cp_error *err)
{
	json_t *v = json_object_get(obj, name);
	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		cp_fail(err, CP_ERR_INVALID, "%s must be an integer in %lld..%lld", name, min, max);
		return false;
	}
	*out = (int)json_integer_value(v);
	return true;
}

bool json_opt_bool(json_t *obj, const char *name, int *out, struct cp_error *err)
{
	json_t *v = json_object_get(obj, name);
	if (!v)
		return true;
	if (!json_is_boolean(v)) {
		cp_fail(err, CP_ERR_INVALID, "%s must be true or false", name);
		return false;
	}
	*out = json_is_true(v);
	return true;
}

bool json_opt_record(json_t *obj, enum call_record_choice *out, struct cp_error *err)
{
	int record = -1;
	if (!json_opt_bool(obj, "record", &record, err))
		return false;
	if (record >= 0)
		*out = record ? CALL_RECORD_YES : CALL_RECORD_NO;
	return true;
}

bool json_opt_metadata(json_t *obj, char **text, struct cp_error *err)
{
	json_t *v = json_object_get(obj, "metadata");
	*text = NULL;
	if (!v)
		return true;
	if (!json_is_object(v)) {
		cp_fail(err, CP_ERR_INVALID, "metadata must be a JSON object");
		return false;
	}
	*text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!*text) {
		cp_fail(err, CP_ERR_INTERNAL, "out of memory");
		return false;
	}
	return true;
}

static void health(struct http_request *r)
{
	http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* How long /readyz waits for the SIP engine's thread to answer: far above a round trip on a
 * busy engine (microseconds), far below a load balancer's probe timeout. */
#define READY_ENGINE_TIMEOUT_MS 1000

/* Unlike /healthz (the process answers HTTP), each part is checked for real: a read of the
 * store, a round trip through the SIP engine's thread; and a draining server is not ready. Not
 * ready is an error in the canonical shape (503, Retry-After) whose message says why. */
static void ready(struct http_request *r)
{
	struct call_service_health h;
	call_service_health(svc_of(r), READY_ENGINE_TIMEOUT_MS, &h);
	if (h.draining)
		http_reply_fail(r, CP_ERR_UNAVAILABLE, "draining: this server takes no new calls");
	else if (!h.store_ok || !h.engine_ok)
		http_reply_fail(r, CP_ERR_UNAVAILABLE, "not ready: %s%s%s",
				h.store_ok ? "" : "the store does not answer a read",
				!h.store_ok && !h.engine_ok ? "; " : "",
				h.engine_ok ? "" : "the SIP engine does not answer");
	else
		http_reply_json(r, 200,
				json_pack("{s:s, s:s, s:s}", "status", "ready", "store", "ok",
					  "sip", h.has_engine ? "ok" : "none"));
}

static void create(struct http_request *r)
{
	static const char *const fields[] = {"agent_id",       "to",         "from",   "metadata",
					     "max_duration_s", "stream_url", "record", NULL};
	struct cp_error err = {0};
	json_t *body = NULL;
	char *meta_text = NULL;
	struct call_request req = {0};
	struct call c = {0};

	if (!http_json_body(r, false, &body, &err) || !json_only_fields(body, fields, &err) ||
	    !json_opt_string(body, "agent_id", &req.agent_id, &err) ||
	    !json_opt_string(body, "to", &req.to, &err) ||
	    !json_opt_string(body, "from", &req.from, &err) ||
	    !json_opt_string(body, "stream_url", &req.stream_url, &err))
		goto fail;
	if (!req.agent_id) {
		cp_fail(&err, CP_ERR_INVALID, "agent_id is required");
		goto fail;
	}
	if (!req.to) {
		cp_fail(&err, CP_ERR_INVALID, "to is required");
		goto fail;
	}
	if (!json_opt_int(body, "max_duration_s", 1, 86400, &req.max_duration_s, &err) ||
	    !json_opt_record(body, &req.record, &err) || !json_opt_metadata(body, &meta_text, &err))
		goto fail;
	req.metadata = meta_text;
	if (call_create(svc_of(r), &http_principal(r)->scope, &req, http_req_id(r), &c, &err) !=
	    CP_OK)
		goto fail;
	reply_call(r, 201, &c);
	goto out;
fail:
	http_reply_error(r, &err);
out:
	call_clear(&c);
	free(meta_text);
	json_decref(body);
}

static void get(struct http_request *r)
{
	struct cp_error err = {0};
	struct call c = {0};
	if (call_get(svc_of(r), &http_principal(r)->scope, http_param(r, 0), &c, &err) == CP_OK)
		reply_call(r, 200, &c);
	else
		http_reply_error(r, &err);
	call_clear(&c);
}

static void list(struct http_request *r)
{
	struct cp_error err = {0};
	struct call_filter f = {.limit = LIST_DEFAULT};
	const char *status = http_query(r, "status");
	const char *agent = http_query(r, "agent_id");
	const char *limit = http_query(r, "limit");
	const char *cursor = http_query(r, "cursor");
	struct scope sc;
	long long v;

	if (!request_scope(r, http_query(r, "tenant_id"), &sc))
		return;

	if (status) {
		enum call_status s;
		if (!strcmp(status, "active"))
			f.status_mask = CALL_ACTIVE_MASK;
		else if (call_status_parse(status, &s))
			f.status_mask = CALL_BIT(s);
		else {
			http_reply_fail(r, CP_ERR_INVALID, "unknown status \"%s\"", status);
			return;
		}
	}
	if (agent) {
		if (!*agent) {
			http_reply_fail(r, CP_ERR_INVALID, "agent_id must not be empty");
			return;
		}
		f.agent_id = agent;
	}
	if (limit) {
		if (!cp_parse_int(limit, 1, LIST_MAX, &v)) {
			http_reply_fail(r, CP_ERR_INVALID, "limit must be an integer in 1..%d",
					LIST_MAX);
			return;
		}
		f.limit = (int)v;
	}
	if (cursor) {
		/* the cursor is opaque to clients: "c" + the store sequence of the last row seen */
		if (cursor[0] != 'c' || !cp_parse_int(cursor + 1, 1, INT64_MAX, &v)) {
			http_reply_fail(r, CP_ERR_INVALID, "invalid cursor");
			return;
		}
		f.before_seq = v;
	}

	struct call *calls = NULL;
	size_t n = 0;
	if (call_list(svc_of(r), &sc, &f, &calls, &n, &err) != CP_OK) {
		http_reply_error(r, &err);
		return;
	}
	/* {"data":[...],"next_cursor":"c<seq>"|null}, from each call's canonical text */
	char **texts = calloc(n ? n : 1, sizeof *texts);
	size_t *lens = calloc(n ? n : 1, sizeof *lens), total = 64, off = 0;
	char *body = NULL;
	for (size_t i = 0; texts && lens && i < n; i++) {
		if (!(texts[i] = call_to_json_text(&calls[i], &lens[i])))
			goto out;
		total += lens[i] + 1;
	}
	if (!texts || !lens || !(body = malloc(total)))
		goto out;
	off = (size_t)snprintf(body, total, "{\"data\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			body[off++] = ',';
		memcpy(body + off, texts[i], lens[i]);
		off += lens[i];
	}
	if (n == (size_t)f.limit)
		off += (size_t)snprintf(body + off, total - off, "],\"next_cursor\":\"c%lld\"}",
					(long long)calls[n - 1].seq);
	else
		off += (size_t)snprintf(body + off, total - off, "],\"next_cursor\":null}");
out:
	for (size_t i = 0; texts && i < n; i++)
		free(texts[i]);
	free(texts);
	free(lens);
	call_list_free(calls, n);
	http_reply_json_text(r, 200, body, off);
}

/* The ended call with goodbye_ms: the audio played between the request and the BYE. */
static void end_done(void *arg, const struct cp_error *err, const struct call *c, int goodbye_ms)
{
	struct http_request *r = arg;
	if (err->code != CP_OK) {
		http_reply_error(r, err);
		return;
	}
	size_t len = 0;
	char *text = call_to_json_text(c, &len);
	char *body = NULL;
	int n = -1;
	/* the call's object with one more member: its text, without the closing brace */
	if (text && len && text[len - 1] == '}')
		n = asprintf(&body, "%.*s,\"goodbye_ms\":%d}", (int)(len - 1), text, goodbye_ms);
	free(text);
	http_reply_json_text(r, 200, n < 0 ? NULL : body, n < 0 ? 0 : (size_t)n);
}

/* The members of a goodbye besides reason (docs/API.md); false with err set. */
static bool end_goodbye_fields(json_t *body, struct call_end_options *opt, struct cp_error *err)
{
	int after_playout = opt->after_playout;
	if (!json_opt_bool(body, "after_playout", &after_playout, err))
		return false;
	opt->after_playout = after_playout;
	json_t *v = json_object_get(body, "goodbye");
	if (v) {
		if (!json_is_object(v)) {
			cp_fail(err, CP_ERR_INVALID,
				"goodbye must be an object {\"text\": \"...\"}");
			return false;
		}
		const char *k;
		json_t *member;
		json_object_foreach(v, k, member)
		{
			if (strcmp(k, "text")) {
				cp_fail(err, CP_ERR_INVALID, "unknown field \"goodbye.%s\"", k);
				return false;
			}
		}
		json_t *text = json_object_get(v, "text");
		if (!text) {
			cp_fail(err, CP_ERR_INVALID, "goodbye.text is required");
			return false;
		}
		if (!json_is_string(text)) {
			cp_fail(err, CP_ERR_INVALID, "goodbye.text must be a string");
			return false;
		}
		opt->goodbye_text = json_string_value(text);
	}
	v = json_object_get(body, "max_wait_ms");
	if (v) {
		if (!json_is_integer(v)) {
			cp_fail(err, CP_ERR_INVALID, "max_wait_ms must be an integer in 0..%d",
				CALL_GOODBYE_WAIT_MAX_MS);
			return false;
		}
		/* the range is the call service's rule; beyond an int it is out of it anyway */
		json_int_t ms = json_integer_value(v);
		opt->has_max_wait = true;
		opt->max_wait_ms = ms < 0 || ms > INT_MAX ? -1 : (int)ms;
	}
	return true;
}

static void end(struct http_request *r)
{
	static const char *const fields[] = {"reason", "after_playout", "goodbye", "max_wait_ms",
					     NULL};
	struct cp_error err = {0};
	json_t *body = NULL;
	struct call_end_options opt = {.dialect = METRICS_CANONICAL};
	if (!http_json_body(r, true, &body, &err) ||
	    (body && (!json_only_fields(body, fields, &err) ||
		      !json_opt_string(body, "reason", &opt.reason, &err) ||
		      !end_goodbye_fields(body, &opt, &err)))) {
		json_decref(body);
		http_reply_error(r, &err);
		return;
	}
	call_end_with(svc_of(r), &http_principal(r)->scope, http_param(r, 0), &opt, http_req_id(r),
		      end_done, r);
	json_decref(body);
}

static void dtmf(struct http_request *r)
{
	static const char *const fields[] = {"digits", NULL};
	struct cp_error err = {0};
	json_t *body = NULL;
	const char *digits = NULL;
	struct call c = {0};
	if (!http_json_body(r, false, &body, &err) || !json_only_fields(body, fields, &err) ||
	    !json_opt_string(body, "digits", &digits, &err))
		goto fail;
	if (!digits) {
		cp_fail(&err, CP_ERR_INVALID, "digits is required");
		goto fail;
	}
	if (call_send_dtmf(svc_of(r), &http_principal(r)->scope, http_param(r, 0), digits,
			   http_req_id(r), &c, &err) != CP_OK)
		goto fail;
	http_reply_json(r, 202, json_pack("{s:s, s:s}", "call_id", c.id, "digits", digits));
	goto out;
fail:
	http_reply_error(r, &err);
out:
	call_clear(&c);
	json_decref(body);
}

static void end_all_done(void *arg, const struct cp_error *err, size_t ended, size_t not_active,
			 size_t failed)
{
	struct http_request *r = arg;
	if (err->code != CP_OK) {
		http_reply_error(r, err);
		return;
	}
	http_reply_json(r, 200,
			json_pack("{s:I, s:I, s:I}", "ended", (json_int_t)ended, "already_ended",
				  (json_int_t)not_active, "failed", (json_int_t)failed));
}

static void end_all(struct http_request *r)
{
	static const char *const fields[] = {"agent_id", "reason", "tenant_id", NULL};
	struct cp_error err = {0};
	json_t *body = NULL;
	const char *agent = NULL, *reason = NULL, *tenant = NULL;
	struct scope sc;
	if (!http_json_body(r, true, &body, &err) ||
	    (body && (!json_only_fields(body, fields, &err) ||
		      !json_opt_string(body, "agent_id", &agent, &err) ||
		      !json_opt_string(body, "reason", &reason, &err) ||
		      !json_opt_string(body, "tenant_id", &tenant, &err)))) {
		json_decref(body);
		http_reply_error(r, &err);
		return;
	}
	if (request_scope(r, tenant, &sc))
		call_end_all(svc_of(r), &sc, agent, reason, http_req_id(r), end_all_done, r);
	json_decref(body);
}

static void recording(struct http_request *r)
{
	struct cp_error err = {0};
	int fd;
	if (call_recording_open(svc_of(r), &http_principal(r)->scope, http_param(r, 0), &fd, NULL,
				&err) == CP_OK)
		http_reply_file(r, fd, "audio/wav");
	else
		http_reply_error(r, &err);
}

static void redact(struct http_request *r)
{
	struct cp_error err = {0};
	struct call c = {0};
	if (call_redact(svc_of(r), &http_principal(r)->scope, http_param(r, 0), http_req_id(r), &c,
			&err) == CP_OK)
		reply_call(r, 200, &c);
	else
		http_reply_error(r, &err);
	call_clear(&c);
}

const struct route canonical_routes[] = {
	{"GET", "/healthz", health, &canonical_dialect, ROUTE_PUBLIC},
	{"GET", "/readyz", ready, &canonical_dialect, ROUTE_PUBLIC},
	{"POST", "/v1/calls", create, &canonical_dialect, 0},
	{"POST", "/v1/calls/end", end_all, &canonical_dialect, 0},
	{"GET", "/v1/calls", list, &canonical_dialect, 0},
	{"GET", "/v1/calls/:id", get, &canonical_dialect, 0},
	{"DELETE", "/v1/calls/:id", redact, &canonical_dialect, 0},
	{"POST", "/v1/calls/:id/end", end, &canonical_dialect, 0},
	{"POST", "/v1/calls/:id/dtmf", dtmf, &canonical_dialect, 0},
	{"GET", "/v1/calls/:id/recording", recording, &canonical_dialect, 0},
	{0},
};
