/*
 * talkover.c - Talkover's "End Call": POST /api/v1/agents/{agent_id}/end-call {"call_sid"}.
 *
 * Auth: Authorization: Bearer only. The call must belong to the agent in the path (404 "Call
 * not found for this agent" otherwise, as for any call the key cannot see). Talkover reports an
 * ended call as "completed" with ended_reason "ended_by_api" and second-precision ended_at.
 * Errors are {"success": false, "message": ...} (+ "code" where the document gives one).
 */
#include "dialects.h"

#include <string.h>
#include <strings.h>

static json_t *talkover_error(const struct cp_error *e, unsigned *status)
{
	*status = cp_err_status(e->code);
	const char *msg = e->message;
	switch (e->code) {
	case CP_ERR_NOT_FOUND: msg = "Call not found for this agent"; break;
	case CP_ERR_NOT_ACTIVE:
		return json_pack("{s:b, s:s, s:s}", "success", 0, "message", "Call is not active",
				 "code", "CALL_NOT_ACTIVE");
	case CP_ERR_UNAUTHORIZED: msg = "Invalid API key"; break;
	case CP_ERR_RATE_LIMITED: msg = "Too many requests"; break;
	case CP_ERR_INTERNAL: msg = "Internal server error"; break;
	default: break;
	}
	return json_pack("{s:b, s:s}", "success", 0, "message", msg);
}

static const struct http_dialect talkover = {
	.name = "talkover",
	.metrics = METRICS_TALKOVER,
	.render_error = talkover_error,
	.authenticate = dialect_auth_bearer,
};

static void ended(void *arg, const struct cp_error *err, const struct call *c, int goodbye_ms)
{
	struct http_request *r = arg;
	(void)goodbye_ms;
	if (err->code != CP_OK) {
		http_reply_error(r, err);
		return;
	}
	http_reply_json(r, 200,
			json_pack("{s:b, s:{s:s, s:s, s:o, s:s}}", "success", 1, "data", "id",
				  c->id, "status", "completed", "ended_at",
				  dialect_time_seconds(c->ended_at), "ended_reason",
				  c->end_reason));
}

static void end_call(struct http_request *r)
{
	static const char *const fields[] = {"call_sid", NULL};
	struct cp_error err = {0};
	json_t *body = NULL;
	const char *sid = NULL;
	const char *ct = http_header(r, "Content-Type");
	if (!ct || strncasecmp(ct, "application/json", 16)) {
		cp_fail(&err, CP_ERR_INVALID, "Content-Type must be application/json");
		goto fail;
	}
	if (!http_json_body(r, false, &body, &err) || !json_only_fields(body, fields, &err) ||
	    !json_opt_string(body, "call_sid", &sid, &err))
		goto fail;
	if (!sid || !*sid) {
		cp_fail(&err, CP_ERR_INVALID, "call_sid is required");
		goto fail;
	}
	struct call_end_options opt = {
		.agent_id = http_param(r, 0), .agent_goodbye = true, .dialect = METRICS_TALKOVER};
	call_end_with(((struct app *)http_app(r))->calls, &http_principal(r)->scope, sid, &opt,
		      http_req_id(r), ended, r);
	json_decref(body);
	return;
fail:
	json_decref(body);
	http_reply_error(r, &err);
}

const struct route talkover_routes[] = {
	{"POST", "/api/v1/agents/:agent_id/end-call", end_call, &talkover, 0},
	{0},
};
