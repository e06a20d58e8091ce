/*
 * ratelimit.h - a token bucket per API key, in memory.
 *
 * Each key gets `rate` tokens per second with a burst of `rate`; a request takes one. Buckets
 * live in a striped hash table (a mutex per stripe), so one key's flood contends only on its
 * own stripe and never drains another key's bucket. Limits are per process: they restart full.
 */
#ifndef CP_RATELIMIT_H
#define CP_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit;

struct ratelimit_result {
	bool allowed;
	unsigned limit;       /* X-RateLimit-Limit */
	unsigned remaining;   /* X-RateLimit-Remaining */
	int64_t reset_unix;   /* X-RateLimit-Reset: when the bucket is full again (Unix s) */
	unsigned retry_after; /* Retry-After seconds, when refused */
};

struct ratelimit *ratelimit_create(void);
void ratelimit_destroy(struct ratelimit *rl);
/* Takes a token from key_id's bucket of `rate` per second (rate 0 = unlimited). */
void ratelimit_take(struct ratelimit *rl, const char *key_id, unsigned rate,
		    struct ratelimit_result *out);

#endif
