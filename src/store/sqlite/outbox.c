/*
 * outbox.c - the event outbox of the SQLite backend: events, the webhooks they go to, their
 * deliveries, and the live event stream.
 *
 * Design:
 *   - Transactional outbox: a step of a call writes its event row, and one pending delivery
 *     per matching webhook, in the transaction of the step itself (calls.c). An event is
 *     never lost (crash after the step) nor invented (crash before it).
 *   - The webhook worker leases due deliveries (pushes their next attempt past the lease)
 *     instead of marking them in flight, so a crash mid-delivery only delays them.
 *   - Due deliveries are offered to the worker round-robin over tenants (a window function
 *     ranks each tenant's due deliveries by age; the offer is ordered by that rank), so one
 *     tenant's backlog never hides another tenant's delivery from the worker. The ranking
 *     reads every due row (about 2 us a row here), so it runs outside the writer lock: the
 *     offer is read, the worker picks, and only the picks are written, each conditional on
 *     the delivery being still due. The due set stays small while receivers keep up, and the
 *     worker holds (moves past now) the deliveries of webhooks whose circuit is open.
 *   - The event's canonical JSON is stored once, in the event row; every delivery and the
 *     live stream (events_since, by sequence number) read that same text.
 */
#include "sqlite_internal.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* as written: each statement's SQL a clause or two a line */
/* clang-format off */
static const struct sql q_event_insert = {S_EVENT_INSERT,
	"INSERT INTO events(id, tenant_id, agent_id, agent_number, call_id, type,"
	" created_at, payload) VALUES (?1, ?2, ?3,"
	" (SELECT number FROM agents WHERE id = ?3), ?4, ?5, ?6, ?7)"};
/* ?5 = 1: an event only the canonical format carries (call.dtmf) */
static const struct sql q_delivery_fanout = {S_DELIVERY_FANOUT,
	"INSERT INTO deliveries(event_seq, webhook_id, status, next_attempt_at,"
	" created_at) SELECT ?1, id, 'pending', ?2, ?2 FROM webhooks"
	" WHERE tenant_id = ?3 AND (agent_id IS NULL OR agent_id = ?4)"
	" AND (?5 = 0 OR format = 'canonical')"};
/* ?8: the most webhooks the tenant may have; at the cap the SELECT yields no row */
static const struct sql q_webhook_create = {S_WEBHOOK_CREATE,
	"INSERT INTO webhooks(id, tenant_id, agent_id, url, secret, format,"
	" created_at, signing) SELECT ?1, ?2, NULLIF(?3, ''), ?4, ?5, ?6, ?7,"
	" COALESCE(NULLIF(?9, ''), 'callplane')"
	" WHERE (SELECT COUNT(*) FROM webhooks WHERE tenant_id = ?2) < ?8"};
static const struct sql q_webhook_list = {S_WEBHOOK_LIST,
	"SELECT id, tenant_id, agent_id, url, format, created_at, signing FROM webhooks"
	" WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY created_at, id"};
static const struct sql q_webhook_update = {S_WEBHOOK_UPDATE,
	"UPDATE webhooks SET agent_id = NULLIF(?3, ''), url = ?4, format = ?5, signing = ?6,"
	" secret = COALESCE(NULLIF(?7, ''), secret) WHERE id = ?1 AND tenant_id = ?2"};
static const struct sql q_webhook_delete = {S_WEBHOOK_DELETE,
	"DELETE FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)"};
static const struct sql q_delivery_drop = {S_DELIVERY_DROP,
	"DELETE FROM deliveries WHERE webhook_id = ?1 AND status = 'pending'"};
/* rk: the delivery's place among its tenant's due ones; the offer takes rank 1 of every
 * tenant, then rank 2, ... (the payloads are read for the offered rows only) */
