/*
 * sqlite_internal.h - what the files of the SQLite backend share; nothing outside
 * src/store/sqlite/ includes it.
 *
 * The backend is one file per concern, as libre's sipsess/ is:
 *   pool.c         connections, prepared statements, the writer lock, binding and stepping
 *   batch.c        transactions of the calls path, the group-commit batch
 *   open.c         opening and closing: schema migrations, the server lock, the callback table
 *   tenants.c      tenants and agents
 *   trunks.c       trunks and their registration status
 *   keys.c         API keys (with the key cache)
 *   calls.c        call rows (with the call cache)
 *   outbox.c       outbox events, webhooks and their deliveries, the live event stream
 *   idempotency.c  idempotent request records
 *   dialogs.c      the telephony engine's dialog state, kept for a restart
 *
 * Each concern file keeps its own SQL next to the code that runs it (struct sql); the
 * statement ids below only number the slots of each connection's statement cache.
 * Helpers shared across files carry the sq_ prefix; the backend's callbacks the sqlite_ one.
 */
#ifndef CP_SQLITE_INTERNAL_H
#define CP_SQLITE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store/call_cache.h"
#include "store/key_cache.h"
#include "store/store.h"

/* The slot of each statement in a connection's cache, grouped by the file that owns it. */
/* as written: the statements of one table on a line */
/* clang-format off */
enum stmt_id {
	/* batch.c */
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	/* tenants.c */
	S_TENANT_CREATE, S_TENANT_EXISTS, S_TENANT_LIST, S_TENANT_DIAL, S_TENANT_SET_DIAL,
	S_TENANT_SET_NAME,
	S_AGENT_CREATE, S_AGENT_GET, S_AGENT_BY_NUMBER, S_AGENT_LIST, S_AGENT_UPDATE,
	S_AGENT_SET_RECORD,
	S_AGENT_SET_GOODBYE, S_AGENT_SET_TRUNK,
	/* trunks.c */
	S_TRUNK_CREATE, S_TRUNK_GET, S_TRUNK_LIST, S_TRUNK_IN_USE, S_TRUNK_DELETE,
	S_TRUNK_GENERATION, S_TRUNK_STATUS_GET, S_TRUNK_STATUS_PUT,
	/* keys.c */
	S_KEY_CREATE, S_KEY_BY_HASH, S_KEY_LIST, S_KEY_REVOKE,
	/* calls.c */
	S_CALL_INSERT, S_CALL_GET, S_CALL_GET_TENANT, S_CALL_GET_RAW, S_CALL_GET_CACHEABLE,
	S_CALL_LIST, S_CALL_LIST_AFTER, S_CALL_LIST_ALL, S_CALL_LIST_ALL_AFTER, S_CALL_UPDATE, S_CALL_UPDATE_KEEP_PROVIDER, S_CALL_REDACT,
	S_CALL_ACTIVE, S_CALL_COUNT_ACTIVE,
	/* idempotency.c */
	S_IDEM_EXPIRE, S_IDEM_INSERT, S_IDEM_GET, S_IDEM_COMPLETE, S_IDEM_RELEASE, S_IDEM_PURGE,
	/* outbox.c */
	S_EVENT_INSERT, S_DELIVERY_FANOUT, S_WEBHOOK_CREATE, S_WEBHOOK_LIST, S_WEBHOOK_DELETE,
	S_WEBHOOK_UPDATE,
	S_DELIVERY_DROP, S_DELIVERY_DUE, S_DELIVERY_LEASE, S_DELIVERY_GIVE_UP, S_DELIVERY_RELEASE,
	S_DELIVERY_RELEASE_LEASED, S_DELIVERY_RECORD, S_DELIVERY_LIST, S_DELIVERY_REPLAY, S_DELIVERY_BACKLOG, S_EVENTS_SINCE,
	S_EVENTS_SINCE_ALL, S_EVENTS_LAST,
	/* dialogs.c */
	S_DIALOG_PUT, S_DIALOG_CLEAR, S_DIALOG_LIST,
	S_COUNT
};
/* clang-format on */

/* A statement: its cache slot and its text. One static instance per statement, in the file
 * that runs it. */
struct sql {
	enum stmt_id id;
	const char *text;
};

struct conn {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	struct conn *next;
};

struct sqlite_batch;

/* What a callback's ctx points at: the store itself, or a batch open on it (batch.c). An
 * operation through a batch's handle joins the batch's transaction; one through the store's
 * own handle does not. */
