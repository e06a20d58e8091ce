/*
 * idempotency.c - idempotent request records in the SQLite backend.
 *
 * Design:
 *   - A request with an Idempotency-Key claims (key id, idempotency key) before it runs: the
 *     claim is one transaction that drops an expired record, inserts a fresh one, or reads the
 *     live one, so of two concurrent requests with the same key exactly one runs.
 *   - A record is status 0 while its request runs; completing it stores the reply to replay,
 *     and a request that fails before any effect releases its claim instead.
 */
#include "sqlite_internal.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

/* as written: each statement's SQL a clause or two a line */
/* clang-format off */
static const struct sql q_idem_expire = {S_IDEM_EXPIRE,
	"DELETE FROM idempotency WHERE key_id = ?1 AND idem_key = ?2 AND created_at < ?3"};
static const struct sql q_idem_insert = {S_IDEM_INSERT,
	"INSERT INTO idempotency(key_id, idem_key, request_hash, created_at)"
	" VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING"};
static const struct sql q_idem_get = {S_IDEM_GET,
	"SELECT request_hash, status, body, created_at FROM idempotency"
	" WHERE key_id = ?1 AND idem_key = ?2"};
static const struct sql q_idem_complete = {S_IDEM_COMPLETE,
	"UPDATE idempotency SET status = ?3, body = ?4 WHERE key_id = ?1 AND idem_key = ?2"};
static const struct sql q_idem_release = {S_IDEM_RELEASE,
	"DELETE FROM idempotency WHERE key_id = ?1 AND idem_key = ?2 AND status = 0"};
static const struct sql q_idem_purge = {S_IDEM_PURGE,
	"DELETE FROM idempotency WHERE created_at < ?1"};
/* clang-format on */

enum store_result sqlite_idem_claim(void *ctx, const char *key_id, const char *idem_key,
				    const char *hash, int64_t now, int64_t expire_before,
				    struct idem_record *existing)
{
	WITH_CONN(h, c);
	enum store_result rc = STORE_ERROR;
	sqlite3_stmt *begin = sq_stmt(c, &sq_begin), *expire = sq_stmt(c, &q_idem_expire),
		     *ins = sq_stmt(c, &q_idem_insert), *get = sq_stmt(c, &q_idem_get),
		     *commit = sq_stmt(c, &sq_commit), *rollback = sq_stmt(c, &sq_rollback);
	if (!begin || !expire || !ins || !get || !commit || !rollback) {
		sq_conn_put(h, c);
		return STORE_ERROR;
	}
	sq_write_lock(h);
	if (sqlite3_step(begin) != SQLITE_DONE)
		goto fail;
	sq_bind_text(expire, 1, key_id);
	sq_bind_text(expire, 2, idem_key);
	sqlite3_bind_int64(expire, 3, expire_before);
	if (sqlite3_step(expire) != SQLITE_DONE)
		goto fail;
	sq_bind_text(ins, 1, key_id);
	sq_bind_text(ins, 2, idem_key);
	sq_bind_text(ins, 3, hash);
	sqlite3_bind_int64(ins, 4, now);
	if (sqlite3_step(ins) != SQLITE_DONE)
		goto fail;
	if (sqlite3_changes(c->db) == 1) {
		rc = STORE_OK;
	} else {
		sq_bind_text(get, 1, key_id);
		sq_bind_text(get, 2, idem_key);
		if (sqlite3_step(get) != SQLITE_ROW)
			goto fail;
		memset(existing, 0, sizeof *existing);
		sq_copy_col(get, 0, existing->request_hash, sizeof existing->request_hash);
		existing->status = (unsigned)sqlite3_column_int(get, 1);
		const unsigned char *body = sqlite3_column_text(get, 2);
		existing->body = body ? strdup((const char *)body) : NULL;
		existing->created_at = sqlite3_column_int64(get, 3);
		rc = STORE_CONFLICT;
	}
	sqlite3_reset(get);
	if (sqlite3_step(commit) != SQLITE_DONE) {
		idem_record_clear(existing);
		rc = STORE_ERROR;
		goto fail;
	}
	goto done;
fail:
	log_msg(LOG_ERROR, "store_error", "idempotency claim: %s", sqlite3_errmsg(c->db));
	sqlite3_reset(get);
	sqlite3_step(rollback);
	rc = STORE_ERROR;
done:
	sqlite3_reset(begin);
	sqlite3_reset(expire);
	sqlite3_reset(ins);
	sqlite3_reset(commit);
	sqlite3_reset(rollback);
	sq_write_unlock(h);
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_idem_complete(void *ctx, const char *key_id, const char *idem_key,
				       unsigned status, const char *body)
{
	return sq_write_one(ctx, &q_idem_complete, "ssis", key_id, idem_key, (int)status, body);
}

enum store_result sqlite_idem_release(void *ctx, const char *key_id, const char *idem_key)
{
	return sq_write_one(ctx, &q_idem_release, "ss", key_id, idem_key);
}

enum store_result sqlite_idem_purge(void *ctx, int64_t expire_before)
{
	enum store_result rc = sq_write_one(ctx, &q_idem_purge, "I", expire_before);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc; /* nothing to purge is fine */
}
