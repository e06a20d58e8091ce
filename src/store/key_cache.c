/*
 * key_cache.c - see key_cache.h for why the cache exists and what keeps it correct.
 *
 * The table is direct-mapped (a key hash picks one slot) and small: a node serves tens or
 * hundreds of keys. The epoch file holds one naturally aligned uint64_t; processes update it
 * with an atomic add on a shared mapping, which is coherent across processes on Linux.
 */
#include "key_cache.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SLOTS 1024u
#define STRIPES 16u

struct slot {
	bool used;
	uint64_t epoch;              /* the epoch taken before the row was read */
	int64_t filled_ms;
	struct api_key key;
};

struct key_cache {
	uint64_t *epoch;             /* shared mapping of <db>-keys */
	pthread_mutex_t mu[STRIPES];
	struct slot slot[SLOTS];
};

/* Opens and maps <db>-keys, making it 8 bytes long if it is new. */
static uint64_t *epoch_map(const char *db_path)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof path, "%s-keys", db_path) >= sizeof path)
		return NULL;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_msg(LOG_ERROR, "store_error", "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	void *p = MAP_FAILED;
	off_t size = lseek(fd, 0, SEEK_END);
	if (size >= (off_t)sizeof(uint64_t) || ftruncate(fd, sizeof(uint64_t)) == 0)
		p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		log_msg(LOG_ERROR, "store_error", "cannot map %s: %s", path, strerror(errno));
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

struct key_cache *key_cache_open(const char *db_path)
{
	struct key_cache *kc = calloc(1, sizeof *kc);
	if (!kc)
		return NULL;
	kc->epoch = epoch_map(db_path);
	if (!kc->epoch) {
		free(kc);
		return NULL;
	}
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_init(&kc->mu[i], NULL);
	return kc;
}

void key_cache_close(struct key_cache *kc)
{
	if (!kc)
		return;
	munmap(kc->epoch, sizeof(uint64_t));
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&kc->mu[i]);
	free(kc);
}

uint64_t key_cache_ticket(struct key_cache *kc)
{
	return __atomic_load_n(kc->epoch, __ATOMIC_ACQUIRE);
}

/* The hash is hex SHA-256: its leading digits are already uniformly spread. */
static unsigned slot_of(const char *hash)
{
	unsigned h = 0;
	for (int i = 0; i < 8 && hash[i]; i++)
		h = h * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : (hash[i] | 0x20) - 'a' + 10);
	return h % SLOTS;
}

bool key_cache_get(struct key_cache *kc, const char *hash, struct api_key *out)
{
	unsigned i = slot_of(hash);
	uint64_t now_epoch = key_cache_ticket(kc);
	int64_t now = cp_now_ms();
	bool hit = false;
	pthread_mutex_lock(&kc->mu[i % STRIPES]);
	struct slot *s = &kc->slot[i];
	if (s->used && s->epoch == now_epoch && now - s->filled_ms < KEY_CACHE_TTL_MS &&
	    now >= s->filled_ms && !strcmp(s->key.hash, hash)) {
		*out = s->key;
		hit = true;
	}
	pthread_mutex_unlock(&kc->mu[i % STRIPES]);
	return hit;
}

void key_cache_fill(struct key_cache *kc, uint64_t ticket, const struct api_key *k)
{
	unsigned i = slot_of(k->hash);
	pthread_mutex_lock(&kc->mu[i % STRIPES]);
	struct slot *s = &kc->slot[i];
	s->used = true;
	s->epoch = ticket;
	s->filled_ms = cp_now_ms();
	s->key = *k;
	pthread_mutex_unlock(&kc->mu[i % STRIPES]);
}

int key_epoch_bump(const char *db_path)
{
	uint64_t *epoch = epoch_map(db_path);
	if (!epoch)
		return -1;
	__atomic_add_fetch(epoch, 1, __ATOMIC_SEQ_CST);
	munmap(epoch, sizeof(uint64_t));
	return 0;
}
