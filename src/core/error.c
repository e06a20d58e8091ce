/*
 * error.c - status and code of each canonical error. See error.h.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

static const struct {
	unsigned status;
	const char *code;
} table[CP_ERR_COUNT] = {
	[CP_OK] = {200, "ok"},
	[CP_ERR_INVALID] = {400, "invalid_request"},
	[CP_ERR_WEBHOOK_TARGET] = {400, "webhook_target_not_allowed"},
	[CP_ERR_UNAUTHORIZED] = {401, "unauthorized"},
	[CP_ERR_FORBIDDEN] = {403, "forbidden"},
	[CP_ERR_FROM_NOT_ALLOWED] = {403, "from_not_allowed"},
	[CP_ERR_DESTINATION] = {403, "destination_not_allowed"},
	[CP_ERR_NOT_FOUND] = {404, "not_found"},
	[CP_ERR_METHOD] = {405, "method_not_allowed"},
	[CP_ERR_NOT_ACTIVE] = {409, "call_not_active"},
	[CP_ERR_NOT_IN_PROGRESS] = {409, "call_not_in_progress"},
	[CP_ERR_IDEMPOTENCY] = {409, "idempotency_conflict"},
	[CP_ERR_LIMIT] = {409, "limit_reached"},
	[CP_ERR_CONFLICT] = {409, "conflict"},
	[CP_ERR_TOO_LARGE] = {413, "payload_too_large"},
	[CP_ERR_URI_TOO_LONG] = {414, "uri_too_long"},
	[CP_ERR_RANGE] = {416, "range_not_satisfiable"},
	[CP_ERR_RATE_LIMITED] = {429, "rate_limited"},
	[CP_ERR_INTERNAL] = {500, "internal"},
	[CP_ERR_UNDELIVERABLE] = {502, "hangup_undeliverable"},
	[CP_ERR_MEDIA_UNAVAILABLE] = {502, "media_unavailable"},
	[CP_ERR_UNAVAILABLE] = {503, "unavailable"},
};

unsigned cp_err_status(enum cp_err e)
{
	return (unsigned)e < CP_ERR_COUNT ? table[e].status : 500;
}

const char *cp_err_code(enum cp_err e)
{
	return (unsigned)e < CP_ERR_COUNT ? table[e].code : "internal";
}

enum cp_err cp_fail(struct cp_error *e, enum cp_err code, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		e->code = code;
		vsnprintf(e->message, sizeof e->message, fmt, ap);
		va_end(ap);
	}
	return code;
}