static const struct sql q_delivery_due = {S_DELIVERY_DUE,
	"SELECT d.id, e.id, e.type, e.payload, w.id, w.tenant_id, w.url, w.secret, w.format,"
	" d.attempts, d.created_at, w.signing FROM"
	" (SELECT id, at, rk FROM (SELECT d.id AS id, d.next_attempt_at AS at,"
	"   ROW_NUMBER() OVER (PARTITION BY w.tenant_id ORDER BY d.next_attempt_at, d.id) AS rk"
	"   FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id"
	"   WHERE d.status = 'pending' AND d.next_attempt_at <= ?1)"
	"  WHERE rk <= ?2 ORDER BY rk, at, id LIMIT ?2) r"
	" JOIN deliveries d ON d.id = r.id JOIN events e ON e.seq = d.event_seq"
	" JOIN webhooks w ON w.id = d.webhook_id ORDER BY r.rk, r.at, r.id"};
/* the lease and the give-up apply only to a delivery still due (?3: the offer's now) */
static const struct sql q_delivery_lease = {S_DELIVERY_LEASE,
	"UPDATE deliveries SET next_attempt_at = ?2, leased = ?4 WHERE id = ?1"
	" AND status = 'pending' AND next_attempt_at <= ?3"};
static const struct sql q_delivery_give_up = {S_DELIVERY_GIVE_UP,
	"UPDATE deliveries SET status = 'failed', next_attempt_at = ?3,"
	" last_error = COALESCE(last_error, ?2) WHERE id = ?1 AND status = 'pending'"
	" AND next_attempt_at <= ?3"};
static const struct sql q_delivery_release = {S_DELIVERY_RELEASE,
	"UPDATE deliveries SET next_attempt_at = ?2, leased = 0 WHERE id = ?1"
	" AND status = 'pending'"};
static const struct sql q_delivery_release_leased = {S_DELIVERY_RELEASE_LEASED,
	"UPDATE deliveries SET next_attempt_at = ?1, leased = 0 WHERE status = 'pending'"
	" AND leased = 1"};
static const struct sql q_delivery_record = {S_DELIVERY_RECORD,
	"UPDATE deliveries SET status = ?2, next_attempt_at = ?3, leased = 0,"
	" attempts = attempts + 1, last_status = NULLIF(?4, 0), last_error = ?5,"
	" delivered_at = CASE WHEN ?2 = 'delivered' THEN ?6 ELSE delivered_at END"
	" WHERE id = ?1"};
/* both through the partial index deliveries_due (pending rows, by next attempt) */
static const struct sql q_delivery_backlog = {S_DELIVERY_BACKLOG,
	"SELECT COUNT(*), COUNT(*) FILTER (WHERE next_attempt_at <= ?1) FROM deliveries"
	" WHERE status = 'pending'"};
static const struct sql q_delivery_list = {S_DELIVERY_LIST,
	"SELECT d.id, e.id, e.type, e.call_id, d.webhook_id, d.status, d.attempts,"
	" d.next_attempt_at, d.last_status, d.last_error, d.created_at,"
	" d.delivered_at FROM deliveries d JOIN events e ON e.seq = d.event_seq"
	" WHERE (?1 IS NULL OR e.tenant_id = ?1)"
	" AND ((?2 IS NULL AND d.status IN ('pending', 'failed')) OR d.status = ?2)"
	" ORDER BY d.id DESC LIMIT ?3"};
static const struct sql q_delivery_replay = {S_DELIVERY_REPLAY,
	"UPDATE deliveries SET status = 'pending', next_attempt_at = ?3,"
	" created_at = ?3 WHERE status = 'failed' AND (?2 = 0 OR id = ?2)"
	" AND event_seq IN (SELECT seq FROM events WHERE ?1 IS NULL OR tenant_id = ?1)"
	" AND webhook_id IN (SELECT id FROM webhooks)"};
