/*
 * util.c - clocks, randomness, encodings. See util.h.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

int64_t cp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cp_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void cp_rfc3339(int64_t ms, char *buf)
{
	/* RFC 3339 has four-digit years: clamp to 0000-01-01 .. 9999-12-31 (only a corrupt row
	 * or clock gets there), so the output always fits CP_RFC3339_LEN */
	const int64_t lo = -62167219200000, hi = 253402300799999;
	ms = ms < lo ? lo : ms > hi ? hi : ms;
	int64_t secs = ms / 1000, frac = ms % 1000;
	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	time_t t = (time_t)secs;
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		memset(&tm, 0, sizeof tm);
	/* unsigned and reduced: lets the compiler see that every field fits its width */
	snprintf(buf, CP_RFC3339_LEN + 1, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
		 (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
		 (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
		 (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u, (unsigned)frac % 1000u);
}

int cp_random(void *buf, size_t len)
{
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

void cp_hex(const void *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = in;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
}

int cp_uuid4(char out[CP_UUID_LEN + 1])
{
	unsigned char b[16];
	char hex[33];
	if (cp_random(b, sizeof b))
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	cp_hex(b, sizeof b, hex);
	snprintf(out, CP_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
		 hex + 16, hex + 20);
	return 0;
}

/* OpenSSL 3 looks the algorithm up in its provider registry on every SHA256() call (a lock
 * and a hash probe: half the cost of hashing an API key); fetch it once instead. */
static EVP_MD *sha256_md;
static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void cp_sha256_hex(const void *in, size_t len, char out[CP_SHA256_HEX_LEN + 1])
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	unsigned char md[SHA256_DIGEST_LENGTH];
	pthread_once(&once, sha256_fetch);
	if (!sha256_md || !EVP_Digest(in, len, md, NULL, sha256_md, NULL))
		SHA256(in, len, md);
	cp_hex(md, sizeof md, out);
}

bool cp_is_uuid(const char *s)
{
	if (!s || strlen(s) != CP_UUID_LEN)
		return false;
	for (int i = 0; i < CP_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

bool cp_is_e164(const char *s)
{
	if (!s || s[0] != '+')
		return false;
	size_t n = strlen(s + 1);
	if (n < 2 || n > 15 || s[1] == '0')
		return false;
	for (size_t i = 1; i <= n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

bool cp_parse_int(const char *s, long long min, long long max, long long *out)
{
	if (!s || !*s || isspace((unsigned char)*s))
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* The length of the well-formed UTF-8 sequence at s, or 0. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t n;
	unsigned lo = 0x80, hi = 0xbf; /* the second byte's range (RFC 3629, section 4) */
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* no overlong form */
		else if (c == 0xed)
			hi = 0x9f; /* no surrogate */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f; /* nothing above U+10FFFF */
	} else {
		return 0;
	}
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

size_t cp_utf8_scrub(char *s)
{
	size_t bad = 0;
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		size_t n = utf8_seq(p);
		if (n) {
			p += n;
		} else {
			*p++ = '?';
			bad++;
		}
	}
	return bad;
}

int cp_read_file(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	char *buf = malloc(max + 1);
	errno = 0;
	size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
	int err = !buf ? ENOMEM : ferror(f) ? (errno ? errno : EIO) : n > max ? EFBIG : 0;
	fclose(f);
	if (err) {
		free(buf);
		errno = err;
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

void cp_free_secret(char *s, size_t len)
{
	if (!s)
		return;
	explicit_bzero(s, len);
	free(s);
}
