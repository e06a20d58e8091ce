/*
 * store_sqlite.c - the embedded store: SQLite in WAL mode.
 *
 * Design:
 *   - A small pool of connections, one borrowed per operation, each with its own cache of
 *     prepared statements. WAL lets readers run in parallel with the single writer, so reads
 *     (GET /v1/calls/{id}) never wait on ends.
 *   - Writes inside this process are serialised by write_mu instead of SQLite's busy handler:
 *     the busy handler sleeps and retries, which adds milliseconds of latency under contention,
 *     while a mutex hands over in microseconds. busy_timeout still covers other processes (the
 *     admin CLI writes to the same file while the server runs).
 *   - synchronous=FULL by default: in WAL mode each commit is fsync'd before the call returns,
 *     so a call reported ended stays ended after a crash or power loss. NORMAL survives a process
 *     crash (kill -9) but may lose the last commits on power loss; it is offered for measurement.
 *   - Migrations are versioned by PRAGMA user_version and applied under BEGIN IMMEDIATE, so two
 *     processes opening a new database at once apply each migration exactly once.
 *   - Status is stored as its name (readable with the sqlite3 shell); a set of statuses is
 *     passed as ",queued,ringing," and tested with instr(), which keeps every statement static.
 */
#include "store.h"
#include "call_cache.h"
#include "key_cache.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <sqlite3.h>

/* Rows the call cache holds at most (about 1.2 KiB each): the live calls of a busy node and the
 * ones just ended, which is what clients poll. */
#define CALL_CACHE_SLOTS 16384u

static const char *const migrations[] = {
	/* 1: the spine */
	"CREATE TABLE tenants ("
	"  id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at INTEGER NOT NULL);"
	"CREATE TABLE agents ("
	"  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),"
	"  name TEXT NOT NULL, number TEXT UNIQUE, max_duration_s INTEGER,"
	"  created_at INTEGER NOT NULL);"
	"CREATE INDEX agents_tenant ON agents(tenant_id);"
	"CREATE TABLE api_keys ("
	"  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), number TEXT,"
	"  hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, created_at INTEGER NOT NULL,"
	"  revoked_at INTEGER);"
	"CREATE TABLE calls ("
	"  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
	"  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
	"  agent_id TEXT NOT NULL REFERENCES agents(id),"
	"  direction TEXT NOT NULL, status TEXT NOT NULL, from_addr TEXT, to_addr TEXT,"
	"  provider_call_id TEXT, end_reason TEXT, sip_status INTEGER, max_duration_s INTEGER,"
	"  created_at INTEGER NOT NULL, answered_at INTEGER, ended_at INTEGER,"
	"  redacted_at INTEGER, metadata TEXT, prev_status TEXT);"
	"CREATE INDEX calls_provider ON calls(provider_call_id) WHERE provider_call_id IS NOT NULL;"
	"CREATE INDEX calls_tenant_seq ON calls(tenant_id, seq);"
	"CREATE INDEX calls_active ON calls(status) WHERE status IN ('queued','ringing','in_progress');"
	"CREATE TABLE idempotency ("
	"  key_id TEXT NOT NULL, idem_key TEXT NOT NULL, request_hash TEXT NOT NULL,"
	"  status INTEGER NOT NULL DEFAULT 0, body TEXT, created_at INTEGER NOT NULL,"
	"  PRIMARY KEY (key_id, idem_key)) WITHOUT ROWID;"
	"CREATE INDEX idempotency_created ON idempotency(created_at);",

	/* 2: rate limits, webhooks and the event outbox */
	"ALTER TABLE api_keys ADD COLUMN rate_limit INTEGER;"
	"CREATE TABLE webhooks ("
	"  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),"
	"  agent_id TEXT REFERENCES agents(id), url TEXT NOT NULL, secret TEXT NOT NULL,"
	"  format TEXT NOT NULL, created_at INTEGER NOT NULL);"
	"CREATE INDEX webhooks_tenant ON webhooks(tenant_id);"
	"CREATE TABLE events ("
	"  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, tenant_id TEXT NOT NULL,"
	"  agent_id TEXT NOT NULL, agent_number TEXT, call_id TEXT NOT NULL, type TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL, payload TEXT NOT NULL);"
	"CREATE INDEX events_tenant_seq ON events(tenant_id, seq);"
	"CREATE TABLE deliveries ("
	"  id INTEGER PRIMARY KEY, event_seq INTEGER NOT NULL REFERENCES events(seq),"
	"  webhook_id TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt_at INTEGER NOT NULL, last_status INTEGER, last_error TEXT,"
	"  created_at INTEGER NOT NULL, delivered_at INTEGER);"
	"CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';"
	"CREATE INDEX deliveries_webhook ON deliveries(webhook_id, status);",

	/* 3: the media plane: each agent's audio WebSocket, and the one each call streams to
	 * (NULL = none); existing rows have none */
	"ALTER TABLE agents ADD COLUMN stream_url TEXT;"
	"ALTER TABLE calls ADD COLUMN stream_url TEXT;",
};

#define CALL_COLS(t)                                                                          \
	t "seq, " t "id, " t "tenant_id, " t "agent_id, " t "direction, " t "status, "       \
	t "from_addr, " t "to_addr, " t "provider_call_id, " t "end_reason, " t "sip_status, " \
	t "max_duration_s, " t "created_at, " t "answered_at, " t "ended_at, " t "redacted_at, " \
	t "metadata, " t "stream_url"

/* One conditional step of a call (sqlite_call_update); `provider` is the SET clause for
 * provider_call_id, or "". */
#define CALL_UPDATE_SQL(provider)                                                             \
	"UPDATE calls SET prev_status = status, status = ?2,"                                 \
	" answered_at = COALESCE(?3, answered_at), ended_at = COALESCE(?4, ended_at),"        \
	" end_reason = COALESCE(?5, end_reason), sip_status = COALESCE(?6, sip_status)"       \
	provider " WHERE id = ?1 AND instr(?8, ',' || status || ',') > 0"                     \
	" RETURNING " CALL_COLS("") ", prev_status"

/* Columns after CALL_COLS: prev_status (CALL_UPDATE_SQL), the agent's number (cacheable). */
#define CALL_COL_EXTRA 18

