/*
 * trunks.c - trunks and their registration status in the SQLite backend (store.h, trunk_*).
 *
 * Design:
 *   - A trunk is written by the admin CLI (another process) and read by the server, which
 *     loads them all at start-up and again whenever trunk_generation moves. The generation is
 *     one row bumped by triggers on the trunks table, so no writer (this build's CLI, a later
 *     API, a hand-made SQL fix) can change a trunk without the server seeing it.
 *   - The password is not a column: only where the server reads it (an environment variable's
 *     name, a file's path). A database copied off a host then carries no carrier secret.
 *   - The status is one row per trunk, written by the server's call-service worker as the SIP
 *     engine reports, and deleted with its trunk (ON DELETE CASCADE). last_event remembers
 *     what the last trunk.registration event said, so that a refresh (registered again) or a
 *     retry that fails again writes no event, and a lost or regained registration does, in
 *     the transaction of the status itself.
 *   - Optional text columns are NULL when empty (NULLIF on the way in), as for agents.
 */
#include "sqlite_internal.h"

#include <string.h>

/* as written: each statement's SQL a clause or two a line */
/* clang-format off */
static const struct sql q_trunk_create = {S_TRUNK_CREATE,
	"INSERT INTO trunks(id, tenant_id, host, port, transport, username, password_env,"
	" password_file, register, outbound_proxy, from_user, from_domain, caller_id_header,"
	" inbound_cidrs, headers, created_at, srtp) VALUES (?1, ?2, ?3, NULLIF(?4, 0), ?5,"
	" NULLIF(?6, ''), NULLIF(?7, ''), NULLIF(?8, ''), ?9, NULLIF(?10, ''), NULLIF(?11, ''),"
	" NULLIF(?12, ''), ?13, NULLIF(?14, ''), NULLIF(?15, ''), ?16, COALESCE(NULLIF(?17, ''),"
	" 'off'))"};
/* the columns trunk_row() reads, in its order: the trunk, then its status (NULLs if none) */
#define TRUNK_COLUMNS "t.id, t.tenant_id, t.host, t.port, t.transport, t.username," \
	" t.password_env, t.password_file, t.register, t.outbound_proxy, t.from_user," \
	" t.from_domain, t.caller_id_header, t.inbound_cidrs, t.headers, t.created_at," \
	" s.status, s.sip_status, s.reason, s.expires_at, s.updated_at, t.srtp" \
	" FROM trunks t LEFT JOIN trunk_status s ON s.trunk_id = t.id"
static const struct sql q_trunk_get = {S_TRUNK_GET,
	"SELECT " TRUNK_COLUMNS " WHERE t.id = ?1 AND (?2 IS NULL OR t.tenant_id = ?2)"};
static const struct sql q_trunk_list = {S_TRUNK_LIST,
	"SELECT " TRUNK_COLUMNS " WHERE ?1 IS NULL OR t.tenant_id = ?1"
	" ORDER BY t.created_at, t.id"};
static const struct sql q_trunk_in_use = {S_TRUNK_IN_USE,
	"SELECT 1 FROM agents WHERE trunk_id = ?1 LIMIT 1"};
static const struct sql q_trunk_delete = {S_TRUNK_DELETE,
	"DELETE FROM trunks WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)"};
static const struct sql q_trunk_generation = {S_TRUNK_GENERATION,
	"SELECT n FROM trunk_generation"};
static const struct sql q_trunk_status_get = {S_TRUNK_STATUS_GET,
	"SELECT (SELECT 1 FROM trunks WHERE id = ?1),"
	" (SELECT last_event FROM trunk_status WHERE trunk_id = ?1)"};
