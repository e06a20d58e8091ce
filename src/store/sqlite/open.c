/*
 * open.c - opening and closing the SQLite backend: the schema and its migrations, the server
 * lock, and the table of callbacks that store.h calls.
 *
 * Design:
 *   - Migrations are versioned by PRAGMA user_version and applied under BEGIN IMMEDIATE, so two
 *     processes opening a new database at once apply each migration exactly once. A database
 *     newer than this binary is refused. A migration is appended, never edited.
 *   - A server (store_options.server) takes the database's server lock and then keeps the
 *     call cache, being the only writer of calls; the admin CLI opens without either.
 */
#include "sqlite_internal.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

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
	"CREATE INDEX calls_active ON calls(status) WHERE status IN "
	"('queued','ringing','in_progress');"
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

	/* 4: what an agent says before hanging up (NULL = nothing: an immediate end) */
	"ALTER TABLE agents ADD COLUMN goodbye_text TEXT;"
	"ALTER TABLE agents ADD COLUMN max_duration_goodbye TEXT;",

	/* 5: recordings: whether an agent's calls are recorded, and whether a call is (decided
	 * when it is created); existing rows are not */
	"ALTER TABLE agents ADD COLUMN record INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE calls ADD COLUMN record INTEGER NOT NULL DEFAULT 0;",

	/* 6: what the telephony engine needs to end a call's dialog after a crash (its own
	 * text, dialogs.c), kept from the answer (or the first ring) until the dialog is over */
	"CREATE TABLE dialogs ("
	"  call_id TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at INTEGER NOT NULL)"
	"  WITHOUT ROWID;",

	/* 7: operator keys, bound to no tenant (tenant_id NULL, operator 1). A column cannot
	 * lose NOT NULL in SQLite, so the table is rebuilt; existing keys are tenant keys. */
	"CREATE TABLE api_keys_new ("
	"  id TEXT PRIMARY KEY, tenant_id TEXT REFERENCES tenants(id), number TEXT,"
	"  hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, created_at INTEGER NOT NULL,"
	"  revoked_at INTEGER, rate_limit INTEGER, operator INTEGER NOT NULL DEFAULT 0,"
	"  CHECK ((operator = 1) = (tenant_id IS NULL)),"
	"  CHECK (operator = 0 OR number IS NULL));"
	"INSERT INTO api_keys_new(id, tenant_id, number, hash, prefix, created_at, revoked_at,"
	"  rate_limit) SELECT id, tenant_id, number, hash, prefix, created_at, revoked_at,"
	"  rate_limit FROM api_keys;"
	"DROP TABLE api_keys;"
	"ALTER TABLE api_keys_new RENAME TO api_keys;",

	/* 8: trunks (trunks.c): a tenant's carriers, the one each agent dials through, the
	 * registration status the server reports, and a generation the server polls to reload
	 * them (bumped by triggers, so that every writer, in any process, bumps it) */
	"CREATE TABLE trunks ("
	"  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),"
	"  host TEXT NOT NULL, port INTEGER, transport TEXT NOT NULL, username TEXT,"
	"  password_env TEXT, password_file TEXT, register INTEGER NOT NULL DEFAULT 0,"
	"  outbound_proxy TEXT, from_user TEXT, from_domain TEXT,"
	"  caller_id_header TEXT NOT NULL, inbound_cidrs TEXT, headers TEXT,"
	"  created_at INTEGER NOT NULL);"
	"CREATE INDEX trunks_tenant ON trunks(tenant_id);"
	"ALTER TABLE agents ADD COLUMN trunk_id TEXT REFERENCES trunks(id);"
	"CREATE TABLE trunk_status ("
	"  trunk_id TEXT PRIMARY KEY REFERENCES trunks(id) ON DELETE CASCADE,"
	"  status TEXT NOT NULL, sip_status INTEGER, reason TEXT, expires_at INTEGER,"
	"  updated_at INTEGER NOT NULL, last_event TEXT) WITHOUT ROWID;"
	"CREATE TABLE trunk_generation (n INTEGER NOT NULL);"
	"INSERT INTO trunk_generation VALUES (0);"
	"CREATE TRIGGER trunks_created AFTER INSERT ON trunks"
	"  BEGIN UPDATE trunk_generation SET n = n + 1; END;"
	"CREATE TRIGGER trunks_changed AFTER UPDATE ON trunks"
	"  BEGIN UPDATE trunk_generation SET n = n + 1; END;"
	"CREATE TRIGGER trunks_deleted AFTER DELETE ON trunks"
	"  BEGIN UPDATE trunk_generation SET n = n + 1; END;",

	/* 9: how a webhook's deliveries are signed: callplane (Callplane-Signature, what every
	 * existing webhook has) or standard (Standard Webhooks' webhook-signature) */
	"ALTER TABLE webhooks ADD COLUMN signing TEXT NOT NULL DEFAULT 'callplane';",

	/* 10: what a tenant's keys may dial: raw sip: URIs (NULL = none; the tenants there were
	 * could dial any, and still can), E.164 prefixes allowed and denied (NULL = no list);
	 * and a key's narrowing of its tenant's sip: policy (NULL = none) */
	"ALTER TABLE tenants ADD COLUMN sip_uris TEXT;"
	"UPDATE tenants SET sip_uris = 'any';"
	"ALTER TABLE tenants ADD COLUMN allow_prefixes TEXT;"
	"ALTER TABLE tenants ADD COLUMN deny_prefixes TEXT;"
	"ALTER TABLE api_keys ADD COLUMN sip_uris TEXT;",

	/* 11: a trunk's SRTP (off, optional, required); the trunks there were have none */
	"ALTER TABLE trunks ADD COLUMN srtp TEXT NOT NULL DEFAULT 'off';",

	/* 12: whether a pending delivery's next attempt is a lease (an attempt in flight) rather
	 * than a retry's time, so that a server starting after a crash makes its leases due at
	 * once instead of waiting them out */
	"ALTER TABLE deliveries ADD COLUMN leased INTEGER NOT NULL DEFAULT 0;",
};