static const struct sql q_events_since = {S_EVENTS_SINCE,
	"SELECT seq, type, payload FROM events WHERE tenant_id = ?1"
	" AND (?2 IS NULL OR agent_number = ?2) AND seq > ?3 ORDER BY seq LIMIT ?4"};
/* an operator's scope: every tenant's events */
static const struct sql q_events_since_all = {S_EVENTS_SINCE_ALL,
	"SELECT seq, type, payload FROM events WHERE ?1 IS NULL"
	" AND (?2 IS NULL OR agent_number = ?2) AND seq > ?3 ORDER BY seq LIMIT ?4"};
static const struct sql q_events_last = {S_EVENTS_LAST,
	"SELECT COALESCE(MAX(seq), 0) FROM events"};
/* clang-format on */

/* Writes an event row (tenant, agent: "" none, call: "" none) with its payload, and one
 * pending delivery per matching webhook: the tenant's, those of its agent (or of no agent),
 * canonical ones only when canonical_only. Inside the caller's transaction. */
static enum store_result write_event_row(struct conn *c, const char *event_id, const char *type,
					 const char *tenant_id, const char *agent_id,
					 const char *call_id, const char *payload,
					 bool canonical_only, int64_t now)
{
	sqlite3_stmt *ins = sq_stmt(c, &q_event_insert), *fan = sq_stmt(c, &q_delivery_fanout);
	if (!ins || !fan)
		return STORE_ERROR;
	sq_bind_text(ins, 1, event_id);
	sq_bind_text(ins, 2, tenant_id);
	sq_bind_text(ins, 3, agent_id);
	sq_bind_text(ins, 4, call_id);
	sq_bind_text(ins, 5, type);
	sqlite3_bind_int64(ins, 6, now);
	sq_bind_text(ins, 7, payload);
	int r = sqlite3_step(ins);
	sqlite3_reset(ins);
	if (r != SQLITE_DONE)
		return STORE_ERROR;
	sqlite3_bind_int64(fan, 1, sqlite3_last_insert_rowid(c->db));
	sqlite3_bind_int64(fan, 2, now);
	sq_bind_text(fan, 3, tenant_id);
	sq_bind_text(fan, 4, agent_id);
	sqlite3_bind_int(fan, 5, canonical_only);
	r = sqlite3_step(fan);
	sqlite3_reset(fan);
	return r == SQLITE_DONE ? STORE_OK : STORE_ERROR;
}

/* The envelope {"id","type","created_at"[,extra],"data": data} (malloc'd; NULL if out of
 * memory) for a new event id (event_id receives it). id, type and the time need no escaping
 * (ours, ASCII); extra and data are JSON already. */
static char *event_payload(const char *type, const char *extra, const char *data, int64_t now,
			   char event_id[CP_UUID_LEN + 1])
{
	char ts[CP_RFC3339_LEN + 1];
	if (cp_uuid4(event_id))
		return NULL;
	cp_rfc3339(now, ts);
	size_t size = strlen(data) + strlen(type) + strlen(extra) + 128;
	char *payload = malloc(size);
	if (payload)
		snprintf(payload, size,
			 "{\"id\":\"%s\",\"type\":\"%s\",\"created_at\":\"%s\"%s%s,\"data\":%s}",
			 event_id, type, ts, *extra ? "," : "", extra, data);
	return payload;
}

enum store_result sq_write_event(struct conn *c, const char *type, const struct call *call,
				 const char *extra, bool canonical_only, int64_t now)
{
	char event_id[CP_UUID_LEN + 1];
	char *data = call_to_json_text(call, NULL), *payload = NULL;
	enum store_result rc = STORE_ERROR;
	if (data && (payload = event_payload(type, extra, data, now, event_id)))
		rc = write_event_row(c, event_id, type, call->tenant_id, call->agent_id, call->id,
				     payload, canonical_only, now);
	if (rc != STORE_OK)
		log_msg(LOG_ERROR, "store_error", "outbox write: %s", sqlite3_errmsg(c->db));
	free(data);
	free(payload);
	return rc;
}