struct sqlite_handle {
	struct sqlite_store *s;
	struct sqlite_batch *batch; /* NULL: the store's own handle */
};

/* The group-commit batch (batch.c): one connection, one open transaction and write_mu, from
 * batch_begin() to batch_end(). */
struct sqlite_batch {
	struct sqlite_handle h; /* the ctx batch_begin() hands out; h.batch is this */
	struct conn *c;
	bool failed; /* a step failed half-way: the batch must not commit */
	/* call cache writes the batch has open, per stripe: ended once the batch has ended */
	unsigned open[CALL_CACHE_STRIPES];
};

struct sqlite_store {
	struct sqlite_handle self; /* the ctx open() hands out: {this, NULL} */
	char *path;
	bool sync_full;
	pthread_mutex_t pool_mu;
	struct conn *free_list;
	struct conn *all[64]; /* every connection ever opened, for close */
	int n_all;
	pthread_mutex_t write_mu; /* serialises this process's writers; see pool.c */
	/* The one batch that can be open at a time, as it holds write_mu: write_mu guards it. */
	struct sqlite_batch batch;
	/* Server mode only (store_options.server): this process is the only writer of calls,
	 * which is what makes a cache of call rows coherent. NULL otherwise. */
	struct call_cache *calls;
	struct key_cache *keys;
};

/* ---- pool.c ------------------------------------------------------------------------------ */

/* Runs SQL text without results; logs and returns -1 on failure. */
int sq_exec(sqlite3 *db, const char *sql);

/* Borrows a connection for an operation through h (a batch's handle: the batch's own); NULL
 * if none could be opened. sq_conn_put() gives it back. */
struct conn *sq_conn_get(struct sqlite_handle *h);
void sq_conn_put(struct sqlite_handle *h, struct conn *c);
void sq_conn_close(struct conn *c);

/* The statement q on c, prepared once per connection, reset and cleared; NULL (logged) if it
 * cannot be prepared. c keeps it. */
sqlite3_stmt *sq_stmt(struct conn *c, const struct sql *q);

/* Text binds copy v; NULL binds null, and so does "" for the _opt_ forms, as 0 does for
 * sq_bind_opt_int. */
void sq_bind_text(sqlite3_stmt *st, int i, const char *v);
void sq_bind_opt_text(sqlite3_stmt *st, int i, const char *v);
void sq_bind_opt_int(sqlite3_stmt *st, int i, int64_t v);

/* A text column into dst[size], cut to fit. */
void sq_copy_col(sqlite3_stmt *st, int col, char *dst, size_t size);

/* The store result of a failed step (r, SQLite's code): a constraint is CONFLICT (NOT_FOUND
 * for a foreign key that names no row); anything else is logged and is STORE_ERROR. */
enum store_result sq_step_error(struct conn *c, int r);

/* Runs a write statement to completion under the writer lock: STORE_OK if it changed a row,
 * else STORE_NOT_FOUND, or the step's error. */
enum store_result sq_run_write(struct sqlite_handle *h, struct conn *c, sqlite3_stmt *st);

/* How a listing reads a row: into an element of size bytes, zeroed first; clear (may be
 * NULL) frees what read allocated in one, when the listing fails half-way. */
struct sq_rows {
	size_t size;
	void (*read)(sqlite3_stmt *st, void *row);
	void (*clear)(void *row);
};

/* One statement with its arguments bound by a type string: 's' text (NULL: null), 'o'
 * optional text ("": null), 'i' int, 'I' int64. rows NULL: a write (as sq_run_write). rows
 * set: a listing; *out receives a heap array of its rows (NULL if none), *n their count. */
enum store_result sq_run_bound(struct sqlite_handle *h, const struct sql *q,
			       const struct sq_rows *rows, void **out, size_t *n, const char *types,
			       ...);

#define sq_write_one(h, q, ...) sq_run_bound(h, q, NULL, NULL, NULL, __VA_ARGS__)
#define sq_list_all(h, q, rows, out, n, ...) sq_run_bound(h, q, rows, out, n, __VA_ARGS__)

/* Borrows a connection for the body of a callback whose context is ctx (a handle). */
#define WITH_CONN(h, c)                  \
	struct sqlite_handle *h = ctx;   \
	struct conn *c = sq_conn_get(h); \
	if (!c)                          \
		return STORE_ERROR;

