/*
 * keys.c - API keys in the SQLite backend.
 *
 * Design:
 *   - A key is stored by the SHA-256 of its secret; the secret itself never reaches the
 *     database. Authentication looks a key up by that hash on every request, so a server
 *     answers from its key cache (key_cache.h) and reads SQL only on a miss.
 *   - Revocation is a write by the admin CLI, usually another process: after it commits, the
 *     key epoch is bumped so that every running server drops its cached keys.
 */
#include "sqlite_internal.h"
#include "core/log.h"

#include <string.h>

/* as written: each statement's SQL a clause or two a line */
/* clang-format off */
static const struct sql q_key_create = {S_KEY_CREATE,
	"INSERT INTO api_keys(id, tenant_id, number, hash, prefix, created_at,"
	" rate_limit, operator, sip_uris) VALUES (?1, NULLIF(?2, ''), NULLIF(?3, ''), ?4, ?5, ?6,"
	" NULLIF(?7, 0), ?8, NULLIF(?9, ''))"};
static const struct sql q_key_by_hash = {S_KEY_BY_HASH,
	"SELECT id, tenant_id, number, hash, prefix, created_at, revoked_at,"
	" rate_limit, operator, sip_uris FROM api_keys WHERE hash = ?1"};
/* the columns of q_key_by_hash, with the hash left out (NULL) */
static const struct sql q_key_list = {S_KEY_LIST,
	"SELECT id, tenant_id, number, NULL, prefix, created_at, revoked_at, rate_limit,"
	" operator, sip_uris FROM api_keys WHERE ?1 IS NULL OR tenant_id = ?1"
	" ORDER BY created_at, id"};
static const struct sql q_key_revoke = {S_KEY_REVOKE,
	"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1"};
/* clang-format on */

enum store_result sqlite_key_create(void *ctx, const struct api_key *k)
{
	return sq_write_one(ctx, &q_key_create, "sssssIiis", k->id, k->tenant_id, k->number,
			    k->hash, k->prefix, k->created_at, (int)k->rate_limit,
			    (int)k->is_operator, k->sip_uris);
}

/* A key row (id, tenant_id, number, hash, prefix, created_at, revoked_at, rate_limit,
 * operator, sip_uris) into a zeroed struct api_key. */
static void key_row(sqlite3_stmt *st, void *row)
{
	struct api_key *k = row;
	sq_copy_col(st, 0, k->id, sizeof k->id);
	sq_copy_col(st, 1, k->tenant_id, sizeof k->tenant_id);
	sq_copy_col(st, 2, k->number, sizeof k->number);
	sq_copy_col(st, 3, k->hash, sizeof k->hash);
	sq_copy_col(st, 4, k->prefix, sizeof k->prefix);
	k->created_at = sqlite3_column_int64(st, 5);
	k->revoked_at = sqlite3_column_int64(st, 6);
	k->rate_limit = (unsigned)sqlite3_column_int(st, 7);
	k->is_operator = sqlite3_column_int(st, 8) != 0;
	sq_copy_col(st, 9, k->sip_uris, sizeof k->sip_uris);
}

enum store_result sqlite_key_by_hash(void *ctx, const char *hash, struct api_key *out)
{
	struct key_cache *keys = ((struct sqlite_handle *)ctx)->s->keys;
	uint64_t ticket = 0;
	if (keys) {
		if (key_cache_get(keys, hash, out))
			return STORE_OK;
		ticket = key_cache_ticket(keys);
	}
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_key_by_hash);
	enum store_result rc = STORE_ERROR;
	if (st) {
		sq_bind_text(st, 1, hash);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			memset(out, 0, sizeof *out);
			key_row(st, out);
			rc = STORE_OK;
			if (keys)
				key_cache_fill(keys, ticket, out);
		} else {
			rc = r == SQLITE_DONE ? STORE_NOT_FOUND : sq_step_error(c, r);
		}
		sqlite3_reset(st);
	}
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_key_list(void *ctx, const char *tenant_id, struct api_key **out, size_t *n)
{
	static const struct sq_rows rows = {sizeof **out, key_row, NULL};
	void *list;
	enum store_result rc = sq_list_all(ctx, &q_key_list, &rows, &list, n, "s", tenant_id);
	*out = list;
	return rc;
}

enum store_result sqlite_key_revoke(void *ctx, const char *id, int64_t now)
{
	struct sqlite_handle *h = ctx;
	enum store_result rc = sq_write_one(ctx, &q_key_revoke, "sI", id, now);
	/* committed: now tell every server's key cache (key_cache.h) */
	if (rc == STORE_OK && key_epoch_bump(h->s->path))
		log_msg(LOG_WARN, "store_error",
			"key %s revoked, but a running server may accept it"
			" for up to %d s more",
			id, KEY_CACHE_TTL_MS / 1000);
	return rc;
}
