/*
 * cartesia.c - Cartesia's agent call routes: "Cancel Call" (POST /agents/calls/{call_id}/cancel),
 * call data deletion (DELETE /agents/calls/{call_id}), and the neighbouring routes Cartesia's
 * own client library calls: "Get Call" (GET /agents/calls/{call_id}), "List Calls"
 * (GET /agents/calls?agent_id=...) and "Download Call Audio" (GET /agents/calls/{call_id}/audio).
 *
 * Auth: Authorization: Bearer plus a Cartesia-Version header: a date (YYYY-MM-DD) from
 * 2026-03-01 on, as clients send the newest version they know; missing or anything else: 400.
 * Cancel ends an active call with end reason api_cancelled and answers {"cancelled": true} once
 * the BYE/CANCEL is on the wire; a call that is not active is 400, an unknown one 404, an
 * undeliverable hang-up 502 (retry; nothing changed). DELETE redacts an ended call (from, to,
 * metadata dropped, its recording deleted; the record stays) and answers 200 with the record
 * as Cartesia's Delete Call does; an active call
 * is 400. Get and List answer Cartesia's AgentCall object (agent_call_json() says how each
 * field maps); Audio serves the call's recording as audio/wav (with Range, as the canonical
 * route). Cartesia's seed document gives no error body, so errors are {"error": message}, on
 * every path under /agents, unknown routes and wrong methods included. docs/dialects.md has
 * the mappings and every decision where Cartesia's documents are silent.
 */
#include "dialects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first version whose shapes these routes speak; later dates are accepted too. */
#define CARTESIA_VERSION_MIN "2026-03-01"
#define LIST_DEFAULT 10
#define LIST_MAX 100

/* The document's words for a call the key cannot find. */
static const char call_not_found[] =
	"Call not found, or no active connection was found for the call.";

static json_t *cartesia_error(const struct cp_error *e, unsigned *status)
{
	*status = cp_err_status(e->code);
	const char *msg = e->message[0] ? e->message : cp_err_code(e->code);
	switch (e->code) {
	case CP_ERR_UNAUTHORIZED: msg = "invalid API key"; break;
	case CP_ERR_NOT_ACTIVE:
		*status = 400; /* the document's word for "not active" */
		break;
	case CP_ERR_UNDELIVERABLE:
		msg = "The cancel request could not be delivered. Retry the request.";
		break;
	case CP_ERR_RATE_LIMITED: msg = "Too many requests"; break;
	default: break;
	}
	return json_pack("{s:s}", "error", msg);
}

/* A well-formed calendar date, "YYYY-MM-DD". */
static bool date_valid(const char *s)
{
	static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return false;
	int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m >= 1 && m <= 12 && d >= 1 && d <= days[m - 1] && (m != 2 || d <= 28 || leap);
}

static enum cp_err cartesia_auth(struct http_request *r, struct principal *who,
				 struct cp_error *err)
{
	enum cp_err e = dialect_auth_bearer(r, who, err);
	if (e != CP_OK)
		return e;
	const char *version = http_header(r, "Cartesia-Version");
	if (!version)
		return cp_fail(err, CP_ERR_INVALID, "Cartesia-Version header is required");
	/* fixed-width dates compare as strings */
	if (!date_valid(version) || strcmp(version, CARTESIA_VERSION_MIN) < 0)
		return cp_fail(err, CP_ERR_INVALID,
			       "unsupported Cartesia-Version: use a date"
			       " (YYYY-MM-DD) from " CARTESIA_VERSION_MIN " on");
	return CP_OK;
}

static const struct http_dialect cartesia = {
	.name = "cartesia",
	.metrics = METRICS_CARTESIA,
	.render_error = cartesia_error,
	.authenticate = cartesia_auth,
	.path_prefix = "/agents",
};

static struct call_service *svc_of(struct http_request *r)
{
	return ((struct app *)http_app(r))->calls;
}

/* An error of a route about one call: a call the key cannot see in the document's words. */
static void reply_call_error(struct http_request *r, const struct cp_error *err)
{
	struct cp_error e = *err;
	if (e.code == CP_ERR_NOT_FOUND)
		snprintf(e.message, sizeof e.message, "%s", call_not_found);
	http_reply_error(r, &e);
}

/* ---- the AgentCall object --------------------------------------------------------------- */

/* Cartesia's status: "started" for callplane's active states (only a started call can be
 * cancelled, and every active one can), "completed" for a call that ended normally, answered
 * or canceled before it was, "failed" for one that never connected. */
static const char *cartesia_status(enum call_status s)
{
	switch (s) {
	case CALL_QUEUED:
	case CALL_RINGING:
	case CALL_IN_PROGRESS: return "started";
	case CALL_COMPLETED:
	case CALL_CANCELED: return "completed";
	default: return "failed";
	}
}

