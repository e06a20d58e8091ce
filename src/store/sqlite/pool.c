/*
 * pool.c - connections, statements and the writer lock of the SQLite backend.
 *
 * Design:
 *   - A small pool of connections, one borrowed per operation, each with its own cache of
 *     prepared statements. WAL lets readers run in parallel with the single writer, so reads
 *     (GET /v1/calls/{id}) never wait on ends. A connection is opened on demand when the pool
 *     is empty; up to 64 are kept, any beyond are closed when given back.
 *   - synchronous=FULL by default: in WAL mode each commit is fsync'd before the call returns,
 *     so a call reported ended stays ended after a crash or power loss. NORMAL survives a process
 *     crash (kill -9) but may lose the last commits on power loss; it is offered for measurement.
 *   - Writes inside this process are serialised by write_mu (the writer lock) instead of
 *     SQLite's busy handler: the busy handler sleeps and retries, which adds milliseconds of
 *     latency under contention, while a mutex hands over in microseconds. busy_timeout still
 *     covers writers of other processes (the admin CLI writes to the same file while the
 *     server runs). A batch holds the lock throughout (batch.c), so its writes skip it.
 *   - Statements are static text (struct sql) bound by position, prepared once per connection
 *     with SQLITE_PREPARE_PERSISTENT. sq_run_bound() binds from a type string so that a simple
 *     operation is one line of intent in its concern file; a listing there names only how to
 *     read one row (struct sq_rows).
 *   - Listings hand back typed rows, not display JSON: what a client reads (times as RFC 3339,
 *     absent values as null) is rendered above the store (render/rows.c).
 */
#include "sqlite_internal.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a connection waits for another process's lock before an operation fails. */
#define BUSY_TIMEOUT_MS 10000

int sq_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		log_msg(LOG_ERROR, "store_error", "%s: %s", sql, err ? err : sqlite3_errmsg(db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

/* Turns WAL on (kept in the file from then on). The switch takes the file's exclusive lock,
 * and SQLite answers SQLITE_BUSY at once, without calling the busy handler, when connections
 * that all read a fresh file try it together (waiting there could deadlock them); so it is
 * retried here for as long as the busy timeout would have waited. -1 on failure, logged. */
static int set_wal(sqlite3 *db)
{
	const struct timespec pause = {.tv_nsec = 5 * 1000000L};
	for (int waited_ms = 0;; waited_ms += 5) {
		int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			return 0;
		if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= BUSY_TIMEOUT_MS) {
			log_msg(LOG_ERROR, "store_error", "PRAGMA journal_mode=WAL: %s",
				sqlite3_errmsg(db));
			return -1;
		}
		nanosleep(&pause, NULL);
	}
}

static struct conn *conn_open(struct sqlite_store *s)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(s->path, &c->db, flags, NULL) != SQLITE_OK) {
		log_msg(LOG_ERROR, "store_error", "cannot open %s: %s", s->path,
			c->db ? sqlite3_errmsg(c->db) : "out of memory");
		sqlite3_close(c->db);
		free(c);
		return NULL;
	}
	sqlite3_extended_result_codes(c->db, 1); /* tell a foreign-key miss from a unique clash */
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	char pragmas[128];
	snprintf(pragmas, sizeof pragmas, "PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;",
		 s->sync_full ? "FULL" : "NORMAL");
	if (set_wal(c->db) || sq_exec(c->db, pragmas)) {
		sqlite3_close(c->db);
		free(c);
		return NULL;
	}
	return c;
}

void sq_conn_close(struct conn *c)
{
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	sqlite3_close(c->db);
	free(c);
}

struct conn *sq_conn_get(struct sqlite_handle *h)
{
	if (h->batch)
		return h->batch->c;
	struct sqlite_store *s = h->s;
	pthread_mutex_lock(&s->pool_mu);
	struct conn *c = s->free_list;
	if (c) {
		s->free_list = c->next;
		pthread_mutex_unlock(&s->pool_mu);
		return c;
	}
	pthread_mutex_unlock(&s->pool_mu);
	c = conn_open(s);
	if (!c)
		return NULL;
	pthread_mutex_lock(&s->pool_mu);
	if (s->n_all < (int)(sizeof s->all / sizeof s->all[0])) {
		s->all[s->n_all++] = c;
	} else { /* more concurrent users than we keep: this one is closed on put */
		c->next = (struct conn *)-1;
	}
	pthread_mutex_unlock(&s->pool_mu);
	return c;
}

void sq_conn_put(struct sqlite_handle *h, struct conn *c)
{
	struct sqlite_store *s = h->s;
	if (h->batch && c == h->batch->c)
		return;
	if (c->next == (struct conn *)-1) {
		sq_conn_close(c);
		return;
	}
	pthread_mutex_lock(&s->pool_mu);
	c->next = s->free_list;
	s->free_list = c;
	pthread_mutex_unlock(&s->pool_mu);
}

