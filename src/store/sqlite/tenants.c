/*
 * tenants.c - tenants and their agents in the SQLite backend.
 *
 * Design:
 *   - Tenants and agents are written by the admin CLI and read on every call's creation: an
 *     agent by id within a key's scope (a number-scoped key sees only its own number's agent,
 *     so not found and not visible look the same), or by number for an inbound call.
 *   - Optional columns are stored as NULL (NULLIF on the way in), so "" and 0 in struct agent
 *     both mean "none" and the unique index on number ignores agents without one.
 *   - An agent's trunk is one of its own tenant's: the insert and the update that name one
 *     apply only when it is (a foreign key alone would accept another tenant's trunk).
 *   - A tenant's dial policy (call/dial.c) is read once per call created; NULL reads as ""
 *     ("none" for sip: URIs, no list for prefixes), so a tenant written without one dials no
 *     raw URI.
 */
#include "sqlite_internal.h"

#include <string.h>

/* as written: each statement's SQL a clause or two a line */
/* clang-format off */
static const struct sql q_tenant_create = {S_TENANT_CREATE,
	"INSERT INTO tenants(id, name, created_at, sip_uris, allow_prefixes, deny_prefixes)"
	" VALUES (?1, ?2, ?3, NULLIF(?4, ''), NULLIF(?5, ''), NULLIF(?6, ''))"};
static const struct sql q_tenant_dial = {S_TENANT_DIAL,
	"SELECT sip_uris, allow_prefixes, deny_prefixes FROM tenants WHERE id = ?1"};
/* NULL keeps a part, '' clears it */
static const struct sql q_tenant_set_dial = {S_TENANT_SET_DIAL,
	"UPDATE tenants SET"
	" sip_uris = CASE WHEN ?2 IS NULL THEN sip_uris ELSE NULLIF(?2, '') END,"
	" allow_prefixes = CASE WHEN ?3 IS NULL THEN allow_prefixes ELSE NULLIF(?3, '') END,"
	" deny_prefixes = CASE WHEN ?4 IS NULL THEN deny_prefixes ELSE NULLIF(?4, '') END"
	" WHERE id = ?1"};
static const struct sql q_tenant_set_name = {S_TENANT_SET_NAME,
	"UPDATE tenants SET name = ?2 WHERE id = ?1"};
static const struct sql q_tenant_exists = {S_TENANT_EXISTS,
	"SELECT 1 FROM tenants WHERE id = ?1"};
static const struct sql q_tenant_list = {S_TENANT_LIST,
	"SELECT id, name, created_at, sip_uris, allow_prefixes, deny_prefixes FROM tenants"
	" ORDER BY created_at, id"};
/* a trunk, if named, must be the agent's tenant's: no row is inserted otherwise */
static const struct sql q_agent_create = {S_AGENT_CREATE,
	"INSERT INTO agents(id, tenant_id, name, number, max_duration_s, created_at,"
	" stream_url, record, goodbye_text, max_duration_goodbye, trunk_id) SELECT ?1, ?2, ?3,"
	" NULLIF(?4, ''), NULLIF(?5, 0), ?6, NULLIF(?7, ''), ?8, NULLIF(?9, ''), NULLIF(?10, ''),"
	" NULLIF(?11, '') WHERE ?11 = '' OR EXISTS (SELECT 1 FROM trunks"
	" WHERE id = ?11 AND tenant_id = ?2)"};
/* the columns agent_row() reads, in its order */
#define AGENT_COLUMNS "id, tenant_id, name, number, max_duration_s, created_at, stream_url," \
	" record, goodbye_text, max_duration_goodbye, trunk_id"
static const struct sql q_agent_get = {S_AGENT_GET,
	"SELECT " AGENT_COLUMNS
	" FROM agents WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)"
	" AND (?3 IS NULL OR number = ?3)"};
static const struct sql q_agent_by_number = {S_AGENT_BY_NUMBER,
	"SELECT " AGENT_COLUMNS " FROM agents WHERE number = ?1"};
