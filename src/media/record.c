/*
 * record.c - call recordings (see record.h): the media thread copies frames in, one writer
 * thread (cp-record) writes them out with libsndfile.
 *
 * Ownership: a recording is created by the media thread, filled by it until
 * recording_close(), and freed by the writer once its file is finished. Between the two
 * threads only `pending` (interleaved stereo frames not yet written), `closed` and `dropped`
 * are shared, under the recorder's mutex; the SNDFILE and everything about the file are the
 * writer's alone. The writer swaps a recording's pending buffer out under the lock and
 * writes it with the lock released, so the media thread waits for a pointer swap at most,
 * never for the disk.
 */
#include "media/record.h"
#include "media/media.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RATE 8000
#define WRITE_EVERY_MS 200
#define HEADER_EVERY_MS 1000
#define PENDING_MAX_FRAMES (10 * RATE) /* 10 s the disk has not taken yet */

struct recording {
	struct recording *next; /* the recorder's list (under mu) */
	struct recorder *rc;
	char call_id[MEDIA_CALL_ID_MAX + 1];
	/* shared, under rc->mu */
	int16_t *pending; /* interleaved: far, played, far, played... */
	size_t pending_frames, pending_cap;
	bool closed;
	uint64_t dropped;
	/* the writer's */
	SNDFILE *sf;
	bool failed;
	uint64_t written;
	struct timespec header_at;
};

struct recorder {
	char *dir;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool quit;
	struct recording *list;
};

static int64_t ms_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

int recording_path(const char *dir, const char *call_id, char *buf, size_t size)
{
	/* ids are ours (UUIDs), but a path is built from it: nothing but [0-9a-zA-Z-] */
	if (!*call_id || strlen(call_id) > MEDIA_CALL_ID_MAX)
		return -1;
	for (const char *p = call_id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z') || *p == '-'))
			return -1;
	int n = snprintf(buf, size, "%s/%s.wav", dir, call_id);
	return n > 0 && (size_t)n < size ? 0 : -1;
}

/* fsync a file by name (libsndfile keeps its descriptor to itself) */
static void sync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* ---- the writer thread ------------------------------------------------------------------ */

static void file_failed(struct recording *r)
{
	log_json(LOG_ERROR, "recording_failed",
		 json_pack("{s:s, s:s}", "call_id", r->call_id, "error",
			   r->sf ? sf_strerror(r->sf) : sf_strerror(NULL)));
	r->failed = true;
}

/* Creates the recording's .part; false (failed, logged) if it cannot. */
static bool file_open(struct recorder *rc, struct recording *r)
{
	char path[PATH_MAX], part[PATH_MAX + 8];
	if (recording_path(rc->dir, r->call_id, path, sizeof path)) {
		file_failed(r);
		return false;
	}
	snprintf(part, sizeof part, "%s.part", path);
	SF_INFO info = {
		.samplerate = RATE, .channels = 2, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	r->sf = sf_open(part, SFM_WRITE, &info);
	if (!r->sf) {
		file_failed(r);
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &r->header_at);
	return true;
}

/* The file is created at the first pass after the recording opens, frames or not, so that a
 * call's .part exists soon after its answer, whatever the far end sends. */
static void file_write(struct recorder *rc, struct recording *r, const int16_t *frames, size_t n)
{
	if (r->failed || (!r->sf && !file_open(rc, r)) || !n)
		return;
	if (sf_writef_short(r->sf, frames, (sf_count_t)n) != (sf_count_t)n)
		goto fail;
	r->written += n;
	if (ms_since(&r->header_at) >= HEADER_EVERY_MS) {
		sf_command(r->sf, SFC_UPDATE_HEADER_NOW, NULL, 0);
		clock_gettime(CLOCK_MONOTONIC, &r->header_at);
	}
	return;
fail:
	file_failed(r);
}

static void file_finish(struct recorder *rc, struct recording *r)
{
	char path[PATH_MAX], part[PATH_MAX + 8];
	if (!r->sf)
		return;
	sf_close(r->sf);
	r->sf = NULL;
	if (recording_path(rc->dir, r->call_id, path, sizeof path))
		return;
	snprintf(part, sizeof part, "%s.part", path);
	sync_path(part);
	if (rename(part, path))
		log_msg(LOG_ERROR, "recording_failed", "rename %s: %s", part, strerror(errno));
	log_json(LOG_INFO, "recording_done",
		 json_pack("{s:s, s:I, s:I, s:b}", "call_id", r->call_id, "ms",
			   (json_int_t)(r->written / (RATE / 1000)), "dropped_ms",
			   (json_int_t)(r->dropped / (RATE / 1000)), "failed", r->failed));
}

/* One pass over the list: write what is pending, finish what is closed. Called with mu held;
 * returns with it held. */
static void write_pass(struct recorder *rc, bool all_closed)
{
	struct recording **pp = &rc->list;
	while (*pp) {
		struct recording *r = *pp;
		int16_t *buf = r->pending;
		size_t n = r->pending_frames;
		bool closed = r->closed || all_closed;
		r->pending = NULL;
		r->pending_frames = r->pending_cap = 0;
		pthread_mutex_unlock(&rc->mu);
		file_write(rc, r, buf, n);
		free(buf);
		if (closed)
			file_finish(rc, r);
		pthread_mutex_lock(&rc->mu);
		if (closed) {
			*pp = r->next;
			free(r->pending); /* written after the close: nothing, but be sure */
			free(r);
		} else {
			pp = &r->next;
		}
	}
}

static void *writer_main(void *arg)
{
	struct recorder *rc = arg;
	pthread_setname_np(pthread_self(), "cp-record");
	pthread_mutex_lock(&rc->mu);
	while (!rc->quit) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += WRITE_EVERY_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&rc->cv, &rc->mu, &until);
		write_pass(rc, false);
	}
	write_pass(rc, true);
	pthread_mutex_unlock(&rc->mu);
	return NULL;
}