/* The writer lock; a no-op through a batch's handle, as the batch holds it throughout. */
void sq_write_lock(struct sqlite_handle *h);
void sq_write_unlock(struct sqlite_handle *h);

/* ---- batch.c ----------------------------------------------------------------------------- */

extern const struct sql sq_begin, sq_commit, sq_rollback;

/* The call cache's write bracket around the write of one call (call_cache.h): begin returns
 * the stripe to end (-1: no cache); end ends it at once outside a batch, after the batch's
 * COMMIT inside one. */
int sq_call_write_begin(struct sqlite_handle *h, const char *id);
void sq_call_write_end(struct sqlite_handle *h, int stripe);

/* A write to the calls path: the writer lock, the call cache's bracket around the write of
 * one call (bracket_id; NULL for a write that leaves the row as it is), and a transaction of
 * our own when the write is more than one statement (multi) and no batch's transaction is
 * open (in a batch, the batch is the transaction). sq_write_open() before the statements,
 * sq_write_close() after, with their result; it returns the final one. */
struct call_write {
	sqlite3_stmt *commit, *rollback; /* non-NULL: BEGIN was ours */
	int stripe;                      /* the cache bracket to end, -1 none */
};

enum store_result sq_write_open(struct sqlite_handle *h, struct conn *c, const char *bracket_id,
				bool multi, struct call_write *w);
enum store_result sq_write_close(struct sqlite_handle *h, struct conn *c, struct call_write *w,
				 enum store_result rc);

enum store_result sqlite_batch_begin(void *ctx, void **batch);
enum store_result sqlite_batch_end(void *batch, bool commit);

/* ---- open.c ------------------------------------------------------------------------------ */

enum store_result sqlite_open(const char *location, const struct store_options *opt, void **ctx);
void sqlite_close(void *ctx);

/* ---- tenants.c --------------------------------------------------------------------------- */

enum store_result sqlite_tenant_create(void *ctx, const struct tenant *t);
enum store_result sqlite_tenant_dial(void *ctx, const char *id, struct dial_policy *out);
enum store_result sqlite_tenant_set_name(void *ctx, const char *id, const char *name);
enum store_result sqlite_tenant_set_dial(void *ctx, const char *id, const char *sip_uris,
					 const char *allow_prefixes, const char *deny_prefixes);
enum store_result sqlite_tenant_exists(void *ctx, const char *id);
enum store_result sqlite_tenant_list(void *ctx, struct tenant **out, size_t *n);
enum store_result sqlite_agent_create(void *ctx, const struct agent *a);
enum store_result sqlite_agent_get(void *ctx, const struct scope *sc, const char *id,
				   struct agent *out);
enum store_result sqlite_agent_by_number(void *ctx, const char *number, struct agent *out);
enum store_result sqlite_agent_list(void *ctx, const char *tenant_id, struct agent **out,
				    size_t *n);
enum store_result sqlite_agent_set_stream_url(void *ctx, const char *id, const char *url);
enum store_result sqlite_agent_set_record(void *ctx, const char *id, bool record);
enum store_result sqlite_agent_set_goodbye(void *ctx, const char *id, const char *goodbye_text,
					   const char *max_duration_goodbye);
enum store_result sqlite_agent_set_trunk(void *ctx, const char *id, const char *trunk_id);

/* ---- trunks.c ---------------------------------------------------------------------------- */

enum store_result sqlite_trunk_create(void *ctx, const struct trunk *t);
enum store_result sqlite_trunk_get(void *ctx, const char *tenant_id, const char *id,
				   struct trunk *out);
enum store_result sqlite_trunk_list(void *ctx, const char *tenant_id, struct trunk **out,
				    size_t *n);
enum store_result sqlite_trunk_delete(void *ctx, const char *tenant_id, const char *id);
enum store_result sqlite_trunk_generation(void *ctx, int64_t *out);
enum store_result sqlite_trunk_status_put(void *ctx, const struct trunk_status *s,
					  const char *event_data, bool *evented);

/* ---- keys.c ------------------------------------------------------------------------------ */

enum store_result sqlite_key_create(void *ctx, const struct api_key *k);
enum store_result sqlite_key_by_hash(void *ctx, const char *hash, struct api_key *out);
enum store_result sqlite_key_list(void *ctx, const char *tenant_id, struct api_key **out,
				  size_t *n);