static const struct sql q_agent_list = {S_AGENT_LIST,
	"SELECT " AGENT_COLUMNS
	" FROM agents WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY created_at, id"};
static const struct sql q_agent_update = {S_AGENT_UPDATE,
	"UPDATE agents SET stream_url = NULLIF(?2, '') WHERE id = ?1"};
static const struct sql q_agent_set_record = {S_AGENT_SET_RECORD,
	"UPDATE agents SET record = ?2 WHERE id = ?1"};
/* NULL keeps a text, '' clears it */
static const struct sql q_agent_set_goodbye = {S_AGENT_SET_GOODBYE,
	"UPDATE agents SET"
	" goodbye_text = CASE WHEN ?2 IS NULL THEN goodbye_text ELSE NULLIF(?2, '') END,"
	" max_duration_goodbye = CASE WHEN ?3 IS NULL THEN max_duration_goodbye"
	" ELSE NULLIF(?3, '') END WHERE id = ?1"};
static const struct sql q_agent_set_trunk = {S_AGENT_SET_TRUNK,
	"UPDATE agents SET trunk_id = NULLIF(?2, '') WHERE id = ?1 AND (?2 = ''"
	" OR EXISTS (SELECT 1 FROM trunks WHERE id = ?2 AND tenant_id = agents.tenant_id))"};
/* clang-format on */

enum store_result sqlite_tenant_create(void *ctx, const struct tenant *t)
{
	return sq_write_one(ctx, &q_tenant_create, "ssIsss", t->id, t->name, t->created_at,
			    t->dial.sip_uris, t->dial.allow_prefixes, t->dial.deny_prefixes);
}

enum store_result sqlite_tenant_exists(void *ctx, const char *id)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_tenant_exists);
	enum store_result rc = STORE_ERROR;
	if (st) {
		sq_bind_text(st, 1, id);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW || r == SQLITE_DONE)
			rc = r == SQLITE_ROW ? STORE_OK : STORE_NOT_FOUND;
		else
			rc = sq_step_error(c, r);
		sqlite3_reset(st);
	}
	sq_conn_put(h, c);
	return rc;
}

/* sip_uris, allow_prefixes, deny_prefixes from column `first` on */
static void dial_cols(sqlite3_stmt *st, int first, struct dial_policy *d)
{
	sq_copy_col(st, first, d->sip_uris, sizeof d->sip_uris);
	sq_copy_col(st, first + 1, d->allow_prefixes, sizeof d->allow_prefixes);
	sq_copy_col(st, first + 2, d->deny_prefixes, sizeof d->deny_prefixes);
}

static void tenant_row(sqlite3_stmt *st, void *row)
{
	struct tenant *t = row;
	sq_copy_col(st, 0, t->id, sizeof t->id);
	sq_copy_col(st, 1, t->name, sizeof t->name);
	t->created_at = sqlite3_column_int64(st, 2);
	dial_cols(st, 3, &t->dial);
}

enum store_result sqlite_tenant_dial(void *ctx, const char *id, struct dial_policy *out)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_tenant_dial);
	enum store_result rc = STORE_ERROR;
	if (st) {
		sq_bind_text(st, 1, id);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			memset(out, 0, sizeof *out);
			dial_cols(st, 0, out);
			rc = STORE_OK;
		} else {
			rc = r == SQLITE_DONE ? STORE_NOT_FOUND : sq_step_error(c, r);
		}
		sqlite3_reset(st);
	}
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_tenant_set_dial(void *ctx, const char *id, const char *sip_uris,
					 const char *allow_prefixes, const char *deny_prefixes)
{
	return sq_write_one(ctx, &q_tenant_set_dial, "ssss", id, sip_uris, allow_prefixes,
			    deny_prefixes);
}

enum store_result sqlite_tenant_set_name(void *ctx, const char *id, const char *name)
{
	return sq_write_one(ctx, &q_tenant_set_name, "ss", id, name);
}

enum store_result sqlite_tenant_list(void *ctx, struct tenant **out, size_t *n)
{
	static const struct sq_rows rows = {sizeof **out, tenant_row, NULL};
	void *list;
	enum store_result rc = sq_list_all(ctx, &q_tenant_list, &rows, &list, n, "");
	*out = list;
	return rc;
}