enum stmt_id {
	S_TENANT_CREATE, S_TENANT_EXISTS, S_TENANT_LIST,
	S_AGENT_CREATE, S_AGENT_GET, S_AGENT_BY_NUMBER, S_AGENT_LIST, S_AGENT_UPDATE,
	S_KEY_CREATE, S_KEY_BY_HASH, S_KEY_LIST, S_KEY_REVOKE,
	S_CALL_INSERT, S_CALL_GET, S_CALL_GET_TENANT, S_CALL_GET_RAW, S_CALL_GET_CACHEABLE,
	S_CALL_LIST, S_CALL_UPDATE, S_CALL_UPDATE_KEEP_PROVIDER, S_CALL_REDACT,
	S_CALL_ACTIVE,
	S_IDEM_EXPIRE, S_IDEM_INSERT, S_IDEM_GET, S_IDEM_COMPLETE, S_IDEM_RELEASE, S_IDEM_PURGE,
	S_EVENT_INSERT, S_DELIVERY_FANOUT, S_WEBHOOK_CREATE, S_WEBHOOK_LIST, S_WEBHOOK_DELETE,
	S_DELIVERY_DROP, S_DELIVERY_DUE, S_DELIVERY_LEASE, S_DELIVERY_RECORD, S_DELIVERY_LIST,
	S_DELIVERY_REPLAY, S_EVENTS_SINCE, S_EVENTS_LAST,
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_TENANT_CREATE] = "INSERT INTO tenants(id, name, created_at) VALUES (?1, ?2, ?3)",
	[S_TENANT_EXISTS] = "SELECT 1 FROM tenants WHERE id = ?1",
	[S_TENANT_LIST] = "SELECT id, name, created_at FROM tenants ORDER BY created_at, id",
	[S_AGENT_CREATE] = "INSERT INTO agents(id, tenant_id, name, number, max_duration_s, created_at,"
			   " stream_url) VALUES (?1, ?2, ?3, NULLIF(?4, ''), NULLIF(?5, 0), ?6,"
			   " NULLIF(?7, ''))",
	[S_AGENT_GET] = "SELECT id, tenant_id, name, number, max_duration_s, created_at, stream_url"
			" FROM agents WHERE id = ?1 AND tenant_id = ?2 AND (?3 IS NULL OR number = ?3)",
	[S_AGENT_BY_NUMBER] = "SELECT id, tenant_id, name, number, max_duration_s, created_at,"
			      " stream_url FROM agents WHERE number = ?1",
	[S_AGENT_LIST] = "SELECT id, tenant_id, name, number, max_duration_s, created_at, stream_url"
			 " FROM agents WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY created_at, id",
	[S_AGENT_UPDATE] = "UPDATE agents SET stream_url = NULLIF(?2, '') WHERE id = ?1",
	[S_KEY_CREATE] = "INSERT INTO api_keys(id, tenant_id, number, hash, prefix, created_at,"
			 " rate_limit) VALUES (?1, ?2, NULLIF(?3, ''), ?4, ?5, ?6, NULLIF(?7, 0))",
	[S_KEY_BY_HASH] = "SELECT id, tenant_id, number, hash, prefix, created_at, revoked_at,"
			  " rate_limit FROM api_keys WHERE hash = ?1",
	[S_KEY_LIST] = "SELECT id, tenant_id, number, prefix, created_at, revoked_at, rate_limit"
		       " FROM api_keys WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY created_at, id",
	[S_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
	[S_CALL_INSERT] = "INSERT INTO calls(id, tenant_id, agent_id, direction, status, from_addr,"
			  " to_addr, provider_call_id, end_reason, sip_status, max_duration_s,"
			  " created_at, answered_at, ended_at, metadata, stream_url) VALUES (?1, ?2,"
			  " ?3, ?4, ?5, ?6, ?7, NULLIF(?8, ''), NULLIF(?9, ''), NULLIF(?10, 0),"
			  " NULLIF(?11, 0), ?12, NULLIF(?13, 0), NULLIF(?14, 0), ?15, ?16)",
	/* id match first: a provider call id can never shadow a call id */
	[S_CALL_GET] = "SELECT " CALL_COLS("calls.") " FROM calls JOIN agents a ON a.id = calls.agent_id"
		       " WHERE (calls.id = ?1 OR calls.provider_call_id = ?1)"
		       " AND calls.tenant_id = ?2 AND a.number = ?3"
		       " ORDER BY calls.id = ?1 DESC LIMIT 1",
	/* the same for a tenant-wide (or unscoped) read: no agent to join, the hot GET path */
	[S_CALL_GET_TENANT] = "SELECT " CALL_COLS("") " FROM calls"
			      " WHERE (id = ?1 OR provider_call_id = ?1)"
			      " AND (?2 IS NULL OR tenant_id = ?2) ORDER BY id = ?1 DESC LIMIT 1",
	[S_CALL_GET_RAW] = "SELECT " CALL_COLS("") " FROM calls WHERE id = ?1",
	/* a row for the call cache: by id only, with its agent's number for number scopes */
	[S_CALL_GET_CACHEABLE] = "SELECT " CALL_COLS("calls.") ", a.number FROM calls"
				 " JOIN agents a ON a.id = calls.agent_id WHERE calls.id = ?1",
	[S_CALL_LIST] = "SELECT " CALL_COLS("calls.") " FROM calls JOIN agents a ON a.id = calls.agent_id"
			" WHERE calls.tenant_id = ?1 AND (?2 IS NULL OR a.number = ?2)"
			" AND (?3 IS NULL OR instr(?3, ',' || calls.status || ',') > 0)"
			" AND (?4 IS NULL OR calls.agent_id = ?4) AND (?5 = 0 OR calls.seq < ?5)"
			" ORDER BY calls.seq DESC LIMIT ?6",
	/* in an UPDATE, right-hand sides see the old row: prev_status keeps where we came from */
	[S_CALL_UPDATE] = CALL_UPDATE_SQL(", provider_call_id = COALESCE(?7, provider_call_id)"),
	/* the same without provider_call_id (?7 unused): a column in SET makes SQLite rewrite
	 * its index entry (calls_provider) even when the value stays, and most steps (an end)
	 * do not set it */
	[S_CALL_UPDATE_KEEP_PROVIDER] = CALL_UPDATE_SQL(""),
	[S_CALL_REDACT] = "UPDATE calls SET from_addr = NULL, to_addr = NULL, metadata = NULL,"
			  " redacted_at = COALESCE(redacted_at, ?2)"
			  " WHERE id = ?1 AND status NOT IN ('queued', 'ringing', 'in_progress')"
			  " RETURNING " CALL_COLS(""),
	[S_CALL_ACTIVE] = "SELECT id FROM calls WHERE status IN ('queued', 'ringing', 'in_progress')",
	[S_IDEM_EXPIRE] = "DELETE FROM idempotency WHERE key_id = ?1 AND idem_key = ?2 AND created_at < ?3",
	[S_IDEM_INSERT] = "INSERT INTO idempotency(key_id, idem_key, request_hash, created_at)"
			  " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
	[S_IDEM_GET] = "SELECT request_hash, status, body, created_at FROM idempotency"
		       " WHERE key_id = ?1 AND idem_key = ?2",
	[S_IDEM_COMPLETE] = "UPDATE idempotency SET status = ?3, body = ?4 WHERE key_id = ?1 AND idem_key = ?2",
	[S_IDEM_RELEASE] = "DELETE FROM idempotency WHERE key_id = ?1 AND idem_key = ?2 AND status = 0",
	[S_IDEM_PURGE] = "DELETE FROM idempotency WHERE created_at < ?1",
	[S_EVENT_INSERT] = "INSERT INTO events(id, tenant_id, agent_id, agent_number, call_id, type,"
			   " created_at, payload) VALUES (?1, ?2, ?3,"
			   " (SELECT number FROM agents WHERE id = ?3), ?4, ?5, ?6, ?7)",
	/* ?5 = 1: an event only the canonical format carries (call.dtmf) */
	[S_DELIVERY_FANOUT] = "INSERT INTO deliveries(event_seq, webhook_id, status, next_attempt_at,"
			      " created_at) SELECT ?1, id, 'pending', ?2, ?2 FROM webhooks"
			      " WHERE tenant_id = ?3 AND (agent_id IS NULL OR agent_id = ?4)"
			      " AND (?5 = 0 OR format = 'canonical')",
	[S_WEBHOOK_CREATE] = "INSERT INTO webhooks(id, tenant_id, agent_id, url, secret, format,"
			     " created_at) VALUES (?1, ?2, NULLIF(?3, ''), ?4, ?5, ?6, ?7)",
	[S_WEBHOOK_LIST] = "SELECT id, tenant_id, agent_id, url, format, created_at FROM webhooks"
			   " WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY created_at, id",
	[S_WEBHOOK_DELETE] = "DELETE FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)",
	[S_DELIVERY_DROP] = "DELETE FROM deliveries WHERE webhook_id = ?1 AND status = 'pending'",
	[S_DELIVERY_DUE] = "SELECT d.id, e.id, e.type, e.payload, w.url, w.secret, w.format,"
			   " d.attempts, d.created_at FROM deliveries d"
			   " JOIN events e ON e.seq = d.event_seq JOIN webhooks w ON w.id = d.webhook_id"
			   " WHERE d.status = 'pending' AND d.next_attempt_at <= ?1"
			   " ORDER BY d.next_attempt_at, d.id LIMIT ?2",
	[S_DELIVERY_LEASE] = "UPDATE deliveries SET next_attempt_at = ?2 WHERE id = ?1",
	[S_DELIVERY_RECORD] = "UPDATE deliveries SET status = ?2, next_attempt_at = ?3,"
			      " attempts = attempts + 1, last_status = NULLIF(?4, 0), last_error = ?5,"
			      " delivered_at = CASE WHEN ?2 = 'delivered' THEN ?6 ELSE delivered_at END"
			      " WHERE id = ?1",
	[S_DELIVERY_LIST] = "SELECT d.id, e.id, e.type, e.call_id, d.webhook_id, d.status, d.attempts,"
			    " d.next_attempt_at, d.last_status, d.last_error, d.created_at,"
			    " d.delivered_at FROM deliveries d JOIN events e ON e.seq = d.event_seq"
			    " WHERE (?1 IS NULL OR e.tenant_id = ?1)"
			    " AND ((?2 IS NULL AND d.status IN ('pending', 'failed')) OR d.status = ?2)"
			    " ORDER BY d.id DESC LIMIT ?3",
	[S_DELIVERY_REPLAY] = "UPDATE deliveries SET status = 'pending', next_attempt_at = ?3,"
			      " created_at = ?3 WHERE status = 'failed' AND (?2 = 0 OR id = ?2)"
			      " AND event_seq IN (SELECT seq FROM events WHERE ?1 IS NULL OR tenant_id = ?1)"
			      " AND webhook_id IN (SELECT id FROM webhooks)",
	[S_EVENTS_SINCE] = "SELECT seq, type, payload FROM events WHERE tenant_id = ?1"
			   " AND (?2 IS NULL OR agent_number = ?2) AND seq > ?3 ORDER BY seq LIMIT ?4",
	[S_EVENTS_LAST] = "SELECT COALESCE(MAX(seq), 0) FROM events",
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
};