static const struct sql q_trunk_status_put = {S_TRUNK_STATUS_PUT,
	"INSERT INTO trunk_status(trunk_id, status, sip_status, reason, expires_at, updated_at,"
	" last_event) VALUES (?1, ?2, NULLIF(?3, 0), NULLIF(?4, ''), NULLIF(?5, 0), ?6, ?7)"
	" ON CONFLICT(trunk_id) DO UPDATE SET status = excluded.status,"
	" sip_status = excluded.sip_status, reason = excluded.reason,"
	" expires_at = excluded.expires_at, updated_at = excluded.updated_at,"
	" last_event = excluded.last_event"};
/* clang-format on */

enum store_result sqlite_trunk_create(void *ctx, const struct trunk *t)
{
	return sq_write_one(ctx, &q_trunk_create, "sssissssissssssIs", t->id, t->tenant_id, t->host,
			    t->port, t->transport, t->user, t->password_env, t->password_file,
			    (int)t->do_register, t->outbound_proxy, t->from_user, t->from_domain,
			    t->caller_id_header, t->inbound_cidrs, t->headers, t->created_at,
			    t->srtp);
}

/* A row (TRUNK_COLUMNS) into a zeroed struct trunk. */
static void trunk_row(sqlite3_stmt *st, void *row)
{
	struct trunk *t = row;
	sq_copy_col(st, 0, t->id, sizeof t->id);
	sq_copy_col(st, 1, t->tenant_id, sizeof t->tenant_id);
	sq_copy_col(st, 2, t->host, sizeof t->host);
	t->port = sqlite3_column_int(st, 3);
	sq_copy_col(st, 4, t->transport, sizeof t->transport);
	sq_copy_col(st, 5, t->user, sizeof t->user);
	sq_copy_col(st, 6, t->password_env, sizeof t->password_env);
	sq_copy_col(st, 7, t->password_file, sizeof t->password_file);
	t->do_register = sqlite3_column_int(st, 8) != 0;
	sq_copy_col(st, 9, t->outbound_proxy, sizeof t->outbound_proxy);
	sq_copy_col(st, 10, t->from_user, sizeof t->from_user);
	sq_copy_col(st, 11, t->from_domain, sizeof t->from_domain);
	sq_copy_col(st, 12, t->caller_id_header, sizeof t->caller_id_header);
	sq_copy_col(st, 13, t->inbound_cidrs, sizeof t->inbound_cidrs);
	sq_copy_col(st, 14, t->headers, sizeof t->headers);
	t->created_at = sqlite3_column_int64(st, 15);
	memcpy(t->reg.trunk_id, t->id, sizeof t->id);
	memcpy(t->reg.tenant_id, t->tenant_id, sizeof t->tenant_id);
	sq_copy_col(st, 16, t->reg.status, sizeof t->reg.status);
	t->reg.sip_status = sqlite3_column_int(st, 17);
	sq_copy_col(st, 18, t->reg.reason, sizeof t->reg.reason);
	t->reg.expires_at = sqlite3_column_int64(st, 19);
	t->reg.updated_at = sqlite3_column_int64(st, 20);
	sq_copy_col(st, 21, t->srtp, sizeof t->srtp);
}

enum store_result sqlite_trunk_get(void *ctx, const char *tenant_id, const char *id,
				   struct trunk *out)
{
	static const struct sq_rows rows = {sizeof *out, trunk_row, NULL};
	void *list;
	size_t n = 0;
	enum store_result rc =
		sq_list_all(ctx, &q_trunk_get, &rows, &list, &n, "ss", id, tenant_id);
	if (rc == STORE_OK && n == 0)
		rc = STORE_NOT_FOUND;
	if (rc == STORE_OK)
		memcpy(out, list, sizeof *out);
	free(list);
	return rc;
}

enum store_result sqlite_trunk_list(void *ctx, const char *tenant_id, struct trunk **out, size_t *n)
{
	static const struct sq_rows rows = {sizeof **out, trunk_row, NULL};
	void *list;
	enum store_result rc = sq_list_all(ctx, &q_trunk_list, &rows, &list, n, "s", tenant_id);
	*out = list;
	return rc;
}

/* A trunk an agent uses is not deleted: the check and the delete run under the writer lock,
 * and the foreign key catches a writer of another process between the two. */
