/*
 * calls.c - call rows in the SQLite backend.
 *
 * Design:
 *   - Status is stored as its name (readable with the sqlite3 shell); a set of statuses is
 *     passed as ",queued,ringing," and tested with instr(), which keeps every statement static.
 *   - A step of a call is one conditional UPDATE ... RETURNING: it applies only if the status
 *     is in the step's from-set, so among concurrent steps of one call exactly one wins, and
 *     the winner gets the row it produced without a second read. A step that emits an outbox
 *     event writes it in the same transaction (outbox.c).
 *   - In a server, reads by call id go through the call cache (call_cache.h); writes bracket
 *     it (batch.c). A batch's thread bypasses the cache: it must see its own uncommitted
 *     writes, and must not cache them.
 */
#include "sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* as written: each statement's SQL a clause or two a line */
/* clang-format off */
#define CALL_COLS(t)                                                                          \
	t "seq, " t "id, " t "tenant_id, " t "agent_id, " t "direction, " t "status, "       \
	t "from_addr, " t "to_addr, " t "provider_call_id, " t "end_reason, " t "sip_status, " \
	t "max_duration_s, " t "created_at, " t "answered_at, " t "ended_at, " t "redacted_at, " \
	t "metadata, " t "stream_url, " t "record"

/* One conditional step of a call (sqlite_call_update); `provider` is the SET clause for
 * provider_call_id, or "". */
#define CALL_UPDATE_SQL(provider)                                                             \
	"UPDATE calls SET prev_status = status, status = ?2,"                                 \
	" answered_at = COALESCE(?3, answered_at), ended_at = COALESCE(?4, ended_at),"        \
	" end_reason = COALESCE(?5, end_reason), sip_status = COALESCE(?6, sip_status)"       \
	provider " WHERE id = ?1 AND instr(?8, ',' || status || ',') > 0"                     \
	" RETURNING " CALL_COLS("") ", prev_status"
/* clang-format on */

/* Columns after CALL_COLS: prev_status (CALL_UPDATE_SQL), the agent's number (cacheable). */
#define CALL_COL_EXTRA 19

/* as written: each statement's SQL a clause or two a line */
/* clang-format off */
static const struct sql q_call_insert = {S_CALL_INSERT,
	"INSERT INTO calls(id, tenant_id, agent_id, direction, status, from_addr,"
	" to_addr, provider_call_id, end_reason, sip_status, max_duration_s,"
	" created_at, answered_at, ended_at, metadata, stream_url, record) VALUES (?1, ?2,"
	" ?3, ?4, ?5, ?6, ?7, NULLIF(?8, ''), NULLIF(?9, ''), NULLIF(?10, 0),"
	" NULLIF(?11, 0), ?12, NULLIF(?13, 0), NULLIF(?14, 0), ?15, ?16, ?17)"};
/* id match first: a provider call id can never shadow a call id */
static const struct sql q_call_get = {S_CALL_GET,
	"SELECT " CALL_COLS("calls.") " FROM calls JOIN agents a ON a.id = calls.agent_id"
	" WHERE (calls.id = ?1 OR calls.provider_call_id = ?1)"
	" AND calls.tenant_id = ?2 AND a.number = ?3"
	" ORDER BY calls.id = ?1 DESC LIMIT 1"};
/* the same for a tenant-wide (or unscoped) read: no agent to join, the hot GET path */
static const struct sql q_call_get_tenant = {S_CALL_GET_TENANT,
	"SELECT " CALL_COLS("") " FROM calls"
	" WHERE (id = ?1 OR provider_call_id = ?1)"
	" AND (?2 IS NULL OR tenant_id = ?2) ORDER BY id = ?1 DESC LIMIT 1"};
static const struct sql q_call_get_raw = {S_CALL_GET_RAW,
	"SELECT " CALL_COLS("") " FROM calls WHERE id = ?1"};
/* a row for the call cache: by id only, with its agent's number for number scopes */
static const struct sql q_call_get_cacheable = {S_CALL_GET_CACHEABLE,
	"SELECT " CALL_COLS("calls.") ", a.number FROM calls"
	" JOIN agents a ON a.id = calls.agent_id WHERE calls.id = ?1"};