struct conn {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT];
	struct conn *next;
};

struct sqlite_store {
	char *path;
	bool sync_full;
	pthread_mutex_t pool_mu;
	struct conn *free_list;
	struct conn *all[64];           /* every connection ever opened, for close */
	int n_all;
	pthread_mutex_t write_mu;       /* serialises this process's writers; see top comment */
	/* Server mode only (store_options.server): this process is the only writer of calls,
	 * which is what makes a cache of call rows coherent. NULL otherwise. */
	struct call_cache *calls;
	struct key_cache *keys;
};

/* A batch (group commit): the thread that opened it owns one connection, one open transaction
 * and write_mu until batch_end(); its operations reuse them. Many transitions then share one
 * COMMIT, i.e. one fsync. A step that fails half-way (its UPDATE applied, its event not)
 * marks the batch failed, and batch_end() rolls the whole batch back: the caller re-applies
 * its steps one by one. (Cheaper than a savepoint around every step, on the hot path.) */
static __thread struct {
	struct sqlite_store *s;
	struct conn *c;
	bool failed;    /* a step failed half-way: the batch must not commit */
	/* call cache writes the batch has open, per stripe: ended once the batch has ended */
	unsigned open[CALL_CACHE_STRIPES];
} tl_batch;

static bool in_batch(struct sqlite_store *s)
{
	return tl_batch.s == s;
}

static void write_lock(struct sqlite_store *s)
{
	if (!in_batch(s))
		pthread_mutex_lock(&s->write_mu);
}

static void write_unlock(struct sqlite_store *s)
{
	if (!in_batch(s))
		pthread_mutex_unlock(&s->write_mu);
}

/* The call cache's write brackets (call_cache.h). Before a write of a call: begin; it
 * returns the stripe to end (-1: no cache). After it: end at once outside a batch (the
 * statement autocommitted); inside one the batch counts it, and batch_end() ends it after the
 * COMMIT. */
static int call_write_begin(struct sqlite_store *s, const char *id)
{
	if (!s->calls)
		return -1;
	unsigned stripe = call_cache_write_begin(s->calls, id);
	if (in_batch(s))
		tl_batch.open[stripe]++;
	return (int)stripe;
}

static void call_write_end(struct sqlite_store *s, int stripe)
{
	if (stripe >= 0 && !in_batch(s))
		call_cache_write_end(s->calls, (unsigned)stripe, 1);
}

/* ---- connections ------------------------------------------------------------------------ */

static int exec_sql(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		log_msg(LOG_ERROR, "store_error", "%s: %s", sql, err ? err : sqlite3_errmsg(db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static struct conn *conn_open(struct sqlite_store *s)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(s->path, &c->db, flags, NULL) != SQLITE_OK) {
		log_msg(LOG_ERROR, "store_error", "cannot open %s: %s", s->path,
			c->db ? sqlite3_errmsg(c->db) : "out of memory");
		sqlite3_close(c->db);
		free(c);
		return NULL;
	}
	sqlite3_extended_result_codes(c->db, 1);   /* tell a foreign-key miss from a unique clash */
	sqlite3_busy_timeout(c->db, 10000);
	char pragmas[256];
	snprintf(pragmas, sizeof pragmas,
		 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;",
		 s->sync_full ? "FULL" : "NORMAL");
	if (exec_sql(c->db, pragmas)) {
		sqlite3_close(c->db);
		free(c);
		return NULL;
	}
	return c;
}

static void conn_close(struct conn *c)
{
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	sqlite3_close(c->db);
	free(c);
}

static struct conn *conn_get(struct sqlite_store *s)
{
	if (in_batch(s))
		return tl_batch.c;
	pthread_mutex_lock(&s->pool_mu);
	struct conn *c = s->free_list;
	if (c) {
		s->free_list = c->next;
		pthread_mutex_unlock(&s->pool_mu);
		return c;
	}
	pthread_mutex_unlock(&s->pool_mu);
	c = conn_open(s);
	if (!c)
		return NULL;
	pthread_mutex_lock(&s->pool_mu);
	if (s->n_all < (int)(sizeof s->all / sizeof s->all[0])) {
		s->all[s->n_all++] = c;
	} else {  /* more concurrent users than we keep: this one is closed on put */
		c->next = (struct conn *)-1;
	}
	pthread_mutex_unlock(&s->pool_mu);
	return c;
}

static void conn_put(struct sqlite_store *s, struct conn *c)
{
	if (in_batch(s) && c == tl_batch.c)
		return;
	if (c->next == (struct conn *)-1) {
		conn_close(c);
		return;
	}
	pthread_mutex_lock(&s->pool_mu);
	c->next = s->free_list;
	s->free_list = c;
	pthread_mutex_unlock(&s->pool_mu);
}

/* A ready-to-bind statement: prepared once per connection, reset and cleared on each use. */
static sqlite3_stmt *stmt(struct conn *c, enum stmt_id id)
{
	if (!c->stmt[id]) {
		if (sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
				       &c->stmt[id], NULL) != SQLITE_OK) {
			log_msg(LOG_ERROR, "store_error", "prepare %d: %s", id, sqlite3_errmsg(c->db));
			return NULL;
		}
	}
	sqlite3_reset(c->stmt[id]);
	sqlite3_clear_bindings(c->stmt[id]);
	return c->stmt[id];
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *v)
{
	bind_text(st, i, v && *v ? v : NULL);
}

static void bind_opt_int(sqlite3_stmt *st, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* A text column into a fixed buffer, cut to fit (as snprintf would, without its cost: a
 * call row has eight of these). */
static void copy_col(sqlite3_stmt *st, int col, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
	if (n >= size)
		n = size - 1;
	if (n)
		memcpy(dst, t, n);
	dst[n] = '\0';
}

static int step_error(struct conn *c, int rc)
{
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		return rc == SQLITE_CONSTRAINT_FOREIGNKEY ? STORE_NOT_FOUND : STORE_CONFLICT;
	}
	log_msg(LOG_ERROR, "store_error", "step: %s", sqlite3_errmsg(c->db));
	return STORE_ERROR;
}

/* Runs a write statement to completion. */
static int run_write(struct sqlite_store *s, struct conn *c, sqlite3_stmt *st)
{
	write_lock(s);
	int rc = sqlite3_step(st);
	int changes = sqlite3_changes(c->db);
	sqlite3_reset(st);
	write_unlock(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return step_error(c, rc);
	return changes > 0 ? STORE_OK : STORE_NOT_FOUND;
}

/* ---- open / migrate --------------------------------------------------------------------- */

static int migrate(struct conn *c)
{
	int n = (int)(sizeof migrations / sizeof migrations[0]);
	for (;;) {
		if (exec_sql(c->db, "BEGIN IMMEDIATE"))
			return -1;
		sqlite3_stmt *st;
		int version = 0;
		if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
			if (sqlite3_step(st) == SQLITE_ROW)
				version = sqlite3_column_int(st, 0);
			sqlite3_finalize(st);
		}
		if (version >= n) {
			exec_sql(c->db, "COMMIT");
			return version > n ? -1 : 0;   /* newer schema than this binary: refuse */
		}
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version = %d", version + 1);
		if (exec_sql(c->db, migrations[version]) || exec_sql(c->db, bump)) {
			exec_sql(c->db, "ROLLBACK");
			return -1;
		}
		if (exec_sql(c->db, "COMMIT"))
			return -1;
		log_json(LOG_INFO, "store_migrated", json_pack("{s:i}", "version", version + 1));
	}
}

static void sqlite_close(void *ctx)
{
	struct sqlite_store *s = ctx;
	if (!s)
		return;
	for (int i = 0; i < s->n_all; i++)
		conn_close(s->all[i]);
	call_cache_destroy(s->calls);
	key_cache_close(s->keys);
	pthread_mutex_destroy(&s->pool_mu);
	pthread_mutex_destroy(&s->write_mu);
	free(s->path);
	free(s);
}