enum store_result sq_write_tenant_event(struct conn *c, const char *type, const char *tenant_id,
					const char *data, int64_t now)
{
	char event_id[CP_UUID_LEN + 1];
	char *payload = event_payload(type, "", data, now, event_id);
	enum store_result rc = STORE_ERROR;
	if (payload)
		rc = write_event_row(c, event_id, type, tenant_id, "", "", payload, true, now);
	if (rc != STORE_OK)
		log_msg(LOG_ERROR, "store_error", "outbox write: %s", sqlite3_errmsg(c->db));
	free(payload);
	return rc;
}

enum store_result sqlite_webhook_create(void *ctx, const struct webhook *w, int max_per_tenant)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_webhook_create);
	enum store_result rc = STORE_ERROR;
	if (st) {
		sq_bind_text(st, 1, w->id);
		sq_bind_text(st, 2, w->tenant_id);
		sq_bind_text(st, 3, w->agent_id);
		sq_bind_text(st, 4, w->url);
		sq_bind_text(st, 5, w->secret);
		sq_bind_text(st, 6, w->format);
		sqlite3_bind_int64(st, 7, w->created_at);
		sqlite3_bind_int(st, 8, max_per_tenant);
		sq_bind_text(st, 9, w->signing);
		sq_write_lock(h);
		int r = sqlite3_step(st);
		int changes = sqlite3_changes(c->db);
		sqlite3_reset(st);
		sq_write_unlock(h);
		/* no row and no error: the cap held (an unknown tenant fails the foreign key) */
		if (r != SQLITE_DONE)
			rc = sq_step_error(c, r);
		else
			rc = changes > 0 ? STORE_OK : STORE_CONFLICT;
	}
	sq_conn_put(h, c);
	return rc;
}

/* A listed webhook (id, tenant_id, agent_id, url, format, created_at, signing): no secret. */
static void webhook_row(sqlite3_stmt *st, void *row)
{
	struct webhook *w = row;
	sq_copy_col(st, 0, w->id, sizeof w->id);
	sq_copy_col(st, 1, w->tenant_id, sizeof w->tenant_id);
	sq_copy_col(st, 2, w->agent_id, sizeof w->agent_id);
	sq_copy_col(st, 3, w->url, sizeof w->url);
	sq_copy_col(st, 4, w->format, sizeof w->format);
	w->created_at = sqlite3_column_int64(st, 5);
	sq_copy_col(st, 6, w->signing, sizeof w->signing);
}

enum store_result sqlite_webhook_list(void *ctx, const char *tenant_id, struct webhook **out,
				      size_t *n)
{
	static const struct sq_rows rows = {sizeof **out, webhook_row, NULL};
	void *list;
	enum store_result rc = sq_list_all(ctx, &q_webhook_list, &rows, &list, n, "s", tenant_id);
	*out = list;
	return rc;
}

enum store_result sqlite_webhook_update(void *ctx, const struct webhook *w)
{
	return sq_write_one(ctx, &q_webhook_update, "sssssss", w->id, w->tenant_id, w->agent_id,
			    w->url, w->format, w->signing, w->secret);
}

enum store_result sqlite_webhook_delete(void *ctx, const char *tenant_id, const char *id)
{
	WITH_CONN(h, c);
	sqlite3_stmt *del = sq_stmt(c, &q_webhook_delete), *drop = sq_stmt(c, &q_delivery_drop);
	enum store_result rc = STORE_ERROR;
	if (del && drop) {
		sq_bind_text(del, 1, id);
		sq_bind_text(del, 2, tenant_id);
		rc = sq_run_write(h, c, del);
		if (rc == STORE_OK) {
			sq_bind_text(drop, 1, id);
			if (sq_run_write(h, c, drop) == STORE_ERROR)
				rc = STORE_ERROR;
		}
	}
	sq_conn_put(h, c);
	return rc;
}

