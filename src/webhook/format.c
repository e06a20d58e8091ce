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
 * creates no delivery of it for their webhooks (store.h, call_event) and nothing here maps it. *
 * Signatures, by the webhook's signing:
 *   callplane    Callplane-Signature: t=UNIX,v1=HEX(HMAC-SHA256(secret, t + "." + body)), the
 *                secret's text as the key
 *   standard     Standard Webhooks (https://www.standardwebhooks.com/, spec/standard-webhooks.md
 *                in github.com/standard-webhooks/standard-webhooks): webhook-signature:
 *                v1,BASE64(HMAC-SHA256(key, id + "." + t + "." + body)), where the secret is
 *                "whsec_" + BASE64(key) and key is 24..64 bytes, so that verifier libraries
 *                take the secret as it is
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

#define WHSEC "whsec_"

bool webhook_signing_valid(const char *signing)
{
	return signing && (!strcmp(signing, "callplane") || !strcmp(signing, "standard"));
}

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

void webhook_signature(const char *secret, int64_t unix_s, const char *body, char *buf, size_t size)
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

int webhook_standard_key(const char *secret, unsigned char *key, size_t *key_len)
{
	if (strncmp(secret, WHSEC, strlen(WHSEC)))
		return -1;
	const char *b64 = secret + strlen(WHSEC);
	size_t n = strlen(b64), pad = 0;
	/* canonical base64 only (the alphabet, padding at the end), as the verifiers decode it */
	if (n == 0 || n % 4 || n > 4 * ((WEBHOOK_STANDARD_KEY_MAX + 2) / 3))
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b64[i];
		if (c == '=' && i >= n - 2)
			pad++;
		else if (pad || !(isalnum(c) || c == '+' || c == '/'))
			return -1;
	}
	unsigned char raw[4 * ((WEBHOOK_STANDARD_KEY_MAX + 2) / 3)];
	int got = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
	if (got < 0 || (size_t)got < pad)
		return -1;
	size_t len = (size_t)got - pad;
	if (len < WEBHOOK_STANDARD_KEY_MIN || len > WEBHOOK_STANDARD_KEY_MAX)
		return -1;
	memcpy(key, raw, len);
	*key_len = len;
	return 0;
}

int webhook_standard_secret(char *buf, size_t size)
{
	unsigned char key[WEBHOOK_STANDARD_KEY_MIN];
	char b64[4 * ((sizeof key + 2) / 3) + 1];
	if (cp_random(key, sizeof key))
		return -1;
	EVP_EncodeBlock((unsigned char *)b64, key, (int)sizeof key);
	return snprintf(buf, size, WHSEC "%s", b64) < (int)size ? 0 : -1;
}

int webhook_signature_standard(const char *secret, const char *msg_id, int64_t unix_s,
			       const char *body, char *buf, size_t size)
{
	unsigned char key[WEBHOOK_STANDARD_KEY_MAX], md[EVP_MAX_MD_SIZE];
	size_t key_len = 0;
	unsigned int md_len = 0;
	char t[24], b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
	if (webhook_standard_key(secret, key, &key_len))
		return -1;
	snprintf(t, sizeof t, "%lld", (long long)unix_s);
	size_t il = strlen(msg_id), tl = strlen(t), bl = strlen(body);
	unsigned char *msg = malloc(il + 1 + tl + 1 + bl);
	if (!msg)
		return -1;
	memcpy(msg, msg_id, il);
	msg[il] = '.';
	memcpy(msg + il + 1, t, tl);
	msg[il + 1 + tl] = '.';
	memcpy(msg + il + 1 + tl + 1, body, bl);
	unsigned char *ok =
		HMAC(EVP_sha256(), key, (int)key_len, msg, il + tl + bl + 2, md, &md_len);
	free(msg);
	if (!ok)
		return -1;
	EVP_EncodeBlock((unsigned char *)b64, md, (int)md_len);
	return snprintf(buf, size, "v1,%s", b64) < (int)size ? 0 : -1;
}
