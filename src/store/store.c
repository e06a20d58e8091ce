/*
 * store.c - backend selection and helpers shared by every backend. See store.h.
 */
#include "store.h"
#include "core/log.h"

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

int store_batch_begin(struct store *st, struct store *batch)
{
	if (!st->be->batch_begin)
		return STORE_ERROR;
	batch->be = st->be;
	return st->be->batch_begin(st->ctx, &batch->ctx);
}

int store_batch_end(struct store *batch, bool commit)
{
	return batch->be->batch_end(batch->ctx, commit);
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

void event_list_free(struct stored_event *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].payload);
	free(e);
}
