/*
 * call_json.c - the canonical JSON of a call, written as text.
 *
 * Every reply about a call and every outbox event carries this object, so it is on the hot path
 * of both GET /v1/calls/{id} and ending a call. Building a jansson object (a malloc and a UTF-8
 * check per field, a hash insert per key) and dumping it was over a quarter of a cached GET, so
 * the text is written directly, in one allocation sized up front.
 *
 * Output is byte-identical to what jansson would dump for the same object (JSON_COMPACT,
 * insertion order): the same escapes, UTF-8 passed through, with two choices of its own: a
 * string that is not valid UTF-8 (which jansson refuses) is written as null, and so is an
 * empty id.
 * metadata is embedded as stored ("" as null): the only writer of that column is
 * call_create(), which stores jansson's compact dump of an object.
 */
#include "call.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out {
	char *buf;
	size_t off, size; /* size was computed so that nothing below can overflow */
};

static void put(struct out *o, const char *s, size_t n)
{
	memcpy(o->buf + o->off, s, n);
	o->off += n;
}

static void put_str(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Non-ASCII text is checked with the library that will be asked to parse it. */
static bool utf8_valid(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x80) {
			json_t *j = json_string(s);
			json_decref(j);
			return j != NULL;
		}
	}
	return true;
}

/* A JSON string, escaped as jansson escapes it; "" or invalid UTF-8: null. Writes at most
 * 6 * strlen(s) + 2 bytes. */
static void put_json_str(struct out *o, const char *s)
{
	if (!s || !*s || !utf8_valid(s)) {
		put_str(o, "null");
		return;
	}
	static const char hex[] = "0123456789ABCDEF";
	o->buf[o->off++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char *b = o->buf + o->off;
		switch (*p) {
		case '"': put(o, "\\\"", 2); break;
		case '\\': put(o, "\\\\", 2); break;
		case '\b': put(o, "\\b", 2); break;
		case '\f': put(o, "\\f", 2); break;
		case '\n': put(o, "\\n", 2); break;
		case '\r': put(o, "\\r", 2); break;
		case '\t': put(o, "\\t", 2); break;
		default:
			if (*p < 0x20) {
				memcpy(b, "\\u00", 4);
				b[4] = hex[*p >> 4];
				b[5] = hex[*p & 15];
				o->off += 6;
			} else {
				o->buf[o->off++] = (char)*p;
			}
		}
	}
	o->buf[o->off++] = '"';
}

static void put_time(struct out *o, int64_t ms)
{
	if (!ms) {
		put_str(o, "null");
		return;
	}
	char ts[CP_RFC3339_LEN + 1];
	cp_rfc3339(ms, ts);
	o->buf[o->off++] = '"';
	put_str(o, ts);
	o->buf[o->off++] = '"';
}

static void put_int(struct out *o, long long v, bool present)
{
	if (!present) {
		put_str(o, "null");
		return;
	}
	char n[24];
	put(o, n, (size_t)snprintf(n, sizeof n, "%lld", v));
}

char *call_to_json_text(const struct call *c, size_t *len)
{
	bool redacted = call_is_redacted(c);
	const char *from = redacted ? NULL : c->from, *to = redacted ? NULL : c->to;
	const char *meta = redacted || !c->metadata || !*c->metadata ? NULL : c->metadata;
	/* keys and fixed-size values fit in 1 KiB; strings grow at most 6x when escaped */
	size_t size =
		1024 +
		6 * (strlen(c->id) + strlen(c->agent_id) + strlen(c->provider_call_id) +
		     strlen(c->end_reason) + (from ? strlen(from) : 0) + (to ? strlen(to) : 0)) +
		(meta ? strlen(meta) : 0);
	struct out o = {.buf = malloc(size), .size = size};
	if (!o.buf)
		return NULL;
	long long dur = call_duration_s(c);
	put_str(&o, "{\"id\":");
	put_json_str(&o, c->id);
	put_str(&o, ",\"agent_id\":");
	put_json_str(&o, c->agent_id);
	put_str(&o, ",\"direction\":\"");
	put_str(&o, call_direction_name(c->direction));
	put_str(&o, "\",\"from\":");
	put_json_str(&o, from);
	put_str(&o, ",\"to\":");
	put_json_str(&o, to);
	put_str(&o, ",\"status\":\"");
	put_str(&o, call_status_name(c->status));
	put_str(&o, "\",\"provider_call_id\":");
	put_json_str(&o, c->provider_call_id);
	put_str(&o, ",\"created_at\":");
	put_time(&o, c->created_at);
	put_str(&o, ",\"answered_at\":");
	put_time(&o, c->answered_at);
	put_str(&o, ",\"ended_at\":");
	put_time(&o, c->ended_at);
	put_str(&o, ",\"duration_s\":");
	put_int(&o, dur, dur >= 0);
	put_str(&o, ",\"end_reason\":");
	put_json_str(&o, c->end_reason);
	put_str(&o, ",\"sip_status\":");
	put_int(&o, c->sip_status, c->sip_status != 0);
	put_str(&o, ",\"max_duration_s\":");
	put_int(&o, c->max_duration_s, c->max_duration_s != 0);
	put_str(&o, ",\"metadata\":");
	put_str(&o, meta ? meta : "null");
	put_str(&o, ",\"redacted_at\":");
	put_time(&o, c->redacted_at);
	if (call_has_recording(c)) {
		put_str(&o, ",\"has_recording\":true,\"recording_url\":\"/v1/calls/");
		put_str(&o, c->id); /* a UUID: nothing to escape */
		put_str(&o, "/recording\"");
	} else {
		put_str(&o, ",\"has_recording\":false,\"recording_url\":null");
	}
	put(&o, "}", 2); /* with its NUL */
	if (len)
		*len = o.off - 1;
	return o.buf;
}
