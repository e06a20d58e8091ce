/*
 * error.h - the canonical error vocabulary of callplane.
 *
 * The call service reports failures as one of these codes plus a human message; each HTTP
 * dialect maps a code onto its own status and body (the canonical API onto
 * {"error":{"code","message"}}, the vendor dialects onto their documented shapes). Keeping one
 * vocabulary is what lets a dialect stay a thin translator.
 */
#ifndef CP_ERROR_H
#define CP_ERROR_H

enum cp_err {
	CP_OK = 0,
	CP_ERR_INVALID,        /* 400 invalid_request */
	CP_ERR_WEBHOOK_TARGET, /* 400 webhook_target_not_allowed (a private or unresolvable host) */
	CP_ERR_UNAUTHORIZED,   /* 401 unauthorized */
	CP_ERR_FORBIDDEN,      /* 403 forbidden */
	CP_ERR_FROM_NOT_ALLOWED, /* 403 from_not_allowed (a caller ID the tenant does not own) */
	CP_ERR_DESTINATION, /* 403 destination_not_allowed (the tenant's or key's dial policy) */
	CP_ERR_NOT_FOUND,   /* 404 not_found */
	CP_ERR_METHOD,      /* 405 method_not_allowed */
	CP_ERR_NOT_ACTIVE,  /* 409 call_not_active */
	CP_ERR_NOT_IN_PROGRESS, /* 409 call_not_in_progress (needs an answered, live call) */
	CP_ERR_IDEMPOTENCY,     /* 409 idempotency_conflict */
	CP_ERR_LIMIT,           /* 409 limit_reached (the tenant holds the most it may) */
	CP_ERR_CONFLICT,        /* 409 conflict (a number taken; a key revoking itself) */
	CP_ERR_TOO_LARGE,       /* 413 payload_too_large */
	CP_ERR_URI_TOO_LONG,    /* 414 uri_too_long (more query parameters than any route reads) */
	CP_ERR_RANGE,           /* 416 range_not_satisfiable */
	CP_ERR_RATE_LIMITED,    /* 429 rate_limited */
	CP_ERR_INTERNAL,        /* 500 internal */
	CP_ERR_UNDELIVERABLE,   /* 502 hangup_undeliverable */
	CP_ERR_MEDIA_UNAVAILABLE, /* 502 media_unavailable (no media session to send on) */
	CP_ERR_UNAVAILABLE,       /* 503 unavailable (draining, shutting down) */
	CP_ERR_COUNT
};

/* The Retry-After (seconds) of what a draining or stopping server refuses: an HTTP 503 and a
 * SIP 503 to a new INVITE. Long enough for a load balancer probing /readyz to take the node
 * out, short enough not to lose a caller to a restart. */
#define CP_RETRY_AFTER_S 5

/* An error code with the message a client will read. */
struct cp_error {
	enum cp_err code;
	char message[200];
};

/* Fills *e (may be NULL) and returns code: `return cp_fail(e, CP_ERR_INVALID, "...", ...);` */
enum cp_err cp_fail(struct cp_error *e, enum cp_err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The canonical HTTP status and code string of an error. */
unsigned cp_err_status(enum cp_err e);
const char *cp_err_code(enum cp_err e);

#endif
