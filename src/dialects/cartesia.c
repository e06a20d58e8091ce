/*
 * cartesia.c - Cartesia's "Cancel Call" (POST /agents/calls/{call_id}/cancel) and call data
 * deletion (DELETE /agents/calls/{call_id}).
 *
 * Auth: Authorization: Bearer plus a Cartesia-Version header, which must be 2026-03-01 (missing
 * or unknown: 400). Cancel ends an active call with end reason api_cancelled and answers
 * {"cancelled": true} once the BYE/CANCEL is on the wire; a call that is not active is 400,
 * an unknown one 404, an undeliverable hang-up 502 (retry; nothing changed). DELETE redacts an
 * ended call (from, to, metadata dropped; the record stays) and answers 204; an active call is
 * 400. The document gives no error body, so errors are {"error": message}.
 */
#include "dialects.h"

#include <stdio.h>
#include <string.h>

#define CARTESIA_VERSION "2026-03-01"

static json_t *cartesia_error(const struct cp_error *e, unsigned *status)
{
	*status = cp_err_status(e->code);
	const char *msg = e->message[0] ? e->message : cp_err_code(e->code);
	switch (e->code) {
	case CP_ERR_UNAUTHORIZED:
		msg = "invalid API key";
		break;
	case CP_ERR_NOT_ACTIVE:
		*status = 400;     /* the document's word for "not active" */
		break;
	case CP_ERR_NOT_FOUND:
		msg = "Call not found, or no active connection was found for the call.";
		break;
	case CP_ERR_UNDELIVERABLE:
		msg = "The cancel request could not be delivered. Retry the request.";
		break;
	case CP_ERR_RATE_LIMITED:
		msg = "Too many requests";
		break;
	default:
		break;
	}
	return json_pack("{s:s}", "error", msg);
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
	if (strcmp(version, CARTESIA_VERSION))
		return cp_fail(err, CP_ERR_INVALID, "unsupported Cartesia-Version: use " CARTESIA_VERSION);
	return CP_OK;
}

static const struct http_dialect cartesia = {
	.name = "cartesia",
	.render_error = cartesia_error,
	.authenticate = cartesia_auth,
};

static void cancelled(void *arg, const struct cp_error *err, const struct call *c)
{
	struct http_request *r = arg;
	(void)c;
	if (err->code == CP_ERR_NOT_ACTIVE) {
		http_reply_fail(r, CP_ERR_NOT_ACTIVE,
				"The call is not currently active and cannot be cancelled.");
	} else if (err->code != CP_OK) {
		http_reply_error(r, err);
	} else {
		http_reply_json(r, 200, json_pack("{s:b}", "cancelled", 1));
	}
}

static void cancel(struct http_request *r)
{
	struct call_end_options opt = {.reason = "api_cancelled"};
	call_end_with(((struct app *)http_app(r))->calls, &http_principal(r)->scope,
		      http_param(r, 0), &opt, http_req_id(r), cancelled, r);
}

static void delete_call(struct http_request *r)
{
	struct cp_error err = {0};
	struct call c = {0};
	if (call_redact(((struct app *)http_app(r))->calls, &http_principal(r)->scope,
			http_param(r, 0), http_req_id(r), &c, &err) == CP_OK) {
		http_reply_json(r, 204, NULL);
	} else {
		if (err.code == CP_ERR_NOT_ACTIVE)
			snprintf(err.message, sizeof err.message,
				 "The call is still active; cancel it before deleting its data.");
		http_reply_error(r, &err);
	}
	call_clear(&c);
}

const struct route cartesia_routes[] = {
	{"POST", "/agents/calls/:call_id/cancel", cancel, &cartesia, 0},
	{"DELETE", "/agents/calls/:call_id", delete_call, &cartesia, 0},
	{0},
};
