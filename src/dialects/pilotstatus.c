/*
 * pilotstatus.c - Pilot Status' "Terminate call": POST /v1/calls/{callId}/terminate, no body.
 *
 * {callId} is the call id or the provider call id (SIP Call-ID). Only number-scoped keys may
 * call it: a tenant-scoped key gets 403 TENANT_SCOPE_NOT_ALLOWED; a key of another number sees
 * 404. Auth is x-api-key. x-api-key-id is accepted only *with* x-api-key, naming the same key:
 * key ids are not secrets (they appear in `key list` and logs), so an id alone never
 * authenticates. A successful terminate answers status COMPLETED (Pilot Status' word for a
 * call that is over; the canonical record says completed or canceled). Errors are
 * {"error": ..., "code": ...}.
 */
#include "dialects.h"

#include <string.h>

static json_t *pilot_error(const struct cp_error *e, unsigned *status)
{
	*status = cp_err_status(e->code);
	switch (e->code) {
	case CP_ERR_INVALID:
		return json_pack("{s:s, s:s}", "error", "Validation error", "code",
				 "VALIDATION_ERROR");
	case CP_ERR_UNAUTHORIZED:
		return json_pack("{s:s, s:s}", "error", "Unauthorized", "code", "UNAUTHORIZED");
	case CP_ERR_FORBIDDEN:
		return json_pack("{s:s, s:s}", "error",
				 "Tenant-scoped keys cannot call number endpoints", "code",
				 "TENANT_SCOPE_NOT_ALLOWED");
	case CP_ERR_NOT_FOUND:
		return json_pack("{s:s, s:s}", "error", "Call not found", "code", "NOT_FOUND");
	case CP_ERR_NOT_ACTIVE:
		/* the document lists 400 for invalid parameters and no 409 */
		*status = 400;
		return json_pack("{s:s, s:s}", "error", "Call is not active", "code",
				 "CALL_NOT_ACTIVE");
	case CP_ERR_RATE_LIMITED:
		return json_pack("{s:s, s:s}", "error", "Too many requests", "code",
				 "RATE_LIMITED");
	case CP_ERR_UNDELIVERABLE:
		return json_pack("{s:s, s:s}", "error", "Hang-up could not be delivered; retry",
				 "code", "HANGUP_UNDELIVERABLE");
	case CP_ERR_METHOD:
		return json_pack("{s:s, s:s}", "error", "Method not allowed", "code",
				 "METHOD_NOT_ALLOWED");
	case CP_ERR_IDEMPOTENCY:
		return json_pack("{s:s, s:s}", "error", e->message, "code", "IDEMPOTENCY_CONFLICT");
	case CP_ERR_TOO_LARGE:
		return json_pack("{s:s, s:s}", "error", "Payload too large", "code",
				 "PAYLOAD_TOO_LARGE");
	case CP_ERR_UNAVAILABLE:
		return json_pack("{s:s, s:s}", "error", "Service unavailable", "code",
				 "UNAVAILABLE");
	default: return json_pack("{s:s, s:s}", "error", "Internal error", "code", "INTERNAL");
	}
}

static enum cp_err pilot_auth(struct http_request *r, struct principal *who, struct cp_error *err)
{
	const char *key_id = http_header(r, "x-api-key-id");
	enum cp_err e = http_auth_key(r, false, true, who, err);
	if (e != CP_OK)
		return e;
	if (key_id && strcmp(key_id, who->key.id))
		return cp_fail(err, CP_ERR_UNAUTHORIZED,
			       "x-api-key-id does not name the key given");
	if (!who->key.number[0])
		return cp_fail(err, CP_ERR_FORBIDDEN, "tenant-scoped key");
	return CP_OK;
}

static const struct http_dialect pilotstatus = {
	.name = "pilotstatus",
	.metrics = METRICS_PILOTSTATUS,
	.render_error = pilot_error,
	.authenticate = pilot_auth,
};

static void ended(void *arg, const struct cp_error *err, const struct call *c, int goodbye_ms)
{
	struct http_request *r = arg;
	(void)goodbye_ms;
	if (err->code != CP_OK) {
		http_reply_error(r, err);
		return;
	}
	http_reply_json(
		r, 200,
		json_pack("{s:b, s:s, s:s}", "success", 1, "id", c->id, "status", "COMPLETED"));
}

static void terminate(struct http_request *r)
{
	struct cp_error err = {0};
	json_t *body = NULL;
	/* "no body": an empty body or {} is fine, anything else is a validation error */
	if (!http_json_body(r, true, &body, &err) || (body && json_object_size(body))) {
		json_decref(body);
		http_reply_fail(r, CP_ERR_INVALID, "no body expected");
		return;
	}
	json_decref(body);
	struct call_end_options opt = {.agent_goodbye = true, .dialect = METRICS_PILOTSTATUS};
	call_end_with(((struct app *)http_app(r))->calls, &http_principal(r)->scope,
		      http_param(r, 0), &opt, http_req_id(r), ended, r);
}

const struct route pilotstatus_routes[] = {
	{"POST", "/v1/calls/:call_id/terminate", terminate, &pilotstatus, 0},
	{0},
};
