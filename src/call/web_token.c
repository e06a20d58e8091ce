/*
 * web_token.c - web call tokens (see web_token.h).
 *
 * The table: entries chained in WEB_TOKEN_BUCKETS buckets by the first bytes of their SHA-256
 * (uniformly random: the tokens are), and kept in one list in the order they were issued.
 * Forgetting walks that list from its oldest end and stops at the first entry still to keep,
 * so each issue does the work of the entries it forgets and no more. An entry is kept one
 * lifetime past its expiry; one behind a longer-lived entry waits for it, so nothing stays
 * longer than twice WEB_TOKEN_TTL_MAX_S after it was issued.
 */
#include "call/web_token.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEB_TOKEN_BYTES 32
#define WEB_TOKEN_BUCKETS 4096

struct entry {
	struct entry *hnext; /* bucket chain */
	struct entry *onext; /* issue order, oldest first */
	uint8_t digest[SHA256_DIGEST_LENGTH];
	char call_id[CP_UUID_LEN + 1];
	int64_t expires_ms, forget_ms;
	bool used;
};

struct web_tokens {
	pthread_mutex_t mu;
	struct entry *bucket[WEB_TOKEN_BUCKETS];
	struct entry *oldest, *newest;
};

struct web_tokens *web_tokens_create(void)
{
	struct web_tokens *t = calloc(1, sizeof *t);
	if (t)
		pthread_mutex_init(&t->mu, NULL);
	return t;
}

void web_tokens_destroy(struct web_tokens *t)
{
	if (!t)
		return;
	for (struct entry *e = t->oldest, *next; e; e = next) {
		next = e->onext;
		free(e);
	}
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static unsigned bucket_of(const uint8_t *digest)
{
	return ((unsigned)digest[0] << 8 | digest[1]) % WEB_TOKEN_BUCKETS;
}

/* Takes e out of its bucket (with t->mu held). */
static void unchain(struct web_tokens *t, struct entry *e)
{
	for (struct entry **p = &t->bucket[bucket_of(e->digest)]; *p; p = &(*p)->hnext) {
		if (*p == e) {
			*p = e->hnext;
			return;
		}
	}
}

/* Forgets the oldest entries whose time has come (with t->mu held). */
static void forget_old(struct web_tokens *t, int64_t now_ms)
{
	while (t->oldest && t->oldest->forget_ms <= now_ms) {
		struct entry *e = t->oldest;
		t->oldest = e->onext;
		if (!t->oldest)
			t->newest = NULL;
		unchain(t, e);
		free(e);
	}
}

/* base64url without padding of n bytes into out (4 * n / 3 + 1 bytes and a NUL). */
static void base64url(const uint8_t *in, size_t n, char *out)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
		out[o++] = abc[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
	}
	out[o] = '\0';
}

int web_token_issue(struct web_tokens *t, const char *call_id, int64_t now_ms, int64_t ttl_ms,
		    char out[WEB_TOKEN_LEN + 1])
{
	uint8_t raw[WEB_TOKEN_BYTES];
	struct entry *e = calloc(1, sizeof *e);
	if (!e || cp_random(raw, sizeof raw)) {
		free(e);
		return -1;
	}
	base64url(raw, sizeof raw, out);
	OPENSSL_cleanse(raw, sizeof raw);
	SHA256((const unsigned char *)out, WEB_TOKEN_LEN, e->digest);
	snprintf(e->call_id, sizeof e->call_id, "%s", call_id);
	e->expires_ms = now_ms + ttl_ms;
	e->forget_ms = e->expires_ms + ttl_ms;
	pthread_mutex_lock(&t->mu);
	forget_old(t, now_ms);
	unsigned b = bucket_of(e->digest);
	e->hnext = t->bucket[b];
	t->bucket[b] = e;
	if (t->newest)
		t->newest->onext = e;
	else
		t->oldest = e;
	t->newest = e;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

/* The check, and with take the use, under the lock. */
static enum web_token_result lookup(struct web_tokens *t, const char *token, const char *call_id,
				    int64_t now_ms, char out_call[CP_UUID_LEN + 1], bool take)
{
	/* anything but 43 characters was never issued: no digest needed to say so */
	if (!token || strlen(token) != WEB_TOKEN_LEN)
		return WEB_TOKEN_UNKNOWN;
	uint8_t digest[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)token, WEB_TOKEN_LEN, digest);
	enum web_token_result r = WEB_TOKEN_UNKNOWN;
	pthread_mutex_lock(&t->mu);
	for (struct entry *e = t->bucket[bucket_of(digest)]; e; e = e->hnext) {
		if (CRYPTO_memcmp(e->digest, digest, sizeof digest))
			continue;
		if (e->used)
			r = WEB_TOKEN_USED;
		else if (now_ms >= e->expires_ms)
			r = WEB_TOKEN_EXPIRED;
		else if (call_id && strcmp(call_id, e->call_id))
			r = WEB_TOKEN_FOREIGN;
		else
			r = WEB_TOKEN_OK;
		if (r == WEB_TOKEN_OK) {
			e->used = take;
			if (out_call)
				snprintf(out_call, CP_UUID_LEN + 1, "%s", e->call_id);
		}
		break;
	}
	pthread_mutex_unlock(&t->mu);
	return r;
}

enum web_token_result web_token_check(struct web_tokens *t, const char *token, const char *call_id,
				      int64_t now_ms, char out_call[CP_UUID_LEN + 1])
{
	return lookup(t, token, call_id, now_ms, out_call, false);
}

enum web_token_result web_token_take(struct web_tokens *t, const char *token, const char *call_id,
				     int64_t now_ms, char out_call[CP_UUID_LEN + 1])
{
	return lookup(t, token, call_id, now_ms, out_call, true);
}

const char *web_token_result_name(enum web_token_result r)
{
	switch (r) {
	case WEB_TOKEN_OK: return "ok";
	case WEB_TOKEN_UNKNOWN: return "unknown";
	case WEB_TOKEN_EXPIRED: return "expired";
	case WEB_TOKEN_USED: return "used";
	case WEB_TOKEN_FOREIGN: return "foreign";
	}
	return "unknown";
}
