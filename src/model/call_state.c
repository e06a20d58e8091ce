/*
 * call_state.c - the call state machine and the rules about call fields.
 *
 *   queued ──► ringing ──► in_progress ──► completed
 *     │  └────────┬──────────►┘
 *     └───────────┴──► canceled | failed | busy | no_answer
 *
 * queued may go straight to in_progress (an inbound call we answer at once). A call that was
 * never answered cannot be "completed"; an answered call can only be completed. The store applies
 * each step as one conditional update (status IN call_sources_of(to)) so that among concurrent
 * attempts exactly one wins; this file only says which steps exist.
 */
#include "call.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const status_names[CALL_STATUS_COUNT] = {
	[CALL_QUEUED] = "queued",
	[CALL_RINGING] = "ringing",
	[CALL_IN_PROGRESS] = "in_progress",
	[CALL_COMPLETED] = "completed",
	[CALL_CANCELED] = "canceled",
	[CALL_FAILED] = "failed",
	[CALL_BUSY] = "busy",
	[CALL_NO_ANSWER] = "no_answer",
};

#define UNANSWERED_ENDS                                                          \
	(CALL_BIT(CALL_CANCELED) | CALL_BIT(CALL_FAILED) | CALL_BIT(CALL_BUSY) | \
	 CALL_BIT(CALL_NO_ANSWER))

/* allowed[from] = mask of states reachable in one step */
static const uint32_t allowed[CALL_STATUS_COUNT] = {
	[CALL_QUEUED] = CALL_BIT(CALL_RINGING) | CALL_BIT(CALL_IN_PROGRESS) | UNANSWERED_ENDS,
	[CALL_RINGING] = CALL_BIT(CALL_IN_PROGRESS) | UNANSWERED_ENDS,
	[CALL_IN_PROGRESS] = CALL_BIT(CALL_COMPLETED),
};

const char *call_status_name(enum call_status s)
{
	return (unsigned)s < CALL_STATUS_COUNT ? status_names[s] : "unknown";
}

bool call_status_parse(const char *name, enum call_status *out)
{
	for (int s = 0; s < CALL_STATUS_COUNT; s++) {
		if (name && !strcmp(name, status_names[s])) {
			*out = (enum call_status)s;
			return true;
		}
	}
	return false;
}

bool call_status_is_active(enum call_status s)
{
	return (unsigned)s < CALL_STATUS_COUNT && (CALL_ACTIVE_MASK & CALL_BIT(s));
}

bool call_status_is_terminal(enum call_status s)
{
	return (unsigned)s < CALL_STATUS_COUNT && !call_status_is_active(s);
}

bool call_transition_allowed(enum call_status from, enum call_status to)
{
	if ((unsigned)from >= CALL_STATUS_COUNT || (unsigned)to >= CALL_STATUS_COUNT)
		return false;
	return (allowed[from] & CALL_BIT(to)) != 0;
}

uint32_t call_sources_of(enum call_status to)
{
	uint32_t mask = 0;
	for (int s = 0; s < CALL_STATUS_COUNT; s++)
		if (call_transition_allowed((enum call_status)s, to))
			mask |= CALL_BIT(s);
	return mask;
}

enum call_status call_end_status(enum call_status current)
{
	return current == CALL_IN_PROGRESS ? CALL_COMPLETED : CALL_CANCELED;
}

const char *call_direction_name(enum call_direction d)
{
	return d == CALL_INBOUND ? "inbound" : d == CALL_WEB ? "web" : "outbound";
}

void call_clear(struct call *c)
{
	free(c->metadata);
	free(c->stream_url);
	free(c->max_duration_goodbye);
	memset(c, 0, sizeof *c);
}

void call_move(struct call *dst, struct call *src)
{
	call_clear(dst);
	*dst = *src;
	src->metadata = NULL;
	src->stream_url = NULL;
	src->max_duration_goodbye = NULL;
	call_clear(src);
}

int call_copy(struct call *dst, const struct call *src)
{
	call_clear(dst);
	*dst = *src;
	dst->metadata = src->metadata ? strdup(src->metadata) : NULL;
	dst->stream_url = src->stream_url ? strdup(src->stream_url) : NULL;
	dst->max_duration_goodbye =
		src->max_duration_goodbye ? strdup(src->max_duration_goodbye) : NULL;
	if ((src->metadata && !dst->metadata) || (src->stream_url && !dst->stream_url) ||
	    (src->max_duration_goodbye && !dst->max_duration_goodbye)) {
		call_clear(dst);
		return -1;
	}
	return 0;
}