void sq_write_lock(struct sqlite_handle *h)
{
	if (!h->batch)
		pthread_mutex_lock(&h->s->write_mu);
}

void sq_write_unlock(struct sqlite_handle *h)
{
	if (!h->batch)
		pthread_mutex_unlock(&h->s->write_mu);
}

sqlite3_stmt *sq_stmt(struct conn *c, const struct sql *q)
{
	if (!c->stmt[q->id]) {
		if (sqlite3_prepare_v3(c->db, q->text, -1, SQLITE_PREPARE_PERSISTENT,
				       &c->stmt[q->id], NULL) != SQLITE_OK) {
			log_msg(LOG_ERROR, "store_error", "prepare %d: %s", q->id,
				sqlite3_errmsg(c->db));
			return NULL;
		}
	}
	sqlite3_reset(c->stmt[q->id]);
	sqlite3_clear_bindings(c->stmt[q->id]);
	return c->stmt[q->id];
}

void sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

void sq_bind_opt_text(sqlite3_stmt *st, int i, const char *v)
{
	sq_bind_text(st, i, v && *v ? v : NULL);
}

void sq_bind_opt_int(sqlite3_stmt *st, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* As snprintf would, without its cost: a call row has eight of these. */
void sq_copy_col(sqlite3_stmt *st, int col, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
	if (n >= size)
		n = size - 1;
	if (n)
		memcpy(dst, t, n);
	dst[n] = '\0';
}

enum store_result sq_step_error(struct conn *c, int r)
{
	if ((r & 0xff) == SQLITE_CONSTRAINT) {
		return r == SQLITE_CONSTRAINT_FOREIGNKEY ? STORE_NOT_FOUND : STORE_CONFLICT;
	}
	log_msg(LOG_ERROR, "store_error", "step: %s", sqlite3_errmsg(c->db));
	return STORE_ERROR;
}

enum store_result sq_run_write(struct sqlite_handle *h, struct conn *c, sqlite3_stmt *st)
{
	sq_write_lock(h);
	int r = sqlite3_step(st);
	int changes = sqlite3_changes(c->db);
	sqlite3_reset(st);
	sq_write_unlock(h);
	if (r != SQLITE_DONE && r != SQLITE_ROW)
		return sq_step_error(c, r);
	return changes > 0 ? STORE_OK : STORE_NOT_FOUND;
}

static void bind_args(sqlite3_stmt *st, const char *types, va_list ap)
{
	for (int i = 0; types[i]; i++) {
		switch (types[i]) {
		case 's': sq_bind_text(st, i + 1, va_arg(ap, const char *)); break;
		case 'o': sq_bind_opt_text(st, i + 1, va_arg(ap, const char *)); break;
		case 'i': sqlite3_bind_int(st, i + 1, va_arg(ap, int)); break;
		case 'I': sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t)); break;
		}
	}
}

/* Steps a listing to its end, reading each row into a growing array. */
static enum store_result list_rows(struct conn *c, sqlite3_stmt *st, const struct sq_rows *rows,
				   void **out, size_t *n)
{
	char *arr = NULL;
	size_t count = 0, cap = 0;
	enum store_result rc = STORE_OK;
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			char *p = realloc(arr, cap * rows->size);
			if (!p) {
				rc = STORE_ERROR;
				break;
			}
			arr = p;
		}
		void *row = arr + count * rows->size;
		memset(row, 0, rows->size);
		rows->read(st, row);
		count++;
	}
	sqlite3_reset(st);
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = sq_step_error(c, r);
	if (rc != STORE_OK) {
		for (size_t i = 0; rows->clear && i < count; i++)
			rows->clear(arr + i * rows->size);
		free(arr);
		return rc;
	}
	*out = arr;
	*n = count;
	return STORE_OK;
}

enum store_result sq_run_bound(struct sqlite_handle *h, const struct sql *q,
			       const struct sq_rows *rows, void **out, size_t *n, const char *types,
			       ...)
{
	if (rows) {
		*out = NULL;
		*n = 0;
	}
	struct conn *c = sq_conn_get(h);
	if (!c)
		return STORE_ERROR;
	sqlite3_stmt *st = sq_stmt(c, q);
	enum store_result rc = STORE_ERROR;
	if (st) {
		va_list ap;
		va_start(ap, types);
		bind_args(st, types, ap);
		va_end(ap);
		rc = rows ? list_rows(c, st, rows, out, n) : sq_run_write(h, c, st);
	}
	sq_conn_put(h, c);
	return rc;
}