enum store_result sqlite_key_revoke(void *ctx, const char *id, int64_t now);

/* ---- calls.c ----------------------------------------------------------------------------- */

enum store_result sqlite_call_insert(void *ctx, struct call *k);
enum store_result sqlite_call_get(void *ctx, const struct scope *sc, const char *id,
				  struct call *out);
enum store_result sqlite_call_list(void *ctx, const struct scope *sc, const struct call_filter *f,
				   struct call **out, size_t *n);
enum store_result sqlite_call_update(void *ctx, const char *id, const struct call_update *u,
				     struct call *out, enum call_status *prev);
enum store_result sqlite_call_event(void *ctx, const char *id, const char *type, const char *extra,
				    uint32_t status_mask, struct call *out);
enum store_result sqlite_call_redact(void *ctx, const char *id, int64_t now, struct call *out);
enum store_result sqlite_call_active_ids(void *ctx, char (**ids)[CP_UUID_LEN + 1], size_t *n);
enum store_result sqlite_call_count_active(void *ctx, int64_t counts[CALL_STATUS_COUNT]);

/* ---- outbox.c ---------------------------------------------------------------------------- */

/* Writes the outbox event of a step that just applied to call (inside its transaction): the
 * event row and one pending delivery per matching webhook. extra: JSON object members put in
 * the envelope before "data" ("" none; ours, already escaped). canonical_only: no delivery to
 * webhooks of a vendor format (they have only transition events). */
enum store_result sq_write_event(struct conn *c, const char *type, const struct call *call,
				 const char *extra, bool canonical_only, int64_t now);
/* The same for an event that is not about a call (a trunk's): data is the JSON text of its
 * "data" member; it goes to the tenant's webhooks for every agent, canonical ones only, and to
 * the tenant's live streams (not a number-scoped key's). */
enum store_result sq_write_tenant_event(struct conn *c, const char *type, const char *tenant_id,
					const char *data, int64_t now);

enum store_result sqlite_webhook_create(void *ctx, const struct webhook *w, int max_per_tenant);
enum store_result sqlite_webhook_list(void *ctx, const char *tenant_id, struct webhook **out,
				      size_t *n);
enum store_result sqlite_webhook_update(void *ctx, const struct webhook *w);
enum store_result sqlite_webhook_delete(void *ctx, const char *tenant_id, const char *id);
enum store_result sqlite_delivery_lease(void *ctx, int64_t now, int64_t lease_until, int max,
					delivery_picker *pick, void *arg, struct delivery **out,
					size_t *n);
enum store_result sqlite_delivery_release(void *ctx, const int64_t *ids, size_t n, int64_t next_at);
enum store_result sqlite_delivery_release_leased(void *ctx, int64_t now);
enum store_result sqlite_delivery_record(void *ctx, int64_t id, const char *status, int64_t next_at,
					 int http_status, const char *error, int64_t now);
enum store_result sqlite_delivery_list(void *ctx, const char *tenant_id, const char *status,
				       int limit, struct delivery_row **out, size_t *n);
enum store_result sqlite_delivery_replay(void *ctx, const char *tenant_id, int64_t id, int64_t now,
					 int *count);
enum store_result sqlite_events_since(void *ctx, const struct scope *sc, int64_t after_seq,
				      int limit, struct stored_event **out, size_t *n);
enum store_result sqlite_events_last_seq(void *ctx, int64_t *out);
enum store_result sqlite_delivery_backlog(void *ctx, int64_t now, int64_t *pending, int64_t *due);

/* ---- idempotency.c ----------------------------------------------------------------------- */

enum store_result sqlite_idem_claim(void *ctx, const char *key_id, const char *idem_key,
				    const char *hash, int64_t now, int64_t expire_before,
				    struct idem_record *existing);
enum store_result sqlite_idem_complete(void *ctx, const char *key_id, const char *idem_key,
				       unsigned status, const char *body);
enum store_result sqlite_idem_release(void *ctx, const char *key_id, const char *idem_key);
enum store_result sqlite_idem_purge(void *ctx, int64_t expire_before);

/* ---- dialogs.c --------------------------------------------------------------------------- */

enum store_result sqlite_dialog_put(void *ctx, const char *call_id, const char *state, int64_t now);
enum store_result sqlite_dialog_clear(void *ctx, const char *call_id);
enum store_result sqlite_dialog_list(void *ctx, struct dialog_row **out, size_t *n);

#endif