/* Server mode: one server per database. Two would each end the other's calls as left over
 * from a crash, and this one's call cache would miss the other's writes. The lock is an
 * flock() on <db>-keys, which the server holds open for its key cache anyway. Not on the
 * database file: closing any descriptor of that file (say, after a refused lock) would drop
 * every POSIX lock this process holds on it, SQLite's included. The admin CLI takes no lock
 * and keeps working next to the server. */
static int server_lock(struct sqlite_store *s)
{
	s->keys = key_cache_open(s->path);
	if (!s->keys)
		return -1;
	if (flock(key_cache_fd(s->keys), LOCK_EX | LOCK_NB)) {
		if (errno == EWOULDBLOCK)
			log_msg(LOG_ERROR, "store_error", "%s is in use by another callplane server",
				s->path);
		else
			log_msg(LOG_ERROR, "store_error", "cannot lock %s: %s", s->path, strerror(errno));
		return -1;
	}
	s->calls = call_cache_create(CALL_CACHE_SLOTS);
	return s->calls ? 0 : -1;
}

/* Before SQLite initialises: no memory statistics. Keeping them takes a global mutex on every
 * allocation, which every thread's statements do many times (measured: ~5% of the store
 * worker's time in an end-call run). sqlite3_config() refuses once SQLite is initialised,
 * e.g. when another part of the process used it first; then the default stays. */
static void sqlite_configure(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int sqlite_open(const char *location, const struct store_options *opt, void **ctx)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, sqlite_configure);
	struct sqlite_store *s = calloc(1, sizeof *s);
	if (!s)
		return STORE_ERROR;
	s->path = strdup(location);
	s->sync_full = !opt || opt->sync_full;
	pthread_mutex_init(&s->pool_mu, NULL);
	pthread_mutex_init(&s->write_mu, NULL);
	struct conn *c = conn_get(s);
	if (!c || migrate(c)) {
		if (c)
			conn_put(s, c);
		log_msg(LOG_ERROR, "store_error", "cannot open or migrate %s", location);
		sqlite_close(s);
		return STORE_ERROR;
	}
	conn_put(s, c);
	if (opt && opt->server && server_lock(s)) {
		sqlite_close(s);
		return STORE_ERROR;
	}
	*ctx = s;
	return STORE_OK;
}

/* Borrow a connection for the body of an operation; `rc` is what the op returns. */
#define WITH_CONN(s, c)                                   \
	struct sqlite_store *s = ctx;                     \
	struct conn *c = conn_get(s);                     \
	if (!c)                                           \
		return STORE_ERROR;

/* Binds arguments by a type string: 's' text (NULL: null), 'o' optional text ("": null),
 * 'i' int, 'I' int64. Keeps each operation below one line of intent. */
static void bind_args(sqlite3_stmt *st, const char *types, va_list ap)
{
	for (int i = 0; types[i]; i++) {
		switch (types[i]) {
		case 's':
			bind_text(st, i + 1, va_arg(ap, const char *));
			break;
		case 'o':
			bind_opt_text(st, i + 1, va_arg(ap, const char *));
			break;
		case 'i':
			sqlite3_bind_int(st, i + 1, va_arg(ap, int));
			break;
		case 'I':
			sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
			break;
		}
	}
}

static int list_rows(struct conn *c, sqlite3_stmt *st, const char *const *names, json_t **out);

/* One statement with its typed arguments. names NULL: a write, STORE_OK if it changed a
 * row, else NOT_FOUND. names set: a listing, rows become objects named by names. */
static int run_bound(struct sqlite_store *s, enum stmt_id id, const char *const *names,
		     json_t **out, const char *types, ...)
{
	struct conn *c = conn_get(s);
	if (!c)
		return STORE_ERROR;
	sqlite3_stmt *st = stmt(c, id);
	int rc = STORE_ERROR;
	if (st) {
		va_list ap;
		va_start(ap, types);
		bind_args(st, types, ap);
		va_end(ap);
		rc = names ? list_rows(c, st, names, out) : run_write(s, c, st);
	}
	conn_put(s, c);
	return rc;
}

#define write_one(s, id, ...) run_bound(s, id, NULL, NULL, __VA_ARGS__)
#define list_all(s, id, names, out, ...) run_bound(s, id, names, out, __VA_ARGS__)

/* ---- tenants ---------------------------------------------------------------------------- */

static int sqlite_tenant_create(void *ctx, const char *id, const char *name, int64_t now)
{
	return write_one(ctx, S_TENANT_CREATE, "ssI", id, name, now);
}

static int sqlite_tenant_exists(void *ctx, const char *id)
{
	WITH_CONN(s, c);
	sqlite3_stmt *st = stmt(c, S_TENANT_EXISTS);
	int rc = STORE_ERROR;
	if (st) {
		bind_text(st, 1, id);
		int r = sqlite3_step(st);
		rc = r == SQLITE_ROW ? STORE_OK : r == SQLITE_DONE ? STORE_NOT_FOUND : step_error(c, r);
		sqlite3_reset(st);
	}
	conn_put(s, c);
	return rc;
}

static json_t *time_json(int64_t ms)
{
	char buf[CP_RFC3339_LEN + 1];
	if (!ms)
		return json_null();
	cp_rfc3339(ms, buf);
	return json_string(buf);
}

static json_t *col_json(sqlite3_stmt *st, int col, bool is_time)
{
	switch (sqlite3_column_type(st, col)) {
	case SQLITE_NULL:
		return json_null();
	case SQLITE_INTEGER:
		return is_time ? time_json(sqlite3_column_int64(st, col))
			       : json_integer(sqlite3_column_int64(st, col));
	default:
		return json_string((const char *)sqlite3_column_text(st, col));
	}
}

/* Runs a listing statement and turns each row into an object with the given column names;
 * names ending in "_at" are rendered as timestamps. */
static int list_rows(struct conn *c, sqlite3_stmt *st, const char *const *names, json_t **out)
{
	json_t *arr = json_array();
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o = json_object();
		for (int i = 0; names[i]; i++) {
			size_t n = strlen(names[i]);
			bool is_time = n > 3 && !strcmp(names[i] + n - 3, "_at");
			json_object_set_new(o, names[i], col_json(st, i, is_time));
		}
		json_array_append_new(arr, o);
	}
	sqlite3_reset(st);
	if (r != SQLITE_DONE) {
		json_decref(arr);
		return step_error(c, r);
	}
	*out = arr;
	return STORE_OK;
}

static int sqlite_tenant_list(void *ctx, json_t **out)
{
	static const char *const names[] = {"id", "name", "created_at", NULL};
	return list_all(ctx, S_TENANT_LIST, names, out, "");
}

/* ---- agents ----------------------------------------------------------------------------- */

static int sqlite_agent_create(void *ctx, const struct agent *a)
{
	return write_one(ctx, S_AGENT_CREATE, "ssssiIs", a->id, a->tenant_id, a->name, a->number,
			 a->max_duration_s, a->created_at, a->stream_url);
}

static int read_agent(struct conn *c, sqlite3_stmt *st, struct agent *out)
{
	int r = sqlite3_step(st);
	int rc;
	if (r == SQLITE_ROW) {
		memset(out, 0, sizeof *out);
		copy_col(st, 0, out->id, sizeof out->id);
		copy_col(st, 1, out->tenant_id, sizeof out->tenant_id);
		copy_col(st, 2, out->name, sizeof out->name);
		copy_col(st, 3, out->number, sizeof out->number);
		out->max_duration_s = sqlite3_column_int(st, 4);
		out->created_at = sqlite3_column_int64(st, 5);
		copy_col(st, 6, out->stream_url, sizeof out->stream_url);
		rc = STORE_OK;
	} else {
		rc = r == SQLITE_DONE ? STORE_NOT_FOUND : step_error(c, r);
	}
	sqlite3_reset(st);
	return rc;
}

static int sqlite_agent_get(void *ctx, const struct scope *sc, const char *id, struct agent *out)
{
	WITH_CONN(s, c);
	sqlite3_stmt *st = stmt(c, S_AGENT_GET);
	int rc = STORE_ERROR;
	if (st) {
		bind_text(st, 1, id);
		bind_text(st, 2, sc->tenant_id);
		bind_opt_text(st, 3, sc->number);
		rc = read_agent(c, st, out);
	}
	conn_put(s, c);
	return rc;
}

static int sqlite_agent_by_number(void *ctx, const char *number, struct agent *out)
{
	WITH_CONN(s, c);
	sqlite3_stmt *st = stmt(c, S_AGENT_BY_NUMBER);
	int rc = STORE_ERROR;
	if (st) {
		bind_text(st, 1, number);
		rc = read_agent(c, st, out);
	}
	conn_put(s, c);
	return rc;
}