static int migrate(struct conn *c)
{
	int n = (int)(sizeof migrations / sizeof migrations[0]);
	for (;;) {
		if (sq_exec(c->db, "BEGIN IMMEDIATE"))
			return -1;
		sqlite3_stmt *st;
		int version = 0;
		if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
			if (sqlite3_step(st) == SQLITE_ROW)
				version = sqlite3_column_int(st, 0);
			sqlite3_finalize(st);
		}
		if (version >= n) {
			sq_exec(c->db, "COMMIT");
			return version > n ? -1 : 0; /* newer schema than this binary: refuse */
		}
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version = %d", version + 1);
		if (sq_exec(c->db, migrations[version]) || sq_exec(c->db, bump)) {
			sq_exec(c->db, "ROLLBACK");
			return -1;
		}
		if (sq_exec(c->db, "COMMIT"))
			return -1;
		log_json(LOG_INFO, "store_migrated", json_pack("{s:i}", "version", version + 1));
	}
}

void sqlite_close(void *ctx)
{
	struct sqlite_handle *h = ctx;
	if (!h)
		return;
	struct sqlite_store *s = h->s;
	for (int i = 0; i < s->n_all; i++)
		sq_conn_close(s->all[i]);
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
			log_msg(LOG_ERROR, "store_error",
				"%s is in use by another callplane server", s->path);
		else
			log_msg(LOG_ERROR, "store_error", "cannot lock %s: %s", s->path,
				strerror(errno));
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

enum store_result sqlite_open(const char *location, const struct store_options *opt, void **ctx)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, sqlite_configure);
	struct sqlite_store *s = calloc(1, sizeof *s);
	if (!s)
		return STORE_ERROR;
	s->self = (struct sqlite_handle){.s = s};
	s->batch.h = (struct sqlite_handle){.s = s, .batch = &s->batch};
	s->path = strdup(location);
	s->sync_full = !opt || opt->sync_full;
	pthread_mutex_init(&s->pool_mu, NULL);
	pthread_mutex_init(&s->write_mu, NULL);
	struct conn *c = sq_conn_get(&s->self);
	if (!c || migrate(c)) {
		if (c)
			sq_conn_put(&s->self, c);
		log_msg(LOG_ERROR, "store_error", "cannot open or migrate %s", location);
		sqlite_close(s);
		return STORE_ERROR;
	}
	sq_conn_put(&s->self, c);
	if (opt && opt->server && server_lock(s)) {
		sqlite_close(s);
		return STORE_ERROR;
	}
	*ctx = &s->self;
	return STORE_OK;
}

const struct store_backend store_sqlite_backend = {
	.open = sqlite_open,
	.close = sqlite_close,
	.tenant_create = sqlite_tenant_create,
	.tenant_exists = sqlite_tenant_exists,
	.tenant_list = sqlite_tenant_list,
	.tenant_dial = sqlite_tenant_dial,
	.tenant_set_dial = sqlite_tenant_set_dial,
	.tenant_set_name = sqlite_tenant_set_name,
	.agent_create = sqlite_agent_create,
	.agent_get = sqlite_agent_get,
	.agent_by_number = sqlite_agent_by_number,
	.agent_list = sqlite_agent_list,
	.agent_set_stream_url = sqlite_agent_set_stream_url,
	.agent_set_record = sqlite_agent_set_record,
	.agent_set_goodbye = sqlite_agent_set_goodbye,
	.agent_set_trunk = sqlite_agent_set_trunk,
	.trunk_create = sqlite_trunk_create,
	.trunk_get = sqlite_trunk_get,
	.trunk_list = sqlite_trunk_list,
	.trunk_delete = sqlite_trunk_delete,
	.trunk_generation = sqlite_trunk_generation,
	.trunk_status_put = sqlite_trunk_status_put,
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
	.call_count_active = sqlite_call_count_active,
	.dialog_put = sqlite_dialog_put,
	.dialog_clear = sqlite_dialog_clear,
	.dialog_list = sqlite_dialog_list,
	.idem_claim = sqlite_idem_claim,
	.idem_complete = sqlite_idem_complete,
	.idem_release = sqlite_idem_release,
	.idem_purge = sqlite_idem_purge,
	.webhook_create = sqlite_webhook_create,
	.webhook_list = sqlite_webhook_list,
	.webhook_update = sqlite_webhook_update,
	.webhook_delete = sqlite_webhook_delete,
	.delivery_lease = sqlite_delivery_lease,
	.delivery_release = sqlite_delivery_release,
	.delivery_release_leased = sqlite_delivery_release_leased,
	.delivery_record = sqlite_delivery_record,
	.delivery_list = sqlite_delivery_list,
	.delivery_replay = sqlite_delivery_replay,
	.events_since = sqlite_events_since,
	.events_last_seq = sqlite_events_last_seq,
	.delivery_backlog = sqlite_delivery_backlog,
	.batch_begin = sqlite_batch_begin,
	.batch_end = sqlite_batch_end,
};
