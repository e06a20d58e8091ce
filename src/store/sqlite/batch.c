/*
 * batch.c - the transactions of the SQLite backend's calls path, and the group-commit batch.
 *
 * Design:
 *   - A write of a call runs inside the call cache's bracket (call_cache.h), so a reader never
 *     caches a row older than one it could already have seen.
 *   - A batch (group commit) is an object, struct sqlite_batch, with a handle of its own:
 *     from batch_begin() to batch_end() it holds one connection, one open transaction and
 *     write_mu, and the operations made through its handle reuse them. Many transitions then
 *     share one COMMIT, i.e. one fsync. As the batch holds write_mu, one batch at a time
 *     exists, and the store keeps it (sqlite_store.batch).
 *   - A step that fails half-way (its UPDATE applied, its event not) marks the batch failed,
 *     and batch_end() rolls the whole batch back: the caller re-applies its steps one by one.
 *     (Cheaper than a savepoint around every step, on the hot path.) The cache brackets the
 *     batch opened end after its COMMIT or ROLLBACK, before any reply about its rows goes out.
 *   - Each COMMIT's time (the fsync, mostly) goes to the metrics, group commits apart.
 */
#include "sqlite_internal.h"
#include "core/log.h"
#include "metrics/metrics.h"

const struct sql sq_begin = {S_BEGIN, "BEGIN IMMEDIATE"};
const struct sql sq_commit = {S_COMMIT, "COMMIT"};
const struct sql sq_rollback = {S_ROLLBACK, "ROLLBACK"};

int sq_call_write_begin(struct sqlite_handle *h, const char *id)
{
	if (!h->s->calls)
		return -1;
	unsigned stripe = call_cache_write_begin(h->s->calls, id);
	if (h->batch)
		h->batch->open[stripe]++;
	return (int)stripe;
}

void sq_call_write_end(struct sqlite_handle *h, int stripe)
{
	if (stripe >= 0 && !h->batch)
		call_cache_write_end(h->s->calls, (unsigned)stripe, 1);
}

enum store_result sq_write_open(struct sqlite_handle *h, struct conn *c, const char *bracket_id,
				bool multi, struct call_write *w)
{
	bool tx = multi && !h->batch;
	/* the transaction's own statements only when it is ours (not on the batch's hot path) */
	sqlite3_stmt *begin = tx ? sq_stmt(c, &sq_begin) : NULL;
	w->commit = tx ? sq_stmt(c, &sq_commit) : NULL;
	w->rollback = tx ? sq_stmt(c, &sq_rollback) : NULL;
	w->stripe = -1;
	if (tx && (!begin || !w->commit || !w->rollback)) {
		w->commit = w->rollback = NULL;
		return STORE_ERROR;
	}
	sq_write_lock(h);
	if (bracket_id)
		w->stripe = sq_call_write_begin(h, bracket_id);
	if (tx) {
		int r = sqlite3_step(begin);
		sqlite3_reset(begin);
		if (r != SQLITE_DONE) {
			w->commit = w->rollback = NULL;
			sq_call_write_end(h, w->stripe);
			sq_write_unlock(h);
			return sq_step_error(c, SQLITE_ERROR);
		}
	}
	return STORE_OK;
}

/* Commits our transaction (rolls it back unless rc is STORE_OK, or the COMMIT fails), marks
 * a batch whose step failed, ends the cache bracket and unlocks. */
enum store_result sq_write_close(struct sqlite_handle *h, struct conn *c, struct call_write *w,
				 enum store_result rc)
{
	if (w->commit) {
		int64_t t0 = cp_mono_us();
		if (rc == STORE_OK && sqlite3_step(w->commit) != SQLITE_DONE)
			rc = sq_step_error(c, SQLITE_ERROR);
		else if (rc == STORE_OK)
			metrics_store_commit(false, cp_mono_us() - t0);
		if (rc != STORE_OK && !sqlite3_get_autocommit(c->db))
			sqlite3_step(w->rollback);
		sqlite3_reset(w->commit);
		sqlite3_reset(w->rollback);
	}
	if (h->batch && rc == STORE_ERROR)
		h->batch->failed = true;
	sq_call_write_end(h, w->stripe);
	sq_write_unlock(h);
	return rc;
}

/* ctx: the store's own handle (a batch cannot open another). The batch's connection comes
 * from the pool and goes back to it in batch_end(). */
enum store_result sqlite_batch_begin(void *ctx, void **batch)
{
	struct sqlite_handle *h = ctx;
	if (h->batch)
		return STORE_ERROR;
	struct sqlite_store *s = h->s;
	struct conn *c = sq_conn_get(h);
	if (!c)
		return STORE_ERROR;
	sqlite3_stmt *begin = sq_stmt(c, &sq_begin);
	pthread_mutex_lock(&s->write_mu);
	if (!begin || sqlite3_step(begin) != SQLITE_DONE) {
		if (begin)
			sqlite3_reset(begin);
		pthread_mutex_unlock(&s->write_mu);
		/* reads c->db: before the put */
		enum store_result rc = sq_step_error(c, SQLITE_ERROR);
		sq_conn_put(h, c);
		return rc;
	}
	sqlite3_reset(begin);
	s->batch.c = c;
	s->batch.failed = false;
	*batch = &s->batch.h;
	return STORE_OK;
}

enum store_result sqlite_batch_end(void *batch, bool commit)
{
	struct sqlite_handle *h = batch;
	struct sqlite_batch *b = h->batch;
	if (!b)
		return STORE_ERROR;
	struct sqlite_store *s = h->s;
	struct conn *c = b->c;
	bool failed = b->failed;
	if (failed)
		commit = false;
	sqlite3_stmt *st = sq_stmt(c, commit ? &sq_commit : &sq_rollback);
	int64_t t0 = cp_mono_us();
	bool done = st && sqlite3_step(st) == SQLITE_DONE;
	if (done && commit)
		metrics_store_commit(true, cp_mono_us() - t0);
	enum store_result rc = done && !failed ? STORE_OK : STORE_ERROR;
	if (st)
		sqlite3_reset(st);
	if (rc != STORE_OK) {
		log_msg(LOG_ERROR, "store_error", "batch %s: %s", commit ? "commit" : "rollback",
			sqlite3_errmsg(c->db));
		if (!sqlite3_get_autocommit(c->db))
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	}
	/* committed or rolled back: either way the rows touched may no longer be what a reader
	 * cached, and no reply about them has gone out yet */
	for (unsigned i = 0; i < CALL_CACHE_STRIPES; i++) {
		if (b->open[i])
			call_cache_write_end(s->calls, i, b->open[i]);
		b->open[i] = 0;
	}
	b->c = NULL;
	b->failed = false;
	pthread_mutex_unlock(&s->write_mu);
	sq_conn_put(&s->self, c);
	return rc;
}