/* a list page; TENANT is the tenant condition, ?1 (unused in the operator's form) */
#define CALL_LIST_SQL(tenant, page)                                                         \
	"SELECT " CALL_COLS("calls.") " FROM calls JOIN agents a ON a.id = calls.agent_id"  \
	" WHERE " tenant " AND (?2 IS NULL OR a.number = ?2)"                               \
	" AND (?3 IS NULL OR instr(?3, ',' || calls.status || ',') > 0)"                    \
	" AND (?4 IS NULL OR calls.agent_id = ?4) AND " page
#define CALL_LIST_BEFORE "(?5 = 0 OR calls.seq < ?5) ORDER BY calls.seq DESC LIMIT ?6"
/* the other way: calls newer than ?5, oldest first (a page before a cursor) */
#define CALL_LIST_AFTER "calls.seq > ?5 ORDER BY calls.seq LIMIT ?6"
static const struct sql q_call_list = {S_CALL_LIST,
	CALL_LIST_SQL("calls.tenant_id = ?1", CALL_LIST_BEFORE)};
static const struct sql q_call_list_after = {S_CALL_LIST_AFTER,
	CALL_LIST_SQL("calls.tenant_id = ?1", CALL_LIST_AFTER)};
/* an operator's scope: every tenant. Own statements, so that a tenant's list keeps its plan
 * on calls_tenant_seq. */
static const struct sql q_call_list_all = {S_CALL_LIST_ALL,
	CALL_LIST_SQL("?1 IS NULL", CALL_LIST_BEFORE)};
static const struct sql q_call_list_all_after = {S_CALL_LIST_ALL_AFTER,
	CALL_LIST_SQL("?1 IS NULL", CALL_LIST_AFTER)};
/* in an UPDATE, right-hand sides see the old row: prev_status keeps where we came from */
static const struct sql q_call_update = {S_CALL_UPDATE,
	CALL_UPDATE_SQL(", provider_call_id = COALESCE(?7, provider_call_id)")};
/* the same without provider_call_id (?7 unused): a column in SET makes SQLite rewrite
 * its index entry (calls_provider) even when the value stays, and most steps (an end)
 * do not set it */
static const struct sql q_call_update_keep_provider = {S_CALL_UPDATE_KEEP_PROVIDER,
	CALL_UPDATE_SQL("")};
static const struct sql q_call_redact = {S_CALL_REDACT,
	"UPDATE calls SET from_addr = NULL, to_addr = NULL, metadata = NULL,"
	" redacted_at = COALESCE(redacted_at, ?2)"
	" WHERE id = ?1 AND status NOT IN ('queued', 'ringing', 'in_progress')"
	" RETURNING " CALL_COLS("")};
static const struct sql q_call_active = {S_CALL_ACTIVE,
	"SELECT id FROM calls WHERE status IN ('queued', 'ringing', 'in_progress')"};
/* read through the partial index calls_active: as cheap as the active calls are few */
static const struct sql q_call_count_active = {S_CALL_COUNT_ACTIVE,
	"SELECT status, COUNT(*) FROM calls WHERE status IN ('queued', 'ringing', 'in_progress')"
	" GROUP BY status"};
/* clang-format on */

static void read_call(sqlite3_stmt *st, struct call *out)
{
	call_clear(out);
	out->seq = sqlite3_column_int64(st, 0);
	sq_copy_col(st, 1, out->id, sizeof out->id);
	sq_copy_col(st, 2, out->tenant_id, sizeof out->tenant_id);
	sq_copy_col(st, 3, out->agent_id, sizeof out->agent_id);
	const char *dir = (const char *)sqlite3_column_text(st, 4);
	out->direction = !dir                      ? CALL_OUTBOUND
			 : !strcmp(dir, "inbound") ? CALL_INBOUND
			 : !strcmp(dir, "web")     ? CALL_WEB
						   : CALL_OUTBOUND;
	const char *status = (const char *)sqlite3_column_text(st, 5);
	if (!call_status_parse(status, &out->status))
		out->status = CALL_FAILED;
	sq_copy_col(st, 6, out->from, sizeof out->from);
	sq_copy_col(st, 7, out->to, sizeof out->to);
	sq_copy_col(st, 8, out->provider_call_id, sizeof out->provider_call_id);
	sq_copy_col(st, 9, out->end_reason, sizeof out->end_reason);
	out->sip_status = sqlite3_column_int(st, 10);
	out->max_duration_s = sqlite3_column_int(st, 11);
	out->created_at = sqlite3_column_int64(st, 12);
	out->answered_at = sqlite3_column_int64(st, 13);
	out->ended_at = sqlite3_column_int64(st, 14);
	out->redacted_at = sqlite3_column_int64(st, 15);
	const unsigned char *meta = sqlite3_column_text(st, 16);
	out->metadata = meta ? strdup((const char *)meta) : NULL;
	const unsigned char *url = sqlite3_column_text(st, 17);
	out->stream_url = url ? strdup((const char *)url) : NULL;
	out->record = sqlite3_column_int(st, 18) != 0;
}

