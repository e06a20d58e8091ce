/*
 * call.h - the canonical call: the one model every route, dialect, store and engine speaks.
 *
 * Invariants (call_state.c says which steps exist; the call service's svc_transition()
 * restricts every step to them, and the store applies it as one conditional update):
 *   - status only moves along call_transition_allowed(); terminal states never change;
 *   - ended_at is set exactly when status is terminal; answered_at only when the call reached
 *     in_progress; duration_s is derived (ended_at - answered_at), never stored;
 *   - after redaction from, to and metadata are gone (NULL) and redacted_at is set.
 */
#ifndef CP_CALL_H
#define CP_CALL_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "core/util.h"

enum call_status {
	CALL_QUEUED,
	CALL_RINGING,
	CALL_IN_PROGRESS,
	CALL_COMPLETED,
	CALL_CANCELED,
	CALL_FAILED,
	CALL_BUSY,
	CALL_NO_ANSWER,
	CALL_STATUS_COUNT
};

#define CALL_BIT(s) (1u << (s))
#define CALL_ACTIVE_MASK \
	(CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING) | CALL_BIT(CALL_IN_PROGRESS))

/* web: a call from a browser (POST /v1/web-calls), whose far end is a WebSocket to callplane
 * instead of a SIP dialog */
enum call_direction { CALL_OUTBOUND, CALL_INBOUND, CALL_WEB };

#define CALL_ADDR_MAX 256        /* from / to: SIP URI or E.164 */
#define CALL_REASON_MAX 64       /* end_reason */
#define CALL_PROVIDER_ID_MAX 256 /* SIP Call-ID */
#define CALL_METADATA_MAX (16 * 1024)
#define CALL_STREAM_URL_MAX 1024   /* an agent's audio WebSocket URL */
#define CALL_DTMF_MAX 32           /* digits in one POST /v1/calls/{id}/dtmf */
#define CALL_GOODBYE_TEXT_MAX 1000 /* characters of a goodbye callplane speaks */
#define CALL_GOODBYE_TEXT_BYTES (4 * CALL_GOODBYE_TEXT_MAX) /* the same in UTF-8, at most */
#define CALL_GOODBYE_WAIT_MAX_MS 60000 /* the longest a goodbye may hold the BYE back */
#define CALL_GOODBYE_WAIT_DEFAULT_MS 10000

struct call {
	int64_t seq; /* store order; list cursor */
	char id[CP_UUID_LEN + 1];
	char tenant_id[CP_UUID_LEN + 1];
	char agent_id[CP_UUID_LEN + 1];
	enum call_direction direction;
	enum call_status status;
	char from[CALL_ADDR_MAX + 1];
	char to[CALL_ADDR_MAX + 1];
	char provider_call_id[CALL_PROVIDER_ID_MAX + 1];        /* "" = null */
	char end_reason[CALL_REASON_MAX + 1];                   /* "" = null */
	int sip_status;                                         /* 0 = null */
	int max_duration_s;                                     /* 0 = none */
	int64_t created_at, answered_at, ended_at, redacted_at; /* ms since epoch, 0 = null */
	char *metadata;                 /* JSON object text, heap; NULL = null */
	char *stream_url;               /* the agent's audio WebSocket (ws:// or wss://),
					       * heap; NULL = none (the call carries RTP only) */
	bool record;                    /* its audio is recorded (decided at creation) */
	char *max_duration_goodbye;     /* what callplane says when max_duration ends the
					       * call: the agent's at creation, heap; NULL = none.
					       * Carried to the engine, never stored */
	char trunk_id[CP_UUID_LEN + 1]; /* outbound: the trunk a number is dialled through,
					       * the agent's at creation; "" = the server's default
					       * trunk. Carried to the engine, never stored */
};

void call_clear(struct call *c); /* frees heap fields, zeroes */
/* from, to and metadata were dropped (DELETE /v1/calls/{id}) */
static inline bool call_is_redacted(const struct call *c)
{
	return c->redacted_at != 0;
}
void call_move(struct call *dst, struct call *src);
/* dst = a deep copy of src (dst is cleared first); -1 if out of memory (dst then cleared). */
int call_copy(struct call *dst, const struct call *src);

const char *call_status_name(enum call_status s);
bool call_status_parse(const char *name, enum call_status *out);
bool call_status_is_active(enum call_status s);
bool call_status_is_terminal(enum call_status s);
/* The state machine: is from -> to a legal step? */
bool call_transition_allowed(enum call_status from, enum call_status to);
/* Mask of the states from which `to` may be entered. */
uint32_t call_sources_of(enum call_status to);
/* What ending this call from the API turns it into: completed if answered, else canceled. */
enum call_status call_end_status(enum call_status current);

const char *call_direction_name(enum call_direction d);

/* Whole seconds answered -> ended, rounded to nearest; -1 when never answered or not ended. */
long long call_duration_s(const struct call *c);

/* The call has a recording to serve: it was recorded, answered, has ended (the file is
 * finished when the media stops) and was not redacted. */
bool call_has_recording(const struct call *c);

/* The canonical JSON object of a call, as compact text (malloc'd; *len its length if len is
 * non-NULL; NULL if out of memory). call_json.c. */
char *call_to_json_text(const struct call *c, size_t *len);

/* Validates an end reason: 1..64 chars of [A-Za-z0-9_.:-]. */
bool call_reason_valid(const char *reason);
/* A SIP/SIPS URI or an E.164 number, <= CALL_ADDR_MAX bytes, no control chars or spaces. */
bool call_address_valid(const char *addr);
/* An absolute ws:// or wss:// URL with a host (and, if given, a port 1..65535), at most
 * CALL_STREAM_URL_MAX bytes of printable ASCII without spaces. */
bool call_stream_url_valid(const char *url);
/* DTMF digits to send: 1..CALL_DTMF_MAX of [0-9*#A-D] (upper case: RFC 4733 events 12-15). */
bool call_dtmf_digits_valid(const char *digits);
/* One received DTMF digit: [0-9*#A-D]. */
bool call_dtmf_digit_valid(char digit);
/* A goodbye's text (the API's goodbye.text, an agent's --goodbye-text and
 * --max-duration-goodbye): well-formed UTF-8 of 1..CALL_GOODBYE_TEXT_MAX characters. */
bool call_goodbye_text_valid(const char *text);

#endif
