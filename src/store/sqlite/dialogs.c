/*
 * dialogs.c - the telephony engine's dialog state in the SQLite backend (store.h, dialog_*).
 *
 * Design:
 *   - One row per call whose dialog the engine holds on the wire: the engine's own text
 *     (what a BYE, or the CANCEL of a ringing INVITE, needs), which the store never reads. The
 *     engine writes it through the call service's worker, so a put joins the group commit of
 *     the call's answered transition, and clears it when the dialog is over.
 *   - A row outlives the call's end on purpose: a call recorded ended whose BYE has not been
 *     answered yet still has a far end up. A start-up lists what is left and hangs it up.
 */
#include "sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

/* as written: each statement's SQL a clause or two a line */
/* clang-format off */
static const struct sql q_dialog_put = {S_DIALOG_PUT,
	"INSERT INTO dialogs(call_id, state, updated_at) VALUES (?1, ?2, ?3)"
	" ON CONFLICT(call_id) DO UPDATE SET state = excluded.state,"
	" updated_at = excluded.updated_at"};
static const struct sql q_dialog_clear = {S_DIALOG_CLEAR,
	"DELETE FROM dialogs WHERE call_id = ?1"};
static const struct sql q_dialog_list = {S_DIALOG_LIST,
	"SELECT call_id, state FROM dialogs ORDER BY updated_at, call_id"};
/* clang-format on */

enum store_result sqlite_dialog_put(void *ctx, const char *call_id, const char *state, int64_t now)
{
	return sq_write_one(ctx, &q_dialog_put, "ssI", call_id, state, now);
}

enum store_result sqlite_dialog_clear(void *ctx, const char *call_id)
{
	enum store_result rc = sq_write_one(ctx, &q_dialog_clear, "s", call_id);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

/* A row (call_id, state) into a zeroed struct dialog_row; state is heap (NULL if out of
 * memory: the listing then fails). */
static void dialog_row(sqlite3_stmt *st, void *row)
{
	struct dialog_row *d = row;
	const char *state = (const char *)sqlite3_column_text(st, 1);
	sq_copy_col(st, 0, d->call_id, sizeof d->call_id);
	d->state = strdup(state ? state : "");
}

static void dialog_row_clear(void *row)
{
	free(((struct dialog_row *)row)->state);
}

enum store_result sqlite_dialog_list(void *ctx, struct dialog_row **out, size_t *n)
{
	static const struct sq_rows rows = {sizeof **out, dialog_row, dialog_row_clear};
	void *list;
	enum store_result rc = sq_list_all(ctx, &q_dialog_list, &rows, &list, n, "");
	*out = list;
	if (rc != STORE_OK)
		return rc;
	for (size_t i = 0; i < *n; i++) {
		if (!(*out)[i].state) {
			dialog_rows_free(*out, *n);
			*out = NULL;
			*n = 0;
			return STORE_ERROR;
		}
	}
	return rc;
}