/* Reads the offer of due deliveries into d (at most max), *count of them; false on an error
 * (the *count read so far are still the caller's to free). */
static bool read_due(sqlite3_stmt *due, int64_t now, int max, struct delivery *d, int *count)
{
	int r = SQLITE_DONE;
	bool ok = true;
	*count = 0;
	sqlite3_bind_int64(due, 1, now);
	sqlite3_bind_int(due, 2, max);
	while (ok && *count < max && (r = sqlite3_step(due)) == SQLITE_ROW) {
		struct delivery *x = &d[(*count)++];
		x->id = sqlite3_column_int64(due, 0);
		sq_copy_col(due, 1, x->event_id, sizeof x->event_id);
		sq_copy_col(due, 2, x->type, sizeof x->type);
		const unsigned char *p = sqlite3_column_text(due, 3);
		x->payload = strdup(p ? (const char *)p : "{}");
		sq_copy_col(due, 4, x->webhook_id, sizeof x->webhook_id);
		sq_copy_col(due, 5, x->tenant_id, sizeof x->tenant_id);
		sq_copy_col(due, 6, x->url, sizeof x->url);
		sq_copy_col(due, 7, x->secret, sizeof x->secret);
		sq_copy_col(due, 8, x->format, sizeof x->format);
		x->attempts = sqlite3_column_int(due, 9);
		x->created_at = sqlite3_column_int64(due, 10);
		sq_copy_col(due, 11, x->signing, sizeof x->signing);
		ok = x->payload != NULL;
	}
	sqlite3_reset(due);
	return ok && (r == SQLITE_DONE || r == SQLITE_ROW);
}

/* Applies one pick, only to a delivery still due at now: a lease or a hold moves its next
 * attempt, a give-up fails it. A TAKE that no longer applies (its webhook was deleted
 * meanwhile) becomes DELIVERY_GONE. */
static bool apply_pick(struct conn *c, sqlite3_stmt *lease, sqlite3_stmt *give_up,
		       struct delivery *d, int64_t now, int64_t lease_until)
{
	sqlite3_stmt *st = lease;
	switch (d->pick) {
	case DELIVERY_LEAVE:
	case DELIVERY_GONE: return true;
	case DELIVERY_TAKE:
	case DELIVERY_HOLD:
		sqlite3_bind_int64(lease, 1, d->id);
		sqlite3_bind_int64(lease, 2,
				   d->pick == DELIVERY_TAKE ? lease_until : d->hold_until);
		sqlite3_bind_int64(lease, 3, now);
		sqlite3_bind_int(lease, 4, d->pick == DELIVERY_TAKE);
		break;
	case DELIVERY_GIVE_UP:
		st = give_up;
		sqlite3_bind_int64(give_up, 1, d->id);
		sq_bind_text(give_up, 2, d->why ? d->why : "given up");
		sqlite3_bind_int64(give_up, 3, now);
		break;
	}
	bool ok = sqlite3_step(st) == SQLITE_DONE;
	if (ok && d->pick == DELIVERY_TAKE && sqlite3_changes(c->db) == 0)
		d->pick = DELIVERY_GONE;
	sqlite3_reset(st);
	return ok;
}

/* Applies the picks in one transaction; false (nothing applied) on an error. */
static bool apply_picks(struct sqlite_handle *h, struct conn *c, struct delivery *d, int count,
			int64_t now, int64_t lease_until)
{
	sqlite3_stmt *lease = sq_stmt(c, &q_delivery_lease),
		     *give_up = sq_stmt(c, &q_delivery_give_up);
	int writes = 0;
	for (int i = 0; i < count; i++)
		writes += d[i].pick != DELIVERY_LEAVE;
	if (!writes)
		return true;
	struct call_write w;
	if (!lease || !give_up || sq_write_open(h, c, NULL, true, &w) != STORE_OK)
		return false;
	enum store_result rc = STORE_OK;
	for (int i = 0; rc == STORE_OK && i < count; i++)
		if (!apply_pick(c, lease, give_up, &d[i], now, lease_until))
			rc = STORE_ERROR;
	return sq_write_close(h, c, &w, rc) == STORE_OK;
}