/* Steps a statement expected to yield at most one call row. */
static enum store_result step_one_call(struct conn *c, sqlite3_stmt *st, struct call *out)
{
	int r = sqlite3_step(st);
	enum store_result rc;
	if (r == SQLITE_ROW) {
		if (out)
			read_call(st, out);
		rc = STORE_OK;
	} else {
		rc = r == SQLITE_DONE ? STORE_NOT_FOUND : sq_step_error(c, r);
	}
	sqlite3_reset(st);
	return rc;
}

enum store_result sqlite_call_insert(void *ctx, struct call *k)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_call_insert);
	enum store_result rc = STORE_ERROR;
	if (st) {
		sq_bind_text(st, 1, k->id);
		sq_bind_text(st, 2, k->tenant_id);
		sq_bind_text(st, 3, k->agent_id);
		sq_bind_text(st, 4, call_direction_name(k->direction));
		sq_bind_text(st, 5, call_status_name(k->status));
		sq_bind_text(st, 6, k->from);
		sq_bind_text(st, 7, k->to);
		sq_bind_text(st, 8, k->provider_call_id);
		sq_bind_text(st, 9, k->end_reason);
		sqlite3_bind_int(st, 10, k->sip_status);
		sqlite3_bind_int(st, 11, k->max_duration_s);
		sqlite3_bind_int64(st, 12, k->created_at);
		sqlite3_bind_int64(st, 13, k->answered_at);
		sqlite3_bind_int64(st, 14, k->ended_at);
		sq_bind_text(st, 15, k->metadata);
		sq_bind_text(st, 16, k->stream_url);
		sqlite3_bind_int(st, 17, k->record);
		rc = sq_run_write(h, c, st);
		if (rc == STORE_OK)
			k->seq = sqlite3_last_insert_rowid(c->db);
	}
	sq_conn_put(h, c);
	return rc;
}

static bool in_scope(const struct scope *sc, const struct call *c, const char *number)
{
	return !sc || sc->all ||
	       (!strcmp(sc->tenant_id, c->tenant_id) &&
		(!sc->number[0] || !strcmp(sc->number, number)));
}

/* The cached path of call_get for a call id: STORE_OK with the row if it is in scope, else
 * STORE_NOT_FOUND, and the caller asks SQL (the id may be another call's provider id). A miss
 * reads the row by id and caches it. A batch never uses the cache: it must see its own
 * uncommitted writes, and must not cache them. */
static enum store_result cached_call_get(struct call_cache *cache, struct conn *c,
					 const struct scope *sc, const char *id, struct call *out)
{
	char number[CALL_CACHE_NUMBER_MAX + 1];
	if (call_cache_get(cache, id, out, number)) {
		if (in_scope(sc, out, number))
			return STORE_OK;
		call_clear(out);
		return STORE_NOT_FOUND;
	}
	uint64_t ticket = call_cache_ticket(cache, id);
	sqlite3_stmt *st = sq_stmt(c, &q_call_get_cacheable);
	if (!st)
		return STORE_ERROR;
	sq_bind_text(st, 1, id);
	int r = sqlite3_step(st);
	enum store_result rc;
	if (r == SQLITE_ROW && sqlite3_column_bytes(st, CALL_COL_EXTRA) > CALL_CACHE_NUMBER_MAX) {
		rc = STORE_NOT_FOUND; /* not an agent number we can compare here: SQL decides */
	} else if (r == SQLITE_ROW) {
		read_call(st, out);
		sq_copy_col(st, CALL_COL_EXTRA, number, sizeof number);
		call_cache_fill(cache, ticket, out, number);
		rc = in_scope(sc, out, number) ? STORE_OK : STORE_NOT_FOUND;
		if (rc != STORE_OK)
			call_clear(out);
	} else {
		rc = r == SQLITE_DONE ? STORE_NOT_FOUND : sq_step_error(c, r);
	}
	sqlite3_reset(st);
	return rc;
}