/* ---- the recorder ----------------------------------------------------------------------- */

struct recorder *recorder_start(const char *dir)
{
	if (mkdir(dir, 0750) && errno != EEXIST) {
		log_msg(LOG_ERROR, "recorder", "cannot create %s: %s", dir, strerror(errno));
		return NULL;
	}
	struct recorder *rc = calloc(1, sizeof *rc);
	if (!rc || !(rc->dir = strdup(dir))) {
		free(rc);
		return NULL;
	}
	pthread_mutex_init(&rc->mu, NULL);
	pthread_cond_init(&rc->cv, NULL);
	if (pthread_create(&rc->thread, NULL, writer_main, rc)) {
		free(rc->dir);
		free(rc);
		return NULL;
	}
	return rc;
}

void recorder_stop(struct recorder *rc)
{
	if (!rc)
		return;
	pthread_mutex_lock(&rc->mu);
	rc->quit = true;
	pthread_cond_signal(&rc->cv);
	pthread_mutex_unlock(&rc->mu);
	pthread_join(rc->thread, NULL);
	pthread_mutex_destroy(&rc->mu);
	pthread_cond_destroy(&rc->cv);
	free(rc->dir);
	free(rc);
}

struct recording *recording_open(struct recorder *rc, const char *call_id)
{
	struct recording *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->rc = rc;
	snprintf(r->call_id, sizeof r->call_id, "%s", call_id);
	pthread_mutex_lock(&rc->mu);
	r->next = rc->list;
	rc->list = r;
	pthread_cond_signal(&rc->cv); /* its file is created now rather than at the next pass */
	pthread_mutex_unlock(&rc->mu);
	return r;
}

void recording_write(struct recording *r, const int16_t *far, const int16_t *played, size_t n)
{
	struct recorder *rc = r->rc;
	pthread_mutex_lock(&rc->mu);
	if (r->pending_frames + n > PENDING_MAX_FRAMES) {
		r->dropped += n;
		goto out;
	}
	if (r->pending_frames + n > r->pending_cap) {
		size_t cap = r->pending_cap ? r->pending_cap * 2 : 4 * RATE / 5; /* 800 ms */
		while (cap < r->pending_frames + n)
			cap *= 2;
		int16_t *p = realloc(r->pending, cap * 2 * sizeof *p);
		if (!p) {
			r->dropped += n;
			goto out;
		}
		r->pending = p;
		r->pending_cap = cap;
	}
	int16_t *dst = r->pending + r->pending_frames * 2;
	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = far[i];
		dst[2 * i + 1] = played[i];
	}
	r->pending_frames += n;