/* Cartesia's end_reason for callplane's. Every reason callplane's own watchdogs, the far end
 * or the dialling give has its counterpart; the others were given with an end through the API,
 * which is how a callplane agent hangs up (Cartesia's cancel gives api_cancelled itself). */
static const char *cartesia_end_reason(const char *reason)
{
	static const struct {
		const char *ours, *theirs;
	} map[] = {
		{"api_cancelled", "api_cancelled"}, {"remote_hangup", "client_hangup"},
		{"remote_cancel", "client_hangup"}, {"max_duration", "max_duration"},
		{"media_timeout", "inactivity"},    {"busy", "dial_busy"},
		{"no_answer", "dial_no_answer"},    {"failed", "dial_failed"},
		{"no_route", "dial_failed"},        {"no_media_port", "dial_failed"},
		{"srtp_required", "dial_failed"},   {"unreachable", "dial_failed"},
		{"agent_unavailable", "error"},     {"agent_disconnected", "error"},
		{"node_restart", "error"},          {"node_shutdown", "error"},
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (!strcmp(reason, map[i].ours))
			return map[i].theirs;
	return "agent_hangup";
}

/* Cartesia's AgentCall for c (docs/dialects.md, Cartesia). Times to the second, as in
 * Cartesia's examples; start_time is when the call was placed or received, which is also the
 * order List sorts by. Redacted fields (from, to, metadata) are left out, as Cartesia leaves
 * out deleted fields. with_transcript: expand=transcript was asked for; callplane keeps no
 * transcripts, so it is null. */
static json_t *agent_call_json(const struct call *c, bool with_transcript)
{
	bool redacted = call_is_redacted(c);
	json_t *tel = json_object();
	if (!redacted && c->from[0])
		json_object_set_new(tel, "from", json_string(c->from));
	if (!redacted && c->to[0])
		json_object_set_new(tel, "to", json_string(c->to));
	if (c->provider_call_id[0])
		json_object_set_new(tel, "call_sid", json_string(c->provider_call_id));
	json_object_set_new(tel, "direction", json_string(call_direction_name(c->direction)));
	json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "id", c->id, "agent_id",
			      c->agent_id, "status", cartesia_status(c->status), "start_time",
			      dialect_time_seconds(c->created_at), "end_time",
			      dialect_time_seconds(c->ended_at), "redacted_at",
			      dialect_time_seconds(c->redacted_at), "telephony_params", tel,
			      "end_reason",
			      c->end_reason[0] && call_status_is_terminal(c->status)
				      ? json_string(cartesia_end_reason(c->end_reason))
				      : json_null());
	json_t *meta = !redacted && c->metadata ? json_loads(c->metadata, 0, NULL) : NULL;
	if (meta)
		json_object_set_new(o, "metadata", meta);
	if (with_transcript)
		json_object_set_new(o, "transcript", json_null());
	return o;
}

/* ---- cancel and delete ------------------------------------------------------------------ */

static void cancelled(void *arg, const struct cp_error *err, const struct call *c, int goodbye_ms)
{
	struct http_request *r = arg;
	(void)c;
	(void)goodbye_ms;
	if (err->code == CP_ERR_NOT_ACTIVE) {
		http_reply_fail(r, CP_ERR_NOT_ACTIVE,
				"The call is not currently active and cannot be cancelled.");
	} else if (err->code != CP_OK) {
		reply_call_error(r, err);
	} else {
		http_reply_json(r, 200, json_pack("{s:b}", "cancelled", 1));
	}
}

static void cancel(struct http_request *r)
{
	struct call_end_options opt = {
		.reason = "api_cancelled", .agent_goodbye = true, .dialect = METRICS_CARTESIA};
	call_end_with(svc_of(r), &http_principal(r)->scope, http_param(r, 0), &opt, http_req_id(r),
		      cancelled, r);
}

static void delete_call(struct http_request *r)
{
	struct cp_error err = {0};
	struct call c = {0};
	if (call_redact(svc_of(r), &http_principal(r)->scope, http_param(r, 0), http_req_id(r), &c,
			&err) == CP_OK) {
		http_reply_json(r, 200, agent_call_json(&c, false)); /* its deleted fields out */
	} else {
		if (err.code == CP_ERR_NOT_ACTIVE)
			snprintf(err.message, sizeof err.message,
				 "The call is still active; cancel it before deleting its data.");
		reply_call_error(r, &err);
	}
	call_clear(&c);
}

/* ---- get, list, audio ------------------------------------------------------------------- */