enum store_result sqlite_trunk_delete(void *ctx, const char *tenant_id, const char *id)
{
	WITH_CONN(h, c);
	sqlite3_stmt *use = sq_stmt(c, &q_trunk_in_use), *del = sq_stmt(c, &q_trunk_delete);
	enum store_result rc = STORE_ERROR;
	if (use && del) {
		sq_write_lock(h);
		sq_bind_text(use, 1, id);
		int r = sqlite3_step(use);
		sqlite3_reset(use);
		if (r == SQLITE_ROW) {
			rc = STORE_CONFLICT;
		} else if (r == SQLITE_DONE) {
			sq_bind_text(del, 1, id);
			sq_bind_text(del, 2, tenant_id);
			r = sqlite3_step(del);
			int changes = sqlite3_changes(c->db);
			sqlite3_reset(del);
			if (r == SQLITE_DONE)
				rc = changes > 0 ? STORE_OK : STORE_NOT_FOUND;
			else if (r == SQLITE_CONSTRAINT_FOREIGNKEY)
				rc = STORE_CONFLICT;
			else
				rc = sq_step_error(c, r);
		} else {
			rc = sq_step_error(c, r);
		}
		sq_write_unlock(h);
	}
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_trunk_generation(void *ctx, int64_t *out)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_trunk_generation);
	enum store_result rc = STORE_ERROR;
	if (st) {
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			rc = STORE_OK;
		} else {
			rc = sq_step_error(c, r);
		}
		sqlite3_reset(st);
	}
	sq_conn_put(h, c);
	return rc;
}

/* Whether status is one a trunk.registration event reports. */
static bool evented_status(const char *status)
{
	return !strcmp(status, "registered") || !strcmp(status, "failed");
}

enum store_result sqlite_trunk_status_put(void *ctx, const struct trunk_status *s,
					  const char *event_data, bool *evented)
{
	WITH_CONN(h, c);
	sqlite3_stmt *get = sq_stmt(c, &q_trunk_status_get), *put = sq_stmt(c, &q_trunk_status_put);
	struct call_write w;
	enum store_result rc = STORE_ERROR;
	char last[16] = "";
	*evented = false;
	/* the read, the row and its event share a transaction; no call row: no cache bracket */
	if (!get || !put || (rc = sq_write_open(h, c, NULL, true, &w)) != STORE_OK)
		goto out;
	sq_bind_text(get, 1, s->trunk_id);
	int r = sqlite3_step(get);
	bool exists = r == SQLITE_ROW && sqlite3_column_type(get, 0) != SQLITE_NULL;
	if (r == SQLITE_ROW)
		sq_copy_col(get, 1, last, sizeof last);
	sqlite3_reset(get);
	if (r != SQLITE_ROW)
		rc = sq_step_error(c, r);
	else if (!exists)
		rc = STORE_NOT_FOUND;
	bool event = rc == STORE_OK && event_data && evented_status(s->status) &&
		     strcmp(last, s->status);
	if (rc == STORE_OK) {
		sq_bind_text(put, 1, s->trunk_id);
		sq_bind_text(put, 2, s->status);
		sqlite3_bind_int(put, 3, s->sip_status);
		sq_bind_text(put, 4, s->reason);
		sqlite3_bind_int64(put, 5, s->expires_at);
		sqlite3_bind_int64(put, 6, s->updated_at);
		sq_bind_opt_text(put, 7, event ? s->status : last);
		r = sqlite3_step(put);
		sqlite3_reset(put);
		rc = r == SQLITE_DONE ? STORE_OK : sq_step_error(c, r);
	}
	if (rc == STORE_OK && event)
		rc = sq_write_tenant_event(c, "trunk.registration", s->tenant_id, event_data,
					   s->updated_at);
	rc = sq_write_close(h, c, &w, rc);
	*evented = rc == STORE_OK && event;
out:
	sq_conn_put(h, c);
	return rc;
}