static int sqlite_agent_list(void *ctx, const char *tenant_id, json_t **out)
{
	static const char *const names[] = {"id", "tenant_id", "name", "number",
					    "max_duration_s", "created_at", "stream_url", NULL};
	return list_all(ctx, S_AGENT_LIST, names, out, "s", tenant_id);
}

static int sqlite_agent_set_stream_url(void *ctx, const char *id, const char *url)
{
	return write_one(ctx, S_AGENT_UPDATE, "ss", id, url);
}

/* ---- keys ------------------------------------------------------------------------------- */

static int sqlite_key_create(void *ctx, const struct api_key *k)
{
	return write_one(ctx, S_KEY_CREATE, "sssssIi", k->id, k->tenant_id, k->number, k->hash,
			 k->prefix, k->created_at, (int)k->rate_limit);
}

static int sqlite_key_by_hash(void *ctx, const char *hash, struct api_key *out)
{
	struct sqlite_store *cs = ctx;
	uint64_t ticket = 0;
	if (cs->keys) {
		if (key_cache_get(cs->keys, hash, out))
			return STORE_OK;
		ticket = key_cache_ticket(cs->keys);
	}
	WITH_CONN(s, c);
	sqlite3_stmt *st = stmt(c, S_KEY_BY_HASH);
	int rc = STORE_ERROR;
	if (st) {
		bind_text(st, 1, hash);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			memset(out, 0, sizeof *out);
			copy_col(st, 0, out->id, sizeof out->id);
			copy_col(st, 1, out->tenant_id, sizeof out->tenant_id);
			copy_col(st, 2, out->number, sizeof out->number);
			copy_col(st, 3, out->hash, sizeof out->hash);
			copy_col(st, 4, out->prefix, sizeof out->prefix);
			out->created_at = sqlite3_column_int64(st, 5);
			out->revoked_at = sqlite3_column_int64(st, 6);
			out->rate_limit = (unsigned)sqlite3_column_int(st, 7);
			rc = STORE_OK;
			if (s->keys)
				key_cache_fill(s->keys, ticket, out);
		} else {
			rc = r == SQLITE_DONE ? STORE_NOT_FOUND : step_error(c, r);
		}
		sqlite3_reset(st);
	}
	conn_put(s, c);
	return rc;
}

static int sqlite_key_list(void *ctx, const char *tenant_id, json_t **out)
{
	static const char *const names[] = {"id", "tenant_id", "number", "prefix",
					    "created_at", "revoked_at", "rate_limit", NULL};
	return list_all(ctx, S_KEY_LIST, names, out, "s", tenant_id);
}

static int sqlite_key_revoke(void *ctx, const char *id, int64_t now)
{
	struct sqlite_store *s = ctx;
	int rc = write_one(ctx, S_KEY_REVOKE, "sI", id, now);
	/* committed: now tell every server's key cache (key_cache.h) */
	if (rc == STORE_OK && key_epoch_bump(s->path))
		log_msg(LOG_WARN, "store_error", "key %s revoked, but a running server may accept it"
			" for up to %d s more", id, KEY_CACHE_TTL_MS / 1000);
	return rc;
}

/* ---- calls ------------------------------------------------------------------------------ */

/* Reads a row selected with CALL_COLS into *out. */
static void read_call(sqlite3_stmt *st, struct call *out)
{
	call_clear(out);
	out->seq = sqlite3_column_int64(st, 0);
	copy_col(st, 1, out->id, sizeof out->id);
	copy_col(st, 2, out->tenant_id, sizeof out->tenant_id);
	copy_col(st, 3, out->agent_id, sizeof out->agent_id);
	const char *dir = (const char *)sqlite3_column_text(st, 4);
	out->direction = dir && !strcmp(dir, "inbound") ? CALL_INBOUND : CALL_OUTBOUND;
	const char *status = (const char *)sqlite3_column_text(st, 5);
	if (!call_status_parse(status, &out->status))
		out->status = CALL_FAILED;
	copy_col(st, 6, out->from, sizeof out->from);
	copy_col(st, 7, out->to, sizeof out->to);
	copy_col(st, 8, out->provider_call_id, sizeof out->provider_call_id);
	copy_col(st, 9, out->end_reason, sizeof out->end_reason);
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
}

/* Steps a statement expected to yield at most one call row. */
static int step_one_call(struct conn *c, sqlite3_stmt *st, struct call *out)
{
	int r = sqlite3_step(st);
	int rc;
	if (r == SQLITE_ROW) {
		if (out)
			read_call(st, out);
		rc = STORE_OK;
	} else {
		rc = r == SQLITE_DONE ? STORE_NOT_FOUND : step_error(c, r);
	}
	sqlite3_reset(st);
	return rc;
}

static int sqlite_call_insert(void *ctx, struct call *k)
{
	WITH_CONN(s, c);
	sqlite3_stmt *st = stmt(c, S_CALL_INSERT);
	int rc = STORE_ERROR;
	if (st) {
		bind_text(st, 1, k->id);
		bind_text(st, 2, k->tenant_id);
		bind_text(st, 3, k->agent_id);
		bind_text(st, 4, call_direction_name(k->direction));
		bind_text(st, 5, call_status_name(k->status));
		bind_text(st, 6, k->from);
		bind_text(st, 7, k->to);
		bind_text(st, 8, k->provider_call_id);
		bind_text(st, 9, k->end_reason);
		sqlite3_bind_int(st, 10, k->sip_status);
		sqlite3_bind_int(st, 11, k->max_duration_s);
		sqlite3_bind_int64(st, 12, k->created_at);
		sqlite3_bind_int64(st, 13, k->answered_at);
		sqlite3_bind_int64(st, 14, k->ended_at);
		bind_text(st, 15, k->metadata);
		bind_text(st, 16, k->stream_url);
		rc = run_write(s, c, st);
		if (rc == STORE_OK)
			k->seq = sqlite3_last_insert_rowid(c->db);
	}
	conn_put(s, c);
	return rc;
}

static bool in_scope(const struct scope *sc, const struct call *c, const char *number)
{
	return !sc || (!strcmp(sc->tenant_id, c->tenant_id) &&
		       (!sc->number[0] || !strcmp(sc->number, number)));
}

/* The cached path of call_get for a call id: STORE_OK with the row if it is in scope, else
 * STORE_NOT_FOUND, and the caller asks SQL (the id may be another call's provider id). A miss
 * reads the row by id and caches it. A batch's thread never uses the cache: it must see its own
 * uncommitted writes, and must not cache them. */
static int cached_call_get(struct sqlite_store *s, struct conn *c, const struct scope *sc,
			   const char *id, struct call *out)
{
	char number[CALL_CACHE_NUMBER_MAX + 1];
	if (call_cache_get(s->calls, id, out, number)) {
		if (in_scope(sc, out, number))
			return STORE_OK;
		call_clear(out);
		return STORE_NOT_FOUND;
	}
	uint64_t ticket = call_cache_ticket(s->calls, id);
	sqlite3_stmt *st = stmt(c, S_CALL_GET_CACHEABLE);
	if (!st)
		return STORE_ERROR;
	bind_text(st, 1, id);
	int r = sqlite3_step(st), rc;
	if (r == SQLITE_ROW && sqlite3_column_bytes(st, CALL_COL_EXTRA) > CALL_CACHE_NUMBER_MAX) {
		rc = STORE_NOT_FOUND;   /* not an agent number we can compare here: SQL decides */
	} else if (r == SQLITE_ROW) {
		read_call(st, out);
		copy_col(st, CALL_COL_EXTRA, number, sizeof number);
		call_cache_fill(s->calls, ticket, out, number);
		rc = in_scope(sc, out, number) ? STORE_OK : STORE_NOT_FOUND;
		if (rc != STORE_OK)
			call_clear(out);
	} else {
		rc = r == SQLITE_DONE ? STORE_NOT_FOUND : step_error(c, r);
	}
	sqlite3_reset(st);
	return rc;
}