enum store_result sqlite_delivery_lease(void *ctx, int64_t now, int64_t lease_until, int max,
					delivery_picker *pick, void *arg, struct delivery **out,
					size_t *n)
{
	WITH_CONN(h, c);
	sqlite3_stmt *due = sq_stmt(c, &q_delivery_due);
	*out = NULL;
	*n = 0;
	struct delivery *d = calloc((size_t)(max > 0 ? max : 1), sizeof *d);
	int count = 0;
	if (!due || !d || max < 1 || !read_due(due, now, max, d, &count)) {
		log_msg(LOG_ERROR, "store_error", "delivery offer: %s", sqlite3_errmsg(c->db));
		delivery_list_free(d, (size_t)count);
		sq_conn_put(h, c);
		return STORE_ERROR;
	}
	enum store_result rc = STORE_OK;
	if (count > 0) {
		pick(arg, d, (size_t)count);
		if (!apply_picks(h, c, d, count, now, lease_until)) {
			log_msg(LOG_ERROR, "store_error", "delivery lease: %s",
				sqlite3_errmsg(c->db));
			for (int i = 0; i < count; i++)
				if (d[i].pick == DELIVERY_TAKE)
					d[i].pick = DELIVERY_GONE;
			rc = STORE_ERROR;
		}
	}
	sq_conn_put(h, c);
	*out = d;
	*n = (size_t)count;
	return rc;
}

enum store_result sqlite_delivery_release_leased(void *ctx, int64_t now)
{
	return sq_write_one(ctx, &q_delivery_release_leased, "I", now);
}