enum store_result sqlite_call_get(void *ctx, const struct scope *sc, const char *id,
				  struct call *out)
{
	WITH_CONN(h, c);
	if (h->s->calls && !h->batch && strlen(id) == CP_UUID_LEN) {
		enum store_result rc = cached_call_get(h->s->calls, c, sc, id, out);
		if (rc != STORE_NOT_FOUND) {
			sq_conn_put(h, c);
			return rc;
		}
	}
	bool by_number = sc && !sc->all && sc->number[0];
	sqlite3_stmt *st = sq_stmt(c, by_number ? &q_call_get : &q_call_get_tenant);
	enum store_result rc = STORE_ERROR;
	if (st) {
		sq_bind_text(st, 1, id);
		sq_bind_text(st, 2, sc && !sc->all ? sc->tenant_id : NULL);
		if (by_number)
			sq_bind_text(st, 3, sc->number);
		rc = step_one_call(c, st, out);
	}
	sq_conn_put(h, c);
	return rc;
}

/* ",queued,ringing," for a status mask: the form instr() tests against. */
static void status_set(uint32_t mask, char *buf, size_t size)
{
	size_t off = (size_t)snprintf(buf, size, ",");
	for (int i = 0; i < CALL_STATUS_COUNT && off < size; i++)
		if (mask & CALL_BIT(i))
			off += (size_t)snprintf(buf + off, size - off, "%s,",
						call_status_name((enum call_status)i));
}

enum store_result sqlite_call_list(void *ctx, const struct scope *sc, const struct call_filter *f,
				   struct call **out, size_t *n)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st =
		sq_stmt(c, sc->all ? (f->after_seq ? &q_call_list_all_after : &q_call_list_all)
			   : f->after_seq ? &q_call_list_after
					  : &q_call_list);
	enum store_result rc = STORE_ERROR;
	*out = NULL;
	*n = 0;
	if (!st || f->limit < 1 || (f->after_seq && f->before_seq))
		goto out;
	char set[128];
	status_set(f->status_mask, set, sizeof set);
	sq_bind_text(st, 1, sc->all ? NULL : sc->tenant_id);
	sq_bind_opt_text(st, 2, sc->all ? NULL : sc->number);
	sq_bind_text(st, 3, f->status_mask ? set : NULL);
	sq_bind_text(st, 4, f->agent_id);
	sqlite3_bind_int64(st, 5, f->after_seq ? f->after_seq : f->before_seq);
	sqlite3_bind_int(st, 6, f->limit);
	struct call *calls = calloc((size_t)(f->limit > 0 ? f->limit : 1), sizeof *calls);
	if (!calls)
		goto out;
	size_t count = 0;
	int r = SQLITE_DONE;
	while (count < (size_t)f->limit && (r = sqlite3_step(st)) == SQLITE_ROW)
		read_call(st, &calls[count++]);
	if (count < (size_t)f->limit && r != SQLITE_DONE) {
		rc = sq_step_error(c, r);
		call_list_free(calls, count);
		sqlite3_reset(st);
		goto out;
	}
	sqlite3_reset(st);
	*out = calls;
	*n = count;
	rc = STORE_OK;
out:
	sq_conn_put(h, c);
	return rc;
}

/* After a conditional write that matched nothing: conflict (row exists) or not found. */
static enum store_result current_row(struct conn *c, const char *id, struct call *out)
{
	sqlite3_stmt *st = sq_stmt(c, &q_call_get_raw);
	if (!st)
		return STORE_ERROR;
	sq_bind_text(st, 1, id);
	enum store_result rc = step_one_call(c, st, out);
	return rc == STORE_OK ? STORE_CONFLICT : rc;
}

enum store_result sqlite_call_update(void *ctx, const char *id, const struct call_update *u,
				     struct call *out, enum call_status *prev)
{
	WITH_CONN(h, c);
	bool keep_provider = !u->provider_call_id || !*u->provider_call_id;
	sqlite3_stmt *st =
		sq_stmt(c, keep_provider ? &q_call_update_keep_provider : &q_call_update);
	struct call row = {0};
	struct call_write w;
	enum store_result rc = STORE_ERROR;
	if (!st)
		goto out;
	char set[128];
	status_set(u->from_mask, set, sizeof set);
	sq_bind_text(st, 1, id);
	sq_bind_text(st, 2, call_status_name(u->to));
	sq_bind_opt_int(st, 3, u->answered_at);
	sq_bind_opt_int(st, 4, u->ended_at);
	sq_bind_opt_text(st, 5, u->end_reason);
	sq_bind_opt_int(st, 6, u->sip_status);
	sq_bind_opt_text(st, 7, u->provider_call_id);
	sq_bind_text(st, 8, set);

