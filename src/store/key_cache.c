/*
 * key_cache.c - see key_cache.h for why the cache exists and what keeps it correct.
 *
 * The table is direct-mapped (a key hash picks one slot) and small: a node serves tens or
 * hundreds of keys. The epoch file holds one naturally aligned uint64_t; processes update it
 * with an atomic add on a shared mapping, which is coherent across processes on Linux.
 *
 * <db>-keys belongs with the database's -wal and -shm: like -shm it is mapped, so truncating it
 * under a running server crashes the server (SIGBUS), and replacing it leaves the server on the
 * old file, where revocations wait for the TTL. Remove it only with the server stopped.
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
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SLOTS 1024u
#define STRIPES 16u

struct slot {
	bool used;
	uint64_t epoch;    /* the epoch taken before the row was read */
	int64_t filled_us; /* monotonic */
	struct api_key key;
};

struct key_cache {
	int fd;          /* <db>-keys, held open: also the server lock (sqlite/open.c) */
	uint64_t *epoch; /* its shared mapping */
	bool writable;
	pthread_mutex_t mu[STRIPES];
	struct slot slot[SLOTS];
};

/* <db>-keys next to the database's real file: symlinks resolved, as SQLite resolves them for
 * -wal and -shm, so processes given different paths to one database share one epoch. */
static int key_file_path(const char *db_path, char *out, size_t size)
{
	char real[PATH_MAX];
	const char *base = realpath(db_path, real) ? real : db_path;
	return (size_t)snprintf(out, size, "%s-keys", base) < size ? 0 : -1;
}

/* Opens <db>-keys, creating it like SQLite creates -wal (the database file's mode, and owner
 * when root) and at least 8 bytes long. Read-only is enough for a server (it only loads the
 * epoch); *writable says which it got. -1 on failure (logged). */
static int key_file_open(const char *db_path, bool need_write, bool *writable)
{
	char path[PATH_MAX + 8];
	if (key_file_path(db_path, path, sizeof path))
		return -1;
	int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW;
	int fd = open(path, flags | O_CREAT | O_EXCL, 0600);
	bool created = fd >= 0;
	if (fd < 0 && errno == EEXIST)
		fd = open(path, flags);
	*writable = fd >= 0;
	if (fd < 0 && errno == EACCES && !need_write)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		log_msg(LOG_ERROR, "store_error", "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat db;
	if (created && stat(db_path, &db) == 0) {
		if (fchmod(fd, db.st_mode & 0666) ||
		    (geteuid() == 0 && fchown(fd, db.st_uid, db.st_gid)))
			log_msg(LOG_WARN, "store_error",
				"%s: cannot match the database's mode or owner: %s", path,
				strerror(errno));
	}
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < (off_t)sizeof(uint64_t) && (!*writable || ftruncate(fd, sizeof(uint64_t)))) {
		log_msg(LOG_ERROR, "store_error",
			"%s is shorter than 8 bytes and cannot be extended", path);
		close(fd);
		return -1;
	}
	return fd;
}

static uint64_t *epoch_map(int fd, bool writable)
{
	void *p = mmap(NULL, sizeof(uint64_t), writable ? PROT_READ | PROT_WRITE : PROT_READ,
		       MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		log_msg(LOG_ERROR, "store_error", "cannot map the key epoch: %s", strerror(errno));
		return NULL;
	}
	return p;
}

struct key_cache *key_cache_open(const char *db_path)
{
	struct key_cache *kc = calloc(1, sizeof *kc);
	if (!kc)
		return NULL;
	kc->fd = key_file_open(db_path, false, &kc->writable);
	kc->epoch = kc->fd >= 0 ? epoch_map(kc->fd, kc->writable) : NULL;
	if (!kc->epoch) {
		if (kc->fd >= 0)
			close(kc->fd);
		free(kc);
		return NULL;
	}
	for (unsigned i = 0; i < STRIPES; i++)
		pthread_mutex_init(&kc->mu[i], NULL);
	return kc;
}

int key_cache_fd(const struct key_cache *kc)
{
	return kc->fd;
}

void key_cache_close(struct key_cache *kc)
{
	if (!kc)
		return;
	munmap(kc->epoch, sizeof(uint64_t));
	close(kc->fd);
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
		h = h * 16 +
		    (unsigned)(hash[i] <= '9' ? hash[i] - '0' : (hash[i] | 0x20) - 'a' + 10);
	return h % SLOTS;
}

bool key_cache_get(struct key_cache *kc, const char *hash, struct api_key *out)
{
	unsigned i = slot_of(hash);
	uint64_t now_epoch = key_cache_ticket(kc);
	int64_t now = cp_mono_us();
	bool hit = false;
	pthread_mutex_lock(&kc->mu[i % STRIPES]);
	struct slot *s = &kc->slot[i];
	if (s->used && s->epoch == now_epoch && now - s->filled_us < KEY_CACHE_TTL_MS * 1000 &&
	    !strcmp(s->key.hash, hash)) {
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
	s->filled_us = cp_mono_us();
	s->key = *k;
	pthread_mutex_unlock(&kc->mu[i % STRIPES]);
}

int key_epoch_bump(const char *db_path)
{
	bool writable;
	int fd = key_file_open(db_path, true, &writable);
	uint64_t *epoch = fd >= 0 ? epoch_map(fd, true) : NULL;
	if (fd >= 0)
		close(fd);
	if (!epoch)
		return -1;
	__atomic_add_fetch(epoch, 1, __ATOMIC_SEQ_CST);
	munmap(epoch, sizeof(uint64_t));
	return 0;
}
