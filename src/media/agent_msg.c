/*
 * agent_msg.c - what an agent's text message asks for (see agent_msg.h). jansson parses the
 * JSON, OpenSSL's EVP decoder the base64 (libre's base64_decode takes any character, and
 * padding anywhere, as data: a corrupt payload would play as noise); this file only decides
 * which messages are usable.
 * The limits keep one message's cost bounded: the payload's base64 is at most
 * AGENT_PAYLOAD_MAX characters (libre's WebSocket layer already caps a frame at 128 KiB),
 * a mark's name at most AGENT_MARK_NAME_MAX bytes (longer names are cut, as they are echoed
 * back, not interpreted).
 */
#include "media/agent_msg.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

/* Strict base64 (RFC 4648 alphabet, padding only at the end) into out; -1 if it is not. */
static int base64_strict(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	int n = 0, tail = 0, rc = -1;
	if (!ctx || len > INT32_MAX)
		goto out;
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, out, &n, (const unsigned char *)in, (int)len) < 0 ||
	    EVP_DecodeFinal(ctx, out + n, &tail) < 0)
		goto out;
	*out_len = (size_t)n + (size_t)tail;
	rc = 0;
out:
	EVP_ENCODE_CTX_free(ctx);
	return rc;
}

static int media_payload(json_t *media, struct agent_msg *m, uint8_t *audio, const char **why)
{
	const char *payload = json_string_value(json_object_get(media, "payload"));
	if (!payload) {
		*why = "media without media.payload";
		return -1;
	}
	size_t in = json_string_length(json_object_get(media, "payload"));
	if (in > AGENT_PAYLOAD_MAX) {
		*why = "media payload too large";
		return -1;
	}
	size_t out_len = 0;
	if (in % 4 || base64_strict(payload, in, audio, &out_len)) {
		*why = "media payload is not base64";
		return -1;
	}
	m->audio_len = out_len;
	return 0;
}

int agent_msg_parse(const char *text, size_t len, const char *sid, struct agent_msg *m,
		    uint8_t *audio, const char **why)
{
	int rc = -1;
	json_error_t jerr;
	json_t *msg = json_loadb(text, len, 0, &jerr);
	const char *event = json_string_value(json_object_get(msg, "event"));
	memset(m, 0, sizeof *m);
	if (!event) {
		*why = msg ? "no event" : "not JSON";
		goto out;
	}
	const char *their_sid = json_string_value(json_object_get(msg, "streamSid"));
	if (their_sid && strcmp(their_sid, sid)) {
		*why = "another stream's streamSid";
		goto out;
	}
	if (!strcmp(event, "media")) {
		m->event = AGENT_MEDIA;
		rc = media_payload(json_object_get(msg, "media"), m, audio, why);
	} else if (!strcmp(event, "mark")) {
		const char *name =
			json_string_value(json_object_get(json_object_get(msg, "mark"), "name"));
		if (!name) {
			*why = "mark without mark.name";
			goto out;
		}
		m->event = AGENT_MARK;
		/* cut on a character boundary, so the echo stays valid UTF-8 */
		size_t n = strlen(name);
		if (n > AGENT_MARK_NAME_MAX) {
			n = AGENT_MARK_NAME_MAX;
			while (n && ((unsigned char)name[n] & 0xC0) == 0x80)
				n--;
		}
		memcpy(m->mark_name, name, n);
		m->mark_name[n] = '\0';
		rc = 0;
	} else if (!strcmp(event, "clear")) {
		m->event = AGENT_CLEAR;
		rc = 0;
	} else {
		*why = "unknown event";
	}
out:
	json_decref(msg);
	return rc;
}