static int sqlite_call_get(void *ctx, const struct scope *sc, const char *id, struct call *out)
{
	WITH_CONN(s, c);
	if (s->calls && !in_batch(s) && strlen(id) == CP_UUID_LEN) {
		int rc = cached_call_get(s, c, sc, id, out);
		if (rc != STORE_NOT_FOUND) {
			conn_put(s, c);
			return rc;
		}
	}
	bool by_number = sc && sc->number[0];
	sqlite3_stmt *st = stmt(c, by_number ? S_CALL_GET : S_CALL_GET_TENANT);
	int rc = STORE_ERROR;
	if (st) {
		bind_text(st, 1, id);
		bind_text(st, 2, sc ? sc->tenant_id : NULL);
		if (by_number)
			bind_text(st, 3, sc->number);
		rc = step_one_call(c, st, out);
	}
	conn_put(s, c);
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

static int sqlite_call_list(void *ctx, const struct scope *sc, const struct call_filter *f,
			    struct call **out, size_t *n)
{
	WITH_CONN(s, c);
	sqlite3_stmt *st = stmt(c, S_CALL_LIST);
	int rc = STORE_ERROR;
	*out = NULL;
	*n = 0;
	if (!st || f->limit < 1)
		goto out;
	char set[128];
	status_set(f->status_mask, set, sizeof set);
	bind_text(st, 1, sc->tenant_id);
	bind_opt_text(st, 2, sc->number);
	bind_text(st, 3, f->status_mask ? set : NULL);
	bind_text(st, 4, f->agent_id);
	sqlite3_bind_int64(st, 5, f->before_seq);
	sqlite3_bind_int(st, 6, f->limit);
	struct call *calls = calloc((size_t)(f->limit > 0 ? f->limit : 1), sizeof *calls);
	if (!calls)
		goto out;
	size_t count = 0;
	int r = SQLITE_DONE;
	while (count < (size_t)f->limit && (r = sqlite3_step(st)) == SQLITE_ROW)
		read_call(st, &calls[count++]);
	if (count < (size_t)f->limit && r != SQLITE_DONE) {
		rc = step_error(c, r);
		call_list_free(calls, count);
		sqlite3_reset(st);
		goto out;
	}
	sqlite3_reset(st);
	*out = calls;
	*n = count;
	rc = STORE_OK;
out:
	conn_put(s, c);
	return rc;
}

/* After a conditional write that matched nothing: conflict (row exists) or not found. */
static int current_row(struct conn *c, const char *id, struct call *out)
{
	sqlite3_stmt *st = stmt(c, S_CALL_GET_RAW);
	if (!st)
		return STORE_ERROR;
	bind_text(st, 1, id);
	int rc = step_one_call(c, st, out);
	return rc == STORE_OK ? STORE_CONFLICT : rc;
}

/* A write to the calls path: the writer lock, the call cache's bracket around the write of
 * one call (none for a write that leaves the row as it is), and a transaction of our own when
 * the write is more than one statement and no batch's transaction is open (in a batch, the
 * batch is the transaction). write_open() before the statements, write_close() after. */
struct call_write {
	sqlite3_stmt *commit, *rollback;     /* non-NULL: BEGIN was ours */
	int stripe;                          /* the cache bracket to end, -1 none */
};

static int write_open(struct sqlite_store *s, struct conn *c, const char *bracket_id, bool multi,
		      struct call_write *w)
{
	bool tx = multi && !in_batch(s);
	/* the transaction's own statements only when it is ours (not on the batch's hot path) */
	sqlite3_stmt *begin = tx ? stmt(c, S_BEGIN) : NULL;
	w->commit = tx ? stmt(c, S_COMMIT) : NULL;
	w->rollback = tx ? stmt(c, S_ROLLBACK) : NULL;
	w->stripe = -1;
	if (tx && (!begin || !w->commit || !w->rollback)) {
		w->commit = w->rollback = NULL;
		return STORE_ERROR;
	}
	write_lock(s);
	if (bracket_id)
		w->stripe = call_write_begin(s, bracket_id);
	if (tx) {
		int r = sqlite3_step(begin);
		sqlite3_reset(begin);
		if (r != SQLITE_DONE) {
			w->commit = w->rollback = NULL;
			call_write_end(s, w->stripe);
			write_unlock(s);
			return step_error(c, SQLITE_ERROR);
		}
	}
	return STORE_OK;
}

/* Commits our transaction (rolls it back unless rc is STORE_OK, or the COMMIT fails), marks
 * a batch whose step failed, ends the cache bracket and unlocks; returns the final result. */
static int write_close(struct sqlite_store *s, struct conn *c, struct call_write *w, int rc)
{
	if (w->commit) {
		if (rc == STORE_OK && sqlite3_step(w->commit) != SQLITE_DONE)
			rc = step_error(c, SQLITE_ERROR);
		if (rc != STORE_OK && !sqlite3_get_autocommit(c->db))
			sqlite3_step(w->rollback);
		sqlite3_reset(w->commit);
		sqlite3_reset(w->rollback);
	}
	if (in_batch(s) && rc == STORE_ERROR)
		tl_batch.failed = true;
	call_write_end(s, w->stripe);
	write_unlock(s);
	return rc;
}

/* Writes the outbox event of a step that just applied (inside its transaction): the event row
 * and one pending delivery per matching webhook. extra: JSON object members put in the
 * envelope before "data" ("" none; ours, already escaped). canonical_only: no delivery to
 * webhooks of a vendor format (they have only transition events). */
static int write_event(struct conn *c, const char *type, const struct call *call,
		       const char *extra, bool canonical_only, int64_t now)
{
	char event_id[CP_UUID_LEN + 1], ts[CP_RFC3339_LEN + 1];
	if (cp_uuid4(event_id))
		return STORE_ERROR;
	cp_rfc3339(now, ts);
	/* {"id","type","created_at"[,extra],"data"}: id, type and ts need no escaping (ours,
	 * ASCII) */
	size_t call_len = 0;
	char *data = call_to_json_text(call, &call_len), *payload = NULL;
	size_t size = call_len + strlen(type) + strlen(extra) + 128;
	if (data && (payload = malloc(size)))
		snprintf(payload, size,
			 "{\"id\":\"%s\",\"type\":\"%s\",\"created_at\":\"%s\"%s%s,\"data\":%s}",
			 event_id, type, ts, *extra ? "," : "", extra, data);
	free(data);
	sqlite3_stmt *ins = stmt(c, S_EVENT_INSERT), *fan = stmt(c, S_DELIVERY_FANOUT);
	int rc = STORE_ERROR;
	if (!payload || !ins || !fan)
		goto out;
	bind_text(ins, 1, event_id);
	bind_text(ins, 2, call->tenant_id);
	bind_text(ins, 3, call->agent_id);
	bind_text(ins, 4, call->id);
	bind_text(ins, 5, type);
	sqlite3_bind_int64(ins, 6, now);
	bind_text(ins, 7, payload);
	int r = sqlite3_step(ins);
	sqlite3_reset(ins);
	if (r != SQLITE_DONE)
		goto out;
	sqlite3_bind_int64(fan, 1, sqlite3_last_insert_rowid(c->db));
	sqlite3_bind_int64(fan, 2, now);
	bind_text(fan, 3, call->tenant_id);
	bind_text(fan, 4, call->agent_id);
	sqlite3_bind_int(fan, 5, canonical_only);
	r = sqlite3_step(fan);
	sqlite3_reset(fan);
	if (r == SQLITE_DONE)
		rc = STORE_OK;
out:
	if (rc != STORE_OK)
		log_msg(LOG_ERROR, "store_error", "outbox write: %s", sqlite3_errmsg(c->db));
	free(payload);
	return rc;
}

static int sqlite_call_update(void *ctx, const char *id, const struct call_update *u,
			      struct call *out, enum call_status *prev)
{
	WITH_CONN(s, c);
	bool keep_provider = !u->provider_call_id || !*u->provider_call_id;
	sqlite3_stmt *st = stmt(c, keep_provider ? S_CALL_UPDATE_KEEP_PROVIDER : S_CALL_UPDATE);
	struct call row = {0};
	struct call_write w;
	int rc = STORE_ERROR;
	if (!st)
		goto out;
	char set[128];
	status_set(u->from_mask, set, sizeof set);
	bind_text(st, 1, id);
	bind_text(st, 2, call_status_name(u->to));
	bind_opt_int(st, 3, u->answered_at);
	bind_opt_int(st, 4, u->ended_at);
	bind_opt_text(st, 5, u->end_reason);
	bind_opt_int(st, 6, u->sip_status);
	bind_opt_text(st, 7, u->provider_call_id);
	bind_text(st, 8, set);

	/* The step and its outbox event commit together or not at all: an event is never lost
	 * (crash after the step) nor invented (crash before it). */
	if ((rc = write_open(s, c, id, u->event != NULL, &w)) != STORE_OK)
		goto out;
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		read_call(st, &row);
		if (prev && !call_status_parse((const char *)sqlite3_column_text(st, CALL_COL_EXTRA), prev))
			*prev = CALL_QUEUED;
		rc = STORE_OK;
	} else {
		rc = r == SQLITE_DONE ? STORE_NOT_FOUND : step_error(c, r);
	}
	sqlite3_reset(st);
	if (u->event && rc == STORE_OK)
		rc = write_event(c, u->event, &row, "", false,
				 row.ended_at ? row.ended_at : cp_now_ms());
	rc = write_close(s, c, &w, rc);
	if (rc == STORE_OK && out)
		call_move(out, &row);
	else if (rc == STORE_NOT_FOUND)
		rc = current_row(c, id, out);
out:
	call_clear(&row);
	conn_put(s, c);
	return rc;
}