static void get_call(struct http_request *r)
{
	struct cp_error err = {0};
	struct call c = {0};
	if (call_get(svc_of(r), &http_principal(r)->scope, http_param(r, 0), &c, &err) == CP_OK)
		http_reply_json(r, 200, agent_call_json(&c, false));
	else
		reply_call_error(r, &err);
	call_clear(&c);
}

/* The store position of a cursor call (a call id the key can see), or 0 (400 sent). */
static int64_t cursor_seq(struct http_request *r, const char *name, const char *id)
{
	struct cp_error err = {0};
	struct call c = {0};
	int64_t seq = 0;
	if (!*id)
		http_reply_fail(r, CP_ERR_INVALID, "%s must not be empty", name);
	else if (call_get(svc_of(r), &http_principal(r)->scope, id, &c, &err) == CP_OK)
		seq = c.seq;
	else if (err.code == CP_ERR_NOT_FOUND)
		http_reply_fail(r, CP_ERR_INVALID, "%s is not a call of yours", name);
	else
		http_reply_error(r, &err);
	call_clear(&c);
	return seq;
}

/* {"data": [AgentCall...], "next_page": id | null}, newest first. Cartesia's client pages with
 * starting_after (the last id of a page: older calls) or ending_before (the first id: newer
 * calls); next_page is the id to pass on in the same direction while there are more. */
static void list_calls(struct http_request *r)
{
	const char *agent = http_query(r, "agent_id"), *limit = http_query(r, "limit");
	const char *after = http_query(r, "starting_after"),
		   *before = http_query(r, "ending_before");
	const char *expand = http_query(r, "expand");
	struct call_filter f = {.limit = LIST_DEFAULT};
	long long v;
	if (!agent || !*agent) {
		http_reply_fail(r, CP_ERR_INVALID, "agent_id is required");
		return;
	}
	if (limit) {
		if (!cp_parse_int(limit, 1, LIST_MAX, &v)) {
			http_reply_fail(r, CP_ERR_INVALID, "limit must be an integer in 1..%d",
					LIST_MAX);
			return;
		}
		f.limit = (int)v;
	}
	if (expand && strcmp(expand, "transcript")) {
		http_reply_fail(r, CP_ERR_INVALID, "expand supports transcript only");
		return;
	}
	if (after && before) {
		http_reply_fail(r, CP_ERR_INVALID,
				"give starting_after or ending_before, not both");
		return;
	}
	if (after && !(f.before_seq = cursor_seq(r, "starting_after", after)))
		return;
	if (before && !(f.after_seq = cursor_seq(r, "ending_before", before)))
		return;
	f.agent_id = agent;
	int want = f.limit;
	f.limit = want + 1; /* one more tells whether there is a next page */

	struct cp_error err = {0};
	struct call *calls = NULL;
	size_t n = 0;
	if (call_list(svc_of(r), &http_principal(r)->scope, &f, &calls, &n, &err) != CP_OK) {
		http_reply_error(r, &err);
		return;
	}
	bool more = n > (size_t)want;
	size_t shown = more ? (size_t)want : n;
	/* backwards, the store answers oldest first from the cursor on: the page is the `shown`
	 * calls just newer than it, newest first like every page */
	json_t *data = json_array();
	for (size_t i = 0; i < shown; i++) {
		const struct call *c = before ? &calls[shown - 1 - i] : &calls[i];
		json_array_append_new(data, agent_call_json(c, expand != NULL));
	}
	/* the id to go on from is the page's oldest going forwards, its newest going backwards:
	 * the store's last row either way */
	json_t *next = more ? json_string(calls[shown - 1].id) : json_null();
	call_list_free(calls, n);
	http_reply_json(r, 200, json_pack("{s:o, s:o}", "data", data, "next_page", next));
}

static void audio(struct http_request *r)
{
	struct cp_error err = {0};
	struct call c = {0};
	int fd;
	if (call_recording_open(svc_of(r), &http_principal(r)->scope, http_param(r, 0), &fd, &c,
				&err) == CP_OK)
		http_reply_file(r, fd, "audio/wav");
	else if (!c.id[0])
		reply_call_error(r, &err); /* not a call of the key's */
	else
		http_reply_error(r, &err); /* a call without a recording: why */
	call_clear(&c);
}

const struct route cartesia_routes[] = {
	{"POST", "/agents/calls/:call_id/cancel", cancel, &cartesia, 0},
	{"DELETE", "/agents/calls/:call_id", delete_call, &cartesia, 0},
	{"GET", "/agents/calls/:call_id", get_call, &cartesia, 0},
	{"GET", "/agents/calls", list_calls, &cartesia, 0},
	{"GET", "/agents/calls/:call_id/audio", audio, &cartesia, 0},
	{0},
};
