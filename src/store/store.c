/*
 * store.c - backend selection and helpers shared by every backend. See store.h.
 */
#include "store.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct store *store_open(const char *location, const struct store_options *opt)
{
	struct store *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	/* Only SQLite today; a "postgres://" location will select the PostgreSQL backend. */
	st->be = &store_sqlite_backend;
	if (st->be->open(location, opt, &st->ctx) != STORE_OK) {
		free(st);
		return NULL;
	}
	return st;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	st->be->close(st->ctx);
	free(st);
}

enum store_result store_batch_begin(struct store *st, struct store *batch)
{
	if (!st->be->batch_begin)
		return STORE_ERROR;
	batch->be = st->be;
	return st->be->batch_begin(st->ctx, &batch->ctx);
}

enum store_result store_batch_end(struct store *batch, bool commit)
{
	return batch->be->batch_end(batch->ctx, commit);
}

enum cp_err store_fail(struct cp_error *e, enum store_result rc, const char *what, ...)
{
	if (rc == STORE_OK)
		return cp_fail(e, CP_OK, "%s", "");
	if (rc != STORE_NOT_FOUND)
		return cp_fail(e, CP_ERR_INTERNAL, "store error");
	char thing[160];
	va_list ap;
	va_start(ap, what);
	vsnprintf(thing, sizeof thing, what, ap);
	va_end(ap);
	return cp_fail(e, CP_ERR_NOT_FOUND, "%s not found", thing);
}

void call_list_free(struct call *calls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		call_clear(&calls[i]);
	free(calls);
}

void idem_record_clear(struct idem_record *r)
{
	free(r->body);
	r->body = NULL;
}

void delivery_list_free(struct delivery *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(d[i].payload);
	free(d);
}

void delivery_rows_free(struct delivery_row *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(d[i].last_error);
	free(d);
}

void event_list_free(struct stored_event *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].payload);
	free(e);
}

void dialog_rows_free(struct dialog_row *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(d[i].state);
	free(d);
}