static int sqlite_call_event(void *ctx, const char *id, const char *type, const char *extra,
			     uint32_t status_mask, struct call *out)
{
	WITH_CONN(s, c);
	sqlite3_stmt *get = stmt(c, S_CALL_GET_RAW);
	struct call row = {0};
	struct call_write w;
	int rc = STORE_ERROR;
	/* the read and the event share a transaction; the row does not change: no cache bracket */
	if (!get || (rc = write_open(s, c, NULL, true, &w)) != STORE_OK)
		goto out;
	bind_text(get, 1, id);
	rc = step_one_call(c, get, &row);
	if (rc == STORE_OK && !(status_mask & CALL_BIT(row.status)))
		rc = STORE_CONFLICT;
	if (rc == STORE_OK)
		rc = write_event(c, type, &row, extra, true, cp_now_ms());
	rc = write_close(s, c, &w, rc);
	if (out && (rc == STORE_OK || rc == STORE_CONFLICT))
		call_move(out, &row);
out:
	call_clear(&row);
	conn_put(s, c);
	return rc;
}

static int sqlite_call_redact(void *ctx, const char *id, int64_t now, struct call *out)
{
	WITH_CONN(s, c);
	sqlite3_stmt *st = stmt(c, S_CALL_REDACT);
	int rc = STORE_ERROR;
	if (st) {
		bind_text(st, 1, id);
		sqlite3_bind_int64(st, 2, now);
		write_lock(s);
		int stripe = call_write_begin(s, id);
		rc = step_one_call(c, st, out);
		call_write_end(s, stripe);
		write_unlock(s);
		if (rc == STORE_NOT_FOUND)
			rc = current_row(c, id, out);
	}
	conn_put(s, c);
	return rc;
}

static int sqlite_call_active_ids(void *ctx, char (**ids)[CP_UUID_LEN + 1], size_t *n)
{
	WITH_CONN(s, c);
	sqlite3_stmt *st = stmt(c, S_CALL_ACTIVE);
	int rc = STORE_ERROR;
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
			copy_col(st, 0, (*ids)[(*n)++], CP_UUID_LEN + 1);
		}
		if (rc == STORE_OK && r != SQLITE_DONE)
			rc = step_error(c, r);
		sqlite3_reset(st);
	}
	conn_put(s, c);
	return rc;
}

/* ---- idempotency ------------------------------------------------------------------------ */

