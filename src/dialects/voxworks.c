/*
 * voxworks.c - Voxworks' "End web call": POST /api/v1/end-web-call/{call_id}, optional body
 * {"status": "completed", "end_reason": "api_ended"}.
 *
 * Auth: Authorization: Bearer only; a bad key is 401 "Invalid API key". The given end_reason
 * (default api_ended) becomes the call's end_reason. The endpoint exists to make sure a call is
 * marked ended, so a call that has already ended answers 200 with its recorded status and
 * progress "already_ended" (no new transition; the document has no 409). Another team's call
 * is 404. Errors are {"success": false, "message": ...}; a hang-up the engine cannot take is the
 * documented 500 (retryable, nothing changed).
 */
#include "dialects.h"

#include <string.h>

#define VOXWORKS_DEFAULT_REASON "api_ended"

static json_t *voxworks_error(const struct cp_error *e, unsigned *status)
{
	const char *msg = e->message;
	*status = cp_err_status(e->code);
	switch (e->code) {
	case CP_ERR_UNAUTHORIZED: msg = "Invalid API key"; break;
	case CP_ERR_NOT_FOUND: msg = "Call not found"; break;
	case CP_ERR_RATE_LIMITED: msg = "Rate limit exceeded"; break;
	case CP_ERR_UNDELIVERABLE:
		*status = 500;
		msg = "Internal server error: the hang-up could not be delivered; retry";
		break;
	case CP_ERR_INTERNAL: msg = "Internal server error"; break;
	default: break;
	}
	return json_pack("{s:b, s:s}", "success", 0, "message", msg);
}

static const struct http_dialect voxworks = {
	.name = "voxworks",
	.metrics = METRICS_VOXWORKS,
	.render_error = voxworks_error,
	.authenticate = dialect_auth_bearer,
};

static void reply_call(struct http_request *r, const struct call *c, const char *progress)
{
	http_reply_json(r, 200,
			json_pack("{s:b, s:s, s:s, s:s, s:s}", "success", 1, "call_id", c->id,
				  "status", call_status_name(c->status), "end_reason",
				  c->end_reason, "progress", progress));
}

static void ended(void *arg, const struct cp_error *err, const struct call *c, int goodbye_ms)
{
	struct http_request *r = arg;
	(void)goodbye_ms;
	if (err->code == CP_OK)
		reply_call(r, c, "ended");
	else if (err->code == CP_ERR_NOT_ACTIVE && c)
		reply_call(r, c, "already_ended");
	else
		http_reply_error(r, err);
}

static void end_web_call(struct http_request *r)
{
	static const char *const fields[] = {"status", "end_reason", NULL};
	struct cp_error err = {0};
	json_t *body = NULL;
	const char *status = NULL, *reason = NULL;
	if (!http_json_body(r, true, &body, &err) ||
	    (body && (!json_only_fields(body, fields, &err) ||
		      !json_opt_string(body, "status", &status, &err) ||
		      !json_opt_string(body, "end_reason", &reason, &err))))
		goto fail;
	/* the call's final status follows what happened on the wire (completed if it was
	 * answered, canceled if not); "completed" is the only status a client may ask for */
	if (status && strcmp(status, "completed")) {
		cp_fail(&err, CP_ERR_INVALID, "status must be \"completed\"");
		goto fail;
	}
	struct call_end_options opt = {.reason = reason ? reason : VOXWORKS_DEFAULT_REASON,
				       .agent_goodbye = true,
				       .dialect = METRICS_VOXWORKS};
	call_end_with(((struct app *)http_app(r))->calls, &http_principal(r)->scope,
		      http_param(r, 0), &opt, http_req_id(r), ended, r);
	json_decref(body);
	return;
fail:
	json_decref(body);
	http_reply_error(r, &err);
}

const struct route voxworks_routes[] = {
	{"POST", "/api/v1/end-web-call/:call_id", end_web_call, &voxworks, 0},
	{0},
};
