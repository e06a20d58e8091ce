/*
 * call_cache.c - see call_cache.h for what the cache promises.
 *
 * Design: direct-mapped. A call id hashes to one slot; a newer row for another id in the same
 * slot replaces the old one. No LRU lists to keep, nothing to evict, memory bounded by the
 * slot count. Slots are guarded by stripes of mutexes (a slot belongs to exactly one stripe);
 * each stripe counts the write begins and ends it has seen (the reader's ticket) and the writes
 * still open (no ticket is valid while one is).
 */
#include "call_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES CALL_CACHE_STRIPES

struct entry {
	struct call call;
	char number[CALL_CACHE_NUMBER_MAX + 1];
};

struct stripe {
	pthread_mutex_t mu;
	uint64_t changes; /* bumped by every write begin and end: the ticket */
	unsigned open;    /* writes begun and not yet ended */
};

struct call_cache {
	unsigned mask;       /* slots - 1 */
	struct entry **slot; /* NULL = empty */
	struct stripe stripe[STRIPES];
};

static uint32_t hash_id(const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

struct call_cache *call_cache_create(unsigned slots)
{
	unsigned n = STRIPES;
	while (n < slots)
		n <<= 1;
	struct call_cache *cc = calloc(1, sizeof *cc);
	if (!cc)
		return NULL;
	cc->slot = calloc(n, sizeof *cc->slot);
	if (!cc->slot) {
		free(cc);
		return NULL;
	}
	cc->mask = n - 1;
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_init(&cc->stripe[i].mu, NULL);
	return cc;
}

static void entry_free(struct entry *e)
{
	if (e) {
		call_clear(&e->call);
		free(e);
	}
}

void call_cache_destroy(struct call_cache *cc)
{
	if (!cc)
		return;
	for (unsigned i = 0; i <= cc->mask; i++)
		entry_free(cc->slot[i]);
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&cc->stripe[i].mu);
	free(cc->slot);
	free(cc);
}

/* The slot of id and the stripe that guards it. */
static unsigned slot_of(const struct call_cache *cc, const char *id)
{
	return hash_id(id) & cc->mask;
}

static struct stripe *stripe_of(struct call_cache *cc, unsigned slot)
{
	return &cc->stripe[slot % STRIPES];
}

/* A ticket no fill can match: a write of the stripe is open. */
#define NO_TICKET UINT64_MAX

uint64_t call_cache_ticket(struct call_cache *cc, const char *id)
{
	struct stripe *s = stripe_of(cc, slot_of(cc, id));
	pthread_mutex_lock(&s->mu);
	uint64_t t = s->open ? NO_TICKET : s->changes;
	pthread_mutex_unlock(&s->mu);
	return t;
}

bool call_cache_get(struct call_cache *cc, const char *id, struct call *out,
		    char number[CALL_CACHE_NUMBER_MAX + 1])
{
	unsigned i = slot_of(cc, id);
	struct stripe *s = stripe_of(cc, i);
	bool hit = false;
	pthread_mutex_lock(&s->mu);
	struct entry *e = cc->slot[i];
	if (e && !strcmp(e->call.id, id)) {
		/* copied under the lock, so a miss costs no malloc */
		hit = call_copy(out, &e->call) == 0;
		if (hit)
			memcpy(number, e->number, CALL_CACHE_NUMBER_MAX + 1);
	}
	pthread_mutex_unlock(&s->mu);
	return hit;
}

void call_cache_fill(struct call_cache *cc, uint64_t ticket, const struct call *c,
		     const char *number)
{
	struct entry *e = malloc(sizeof *e);
	if (!e)
		return;
	memset(&e->call, 0, sizeof e->call);
	if (call_copy(&e->call, c)) {
		free(e);
		return;
	}
	snprintf(e->number, sizeof e->number, "%s", number); /* the store passes <= 16 */
	unsigned i = slot_of(cc, c->id);
	struct stripe *s = stripe_of(cc, i);
	struct entry *old = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->changes == ticket && !s->open) {
		old = cc->slot[i];
		cc->slot[i] = e;
		e = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	entry_free(old);
	entry_free(e); /* a write raced this fill: what we read may predate it */
}

unsigned call_cache_write_begin(struct call_cache *cc, const char *id)
{
	unsigned i = slot_of(cc, id);
	struct stripe *s = stripe_of(cc, i);
	struct entry *old = NULL;
	pthread_mutex_lock(&s->mu);
	s->changes++;
	s->open++;
	if (cc->slot[i] && !strcmp(cc->slot[i]->call.id, id)) {
		old = cc->slot[i];
		cc->slot[i] = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	entry_free(old);
	return i % STRIPES;
}

void call_cache_write_end(struct call_cache *cc, unsigned stripe, unsigned n)
{
	struct stripe *s = &cc->stripe[stripe % STRIPES];
	pthread_mutex_lock(&s->mu);
	s->changes++;
	s->open -= n;
	pthread_mutex_unlock(&s->mu);
}
