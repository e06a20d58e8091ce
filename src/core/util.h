/*
 * util.h - small shared helpers: clocks, random ids, hex, SHA-256, reading a file whole.
 *
 * Wall-clock times are int64 milliseconds since the Unix epoch everywhere in callplane; they are
 * rendered as RFC 3339 only at the edges (JSON, logs). Ids come from OpenSSL's CSPRNG so that a
 * call id is unguessable (122 random bits in a UUIDv4).
 */
#ifndef CP_UTIL_H
#define CP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define CP_UUID_LEN 36    /* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" */
#define CP_RFC3339_LEN 24 /* "2026-11-22T03:01:56.123Z" */
#define CP_SHA256_HEX_LEN 64

int64_t cp_now_ms(void);  /* wall clock, ms since epoch */
int64_t cp_mono_us(void); /* monotonic clock, microseconds */

/* Writes a NUL-terminated RFC 3339 UTC timestamp with milliseconds; buf >= CP_RFC3339_LEN+1. */
void cp_rfc3339(int64_t ms, char *buf);

int cp_random(void *buf, size_t len);               /* 0 or -1 */
int cp_uuid4(char out[CP_UUID_LEN + 1]);            /* 0 or -1 */
void cp_hex(const void *in, size_t len, char *out); /* out: 2*len+1 */
void cp_sha256_hex(const void *in, size_t len, char out[CP_SHA256_HEX_LEN + 1]);

/* Reads the file at path whole into *out (malloc'd, NUL-terminated; *len without the NUL);
 * -1 with errno set (EFBIG past max bytes). */
int cp_read_file(const char *path, size_t max, char **out, size_t *len);
/* Erases len bytes of s (a key's text) and frees it; NULL is fine. */
void cp_free_secret(char *s, size_t len);

bool cp_is_uuid(const char *s);
bool cp_is_e164(const char *s); /* "+" and 2..15 digits */
/* Parses a decimal integer in [min, max]; the whole string must be the number. */
bool cp_parse_int(const char *s, long long min, long long max, long long *out);

/* Replaces, in place, every byte of s that is not part of a well-formed UTF-8 sequence
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF) with '?', so the text can
 * go into JSON. Returns the number of bytes replaced. */
size_t cp_utf8_scrub(char *s);

#endif
