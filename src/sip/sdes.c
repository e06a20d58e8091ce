/*
 * sdes.c - the a=crypto attribute (RFC 4568 9.1), read strictly and written plainly.
 *
 *   a=crypto:<tag> <suite> inline:<base64 key||salt>[|<lifetime>][|<mki>:<length>] [params]
 *
 * What is usable: AES_CM_128_HMAC_SHA1_80 and _32 (the two suites RFC 4568 and every SBC
 * know), one inline key that is base64 of exactly 30 bytes (a 16-byte master key and a
 * 14-byte salt; 40 characters, which need no padding), no MKI, no session parameter. A line
 * outside that is not an error of the SDP: the offerer lists alternatives, and the answerer
 * takes the first line it can use (RFC 4568 7.1.1), so each refusal says why and the caller
 * moves on.
 *
 * The lifetime (packets under one master key) is accepted from 2^20 up to the suite's 2^48:
 * callplane does not rekey within a call, and 2^20 packets is 5.8 hours of 20 ms audio, more
 * than a call lasts. An MKI would have every packet carry a key index; we offer none, and a
 * far end that asks for one gets another of its lines or a plain answer.
 */
#include "sip/sdes.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const struct {
	enum media_srtp_suite suite;
	const char *name;
} suites[] = {
	{MEDIA_SRTP_AES128_SHA1_80, "AES_CM_128_HMAC_SHA1_80"},
	{MEDIA_SRTP_AES128_SHA1_32, "AES_CM_128_HMAC_SHA1_32"},
};

const char *sdes_suite_name(enum media_srtp_suite suite)
{
	for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
		if (suites[i].suite == suite)
			return suites[i].name;
	return NULL;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Decodes exactly 40 base64 characters (no padding) into 30 bytes; false on any other. */
static bool key_decode(const char *p, size_t n, uint8_t out[MEDIA_SRTP_KEY_LEN])
{
	if (n != MEDIA_SRTP_KEY_LEN / 3 * 4)
		return false;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;
		for (size_t j = 0; j < 4; j++) {
			const char *c = p[i + j] ? strchr(b64, p[i + j]) : NULL;
			if (!c)
				return false;
			v = v << 6 | (uint32_t)(c - b64);
		}
		out[i / 4 * 3] = (uint8_t)(v >> 16);
		out[i / 4 * 3 + 1] = (uint8_t)(v >> 8);
		out[i / 4 * 3 + 2] = (uint8_t)v;
	}
	return true;
}

/* A run of digits [p, end) as a number; false if empty, not all digits, or over max. */
static bool number(const char *p, const char *end, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	if (p == end)
		return false;
	for (; p < end; p++) {
		if (!is_digit(*p) || v > (max - (unsigned long long)(*p - '0')) / 10)
			return false;
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	*out = v;
	return true;
}

/* One "|" field after the key: a lifetime ("2^N" or a count) or an MKI ("value:length"). */
static enum sdes_result key_field(const char *p, const char *end, bool *seen_lifetime)
{
	const char *colon = memchr(p, ':', (size_t)(end - p));
	unsigned long long v, len;
	if (colon) {
		/* an MKI: well formed (length 1..128 bytes) or malformed, unsupported either way */
		if (!number(p, colon, ~0ull, &v) || colon + 4 < end ||
		    !number(colon + 1, end, 128, &len) || len == 0)
			return SDES_MALFORMED;
		return SDES_UNSUPPORTED;
	}
	if (*seen_lifetime)
		return SDES_MALFORMED;
	*seen_lifetime = true;
	if (end - p >= 2 && p[0] == '2' && p[1] == '^') {
		if (!number(p + 2, end, 64, &v))
			return SDES_MALFORMED;
		return v >= 20 && v <= 48 ? SDES_OK : SDES_UNSUPPORTED;
	}
	if (!number(p, end, ~0ull, &v))
		return SDES_MALFORMED;
	return v >= 1ull << 20 && v <= 1ull << 48 ? SDES_OK : SDES_UNSUPPORTED;
}

enum sdes_result sdes_parse(const char *value, size_t len, struct sdes_crypto *out)
{
	const char *p = value, *end = value + len;
	while (end > p && (is_wsp(end[-1]) || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	/* tag */
	const char *q = p;
	while (q < end && is_digit(*q))
		q++;
	unsigned long long tag;
	if (q - p > 9 || !number(p, q, 999999999, &tag) || tag == 0 || q == end || !is_wsp(*q))
		return SDES_MALFORMED;
	while (q < end && is_wsp(*q))
		q++;
	/* suite */
	p = q;
	while (q < end && !is_wsp(*q))
		q++;
	if (p == q || q == end)
		return SDES_MALFORMED;
	enum media_srtp_suite suite = MEDIA_SRTP_NONE;
	for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
		if (strlen(suites[i].name) == (size_t)(q - p) &&
		    !strncasecmp(p, suites[i].name, (size_t)(q - p)))
			suite = suites[i].suite;
	while (q < end && is_wsp(*q))
		q++;
	/* key-params up to the first space; session parameters after it */
	p = q;
	while (q < end && !is_wsp(*q))
		q++;
	const char *params_end = q;
	while (q < end && is_wsp(*q))
		q++;
	bool session_params = q < end;
	if (params_end - p < 7 || strncasecmp(p, "inline:", 7))
		return SDES_MALFORMED;
	if (suite == MEDIA_SRTP_NONE)
		return SDES_UNKNOWN_SUITE;
	if (memchr(p, ';', (size_t)(params_end - p)))
		return SDES_UNSUPPORTED; /* several keys */
	p += 7;
	const char *bar = memchr(p, '|', (size_t)(params_end - p));
	const char *key_end = bar ? bar : params_end;
	uint8_t key[MEDIA_SRTP_KEY_LEN];
	if (!key_decode(p, (size_t)(key_end - p), key))
		return SDES_BAD_KEY;
	bool seen_lifetime = false;
	enum sdes_result r = SDES_OK;
	while (bar && r == SDES_OK) {
		p = bar + 1;
		bar = memchr(p, '|', (size_t)(params_end - p));
		r = key_field(p, bar ? bar : params_end, &seen_lifetime);
	}
	if (r == SDES_OK && session_params)
		r = SDES_UNSUPPORTED;
	if (r == SDES_OK) {
		out->tag = (unsigned long)tag;
		out->suite = suite;
		memcpy(out->key, key, sizeof key);
	}
	explicit_bzero(key, sizeof key);
	return r;
}

int sdes_print(const struct sdes_crypto *c, char *buf, size_t size)
{
	const char *name = sdes_suite_name(c->suite);
	char key[MEDIA_SRTP_KEY_LEN / 3 * 4 + 1];
	if (!name || c->tag == 0 || c->tag > 999999999)
		return -1;
	for (size_t i = 0; i < MEDIA_SRTP_KEY_LEN; i += 3) {
		uint32_t v =
			(uint32_t)c->key[i] << 16 | (uint32_t)c->key[i + 1] << 8 | c->key[i + 2];
		for (size_t j = 0; j < 4; j++)
			key[i / 3 * 4 + j] = b64[v >> (18 - 6 * j) & 63];
	}
	key[sizeof key - 1] = '\0';
	int n = snprintf(buf, size, "a=crypto:%lu %s inline:%s\r\n", c->tag, name, key);
	explicit_bzero(key, sizeof key);
	if (n < 0 || (size_t)n >= size) {
		if (size)
			buf[0] = '\0';
		return -1;
	}
	return n;
}