enum store_result sqlite_delivery_release(void *ctx, const int64_t *ids, size_t n, int64_t next_at)
{
	WITH_CONN(h, c);
	sqlite3_stmt *release = sq_stmt(c, &q_delivery_release);
	struct call_write w;
	enum store_result rc = release ? sq_write_open(h, c, NULL, true, &w) : STORE_ERROR;
	if (rc == STORE_OK) {
		for (size_t i = 0; i < n && rc == STORE_OK; i++) {
			sqlite3_bind_int64(release, 1, ids[i]);
			sqlite3_bind_int64(release, 2, next_at);
			if (sqlite3_step(release) != SQLITE_DONE)
				rc = STORE_ERROR;
			sqlite3_reset(release);
		}
		rc = sq_write_close(h, c, &w, rc);
	}
	if (rc != STORE_OK)
		log_msg(LOG_ERROR, "store_error", "delivery release: %s", sqlite3_errmsg(c->db));
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_delivery_record(void *ctx, int64_t id, const char *status, int64_t next_at,
					 int http_status, const char *error, int64_t now)
{
	return sq_write_one(ctx, &q_delivery_record, "IsIisI", id, status, next_at, http_status,
			    error, now);
}

static void delivery_row(sqlite3_stmt *st, void *row)
{
	struct delivery_row *d = row;
	d->id = sqlite3_column_int64(st, 0);
	sq_copy_col(st, 1, d->event_id, sizeof d->event_id);
	sq_copy_col(st, 2, d->event_type, sizeof d->event_type);
	sq_copy_col(st, 3, d->call_id, sizeof d->call_id);
	sq_copy_col(st, 4, d->webhook_id, sizeof d->webhook_id);
	sq_copy_col(st, 5, d->status, sizeof d->status);
	d->attempts = sqlite3_column_int(st, 6);
	d->next_attempt_at = sqlite3_column_int64(st, 7);
	d->last_status = sqlite3_column_int(st, 8);
	const unsigned char *err = sqlite3_column_text(st, 9);
	d->last_error = err ? strdup((const char *)err) : NULL;
	d->created_at = sqlite3_column_int64(st, 10);
	d->delivered_at = sqlite3_column_int64(st, 11);
}

static void delivery_row_clear(void *row)
{
	free(((struct delivery_row *)row)->last_error);
}

enum store_result sqlite_delivery_list(void *ctx, const char *tenant_id, const char *status,
				       int limit, struct delivery_row **out, size_t *n)
{
	static const struct sq_rows rows = {sizeof **out, delivery_row, delivery_row_clear};
	void *list;
	enum store_result rc = sq_list_all(ctx, &q_delivery_list, &rows, &list, n, "ssi", tenant_id,
					   status, limit);
	*out = list;
	return rc;
}

enum store_result sqlite_delivery_replay(void *ctx, const char *tenant_id, int64_t id, int64_t now,
					 int *count)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_delivery_replay);
	enum store_result rc = STORE_ERROR;
	*count = 0;
	if (st) {
		sq_bind_text(st, 1, tenant_id);
		sqlite3_bind_int64(st, 2, id);
		sqlite3_bind_int64(st, 3, now);
		sq_write_lock(h);
		int r = sqlite3_step(st);
		*count = sqlite3_changes(c->db);
		sqlite3_reset(st);
		sq_write_unlock(h);
		rc = r == SQLITE_DONE ? STORE_OK : sq_step_error(c, r);
	}
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_events_since(void *ctx, const struct scope *sc, int64_t after_seq,
				      int limit, struct stored_event **out, size_t *n)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, sc->all ? &q_events_since_all : &q_events_since);
	enum store_result rc = STORE_ERROR;
	*out = NULL;
	*n = 0;
	struct stored_event *ev = limit > 0 ? calloc((size_t)limit, sizeof *ev) : NULL;
	if (st && ev) {
		sq_bind_text(st, 1, sc->all ? NULL : sc->tenant_id);
		sq_bind_opt_text(st, 2, sc->all ? NULL : sc->number);
		sqlite3_bind_int64(st, 3, after_seq);
		sqlite3_bind_int(st, 4, limit);
		size_t count = 0;
		int r = SQLITE_DONE;
		while (count < (size_t)limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
			ev[count].seq = sqlite3_column_int64(st, 0);
			sq_copy_col(st, 1, ev[count].type, sizeof ev[count].type);
			const unsigned char *p = sqlite3_column_text(st, 2);
			ev[count].payload = strdup(p ? (const char *)p : "{}");
			count++;
		}
		sqlite3_reset(st);
		if (count < (size_t)limit && r != SQLITE_DONE) {
			rc = sq_step_error(c, r);
			event_list_free(ev, count);
		} else {
			*out = ev;
			*n = count;
			rc = STORE_OK;
		}
	} else {
		free(ev);
	}
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_events_last_seq(void *ctx, int64_t *out)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_events_last);
	enum store_result rc = STORE_ERROR;
	if (st) {
		int r = sqlite3_step(st);
		*out = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		rc = r == SQLITE_ROW ? STORE_OK : sq_step_error(c, r);
		sqlite3_reset(st);
	}
	sq_conn_put(h, c);
	return rc;
}

enum store_result sqlite_delivery_backlog(void *ctx, int64_t now, int64_t *pending, int64_t *due)
{
	WITH_CONN(h, c);
	sqlite3_stmt *st = sq_stmt(c, &q_delivery_backlog);
	enum store_result rc = STORE_ERROR;
	*pending = *due = 0;
	if (st) {
		sqlite3_bind_int64(st, 1, now);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			*pending = sqlite3_column_int64(st, 0);
			*due = sqlite3_column_int64(st, 1);
		}
		rc = r == SQLITE_ROW ? STORE_OK : sq_step_error(c, r);
		sqlite3_reset(st);
	}
	sq_conn_put(h, c);
	return rc;
}
