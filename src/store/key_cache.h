/*
 * key_cache.h - the server's cache of API keys by hash, and the key epoch that keeps it honest.
 *
 * Every authenticated request looks its key up by hash. Keys change rarely (a revocation), but
 * they change in another process: the admin CLI revokes a key while the server runs, and the
 * revocation must hold from the moment the CLI returns. So the cache is checked against a key
 * epoch, a 64-bit counter in a small shared file next to the database (<db>-keys), mapped by
 * the server and incremented by whoever commits a key change, after the commit:
 *
 *   - A reader takes the epoch before it reads the key; the entry is valid only while the epoch
 *     is unchanged. A revocation committed and announced is never followed by a cached "yes".
 *   - Checking costs one load from shared memory, no system call.
 *   - Entries also expire after KEY_CACHE_TTL_MS: the backstop for a writer that died between
 *     its commit and its increment, or an edit made with the sqlite3 shell.
 *   - Unknown keys are not cached: a key created meanwhile is found at once.
 */
#ifndef CP_KEY_CACHE_H
#define CP_KEY_CACHE_H

#include "store.h"

#include <stdbool.h>
#include <stdint.h>

#define KEY_CACHE_TTL_MS 5000

struct key_cache;

/* Maps the key epoch of the database at db_path (creating it). NULL on failure (logged). */
struct key_cache *key_cache_open(const char *db_path);
void key_cache_close(struct key_cache *kc);

/* The open <db>-keys: the server also holds its flock (one server per database). */
int key_cache_fd(const struct key_cache *kc);

uint64_t key_cache_ticket(struct key_cache *kc);
bool key_cache_get(struct key_cache *kc, const char *hash, struct api_key *out);
/* Caches k, read after `ticket` was taken. */
void key_cache_fill(struct key_cache *kc, uint64_t ticket, const struct api_key *k);

/* After a committed key change, from any process: increments the key epoch of db_path, so
 * every server drops what it cached. 0, or -1 (logged) if the epoch file cannot be updated. */
int key_epoch_bump(const char *db_path);

#endif