out:
	pthread_mutex_unlock(&rc->mu);
}

void recording_close(struct recording *r)
{
	struct recorder *rc = r->rc;
	pthread_mutex_lock(&rc->mu);
	r->closed = true;
	pthread_cond_signal(&rc->cv); /* finish it now rather than at the next pass */
	pthread_mutex_unlock(&rc->mu);
}

/* ---- reading and deleting --------------------------------------------------------------- */

int recording_open_read(const char *dir, const char *call_id, int wait_ms)
{
	char path[PATH_MAX];
	if (recording_path(dir, call_id, path, sizeof path)) {
		errno = ENOENT;
		return -1;
	}
	/* polled: the wait is for a writer finishing a call that just ended (its first pass may
	 * not even have created the .part yet); the caller bounds it by how recently */
	for (int waited = 0;; waited += 10) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			return fd;
		if (waited >= wait_ms)
			break;
		struct timespec ten_ms = {.tv_nsec = 10 * 1000000L};
		nanosleep(&ten_ms, NULL);
	}
	errno = ENOENT;
	return -1;
}

int recording_remove(const char *dir, const char *call_id)
{
	char path[PATH_MAX], part[PATH_MAX + 8];
	if (recording_path(dir, call_id, path, sizeof path))
		return 0; /* not an id a recording could have been written for */
	snprintf(part, sizeof part, "%s.part", path);
	if ((unlink(part) && errno != ENOENT) || (unlink(path) && errno != ENOENT))
		return -1;
	return 0;
}

/* ---- repair at start-up ----------------------------------------------------------------- */

/* part -> final: the frames part's header covers, copied into a new file renamed into place. */
static int repair_one(const char *part, const char *final)
{
	SF_INFO in_info = {0};
	SNDFILE *in = sf_open(part, SFM_READ, &in_info);
	if (!in)
		return -1;
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", final);
	SF_INFO out_info = {.samplerate = in_info.samplerate,
			    .channels = in_info.channels,
			    .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	SNDFILE *out = sf_open(tmp, SFM_WRITE, &out_info);
	int rc = -1;
	if (!out)
		goto out;
	short buf[4096];
	sf_count_t per = (sf_count_t)(sizeof buf / sizeof buf[0]) / in_info.channels, got;
	while ((got = sf_readf_short(in, buf, per)) > 0)
		if (sf_writef_short(out, buf, got) != got)
			goto out;
	sf_close(out);
	out = NULL;
	sync_path(tmp);
	rc = rename(tmp, final);
out:
	if (out)
		sf_close(out);
	if (rc)
		unlink(tmp);
	sf_close(in);
	return rc;
}

int recorder_repair(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -1;
	int repaired = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		static const char suffix[] = ".wav.part";
		if (len <= sizeof suffix - 1 ||
		    strcmp(e->d_name + len - (sizeof suffix - 1), suffix))
			continue;
		char part[PATH_MAX], final[PATH_MAX];
		if (snprintf(part, sizeof part, "%s/%s", dir, e->d_name) >= (int)sizeof part ||
		    snprintf(final, sizeof final, "%s/%.*s", dir, (int)(len - 5), e->d_name) >=
			    (int)sizeof final)
			continue;
		if (repair_one(part, final) == 0) {
			unlink(part);
			repaired++;
			log_msg(LOG_WARN, "recording_repaired",
				"%s: left open by a crash, kept up to its last flush", final);
		} else {
			/* nothing readable (a crash before the first header): nothing to keep */
			log_msg(LOG_WARN, "recording_repaired", "%s: nothing readable, removed",
				part);
			unlink(part);
		}
	}
	closedir(d);
	return repaired;
}