	/* The step and its outbox event commit together or not at all: an event is never lost
	 * (crash after the step) nor invented (crash before it). */
	if ((rc = sq_write_open(h, c, id, u->event != NULL, &w)) != STORE_OK)
		goto out;
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		read_call(st, &row);
		if (prev &&
		    !call_status_parse((const char *)sqlite3_column_text(st, CALL_COL_EXTRA), prev))
			*prev = CALL_QUEUED;
		rc = STORE_OK;
	} else {
		rc = r == SQLITE_DONE ? STORE_NOT_FOUND : sq_step_error(c, r);
	}
	sqlite3_reset(st);
	if (u->event && rc == STORE_OK)
		rc = sq_write_event(c, u->event, &row, "", false,
				    row.ended_at ? row.ended_at : cp_now_ms());
	rc = sq_write_close(h, c, &w, rc);
	if (rc == STORE_OK && out)
		call_move(out, &row);
	else if (rc == STORE_NOT_FOUND)
		rc = current_row(c, id, out);
out:
	call_clear(&row);
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_call_event(void *ctx, const char *id, const char *type, const char *extra,
				    uint32_t status_mask, struct call *out)
{
	WITH_CONN(h, c);
	sqlite3_stmt *get = sq_stmt(c, &q_call_get_raw);
	struct call row = {0};
	struct call_write w;
	enum store_result rc = STORE_ERROR;
	/* the read and the event share a transaction; the row does not change: no cache bracket */
	if (!get || (rc = sq_write_open(h, c, NULL, true, &w)) != STORE_OK)
		goto out;
	sq_bind_text(get, 1, id);
	rc = step_one_call(c, get, &row);
	if (rc == STORE_OK && !(status_mask & CALL_BIT(row.status)))
		rc = STORE_CONFLICT;
	if (rc == STORE_OK)
		rc = sq_write_event(c, type, &row, extra, true, cp_now_ms());
	rc = sq_write_close(h, c, &w, rc);
	if (out && (rc == STORE_OK || rc == STORE_CONFLICT))
		call_move(out, &row);
out:
	call_clear(&row);
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_call_redact(void *ctx, const char *id, int64_t now, struct call *out)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_call_redact);
	enum store_result rc = STORE_ERROR;
	if (st) {
		sq_bind_text(st, 1, id);
		sqlite3_bind_int64(st, 2, now);
		sq_write_lock(h);
		int stripe = sq_call_write_begin(h, id);
		rc = step_one_call(c, st, out);
		sq_call_write_end(h, stripe);
		sq_write_unlock(h);
		if (rc == STORE_NOT_FOUND)
			rc = current_row(c, id, out);
	}
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_call_active_ids(void *ctx, char (**ids)[CP_UUID_LEN + 1], size_t *n)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_call_active);
	enum store_result rc = STORE_ERROR;
	*ids = NULL;
	*n = 0;
	if (st) {
		size_t cap = 0;
		int r = SQLITE_DONE;
		rc = STORE_OK;
		while ((r = sqlite3_step(st)) == SQLITE_ROW) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 64;
				void *p = realloc(*ids, cap * sizeof **ids);
				if (!p) {
					rc = STORE_ERROR;
					break;
				}
				*ids = p;
			}
			sq_copy_col(st, 0, (*ids)[(*n)++], CP_UUID_LEN + 1);
		}
		if (rc == STORE_OK && r != SQLITE_DONE)
			rc = sq_step_error(c, r);
		sqlite3_reset(st);
	}
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_call_count_active(void *ctx, int64_t counts[CALL_STATUS_COUNT])
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_call_count_active);
	enum store_result rc = STORE_ERROR;
	for (int i = 0; i < CALL_STATUS_COUNT; i++)
		counts[i] = 0;
	if (st) {
		int r;
		while ((r = sqlite3_step(st)) == SQLITE_ROW) {
			enum call_status status;
			if (call_status_parse((const char *)sqlite3_column_text(st, 0), &status))
				counts[status] = sqlite3_column_int64(st, 1);
		}
		rc = r == SQLITE_DONE ? STORE_OK : sq_step_error(c, r);
		sqlite3_reset(st);
	}
	sq_conn_put(h, c);
	return rc;
}