long long call_duration_s(const struct call *c)
{
	if (!c->answered_at || !c->ended_at || c->ended_at < c->answered_at)
		return -1;
	return (c->ended_at - c->answered_at + 500) / 1000;
}

bool call_has_recording(const struct call *c)
{
	return c->record && c->answered_at && call_status_is_terminal(c->status) &&
	       !call_is_redacted(c);
}

bool call_reason_valid(const char *reason)
{
	size_t n = reason ? strlen(reason) : 0;
	if (n < 1 || n > CALL_REASON_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)reason[i];
		if (!isalnum(ch) && !strchr("_.:-", ch))
			return false;
	}
	return true;
}

bool call_address_valid(const char *addr)
{
	size_t n = addr ? strlen(addr) : 0;
	if (n == 0 || n > CALL_ADDR_MAX)
		return false;
	if (cp_is_e164(addr))
		return true;
	const char *rest;
	if (!strncasecmp(addr, "sip:", 4))
		rest = addr + 4;
	else if (!strncasecmp(addr, "sips:", 5))
		rest = addr + 5;
	else
		return false;
	const char *at = strchr(rest, '@');
	if (!*rest || *rest == '@' || (at && !at[1]))
		return false; /* no user before or no host after the '@' */
	for (const char *p = rest; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= ' ' || ch >= 0x7f || strchr("<>\"", ch))
			return false;
	}
	return true;
}

bool call_stream_url_valid(const char *url)
{
	size_t n = url ? strlen(url) : 0;
	if (n == 0 || n > CALL_STREAM_URL_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)url[i];
		if (ch <= ' ' || ch >= 0x7f)
			return false;
	}
	const char *p;
	if (!strncasecmp(url, "ws://", 5))
		p = url + 5;
	else if (!strncasecmp(url, "wss://", 6))
		p = url + 6;
	else
		return false;
	/* the authority runs to the path, query or fragment; userinfo is allowed before '@' */
	size_t alen = strcspn(p, "/?#");
	const char *end = p + alen;
	const char *at = memchr(p, '@', alen);
	const char *host = at ? at + 1 : p;
	const char *port = NULL;
	if (*host == '[') {
		/* an IPv6 literal: [addr] with an optional :port after it */
		const char *close = memchr(host, ']', (size_t)(end - host));
		if (!close || close == host + 1)
			return false;
		if (close + 1 < end) {
			if (close[1] != ':')
				return false;
			port = close + 2;
		}
	} else {
		const char *colon = memchr(host, ':', (size_t)(end - host));
		if ((colon ? colon : end) == host)
			return false; /* no host */
		if (colon)
			port = colon + 1;
	}
	if (port) {
		/* a port, when given, is 1..65535 in decimal */
		long v = 0;
		if (port == end || end - port > 5)
			return false;
		for (const char *q = port; q < end; q++) {
			if (!isdigit((unsigned char)*q))
				return false;
			v = v * 10 + (*q - '0');
		}
		if (v < 1 || v > 65535)
			return false;
	}
	return true;
}

bool call_dtmf_digit_valid(char digit)
{
	return digit && strchr("0123456789*#ABCD", digit);
}

bool call_dtmf_digits_valid(const char *digits)
{
	size_t n = digits ? strlen(digits) : 0;
	if (n < 1 || n > CALL_DTMF_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!call_dtmf_digit_valid(digits[i]))
			return false;
	return true;
}

bool call_goodbye_text_valid(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t chars = 0;
	if (!p)
		return false;
	while (*p) {
		/* the length of the sequence its lead byte announces; overlong forms, surrogates and
		 * values above U+10FFFF are refused as RFC 3629 says */
		int n = *p < 0x80                  ? 1
			: *p >= 0xC2 && *p <= 0xDF ? 2
			: *p >= 0xE0 && *p <= 0xEF ? 3
			: *p >= 0xF0 && *p <= 0xF4 ? 4
						   : 0;
		if (!n)
			return false;
		for (int i = 1; i < n; i++)
			if ((p[i] & 0xC0) != 0x80)
				return false;
		if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] > 0x9F) ||
		    (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] > 0x8F))
			return false;
		p += n;
		if (++chars > CALL_GOODBYE_TEXT_MAX)
			return false;
	}
	return chars > 0;
}