/* ---- agents ----------------------------------------------------------------------------- */

enum store_result sqlite_agent_create(void *ctx, const struct agent *a)
{
	return sq_write_one(ctx, &q_agent_create, "ssssiIsisss", a->id, a->tenant_id, a->name,
			    a->number, a->max_duration_s, a->created_at, a->stream_url,
			    (int)a->record, a->goodbye_text, a->max_duration_goodbye, a->trunk_id);
}

/* An agent row (AGENT_COLUMNS) into a zeroed struct agent. */
static void agent_row(sqlite3_stmt *st, void *row)
{
	struct agent *out = row;
	sq_copy_col(st, 0, out->id, sizeof out->id);
	sq_copy_col(st, 1, out->tenant_id, sizeof out->tenant_id);
	sq_copy_col(st, 2, out->name, sizeof out->name);
	sq_copy_col(st, 3, out->number, sizeof out->number);
	out->max_duration_s = sqlite3_column_int(st, 4);
	out->created_at = sqlite3_column_int64(st, 5);
	sq_copy_col(st, 6, out->stream_url, sizeof out->stream_url);
	out->record = sqlite3_column_int(st, 7) != 0;
	sq_copy_col(st, 8, out->goodbye_text, sizeof out->goodbye_text);
	sq_copy_col(st, 9, out->max_duration_goodbye, sizeof out->max_duration_goodbye);
	sq_copy_col(st, 10, out->trunk_id, sizeof out->trunk_id);
}

static enum store_result read_agent(struct conn *c, sqlite3_stmt *st, struct agent *out)
{
	int r = sqlite3_step(st);
	enum store_result rc;
	if (r == SQLITE_ROW) {
		memset(out, 0, sizeof *out);
		agent_row(st, out);
		rc = STORE_OK;
	} else {
		rc = r == SQLITE_DONE ? STORE_NOT_FOUND : sq_step_error(c, r);
	}
	sqlite3_reset(st);
	return rc;
}

enum store_result sqlite_agent_get(void *ctx, const struct scope *sc, const char *id,
				   struct agent *out)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_agent_get);
	enum store_result rc = STORE_ERROR;
	if (st) {
		sq_bind_text(st, 1, id);
		/* NULL only for an operator's scope; a tenant's is never "" */
		sq_bind_text(st, 2, sc->all ? NULL : sc->tenant_id);
		sq_bind_opt_text(st, 3, sc->all ? NULL : sc->number);
		rc = read_agent(c, st, out);
	}
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_agent_by_number(void *ctx, const char *number, struct agent *out)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_agent_by_number);
	enum store_result rc = STORE_ERROR;
	if (st) {
		sq_bind_text(st, 1, number);
		rc = read_agent(c, st, out);
	}
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_agent_list(void *ctx, const char *tenant_id, struct agent **out, size_t *n)
{
	static const struct sq_rows rows = {sizeof **out, agent_row, NULL};
	void *list;
	enum store_result rc = sq_list_all(ctx, &q_agent_list, &rows, &list, n, "s", tenant_id);
	*out = list;
	return rc;
}

enum store_result sqlite_agent_set_stream_url(void *ctx, const char *id, const char *url)
{
	return sq_write_one(ctx, &q_agent_update, "ss", id, url);
}

enum store_result sqlite_agent_set_record(void *ctx, const char *id, bool record)
{
	return sq_write_one(ctx, &q_agent_set_record, "si", id, (int)record);
}

enum store_result sqlite_agent_set_goodbye(void *ctx, const char *id, const char *goodbye_text,
					   const char *max_duration_goodbye)
{
	return sq_write_one(ctx, &q_agent_set_goodbye, "sss", id, goodbye_text,
			    max_duration_goodbye);
}

enum store_result sqlite_agent_set_trunk(void *ctx, const char *id, const char *trunk_id)
{
	return sq_write_one(ctx, &q_agent_set_trunk, "ss", id, trunk_id);
}
