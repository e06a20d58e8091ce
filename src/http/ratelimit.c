/*
 * ratelimit.c - per-key token buckets. See ratelimit.h.
 */
#include "ratelimit.h"
#include "core/util.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64
#define BUCKETS_PER_STRIPE 256

struct bucket {
	struct bucket *next;
	char key_id[CP_UUID_LEN + 1];
	double tokens;
	int64_t at_us;
	unsigned rate;
};

struct stripe {
	pthread_mutex_t mu;
	struct bucket *slots[BUCKETS_PER_STRIPE];
};

struct ratelimit {
	struct stripe stripes[STRIPES];
};

struct ratelimit *ratelimit_create(void)
{
	struct ratelimit *rl = calloc(1, sizeof *rl);
	if (!rl)
		return NULL;
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&rl->stripes[i].mu, NULL);
	return rl;
}

void ratelimit_destroy(struct ratelimit *rl)
{
	if (!rl)
		return;
	for (int i = 0; i < STRIPES; i++) {
		for (int j = 0; j < BUCKETS_PER_STRIPE; j++) {
			struct bucket *b = rl->stripes[i].slots[j];
			while (b) {
				struct bucket *n = b->next;
				free(b);
				b = n;
			}
		}
		pthread_mutex_destroy(&rl->stripes[i].mu);
	}
	free(rl);
}

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

void ratelimit_take(struct ratelimit *rl, const char *key_id, unsigned rate,
		    struct ratelimit_result *out)
{
	memset(out, 0, sizeof *out);
	if (rate == 0) {
		out->allowed = true;
		return;
	}
	unsigned h = hash(key_id);
	struct stripe *st = &rl->stripes[h % STRIPES];
	int64_t now = cp_mono_us();
	pthread_mutex_lock(&st->mu);
	struct bucket **slot = &st->slots[(h / STRIPES) % BUCKETS_PER_STRIPE];
	struct bucket *b = *slot;
	while (b && strcmp(b->key_id, key_id))
		b = b->next;
	if (!b) {
		b = calloc(1, sizeof *b);
		if (!b) {
			pthread_mutex_unlock(&st->mu);
			out->allowed =
				true; /* fail open: memory pressure must not block hang-ups */
			return;
		}
		memcpy(b->key_id, key_id, strnlen(key_id, CP_UUID_LEN));
		b->tokens = rate;
		b->at_us = now;
		b->rate = rate;
		b->next = *slot;
		*slot = b;
	}
	if (b->rate != rate) { /* the key's limit changed: keep the fill ratio */
		b->tokens = b->tokens * rate / b->rate;
		b->rate = rate;
	}
	b->tokens += (double)(now - b->at_us) * rate / 1e6;
	if (b->tokens > rate)
		b->tokens = rate;
	b->at_us = now;
	out->limit = rate;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		out->allowed = true;
	} else {
		out->retry_after = (unsigned)ceil((1.0 - b->tokens) / rate);
		if (out->retry_after < 1)
			out->retry_after = 1;
	}
	out->remaining = (unsigned)floor(b->tokens);
	double to_full = (rate - b->tokens) / rate; /* seconds */
	/* round the moment up, never down: a client that waits until Reset must find it full */
	out->reset_unix = (int64_t)ceil(cp_now_ms() / 1000.0 + to_full);
	pthread_mutex_unlock(&st->mu);
}
