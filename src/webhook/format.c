/*
 * format.c - what each webhook format's receiver gets, and the signature over it.
 *
 *   canonical    the stored event: {"id", "type", "created_at", "data": call}
 *   talkover     the same envelope, types named as Talkover does: event_phone_call_ringing,
 *                event_phone_call_started, event_phone_call_ended; data also carries
 *                "ended_reason" (Talkover's word for end_reason)
 *   pilotstatus  {"event": "call.ended", "event_id", "created_at", "data": {"id", "status"
 *                (upper case), "duration" (seconds, only when the call was answered),
 *                "ended_at", "end_reason", "provider_call_id"}}
 *
 * call.dtmf (a digit the far end pressed: {"id", "type", "created_at", "digit", "data": call})
 * reaches canonical webhooks only: neither vendor format has an event for it, so the store
 * creates no delivery of it for their webhooks (store.h, call_event) and nothing here maps it.
 */
#include "webhook.h"
#include "core/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

bool webhook_format_valid(const char *format)
{
	return format && (!strcmp(format, "canonical") || !strcmp(format, "talkover") ||
			  !strcmp(format, "pilotstatus"));
}

static const char *talkover_type(const char *type)
{
	if (!strcmp(type, "call.ringing"))
		return "event_phone_call_ringing";
	if (!strcmp(type, "call.answered"))
		return "event_phone_call_started";
	if (!strcmp(type, "call.ended"))
		return "event_phone_call_ended";
	return type;
}

static json_t *pilot_body(json_t *ev)
{
	json_t *call = json_object_get(ev, "data");
	char status[32] = "";
	const char *s = json_string_value(json_object_get(call, "status"));
	for (size_t i = 0; s && s[i] && i + 1 < sizeof status; i++)
		status[i] = (char)toupper((unsigned char)s[i]), status[i + 1] = '\0';
	json_t *data = json_pack("{s:O, s:s, s:O, s:O, s:O}", "id", json_object_get(call, "id"),
				 "status", status, "ended_at", json_object_get(call, "ended_at"),
				 "end_reason", json_object_get(call, "end_reason"),
				 "provider_call_id", json_object_get(call, "provider_call_id"));
	json_t *dur = json_object_get(call, "duration_s");
	if (json_is_integer(dur))
		json_object_set(data, "duration", dur);
	return json_pack("{s:O, s:O, s:O, s:o}", "event", json_object_get(ev, "type"), "event_id",
			 json_object_get(ev, "id"), "created_at", json_object_get(ev, "created_at"),
			 "data", data);
}

char *webhook_body(const char *format, const char *payload)
{
	if (!strcmp(format, "canonical"))
		return strdup(payload);
	json_t *ev = json_loads(payload, 0, NULL);
	if (!ev)
		return NULL;
	json_t *out = NULL;
	if (!strcmp(format, "talkover")) {
		const char *type = json_string_value(json_object_get(ev, "type"));
		json_object_set_new(ev, "type", json_string(talkover_type(type ? type : "")));
		json_t *call = json_object_get(ev, "data");
		json_object_set(call, "ended_reason", json_object_get(call, "end_reason"));
		out = json_incref(ev);
	} else if (!strcmp(format, "pilotstatus")) {
		out = pilot_body(ev);
	}
	json_decref(ev);
	char *text = out ? json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(out);
	return text;
}

void webhook_signature(const char *secret, int64_t unix_s, const char *body, char *buf,
		       size_t size)
{
	char t[24];
	snprintf(t, sizeof t, "%lld", (long long)unix_s);
	size_t tl = strlen(t), bl = strlen(body);
	unsigned char *msg = malloc(tl + 1 + bl);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
	if (msg) {
		memcpy(msg, t, tl);
		msg[tl] = '.';
		memcpy(msg + tl + 1, body, bl);
		if (HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, tl + 1 + bl, md, &md_len))
			cp_hex(md, md_len, hex);
		free(msg);
	}
	snprintf(buf, size, "t=%s,v1=%s", t, hex);
}