static int sqlite_idem_claim(void *ctx, const char *key_id, const char *idem_key,
			     const char *hash, int64_t now, int64_t expire_before,
			     struct idem_record *existing)
{
	WITH_CONN(s, c);
	int rc = STORE_ERROR;
	sqlite3_stmt *begin = stmt(c, S_BEGIN), *expire = stmt(c, S_IDEM_EXPIRE),
		     *ins = stmt(c, S_IDEM_INSERT), *get = stmt(c, S_IDEM_GET),
		     *commit = stmt(c, S_COMMIT), *rollback = stmt(c, S_ROLLBACK);
	if (!begin || !expire || !ins || !get || !commit || !rollback) {
		conn_put(s, c);
		return STORE_ERROR;
	}
	write_lock(s);
	if (sqlite3_step(begin) != SQLITE_DONE)
		goto fail;
	bind_text(expire, 1, key_id);
	bind_text(expire, 2, idem_key);
	sqlite3_bind_int64(expire, 3, expire_before);
	if (sqlite3_step(expire) != SQLITE_DONE)
		goto fail;
	bind_text(ins, 1, key_id);
	bind_text(ins, 2, idem_key);
	bind_text(ins, 3, hash);
	sqlite3_bind_int64(ins, 4, now);
	if (sqlite3_step(ins) != SQLITE_DONE)
		goto fail;
	if (sqlite3_changes(c->db) == 1) {
		rc = STORE_OK;
	} else {
		bind_text(get, 1, key_id);
		bind_text(get, 2, idem_key);
		if (sqlite3_step(get) != SQLITE_ROW)
			goto fail;
		memset(existing, 0, sizeof *existing);
		copy_col(get, 0, existing->request_hash, sizeof existing->request_hash);
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
	write_unlock(s);
	conn_put(s, c);
	return rc;
}

static int sqlite_idem_complete(void *ctx, const char *key_id, const char *idem_key,
				unsigned status, const char *body)
{
	return write_one(ctx, S_IDEM_COMPLETE, "ssis", key_id, idem_key, (int)status, body);
}

static int sqlite_idem_release(void *ctx, const char *key_id, const char *idem_key)
{
	return write_one(ctx, S_IDEM_RELEASE, "ss", key_id, idem_key);
}

static int sqlite_idem_purge(void *ctx, int64_t expire_before)
{
	int rc = write_one(ctx, S_IDEM_PURGE, "I", expire_before);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;   /* nothing to purge is fine */
}

/* ---- webhooks and deliveries ------------------------------------------------------------ */

static int sqlite_webhook_create(void *ctx, const struct webhook *w)
{
	return write_one(ctx, S_WEBHOOK_CREATE, "ssssssI", w->id, w->tenant_id, w->agent_id,
			 w->url, w->secret, w->format, w->created_at);
}

static int sqlite_webhook_list(void *ctx, const char *tenant_id, json_t **out)
{
	static const char *const names[] = {"id", "tenant_id", "agent_id", "url", "format",
					    "created_at", NULL};
	return list_all(ctx, S_WEBHOOK_LIST, names, out, "s", tenant_id);
}

static int sqlite_webhook_delete(void *ctx, const char *tenant_id, const char *id)
{
	WITH_CONN(s, c);
	sqlite3_stmt *del = stmt(c, S_WEBHOOK_DELETE), *drop = stmt(c, S_DELIVERY_DROP);
	int rc = STORE_ERROR;
	if (del && drop) {
		bind_text(del, 1, id);
		bind_text(del, 2, tenant_id);
		rc = run_write(s, c, del);
		if (rc == STORE_OK) {
			bind_text(drop, 1, id);
			if (run_write(s, c, drop) == STORE_ERROR)
				rc = STORE_ERROR;
		}
	}
	conn_put(s, c);
	return rc;
}

static int sqlite_delivery_lease(void *ctx, int64_t now, int64_t lease_until, int max,
				 struct delivery **out, size_t *n)
{
	WITH_CONN(s, c);
	sqlite3_stmt *due = stmt(c, S_DELIVERY_DUE), *lease = stmt(c, S_DELIVERY_LEASE),
		     *begin = stmt(c, S_BEGIN), *commit = stmt(c, S_COMMIT),
		     *rollback = stmt(c, S_ROLLBACK);
	int rc = STORE_ERROR;
	*out = NULL;
	*n = 0;
	struct delivery *d = calloc((size_t)(max > 0 ? max : 1), sizeof *d);
	if (!due || !lease || !begin || !commit || !rollback || !d || max < 1) {
		free(d);
		conn_put(s, c);
		return STORE_ERROR;
	}
	size_t count = 0;
	write_lock(s);
	int r = sqlite3_step(begin);
	sqlite3_reset(begin);
	if (r != SQLITE_DONE)
		goto done;
	sqlite3_bind_int64(due, 1, now);
	sqlite3_bind_int(due, 2, max);
	while (count < (size_t)max && (r = sqlite3_step(due)) == SQLITE_ROW) {
		struct delivery *x = &d[count++];
		x->id = sqlite3_column_int64(due, 0);
		copy_col(due, 1, x->event_id, sizeof x->event_id);
		copy_col(due, 2, x->type, sizeof x->type);
		const unsigned char *p = sqlite3_column_text(due, 3);
		x->payload = strdup(p ? (const char *)p : "{}");
		copy_col(due, 4, x->url, sizeof x->url);
		copy_col(due, 5, x->secret, sizeof x->secret);
		copy_col(due, 6, x->format, sizeof x->format);
		x->attempts = sqlite3_column_int(due, 7);
		x->created_at = sqlite3_column_int64(due, 8);
	}
	sqlite3_reset(due);
	rc = STORE_OK;
	for (size_t i = 0; i < count && rc == STORE_OK; i++) {
		sqlite3_bind_int64(lease, 1, d[i].id);
		sqlite3_bind_int64(lease, 2, lease_until);
		if (sqlite3_step(lease) != SQLITE_DONE)
			rc = STORE_ERROR;
		sqlite3_reset(lease);
	}
	if (rc == STORE_OK && sqlite3_step(commit) != SQLITE_DONE)
		rc = STORE_ERROR;
	sqlite3_reset(commit);
	if (rc != STORE_OK) {
		sqlite3_step(rollback);
		sqlite3_reset(rollback);
	}
done:
	write_unlock(s);
	if (rc == STORE_OK) {
		*out = d;
		*n = count;
	} else {
		log_msg(LOG_ERROR, "store_error", "delivery lease: %s", sqlite3_errmsg(c->db));
		delivery_list_free(d, count);
	}
	conn_put(s, c);
	return rc;
}

static int sqlite_delivery_record(void *ctx, int64_t id, const char *status, int64_t next_at,
				  int http_status, const char *error, int64_t now)
{
	return write_one(ctx, S_DELIVERY_RECORD, "IsIisI", id, status, next_at, http_status, error,
			 now);
}

static int sqlite_delivery_list(void *ctx, const char *tenant_id, const char *status, int limit,
				json_t **out)
{
	static const char *const names[] = {"id", "event_id", "event_type", "call_id",
					    "webhook_id", "status", "attempts", "next_attempt_at",
					    "last_status", "last_error", "created_at",
					    "delivered_at", NULL};
	return list_all(ctx, S_DELIVERY_LIST, names, out, "ssi", tenant_id, status, limit);
}

static int sqlite_delivery_replay(void *ctx, const char *tenant_id, int64_t id, int64_t now,
				  int *count)
{
	WITH_CONN(s, c);
	sqlite3_stmt *st = stmt(c, S_DELIVERY_REPLAY);
	int rc = STORE_ERROR;
	*count = 0;
	if (st) {
		bind_text(st, 1, tenant_id);
		sqlite3_bind_int64(st, 2, id);
		sqlite3_bind_int64(st, 3, now);
		write_lock(s);
		int r = sqlite3_step(st);
		*count = sqlite3_changes(c->db);
		sqlite3_reset(st);
		write_unlock(s);
		rc = r == SQLITE_DONE ? STORE_OK : step_error(c, r);
	}
	conn_put(s, c);
	return rc;
}

static int sqlite_events_since(void *ctx, const struct scope *sc, int64_t after_seq, int limit,
			       struct stored_event **out, size_t *n)
{
	WITH_CONN(s, c);
	sqlite3_stmt *st = stmt(c, S_EVENTS_SINCE);
	int rc = STORE_ERROR;
	*out = NULL;
	*n = 0;
	struct stored_event *ev = limit > 0 ? calloc((size_t)limit, sizeof *ev) : NULL;
	if (st && ev) {
		bind_text(st, 1, sc->tenant_id);
		bind_opt_text(st, 2, sc->number);
		sqlite3_bind_int64(st, 3, after_seq);
		sqlite3_bind_int(st, 4, limit);
		size_t count = 0;
		int r = SQLITE_DONE;
		while (count < (size_t)limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
			ev[count].seq = sqlite3_column_int64(st, 0);
			copy_col(st, 1, ev[count].type, sizeof ev[count].type);
			const unsigned char *p = sqlite3_column_text(st, 2);
			ev[count].payload = strdup(p ? (const char *)p : "{}");
			count++;
		}
		sqlite3_reset(st);
		if (count < (size_t)limit && r != SQLITE_DONE) {
			rc = step_error(c, r);
			event_list_free(ev, count);
		} else {
			*out = ev;
			*n = count;
			rc = STORE_OK;
		}
	} else {
		free(ev);
	}
	conn_put(s, c);
	return rc;
}

static int sqlite_batch_begin(void *ctx)
{
	struct sqlite_store *s = ctx;
	if (in_batch(s))
		return STORE_ERROR;
	struct conn *c = conn_get(s);
	if (!c)
		return STORE_ERROR;
	sqlite3_stmt *begin = stmt(c, S_BEGIN);
	pthread_mutex_lock(&s->write_mu);
	if (!begin || sqlite3_step(begin) != SQLITE_DONE) {
		if (begin)
			sqlite3_reset(begin);
		pthread_mutex_unlock(&s->write_mu);
		int rc = step_error(c, SQLITE_ERROR);   /* reads c->db: before the put */
		conn_put(s, c);
		return rc;
	}
	sqlite3_reset(begin);
	tl_batch.s = s;
	tl_batch.c = c;
	return STORE_OK;
}

static int sqlite_batch_end(void *ctx, bool commit)
{
	struct sqlite_store *s = ctx;
	if (!in_batch(s))
		return STORE_ERROR;
	struct conn *c = tl_batch.c;
	bool failed = tl_batch.failed;
	if (failed)
		commit = false;
	sqlite3_stmt *st = stmt(c, commit ? S_COMMIT : S_ROLLBACK);
	int rc = st && sqlite3_step(st) == SQLITE_DONE && !failed ? STORE_OK : STORE_ERROR;
	if (st)
		sqlite3_reset(st);
	if (rc != STORE_OK) {
		log_msg(LOG_ERROR, "store_error", "batch %s: %s", commit ? "commit" : "rollback",
			sqlite3_errmsg(c->db));
		if (!sqlite3_get_autocommit(c->db))
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	}
	/* committed or rolled back: either way the rows touched may no longer be what a reader
	 * cached, and no reply about them has gone out yet */
	for (unsigned i = 0; i < CALL_CACHE_STRIPES; i++) {
		if (tl_batch.open[i])
			call_cache_write_end(s->calls, i, tl_batch.open[i]);
		tl_batch.open[i] = 0;
	}
	tl_batch.s = NULL;
	tl_batch.c = NULL;
	tl_batch.failed = false;
	pthread_mutex_unlock(&s->write_mu);
	conn_put(s, c);
	return rc;
}

static int sqlite_events_last_seq(void *ctx, int64_t *out)
{
	WITH_CONN(s, c);
	sqlite3_stmt *st = stmt(c, S_EVENTS_LAST);
	int rc = STORE_ERROR;
	if (st) {
		int r = sqlite3_step(st);
		*out = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		rc = r == SQLITE_ROW ? STORE_OK : step_error(c, r);
		sqlite3_reset(st);
	}
	conn_put(s, c);
	return rc;
}

const struct store_backend store_sqlite_backend = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.tenant_create = sqlite_tenant_create,
	.tenant_exists = sqlite_tenant_exists,
	.tenant_list = sqlite_tenant_list,
	.agent_create = sqlite_agent_create,
	.agent_get = sqlite_agent_get,
	.agent_by_number = sqlite_agent_by_number,
	.agent_list = sqlite_agent_list,
	.agent_set_stream_url = sqlite_agent_set_stream_url,
	.key_create = sqlite_key_create,
	.key_by_hash = sqlite_key_by_hash,
	.key_list = sqlite_key_list,
	.key_revoke = sqlite_key_revoke,
	.call_insert = sqlite_call_insert,
	.call_get = sqlite_call_get,
	.call_list = sqlite_call_list,
	.call_update = sqlite_call_update,
	.call_redact = sqlite_call_redact,
	.call_event = sqlite_call_event,
	.call_active_ids = sqlite_call_active_ids,
	.idem_claim = sqlite_idem_claim,
	.idem_complete = sqlite_idem_complete,
	.idem_release = sqlite_idem_release,
	.idem_purge = sqlite_idem_purge,
	.webhook_create = sqlite_webhook_create,
	.webhook_list = sqlite_webhook_list,
	.webhook_delete = sqlite_webhook_delete,
	.delivery_lease = sqlite_delivery_lease,
	.delivery_record = sqlite_delivery_record,
	.delivery_list = sqlite_delivery_list,
	.delivery_replay = sqlite_delivery_replay,
	.events_since = sqlite_events_since,
	.events_last_seq = sqlite_events_last_seq,
	.batch_begin = sqlite_batch_begin,
	.batch_end = sqlite_batch_end,
};
