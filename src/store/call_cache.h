/*
 * call_cache.h - a bounded read cache of committed call rows, inside the store.
 *
 * GET /v1/calls/{id} is the hottest read, and a call row changes a handful of times in its
 * life. The cache keeps recently read rows (with their agent's number, for number-scoped keys)
 * so a repeated read costs a hash probe instead of an SQLite read transaction.
 *
 * Coherence rules (the store enforces them; see sqlite/batch.c):
 *   - Only committed rows enter the cache, and only readers fill it.
 *   - A writer brackets each write of a row: call_cache_write_begin() before the statement
 *     (it drops the row), call_cache_write_end() once it is committed (for a batch: after its
 *     COMMIT) and before the writer's caller is told. While any write in the row's stripe is
 *     open, readers do not fill it; a fill whose ticket predates a begin or an end is dropped.
 *     So the cache never holds a row older than one a reader could already have seen, and a
 *     reply about a change is never followed by a stale read.
 *   - It is only correct while this process is the only writer of calls: the server holds the
 *     database's server lock (store_options.server) for that.
 */
#ifndef CP_CALL_CACHE_H
#define CP_CALL_CACHE_H

#include "model/call.h"

#include <stdbool.h>
#include <stdint.h>

#define CALL_CACHE_NUMBER_MAX 16
#define CALL_CACHE_STRIPES 256u

struct call_cache;

/* slots: rounded up to a power of two; the memory held is at most one row per slot. */
struct call_cache *call_cache_create(unsigned slots);
void call_cache_destroy(struct call_cache *cc);

/* The ticket to pass to call_cache_fill() for a row of id read after this call. */
uint64_t call_cache_ticket(struct call_cache *cc, const char *id);
/* Copies the cached row of id into *out and its agent's number into number; false if absent. */
bool call_cache_get(struct call_cache *cc, const char *id, struct call *out,
		    char number[CALL_CACHE_NUMBER_MAX + 1]);
/* Caches c (a committed row read after `ticket` was taken), unless a write of its stripe
 * began or ended since, or is open. */
void call_cache_fill(struct call_cache *cc, uint64_t ticket, const struct call *c,
		     const char *number);
/* A write of the row of id is about to run: drops the row and returns its stripe. Once the
 * write has committed (or rolled back), end that stripe's n writes: no fill can have landed
 * while they were open, so ending needs the stripe, not the ids. */
unsigned call_cache_write_begin(struct call_cache *cc, const char *id);
void call_cache_write_end(struct call_cache *cc, unsigned stripe, unsigned n);

#endif
