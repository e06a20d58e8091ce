/*
 * test_store.c - the SQLite store against a real database file in a fresh mkdtemp() directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "model/call.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"
#include "call_json_parsed.h"

struct fx {
	char dir[64];
	char path[128];
	struct store *st;
	char tenant[CP_UUID_LEN + 1];  /* tenant 1 */
	char tenant2[CP_UUID_LEN + 1]; /* tenant 2 */
};

static const struct store_options fast = {.sync_full = false};

static void remove_db_files(const char *path)
{
	char buf[256];
	unlink(path);
	snprintf(buf, sizeof buf, "%s-wal", path);
	unlink(buf);
	snprintf(buf, sizeof buf, "%s-shm", path);
	unlink(buf);
}

static void new_tenant(struct store *st, const char *name, char id[CP_UUID_LEN + 1])
{
	struct tenant t = {.created_at = cp_now_ms()};
	assert_int_equal(cp_uuid4(id), 0);
	snprintf(t.id, sizeof t.id, "%s", id);
	snprintf(t.name, sizeof t.name, "%s", name);
	assert_int_equal(STORE(st, tenant_create, &t), STORE_OK);
}

static int new_agent(struct store *st, const char *tenant, const char *name, const char *number,
		     int max_dur, char id[CP_UUID_LEN + 1])
{
	struct agent a = {0};
	assert_int_equal(cp_uuid4(a.id), 0);
	snprintf(a.tenant_id, sizeof a.tenant_id, "%s", tenant);
	snprintf(a.name, sizeof a.name, "%s", name);
	snprintf(a.number, sizeof a.number, "%s", number ? number : "");
	a.max_duration_s = max_dur;
	a.created_at = cp_now_ms();
	int rc = STORE(st, agent_create, &a);
	if (id)
		memcpy(id, a.id, sizeof a.id);
	return rc;
}

/* Inserts a call in `status` and returns it (seq set) in *out. */
static void new_call(struct store *st, const char *tenant, const char *agent,
		     enum call_status status, struct call *out)
{
	struct call c = {0};
	assert_int_equal(cp_uuid4(c.id), 0);
	snprintf(c.tenant_id, sizeof c.tenant_id, "%s", tenant);
	snprintf(c.agent_id, sizeof c.agent_id, "%s", agent);
	c.direction = CALL_OUTBOUND;
	c.status = status;
	strcpy(c.from, "+15550001111");
	strcpy(c.to, "sip:bob@example.com");
	c.max_duration_s = 60;
	c.created_at = cp_now_ms();
	if (call_status_is_terminal(status))
		c.ended_at = c.created_at + 1;
	c.metadata = strdup("{\"n\":1}");
	assert_non_null(c.metadata);
	assert_int_equal(STORE(st, call_insert, &c), STORE_OK);
	assert_true(c.seq > 0);
	call_move(out, &c);
}

static struct scope tenant_scope(const char *tenant)
{
	struct scope sc = {0};
	snprintf(sc.tenant_id, sizeof sc.tenant_id, "%s", tenant);
	return sc;
}

static struct scope number_scope(const char *tenant, const char *number)
{
	struct scope sc = tenant_scope(tenant);
	snprintf(sc.number, sizeof sc.number, "%s", number);
	return sc;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/cp_test_store_XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/callplane.db", f->dir);
	f->st = store_open(f->path, &fast);
	if (!f->st) {
		rmdir(f->dir);
		free(f);
		return -1;
	}
	new_tenant(f->st, "tenant one", f->tenant);
	new_tenant(f->st, "tenant two", f->tenant2);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->st);
	remove_db_files(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- open / migrations ------------------------------------------------------------------ */

static void test_open_twice_same_file(void **state)
{
	struct fx *f = *state;
	/* a second handle on the same (already migrated) file: migrations are not re-applied */
	struct store *st2 = store_open(f->path, NULL);
	assert_non_null(st2);
	assert_int_equal(STORE(st2, tenant_exists, f->tenant), STORE_OK);
	char t3[CP_UUID_LEN + 1];
	new_tenant(st2, "from the second handle", t3);
	assert_int_equal(STORE(f->st, tenant_exists, t3), STORE_OK);
	store_close(st2);

	/* close and reopen the first: the data is still there, the schema still works */
	store_close(f->st);
	f->st = store_open(f->path, &fast);
	assert_non_null(f->st);
	assert_int_equal(STORE(f->st, tenant_exists, f->tenant), STORE_OK);
	assert_int_equal(STORE(f->st, tenant_exists, t3), STORE_OK);

	/* the schema version is exactly the number of migrations applied, once: 12 (the spine;
	 * webhooks and the outbox; stream URLs; goodbyes; recordings; dialogs; operator keys;
	 * trunks; webhook signing; dial policies; trunk SRTP; delivery leases). A new migration raises it here. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	int version = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	assert_int_equal(version, 12);
}

struct opener {
	const char *path;
	pthread_barrier_t *barrier;
	struct store *st;
};

static void *open_one(void *arg)
{
	struct opener *o = arg;
	pthread_barrier_wait(o->barrier);
	o->st = store_open(o->path, &fast);
	return NULL;
}

static void test_open_fresh_file_in_parallel(void **state)
{
	/* several handles (as several processes would) opening one brand-new file at the same
	 * moment: every open succeeds, so each migration ran exactly once (a second run of a
	 * CREATE TABLE would fail that open) */
	struct fx *f = *state;
	enum { N = 6 };
	char path[200];
	snprintf(path, sizeof path, "%s/parallel.db", f->dir);
	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, N);
	struct opener o[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		o[i] = (struct opener){.path = path, .barrier = &barrier};
		assert_int_equal(pthread_create(&t[i], NULL, open_one, &o[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&barrier);
	int opened = 0;
	for (int i = 0; i < N; i++)
		opened += o[i].st != NULL;
	char tid[CP_UUID_LEN + 1];
	if (opened == N) {
		new_tenant(o[0].st, "x", tid);
		for (int i = 1; i < N; i++)
			assert_int_equal(STORE(o[i].st, tenant_exists, tid), STORE_OK);
	}
	for (int i = 0; i < N; i++)
		store_close(o[i].st);
	remove_db_files(path);
	assert_int_equal(opened, N);
}

static void test_open_refuses_newer_schema(void **state)
{
	struct fx *f = *state;
	char path[200];
	snprintf(path, sizeof path, "%s/newer.db", f->dir);
	struct store *st = store_open(path, &fast);
	assert_non_null(st);
	store_close(st);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 9999", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	st = store_open(path, &fast);
	assert_null(st);
	store_close(st);
	remove_db_files(path);
}

static void test_open_bad_location(void **state)
{
	(void)state;
	assert_null(store_open("/nonexistent-dir-callplane/x/y.db", &fast));
}

/* ---- tenants / agents / keys ------------------------------------------------------------ */

static void test_tenants(void **state)
{
	struct fx *f = *state;
	assert_int_equal(STORE(f->st, tenant_exists, f->tenant), STORE_OK);
	assert_int_equal(STORE(f->st, tenant_exists, f->tenant2), STORE_OK);
	assert_int_equal(STORE(f->st, tenant_exists, "00000000-0000-4000-8000-000000000000"),
			 STORE_NOT_FOUND);
	/* duplicate id */
	struct tenant dup = {.name = "dup", .created_at = cp_now_ms()};
	snprintf(dup.id, sizeof dup.id, "%s", f->tenant);
	assert_int_equal(STORE(f->st, tenant_create, &dup), STORE_CONFLICT);
	struct tenant *list = NULL;
	size_t n = 0;
	assert_int_equal(STORE(f->st, tenant_list, &list, &n), STORE_OK);
	assert_int_equal(n, 2);
	int found = 0;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(list[i].id, f->tenant)) {
			found++;
			assert_string_equal(list[i].name, "tenant one");
		}
		assert_true(list[i].created_at > 0);
	}
	assert_int_equal(found, 1);
	free(list);
}

/* A tenant's dial policy: written at creation (nothing given: no sip: URI, no prefix list),
 * read for a call, changed part by part (NULL keeps, "" clears). */
static void test_tenant_dial(void **state)
{
	struct fx *f = *state;
	struct dial_policy d;
	memset(&d, 'x', sizeof d);
	assert_int_equal(STORE(f->st, tenant_dial, f->tenant, &d), STORE_OK);
	assert_string_equal(d.sip_uris, "");
	assert_string_equal(d.allow_prefixes, "");
	assert_string_equal(d.deny_prefixes, "");
	struct tenant t = {.id = "00000000-0000-4000-8000-0000000000d1",
			   .name = "dialler",
			   .created_at = 1,
			   .dial = {.sip_uris = "pbx.example,[::1]",
				    .allow_prefixes = "+1,+44",
				    .deny_prefixes = "+1900"}};
	assert_int_equal(STORE(f->st, tenant_create, &t), STORE_OK);
	assert_int_equal(STORE(f->st, tenant_dial, t.id, &d), STORE_OK);
	assert_string_equal(d.sip_uris, "pbx.example,[::1]");
	assert_string_equal(d.allow_prefixes, "+1,+44");
	assert_string_equal(d.deny_prefixes, "+1900");
	assert_int_equal(STORE(f->st, tenant_set_dial, t.id, "any", NULL, ""), STORE_OK);
	assert_int_equal(STORE(f->st, tenant_dial, t.id, &d), STORE_OK);
	assert_string_equal(d.sip_uris, "any");
	assert_string_equal(d.allow_prefixes, "+1,+44");
	assert_string_equal(d.deny_prefixes, "");
	struct tenant *list = NULL;
	size_t n = 0;
	assert_int_equal(STORE(f->st, tenant_list, &list, &n), STORE_OK);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].id, t.id); /* created_at 1: the oldest */
	assert_string_equal(list[0].dial.sip_uris, "any");
	free(list);
	const char *nobody = "00000000-0000-4000-8000-000000000000";
	assert_int_equal(STORE(f->st, tenant_dial, nobody, &d), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, tenant_set_dial, nobody, "any", NULL, NULL), STORE_NOT_FOUND);
}

static void test_agents(void **state)
{
	struct fx *f = *state;
	char a1[CP_UUID_LEN + 1], a2[CP_UUID_LEN + 1];
	int64_t t0 = cp_now_ms();
	assert_int_equal(new_agent(f->st, f->tenant, "alice", "+15550001111", 120, a1), STORE_OK);
	assert_int_equal(new_agent(f->st, f->tenant, "bob", NULL, 0, a2), STORE_OK);

	struct scope sc = tenant_scope(f->tenant);
	struct agent out;
	assert_int_equal(STORE(f->st, agent_get, &sc, a1, &out), STORE_OK);
	assert_string_equal(out.id, a1);
	assert_string_equal(out.tenant_id, f->tenant);
	assert_string_equal(out.name, "alice");
	assert_string_equal(out.number, "+15550001111");
	assert_int_equal(out.max_duration_s, 120);
	assert_in_range(out.created_at, t0, cp_now_ms()); /* as new_agent gave it */

	assert_int_equal(STORE(f->st, agent_get, &sc, a2, &out), STORE_OK);
	assert_string_equal(out.number, "");
	assert_int_equal(out.max_duration_s, 0);

	/* by number */
	assert_int_equal(STORE(f->st, agent_by_number, "+15550001111", &out), STORE_OK);
	assert_string_equal(out.id, a1);
	assert_int_equal(STORE(f->st, agent_by_number, "+15559999999", &out), STORE_NOT_FOUND);

	/* another tenant cannot see them */
	struct scope other = tenant_scope(f->tenant2);
	assert_int_equal(STORE(f->st, agent_get, &other, a1, &out), STORE_NOT_FOUND);
	/* a number-scoped scope sees only the agent with that number */
	struct scope num = number_scope(f->tenant, "+15550001111");
	assert_int_equal(STORE(f->st, agent_get, &num, a1, &out), STORE_OK);
	assert_int_equal(STORE(f->st, agent_get, &num, a2, &out), STORE_NOT_FOUND);
	struct scope num2 = number_scope(f->tenant, "+15550002222");
	assert_int_equal(STORE(f->st, agent_get, &num2, a1, &out), STORE_NOT_FOUND);
	/* unknown id */
	assert_int_equal(STORE(f->st, agent_get, &sc, "00000000-0000-4000-8000-000000000000", &out),
			 STORE_NOT_FOUND);

	struct agent *list = NULL;
	size_t n = 0;
	assert_int_equal(STORE(f->st, agent_list, f->tenant, &list, &n), STORE_OK);
	assert_int_equal(n, 2);
	free(list);
	assert_int_equal(STORE(f->st, agent_list, f->tenant2, &list, &n), STORE_OK);
	assert_int_equal(n, 0);
	assert_null(list);
	assert_int_equal(STORE(f->st, agent_list, NULL, &list, &n), STORE_OK);
	assert_int_equal(n, 2);
	/* an agent without number or limit lists them empty (both may share a created_at, so
	 * the order is not asserted here) */
	const struct agent *alice = strcmp(list[0].id, a1) ? &list[1] : &list[0];
	const struct agent *bob = alice == list ? &list[1] : &list[0];
	assert_string_equal(alice->id, a1);
	assert_string_equal(alice->number, "+15550001111");
	assert_int_equal(alice->max_duration_s, 120);
	assert_string_equal(bob->id, a2);
	assert_string_equal(bob->number, "");
	assert_int_equal(bob->max_duration_s, 0);
	free(list);
}

/* An agent's record flag: stored at creation, read by every lookup, changed by
 * agent_set_record. */
static void test_agent_record(void **state)
{
	struct fx *f = *state;
	struct agent a = {0};
	assert_int_equal(cp_uuid4(a.id), 0);
	snprintf(a.tenant_id, sizeof a.tenant_id, "%s", f->tenant);
	strcpy(a.name, "recorder");
	strcpy(a.number, "+15550001111");
	a.record = true;
	a.created_at = cp_now_ms();
	assert_int_equal(STORE(f->st, agent_create, &a), STORE_OK);
	char plain[CP_UUID_LEN + 1];
	assert_int_equal(new_agent(f->st, f->tenant, "plain", NULL, 0, plain), STORE_OK);

	struct scope sc = tenant_scope(f->tenant);
	struct agent out;
	assert_int_equal(STORE(f->st, agent_get, &sc, a.id, &out), STORE_OK);
	assert_true(out.record);
	assert_int_equal(STORE(f->st, agent_by_number, "+15550001111", &out), STORE_OK);
	assert_true(out.record);
	assert_int_equal(STORE(f->st, agent_get, &sc, plain, &out), STORE_OK);
	assert_false(out.record);

	assert_int_equal(STORE(f->st, agent_set_record, a.id, false), STORE_OK);
	assert_int_equal(STORE(f->st, agent_set_record, plain, true), STORE_OK);
	struct agent *list = NULL;
	size_t n = 0;
	assert_int_equal(STORE(f->st, agent_list, f->tenant, &list, &n), STORE_OK);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(list[i].record, !strcmp(list[i].id, plain));
	free(list);
	assert_int_equal(
		STORE(f->st, agent_set_record, "00000000-0000-4000-8000-000000000000", true),
		STORE_NOT_FOUND);
}

static void test_agent_goodbyes(void **state)
{
	struct fx *f = *state;
	struct scope sc = tenant_scope(f->tenant);
	struct agent a = {0}, out;
	assert_int_equal(cp_uuid4(a.id), 0);
	snprintf(a.tenant_id, sizeof a.tenant_id, "%s", f->tenant);
	snprintf(a.name, sizeof a.name, "polite");
	snprintf(a.goodbye_text, sizeof a.goodbye_text, "Thank you, goodbye \xc3\xa9.");
	a.created_at = cp_now_ms();
	assert_int_equal(STORE(f->st, agent_create, &a), STORE_OK);
	assert_int_equal(STORE(f->st, agent_get, &sc, a.id, &out), STORE_OK);
	assert_string_equal(out.goodbye_text, "Thank you, goodbye \xc3\xa9.");
	assert_string_equal(out.max_duration_goodbye, "");

	/* NULL keeps a text, "" clears it, anything else replaces it */
	assert_int_equal(STORE(f->st, agent_set_goodbye, a.id, NULL, "Time is up."), STORE_OK);
	assert_int_equal(STORE(f->st, agent_get, &sc, a.id, &out), STORE_OK);
	assert_string_equal(out.goodbye_text, "Thank you, goodbye \xc3\xa9.");
	assert_string_equal(out.max_duration_goodbye, "Time is up.");
	assert_int_equal(STORE(f->st, agent_set_goodbye, a.id, "", NULL), STORE_OK);
	struct agent *list = NULL;
	size_t n = 0;
	assert_int_equal(STORE(f->st, agent_list, f->tenant, &list, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].goodbye_text, "");
	assert_string_equal(list[0].max_duration_goodbye, "Time is up.");
	free(list);
	/* the longest text is kept whole: 1000 characters of 4 bytes each */
	char longest[CALL_GOODBYE_TEXT_BYTES + 1];
	for (int i = 0; i < CALL_GOODBYE_TEXT_MAX; i++)
		memcpy(longest + 4 * i, "\xf0\x9f\x98\x80", 4);
	longest[CALL_GOODBYE_TEXT_BYTES] = '\0';
	assert_int_equal(STORE(f->st, agent_set_goodbye, a.id, longest, ""), STORE_OK);
	assert_int_equal(STORE(f->st, agent_get, &sc, a.id, &out), STORE_OK);
	assert_string_equal(out.goodbye_text, longest);
	assert_string_equal(out.max_duration_goodbye, "");
	assert_int_equal(
		STORE(f->st, agent_set_goodbye, "00000000-0000-4000-8000-000000000000", "x", NULL),
		STORE_NOT_FOUND);
}

static void test_agent_number_unique(void **state)
{
	struct fx *f = *state;
	char a1[CP_UUID_LEN + 1], dup[CP_UUID_LEN + 1];
	assert_int_equal(new_agent(f->st, f->tenant, "one", "+15550001111", 0, a1), STORE_OK);
	/* same number, same tenant */
	assert_int_equal(new_agent(f->st, f->tenant, "two", "+15550001111", 0, dup),
			 STORE_CONFLICT);
	/* same number, another tenant: numbers are globally unique (they route inbound calls) */
	assert_int_equal(new_agent(f->st, f->tenant2, "three", "+15550001111", 0, dup),
			 STORE_CONFLICT);
	struct agent out;
	struct scope sc2 = tenant_scope(f->tenant2);
	assert_int_equal(STORE(f->st, agent_get, &sc2, dup, &out), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, agent_by_number, "+15550001111", &out), STORE_OK);
	assert_string_equal(out.id, a1);
	/* any number of agents without a number */
	assert_int_equal(new_agent(f->st, f->tenant, "n1", NULL, 0, NULL), STORE_OK);
	assert_int_equal(new_agent(f->st, f->tenant, "n2", "", 0, NULL), STORE_OK);
	assert_int_equal(new_agent(f->st, f->tenant2, "n3", NULL, 0, NULL), STORE_OK);
}

static void test_agent_needs_tenant(void **state)
{
	struct fx *f = *state;
	char id[CP_UUID_LEN + 1];
	int rc = new_agent(f->st, "00000000-0000-4000-8000-000000000000", "ghost", "+15550007777",
			   0, id);
	assert_int_equal(rc, STORE_NOT_FOUND); /* the tenant, a foreign key, is missing */
	struct agent out;
	assert_int_equal(STORE(f->st, agent_by_number, "+15550007777", &out), STORE_NOT_FOUND);
	struct scope sc = tenant_scope("00000000-0000-4000-8000-000000000000");
	assert_int_equal(STORE(f->st, agent_get, &sc, id, &out), STORE_NOT_FOUND);
}

static void test_missing_parent_is_not_found(void **state)
{
	/* A row whose parent does not exist is a missing reference, not "condition failed / unique
	 * key taken" (STORE_CONFLICT in store.h); sq_step_error() in store/sqlite/pool.c maps a
	 * foreign-key violation to STORE_NOT_FOUND. */
	struct fx *f = *state;
	const char *ghost = "00000000-0000-4000-8000-000000000000";
	assert_int_equal(new_agent(f->st, ghost, "ghost", "+15550007777", 0, NULL),
			 STORE_NOT_FOUND);
	/* a call of an agent that does not exist */
	struct call c = {0};
	assert_int_equal(cp_uuid4(c.id), 0);
	strcpy(c.tenant_id, f->tenant);
	strcpy(c.agent_id, ghost);
	strcpy(c.from, "+15550001111");
	strcpy(c.to, "+15550002222");
	c.created_at = 1;
	assert_int_equal(STORE(f->st, call_insert, &c), STORE_NOT_FOUND);
}

static void make_key(const char *tenant, const char *number, const char *secret, struct api_key *k)
{
	memset(k, 0, sizeof *k);
	assert_int_equal(cp_uuid4(k->id), 0);
	snprintf(k->tenant_id, sizeof k->tenant_id, "%s", tenant);
	snprintf(k->number, sizeof k->number, "%s", number ? number : "");
	cp_sha256_hex(secret, strlen(secret), k->hash);
	snprintf(k->prefix, sizeof k->prefix, "%.10s", secret);
	k->created_at = cp_now_ms();
}

static void test_keys(void **state)
{
	struct fx *f = *state;
	struct api_key k1, k2, out;
	make_key(f->tenant, NULL, "cp_secret-one", &k1);
	make_key(f->tenant, "+15550001111", "cp_secret-two", &k2);
	k2.rate_limit = 25;
	assert_int_equal(STORE(f->st, key_create, &k1), STORE_OK);
	assert_int_equal(STORE(f->st, key_create, &k2), STORE_OK);
	/* the same hash twice is refused */
	struct api_key dup;
	make_key(f->tenant, NULL, "cp_secret-one", &dup);
	assert_int_equal(STORE(f->st, key_create, &dup), STORE_CONFLICT);
	/* a key for a tenant that does not exist */
	struct api_key ghost;
	make_key("00000000-0000-4000-8000-000000000000", NULL, "cp_ghost", &ghost);
	assert_int_equal(STORE(f->st, key_create, &ghost), STORE_NOT_FOUND);

	assert_int_equal(STORE(f->st, key_by_hash, k1.hash, &out), STORE_OK);
	assert_string_equal(out.id, k1.id);
	assert_string_equal(out.tenant_id, f->tenant);
	assert_string_equal(out.number, "");
	assert_string_equal(out.hash, k1.hash);
	assert_string_equal(out.prefix, "cp_secret-");
	assert_int_equal(out.created_at, k1.created_at);
	assert_int_equal(out.revoked_at, 0);

	assert_int_equal(STORE(f->st, key_by_hash, k2.hash, &out), STORE_OK);
	assert_string_equal(out.id, k2.id);
	assert_string_equal(out.number, "+15550001111");
	assert_int_equal(out.rate_limit, 25);
	assert_int_equal(STORE(f->st, key_by_hash, k1.hash, &out), STORE_OK);
	assert_int_equal(out.rate_limit, 0);

	char unknown[CP_SHA256_HEX_LEN + 1];
	cp_sha256_hex("nope", 4, unknown);
	assert_int_equal(STORE(f->st, key_by_hash, unknown, &out), STORE_NOT_FOUND);

	struct api_key *list = NULL;
	size_t n = 0;
	assert_int_equal(STORE(f->st, key_list, f->tenant, &list, &n), STORE_OK);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(list[i].hash, ""); /* never listed */
		assert_true(list[i].prefix[0] != '\0');
		assert_int_equal(list[i].revoked_at, 0);
	}
	free(list);
	assert_int_equal(STORE(f->st, key_list, f->tenant2, &list, &n), STORE_OK);
	assert_int_equal(n, 0);
}

static void test_key_revoke(void **state)
{
	struct fx *f = *state;
	struct api_key k, out;
	make_key(f->tenant, NULL, "cp_to-revoke", &k);
	assert_int_equal(STORE(f->st, key_create, &k), STORE_OK);
	assert_int_equal(STORE(f->st, key_revoke, k.id, 5000), STORE_OK);
	assert_int_equal(STORE(f->st, key_by_hash, k.hash, &out), STORE_OK);
	assert_int_equal(out.revoked_at, 5000);
	/* revoking again succeeds (the key exists) and keeps the first revocation time */
	assert_int_equal(STORE(f->st, key_revoke, k.id, 9000), STORE_OK);
	assert_int_equal(STORE(f->st, key_by_hash, k.hash, &out), STORE_OK);
	assert_int_equal(out.revoked_at, 5000);
	/* unknown key */
	assert_int_equal(STORE(f->st, key_revoke, "00000000-0000-4000-8000-000000000000", 1),
			 STORE_NOT_FOUND);
	struct api_key *list = NULL;
	size_t n = 0;
	assert_int_equal(STORE(f->st, key_list, f->tenant, &list, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].revoked_at, 5000);
	free(list);
}

/* ---- calls: insert / get ---------------------------------------------------------------- */

static void test_call_insert_and_get(void **state)
{
	struct fx *f = *state;
	char a1[CP_UUID_LEN + 1];
	assert_int_equal(new_agent(f->st, f->tenant, "alice", "+15550001111", 0, a1), STORE_OK);
	struct call c = {0}, got = {0};
	new_call(f->st, f->tenant, a1, CALL_QUEUED, &c);

	struct scope sc = tenant_scope(f->tenant);
	assert_int_equal(STORE(f->st, call_get, &sc, c.id, &got), STORE_OK);
	assert_int_equal(got.seq, c.seq);
	assert_string_equal(got.id, c.id);
	assert_string_equal(got.tenant_id, f->tenant);
	assert_string_equal(got.agent_id, a1);
	assert_int_equal(got.direction, CALL_OUTBOUND);
	assert_int_equal(got.status, CALL_QUEUED);
	assert_false(call_is_redacted(&got));
	assert_string_equal(got.from, "+15550001111");
	assert_string_equal(got.to, "sip:bob@example.com");
	assert_string_equal(got.provider_call_id, "");
	assert_string_equal(got.end_reason, "");
	assert_int_equal(got.sip_status, 0);
	assert_int_equal(got.max_duration_s, 60);
	assert_int_equal(got.created_at, c.created_at);
	assert_int_equal(got.answered_at, 0);
	assert_int_equal(got.ended_at, 0);
	assert_int_equal(got.redacted_at, 0);
	assert_non_null(got.metadata);
	assert_string_equal(got.metadata, "{\"n\":1}");
	assert_false(got.record);

	/* unscoped (the engine's view) */
	assert_int_equal(STORE(f->st, call_get, NULL, c.id, &got), STORE_OK);
	assert_string_equal(got.id, c.id);

	/* unknown id */
	assert_int_equal(STORE(f->st, call_get, &sc, "00000000-0000-4000-8000-000000000000", &got),
			 STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, call_get, NULL, "00000000-0000-4000-8000-000000000000", &got),
			 STORE_NOT_FOUND);

	/* duplicate id refused */
	struct call dup = {0};
	memcpy(&dup, &c, sizeof dup);
	dup.metadata = NULL;
	assert_int_equal(STORE(f->st, call_insert, &dup), STORE_CONFLICT);

	/* an inbound call with every optional field */
	struct call in = {0};
	assert_int_equal(cp_uuid4(in.id), 0);
	strcpy(in.tenant_id, f->tenant);
	strcpy(in.agent_id, a1);
	in.direction = CALL_INBOUND;
	in.status = CALL_IN_PROGRESS;
	strcpy(in.from, "sip:carol@example.org");
	strcpy(in.to, "+15550001111");
	strcpy(in.provider_call_id, "inbound-1@10.0.0.1");
	in.created_at = 1000;
	in.answered_at = 2000;
	in.record = true;
	assert_int_equal(STORE(f->st, call_insert, &in), STORE_OK);
	assert_true(in.seq > c.seq);
	assert_int_equal(STORE(f->st, call_get, &sc, in.id, &got), STORE_OK);
	assert_int_equal(got.direction, CALL_INBOUND);
	assert_int_equal(got.status, CALL_IN_PROGRESS);
	assert_int_equal(got.answered_at, 2000);
	assert_null(got.metadata);
	assert_string_equal(got.provider_call_id, "inbound-1@10.0.0.1");
	assert_true(got.record);
	/* the row a step returns carries it too */
	struct call_update end = {.from_mask = CALL_BIT(CALL_IN_PROGRESS),
				  .to = CALL_COMPLETED,
				  .ended_at = 3000,
				  .end_reason = "remote_hangup"};
	assert_int_equal(STORE(f->st, call_update, in.id, &end, &got, NULL), STORE_OK);
	assert_true(got.record);
	assert_true(call_has_recording(&got));

	/* a web call: direction web, no addresses */
	struct call web = {0};
	assert_int_equal(cp_uuid4(web.id), 0);
	strcpy(web.tenant_id, f->tenant);
	strcpy(web.agent_id, a1);
	web.direction = CALL_WEB;
	web.status = CALL_QUEUED;
	web.created_at = 4000;
	assert_int_equal(STORE(f->st, call_insert, &web), STORE_OK);
	assert_int_equal(STORE(f->st, call_get, &sc, web.id, &got), STORE_OK);
	assert_int_equal(got.direction, CALL_WEB);
	assert_string_equal(got.from, "");
	assert_string_equal(got.to, "");

	call_clear(&c);
	call_clear(&got);
}

static void test_call_get_tenant_isolation(void **state)
{
	struct fx *f = *state;
	char a1[CP_UUID_LEN + 1], b1[CP_UUID_LEN + 1];
	assert_int_equal(new_agent(f->st, f->tenant, "alice", "+15550001111", 0, a1), STORE_OK);
	assert_int_equal(new_agent(f->st, f->tenant2, "bob", "+15550009999", 0, b1), STORE_OK);
	struct call c1 = {0}, c2 = {0}, got = {0};
	new_call(f->st, f->tenant, a1, CALL_QUEUED, &c1);
	new_call(f->st, f->tenant2, b1, CALL_QUEUED, &c2);
	/* a provider call id, to check that lookup by it is scoped as well */
	struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
				.to = CALL_RINGING,
				.provider_call_id = "pcid-tenant1@host"};
	assert_int_equal(STORE(f->st, call_update, c1.id, &u, NULL, NULL), STORE_OK);

	struct scope s1 = tenant_scope(f->tenant), s2 = tenant_scope(f->tenant2);
	assert_int_equal(STORE(f->st, call_get, &s1, c1.id, &got), STORE_OK);
	assert_int_equal(STORE(f->st, call_get, &s2, c1.id, &got), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, call_get, &s1, c2.id, &got), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, call_get, &s2, c2.id, &got), STORE_OK);
	assert_string_equal(got.id, c2.id);
	/* by provider call id */
	assert_int_equal(STORE(f->st, call_get, &s1, "pcid-tenant1@host", &got), STORE_OK);
	assert_string_equal(got.id, c1.id);
	assert_int_equal(STORE(f->st, call_get, &s2, "pcid-tenant1@host", &got), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, call_get, NULL, "pcid-tenant1@host", &got), STORE_OK);
	assert_string_equal(got.id, c1.id);
	/* a number-scoped key of the right number but the wrong tenant sees nothing */
	struct scope wrong = number_scope(f->tenant2, "+15550001111");
	assert_int_equal(STORE(f->st, call_get, &wrong, c1.id, &got), STORE_NOT_FOUND);
	call_clear(&c1);
	call_clear(&c2);
	call_clear(&got);
}

static void test_call_get_number_scope(void **state)
{
	struct fx *f = *state;
	char a1[CP_UUID_LEN + 1], a2[CP_UUID_LEN + 1], a3[CP_UUID_LEN + 1];
	assert_int_equal(new_agent(f->st, f->tenant, "one", "+15550001111", 0, a1), STORE_OK);
	assert_int_equal(new_agent(f->st, f->tenant, "two", "+15550002222", 0, a2), STORE_OK);
	assert_int_equal(new_agent(f->st, f->tenant, "none", NULL, 0, a3), STORE_OK);
	struct call c1 = {0}, c2 = {0}, c3 = {0}, got = {0};
	new_call(f->st, f->tenant, a1, CALL_QUEUED, &c1);
	new_call(f->st, f->tenant, a2, CALL_QUEUED, &c2);
	new_call(f->st, f->tenant, a3, CALL_QUEUED, &c3);
	struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
				.to = CALL_RINGING,
				.provider_call_id = "pcid-two@host"};
	assert_int_equal(STORE(f->st, call_update, c2.id, &u, NULL, NULL), STORE_OK);

	struct scope n1 = number_scope(f->tenant, "+15550001111");
	assert_int_equal(STORE(f->st, call_get, &n1, c1.id, &got), STORE_OK);
	assert_string_equal(got.id, c1.id);
	assert_int_equal(STORE(f->st, call_get, &n1, c2.id, &got), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, call_get, &n1, c3.id, &got), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, call_get, &n1, "pcid-two@host", &got), STORE_NOT_FOUND);
	struct scope n2 = number_scope(f->tenant, "+15550002222");
	assert_int_equal(STORE(f->st, call_get, &n2, "pcid-two@host", &got), STORE_OK);
	assert_string_equal(got.id, c2.id);
	assert_int_equal(STORE(f->st, call_get, &n2, c1.id, &got), STORE_NOT_FOUND);
	/* the tenant-wide scope sees all three */
	struct scope all = tenant_scope(f->tenant);
	assert_int_equal(STORE(f->st, call_get, &all, c1.id, &got), STORE_OK);
	assert_int_equal(STORE(f->st, call_get, &all, c2.id, &got), STORE_OK);
	assert_int_equal(STORE(f->st, call_get, &all, c3.id, &got), STORE_OK);
	call_clear(&c1);
	call_clear(&c2);
	call_clear(&c3);
	call_clear(&got);
}

static void test_call_id_not_shadowed_by_provider_id(void **state)
{
	/* a call whose provider call id equals another call's id must not hide that call */
	struct fx *f = *state;
	char a1[CP_UUID_LEN + 1];
	assert_int_equal(new_agent(f->st, f->tenant, "alice", "+15550001111", 0, a1), STORE_OK);
	struct call x = {0}, y = {0}, got = {0};
	new_call(f->st, f->tenant, a1, CALL_QUEUED, &y);
	new_call(f->st, f->tenant, a1, CALL_QUEUED, &x);
	struct call_update u = {
		.from_mask = CALL_BIT(CALL_QUEUED), .to = CALL_RINGING, .provider_call_id = y.id};
	assert_int_equal(STORE(f->st, call_update, x.id, &u, NULL, NULL), STORE_OK);
	struct scope sc = tenant_scope(f->tenant);
	assert_int_equal(STORE(f->st, call_get, &sc, y.id, &got), STORE_OK);
	assert_string_equal(got.id, y.id);
	assert_int_equal(STORE(f->st, call_get, NULL, y.id, &got), STORE_OK);
	assert_string_equal(got.id, y.id);
	call_clear(&x);
	call_clear(&y);
	call_clear(&got);
}

/* ---- calls: list ------------------------------------------------------------------------ */

static void test_call_list(void **state)
{
	struct fx *f = *state;
	char a1[CP_UUID_LEN + 1], a2[CP_UUID_LEN + 1], b1[CP_UUID_LEN + 1];
	assert_int_equal(new_agent(f->st, f->tenant, "one", "+15550001111", 0, a1), STORE_OK);
	assert_int_equal(new_agent(f->st, f->tenant, "two", "+15550002222", 0, a2), STORE_OK);
	assert_int_equal(new_agent(f->st, f->tenant2, "other", "+15550009999", 0, b1), STORE_OK);
	/* six calls of tenant 1, in insertion order:
	 * 0:a1 queued 1:a2 queued 2:a1 canceled 3:a1 ringing 4:a2 completed 5:a1 queued */
	const char *agents[6] = {a1, a2, a1, a1, a2, a1};
	const enum call_status st[6] = {CALL_QUEUED,  CALL_QUEUED,    CALL_CANCELED,
					CALL_RINGING, CALL_COMPLETED, CALL_QUEUED};
	struct call calls[6];
	memset(calls, 0, sizeof calls);
	for (int i = 0; i < 6; i++)
		new_call(f->st, f->tenant, agents[i], st[i], &calls[i]);
	struct call other = {0};
	new_call(f->st, f->tenant2, b1, CALL_QUEUED, &other);

	struct scope sc = tenant_scope(f->tenant);
	struct call *out = NULL;
	size_t n = 0;

	/* everything, newest first */
	struct call_filter fl = {.limit = 50};
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(out[i].id, calls[5 - i].id);
		if (i)
			assert_true(out[i - 1].seq > out[i].seq);
	}
	call_list_free(out, n);

	/* pages of two, by before_seq */
	fl.limit = 2;
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].id, calls[5].id);
	assert_string_equal(out[1].id, calls[4].id);
	fl.before_seq = out[1].seq;
	call_list_free(out, n);
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].id, calls[3].id);
	assert_string_equal(out[1].id, calls[2].id);
	fl.before_seq = out[1].seq;
	call_list_free(out, n);
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].id, calls[1].id);
	assert_string_equal(out[1].id, calls[0].id);
	fl.before_seq = out[1].seq;
	call_list_free(out, n);
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 0);
	call_list_free(out, n);

	/* pages of two the other way, by after_seq: newer than the cursor, oldest first */
	fl = (struct call_filter){.limit = 2, .after_seq = calls[1].seq};
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].id, calls[2].id);
	assert_string_equal(out[1].id, calls[3].id);
	call_list_free(out, n);
	fl.after_seq = calls[3].seq;
	fl.agent_id = a1;
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 1); /* 4 is a2's: only 5 */
	assert_string_equal(out[0].id, calls[5].id);
	call_list_free(out, n);
	fl.after_seq = calls[5].seq;
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 0);
	call_list_free(out, n);
	/* one direction at a time */
	fl = (struct call_filter){
		.limit = 2, .after_seq = calls[1].seq, .before_seq = calls[4].seq};
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_ERROR);

	/* limit 1 */
	fl = (struct call_filter){.limit = 1};
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(out[0].id, calls[5].id);
	call_list_free(out, n);

	/* status filter: active */
	fl = (struct call_filter){.limit = 50, .status_mask = CALL_ACTIVE_MASK};
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 4);
	assert_string_equal(out[0].id, calls[5].id);
	assert_string_equal(out[1].id, calls[3].id);
	assert_string_equal(out[2].id, calls[1].id);
	assert_string_equal(out[3].id, calls[0].id);
	for (size_t i = 0; i < n; i++)
		assert_true(call_status_is_active(out[i].status));
	call_list_free(out, n);

	/* status filter: one terminal status */
	fl = (struct call_filter){.limit = 50, .status_mask = CALL_BIT(CALL_COMPLETED)};
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(out[0].id, calls[4].id);
	assert_int_equal(out[0].status, CALL_COMPLETED);
	call_list_free(out, n);

	/* status filter matching nothing */
	fl = (struct call_filter){.limit = 50, .status_mask = CALL_BIT(CALL_BUSY)};
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 0);
	call_list_free(out, n);

	/* agent filter */
	fl = (struct call_filter){.limit = 50, .agent_id = a2};
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].id, calls[4].id);
	assert_string_equal(out[1].id, calls[1].id);
	call_list_free(out, n);

	/* agent + status + cursor together */
	fl = (struct call_filter){.limit = 50,
				  .agent_id = a1,
				  .status_mask = CALL_BIT(CALL_QUEUED),
				  .before_seq = calls[5].seq};
	assert_int_equal(STORE(f->st, call_list, &sc, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(out[0].id, calls[0].id);
	call_list_free(out, n);

	/* a number-scoped scope lists only that number's calls */
	struct scope n2 = number_scope(f->tenant, "+15550002222");
	fl = (struct call_filter){.limit = 50};
	assert_int_equal(STORE(f->st, call_list, &n2, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].id, calls[4].id);
	assert_string_equal(out[1].id, calls[1].id);
	call_list_free(out, n);
	/* and an agent filter naming another number's agent yields nothing */
	fl.agent_id = a1;
	assert_int_equal(STORE(f->st, call_list, &n2, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 0);
	call_list_free(out, n);

	/* tenant 2 sees only its own */
	struct scope s2 = tenant_scope(f->tenant2);
	fl = (struct call_filter){.limit = 50};
	assert_int_equal(STORE(f->st, call_list, &s2, &fl, &out, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(out[0].id, other.id);
	call_list_free(out, n);

	for (int i = 0; i < 6; i++)
		call_clear(&calls[i]);
	call_clear(&other);
}

static void test_call_active_ids(void **state)
{
	struct fx *f = *state;
	char a1[CP_UUID_LEN + 1];
	assert_int_equal(new_agent(f->st, f->tenant, "one", "+15550001111", 0, a1), STORE_OK);
	struct call q = {0}, r = {0}, p = {0}, done = {0};
	new_call(f->st, f->tenant, a1, CALL_QUEUED, &q);
	new_call(f->st, f->tenant, a1, CALL_RINGING, &r);
	new_call(f->st, f->tenant, a1, CALL_IN_PROGRESS, &p);
	new_call(f->st, f->tenant, a1, CALL_FAILED, &done);
	char(*ids)[CP_UUID_LEN + 1] = NULL;
	size_t n = 0;
	assert_int_equal(STORE(f->st, call_active_ids, &ids, &n), STORE_OK);
	assert_int_equal(n, 3);
	int seen = 0;
	for (size_t i = 0; i < n; i++) {
		seen |= !strcmp(ids[i], q.id) ? 1 : 0;
		seen |= !strcmp(ids[i], r.id) ? 2 : 0;
		seen |= !strcmp(ids[i], p.id) ? 4 : 0;
		assert_string_not_equal(ids[i], done.id);
	}
	assert_int_equal(seen, 7);
	free(ids);
	call_clear(&q);
	call_clear(&r);
	call_clear(&p);
	call_clear(&done);
}

static void test_call_count_active(void **state)
{
	struct fx *f = *state;
	char a1[CP_UUID_LEN + 1], b1[CP_UUID_LEN + 1];
	int64_t counts[CALL_STATUS_COUNT];
	assert_int_equal(STORE(f->st, call_count_active, counts), STORE_OK);
	for (int i = 0; i < CALL_STATUS_COUNT; i++)
		assert_int_equal(counts[i], 0);
	assert_int_equal(new_agent(f->st, f->tenant, "one", "+15550001111", 0, a1), STORE_OK);
	assert_int_equal(new_agent(f->st, f->tenant2, "two", "+15550002222", 0, b1), STORE_OK);
	/* every tenant's: queued 1, ringing 2, in_progress 3, and ended ones not at all */
	static const struct {
		int tenant;
		enum call_status status;
	} made[] = {
		{1, CALL_QUEUED},      {1, CALL_RINGING},     {2, CALL_RINGING},
		{1, CALL_IN_PROGRESS}, {2, CALL_IN_PROGRESS}, {2, CALL_IN_PROGRESS},
		{1, CALL_COMPLETED},   {2, CALL_FAILED},      {1, CALL_CANCELED},
		{1, CALL_BUSY},        {1, CALL_NO_ANSWER},
	};
	for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
		struct call c = {0};
		new_call(f->st, made[i].tenant == 1 ? f->tenant : f->tenant2,
			 made[i].tenant == 1 ? a1 : b1, made[i].status, &c);
		call_clear(&c);
	}
	memset(counts, 0xff, sizeof counts);
	assert_int_equal(STORE(f->st, call_count_active, counts), STORE_OK);
	assert_int_equal(counts[CALL_QUEUED], 1);
	assert_int_equal(counts[CALL_RINGING], 2);
	assert_int_equal(counts[CALL_IN_PROGRESS], 3);
	for (int i = CALL_COMPLETED; i < CALL_STATUS_COUNT; i++)
		assert_int_equal(counts[i], 0);
}

/* ---- calls: conditional update ---------------------------------------------------------- */

static void test_call_update_conditional(void **state)
{
	struct fx *f = *state;
	char a1[CP_UUID_LEN + 1];
	assert_int_equal(new_agent(f->st, f->tenant, "one", "+15550001111", 0, a1), STORE_OK);
	struct call c = {0}, out = {0}, got = {0};
	new_call(f->st, f->tenant, a1, CALL_QUEUED, &c);
	enum call_status prev;

	/* condition not met: CONFLICT, out = the current row, nothing written */
	struct call_update bad = {.from_mask = CALL_BIT(CALL_RINGING),
				  .to = CALL_IN_PROGRESS,
				  .answered_at = 777,
				  .sip_status = 180,
				  .provider_call_id = "should-not-stick"};
	assert_int_equal(STORE(f->st, call_update, c.id, &bad, &out, &prev), STORE_CONFLICT);
	assert_string_equal(out.id, c.id);
	assert_int_equal(out.status, CALL_QUEUED);
	assert_int_equal(out.answered_at, 0);
	assert_string_equal(out.provider_call_id, "");
	assert_int_equal(STORE(f->st, call_get, NULL, c.id, &got), STORE_OK);
	assert_int_equal(got.status, CALL_QUEUED);
	assert_int_equal(got.answered_at, 0);
	assert_int_equal(got.sip_status, 0);
	assert_string_equal(got.provider_call_id, "");
	/* an empty mask never applies */
	struct call_update none = {.from_mask = 0, .to = CALL_RINGING};
	assert_int_equal(STORE(f->st, call_update, c.id, &none, NULL, NULL), STORE_CONFLICT);

	/* queued -> ringing, sets the provider call id */
	struct call_update ring = {.from_mask = CALL_BIT(CALL_QUEUED),
				   .to = CALL_RINGING,
				   .provider_call_id = "dialog-1@host",
				   .sip_status = 180};
	prev = CALL_NO_ANSWER;
	assert_int_equal(STORE(f->st, call_update, c.id, &ring, &out, &prev), STORE_OK);
	assert_int_equal(prev, CALL_QUEUED);
	assert_int_equal(out.status, CALL_RINGING);
	assert_string_equal(out.provider_call_id, "dialog-1@host");
	assert_int_equal(out.sip_status, 180);
	/* fields the insert set are untouched */
	assert_string_equal(out.from, "+15550001111");
	assert_string_equal(out.to, "sip:bob@example.com");
	assert_string_equal(out.metadata, "{\"n\":1}");
	assert_int_equal(out.created_at, c.created_at);
	assert_int_equal(out.seq, c.seq);

	/* the same step again: the call has moved on */
	assert_int_equal(STORE(f->st, call_update, c.id, &ring, &out, NULL), STORE_CONFLICT);
	assert_int_equal(out.status, CALL_RINGING);

	/* ringing -> in_progress: fields left 0/NULL keep their value (COALESCE) */
	struct call_update answer = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
				     .to = CALL_IN_PROGRESS,
				     .answered_at = 10000};
	prev = CALL_NO_ANSWER;
	assert_int_equal(STORE(f->st, call_update, c.id, &answer, &out, &prev), STORE_OK);
	assert_int_equal(prev, CALL_RINGING);
	assert_int_equal(out.status, CALL_IN_PROGRESS);
	assert_int_equal(out.answered_at, 10000);
	assert_string_equal(out.provider_call_id, "dialog-1@host");
	assert_int_equal(out.sip_status, 180);
	assert_int_equal(out.ended_at, 0);
	assert_string_equal(out.end_reason, "");

	/* in_progress -> completed */
	struct call_update end = {.from_mask = CALL_BIT(CALL_IN_PROGRESS),
				  .to = CALL_COMPLETED,
				  .ended_at = 25400,
				  .end_reason = "ended_by_api",
				  .sip_status = 200};
	prev = CALL_NO_ANSWER;
	assert_int_equal(STORE(f->st, call_update, c.id, &end, &out, &prev), STORE_OK);
	assert_int_equal(prev, CALL_IN_PROGRESS);
	assert_int_equal(out.status, CALL_COMPLETED);
	assert_int_equal(out.answered_at, 10000);
	assert_int_equal(out.ended_at, 25400);
	assert_string_equal(out.end_reason, "ended_by_api");
	assert_int_equal(out.sip_status, 200);
	assert_string_equal(out.provider_call_id, "dialog-1@host");
	assert_int_equal(call_duration_s(&out), 15);

	/* the stored row agrees with what was returned */
	assert_int_equal(STORE(f->st, call_get, NULL, c.id, &got), STORE_OK);
	assert_int_equal(got.status, CALL_COMPLETED);
	assert_int_equal(got.answered_at, 10000);
	assert_int_equal(got.ended_at, 25400);
	assert_string_equal(got.end_reason, "ended_by_api");
	assert_int_equal(got.sip_status, 200);

	/* a terminal call refuses every step whose mask is the active states */
	for (int to = 0; to < CALL_STATUS_COUNT; to++) {
		struct call_update any = {.from_mask = CALL_ACTIVE_MASK,
					  .to = (enum call_status)to,
					  .end_reason = "late"};
		assert_int_equal(STORE(f->st, call_update, c.id, &any, &out, NULL), STORE_CONFLICT);
		assert_int_equal(out.status, CALL_COMPLETED);
		assert_string_equal(out.end_reason, "ended_by_api");
	}

	/* unknown call */
	assert_int_equal(
		STORE(f->st, call_update, "00000000-0000-4000-8000-000000000000", &end, &out, NULL),
		STORE_NOT_FOUND);

	call_clear(&c);
	call_clear(&out);
	call_clear(&got);
}

struct racer {
	struct store *st;
	const char *id;
	enum call_status to;
	pthread_barrier_t *barrier;
	int rc;
	struct call out;
};

static void *race_one(void *arg)
{
	struct racer *r = arg;
	struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
				.to = r->to,
				.ended_at = cp_now_ms(),
				.end_reason = r->to == CALL_CANCELED ? "racer_a" : "racer_b"};
	pthread_barrier_wait(r->barrier);
	r->rc = STORE(r->st, call_update, r->id, &u, &r->out, NULL);
	return NULL;
}

static void run_race(struct fx *f, struct store *st_a, struct store *st_b, int rounds)
{
	char a1[CP_UUID_LEN + 1];
	int rc = new_agent(f->st, f->tenant, "racer", NULL, 0, a1);
	assert_int_equal(rc, STORE_OK);
	int bad_rounds = 0;
	for (int round = 0; round < rounds; round++) {
		struct call c = {0};
		new_call(f->st, f->tenant, a1, round % 2 ? CALL_RINGING : CALL_QUEUED, &c);
		pthread_barrier_t barrier;
		pthread_barrier_init(&barrier, NULL, 2);
		struct racer r[2] = {
			{.st = st_a, .id = c.id, .to = CALL_CANCELED, .barrier = &barrier},
			{.st = st_b, .id = c.id, .to = CALL_FAILED, .barrier = &barrier},
		};
		pthread_t t[2];
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&t[i], NULL, race_one, &r[i]), 0);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&barrier);

		int ok = (r[0].rc == STORE_OK) + (r[1].rc == STORE_OK);
		int conflict = (r[0].rc == STORE_CONFLICT) + (r[1].rc == STORE_CONFLICT);
		if (ok != 1 || conflict != 1) {
			print_error("round %d: rc %d and %d\n", round, r[0].rc, r[1].rc);
			bad_rounds++;
		} else {
			int w = r[0].rc == STORE_OK ? 0 : 1;
			/* the loser saw the winner's row */
			if (r[w].out.status != r[w].to || r[1 - w].out.status != r[w].to ||
			    strcmp(r[1 - w].out.end_reason, r[w].out.end_reason)) {
				print_error("round %d: winner %s, loser saw %s\n", round,
					    call_status_name(r[w].out.status),
					    call_status_name(r[1 - w].out.status));
				bad_rounds++;
			}
			struct call got = {0};
			assert_int_equal(STORE(f->st, call_get, NULL, c.id, &got), STORE_OK);
			if (got.status != r[w].to)
				bad_rounds++;
			call_clear(&got);
		}
		call_clear(&r[0].out);
		call_clear(&r[1].out);
		call_clear(&c);
	}
	assert_int_equal(bad_rounds, 0);
}

static void test_call_update_race_same_handle(void **state)
{
	struct fx *f = *state;
	run_race(f, f->st, f->st, 100);
}

static void test_call_update_race_two_handles(void **state)
{
	/* two handles on one file behave like two processes (the admin CLI and the server) */
	struct fx *f = *state;
	struct store *st2 = store_open(f->path, &fast);
	assert_non_null(st2);
	run_race(f, f->st, st2, 50);
	store_close(st2);
}

/* ---- calls: redact ---------------------------------------------------------------------- */

static void test_call_redact(void **state)
{
	struct fx *f = *state;
	char a1[CP_UUID_LEN + 1];
	assert_int_equal(new_agent(f->st, f->tenant, "one", "+15550001111", 0, a1), STORE_OK);
	struct call c = {0}, out = {0}, got = {0};
	new_call(f->st, f->tenant, a1, CALL_QUEUED, &c);

	/* active in every active state: conflict, nothing cleared */
	const enum call_status path[] = {CALL_QUEUED, CALL_RINGING, CALL_IN_PROGRESS};
	for (int i = 0; i < 3; i++) {
		if (i) {
			struct call_update u = {.from_mask = CALL_BIT(path[i - 1]),
						.to = path[i],
						.answered_at =
							path[i] == CALL_IN_PROGRESS ? 1000 : 0};
			assert_int_equal(STORE(f->st, call_update, c.id, &u, NULL, NULL), STORE_OK);
		}
		assert_int_equal(STORE(f->st, call_redact, c.id, 5000, &out), STORE_CONFLICT);
		assert_int_equal(out.status, path[i]);
		assert_false(call_is_redacted(&out));
		assert_string_equal(out.from, "+15550001111");
		assert_int_equal(STORE(f->st, call_get, NULL, c.id, &got), STORE_OK);
		assert_string_equal(got.from, "+15550001111");
		assert_string_equal(got.to, "sip:bob@example.com");
		assert_non_null(got.metadata);
		assert_int_equal(got.redacted_at, 0);
	}

	struct call_update end = {.from_mask = CALL_BIT(CALL_IN_PROGRESS),
				  .to = CALL_COMPLETED,
				  .ended_at = 4000,
				  .end_reason = "ended_by_api"};
	assert_int_equal(STORE(f->st, call_update, c.id, &end, NULL, NULL), STORE_OK);

	assert_int_equal(STORE(f->st, call_redact, c.id, 5000, &out), STORE_OK);
	assert_true(call_is_redacted(&out));
	assert_int_equal(out.redacted_at, 5000);
	assert_string_equal(out.from, "");
	assert_string_equal(out.to, "");
	assert_null(out.metadata);
	assert_int_equal(out.status, CALL_COMPLETED);
	assert_string_equal(out.end_reason, "ended_by_api");

	assert_int_equal(STORE(f->st, call_get, NULL, c.id, &got), STORE_OK);
	assert_true(call_is_redacted(&got));
	assert_string_equal(got.from, "");
	assert_string_equal(got.to, "");
	assert_null(got.metadata);
	assert_int_equal(got.redacted_at, 5000);

	/* idempotent: OK again, the first redaction time is kept */
	assert_int_equal(STORE(f->st, call_redact, c.id, 9000, &out), STORE_OK);
	assert_true(call_is_redacted(&out));
	assert_int_equal(out.redacted_at, 5000);
	assert_null(out.metadata);

	/* the rendering shows nulls */
	json_t *j = call_to_json(&got);
	assert_true(json_is_null(json_object_get(j, "from")));
	assert_true(json_is_null(json_object_get(j, "to")));
	assert_true(json_is_null(json_object_get(j, "metadata")));
	assert_true(json_is_string(json_object_get(j, "redacted_at")));
	json_decref(j);

	/* unknown call */
	assert_int_equal(STORE(f->st, call_redact, "00000000-0000-4000-8000-000000000000", 1, &out),
			 STORE_NOT_FOUND);

	/* a terminal call that never went through update (inserted terminal) redacts as well */
	struct call t = {0};
	new_call(f->st, f->tenant, a1, CALL_BUSY, &t);
	assert_int_equal(STORE(f->st, call_redact, t.id, 6000, NULL), STORE_OK);
	assert_int_equal(STORE(f->st, call_get, NULL, t.id, &got), STORE_OK);
	assert_true(call_is_redacted(&got));
	assert_null(got.metadata);

	call_clear(&t);
	call_clear(&c);
	call_clear(&out);
	call_clear(&got);
}

/* ---- idempotency ------------------------------------------------------------------------ */

static void test_idem_claim_complete(void **state)
{
	struct fx *f = *state;
	struct idem_record ex = {0};
	const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
	const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";

	assert_int_equal(STORE(f->st, idem_claim, "key-A", "idem-1", h1, 1000, 0, &ex), STORE_OK);
	/* claimed and still processing */
	memset(&ex, 0, sizeof ex);
	assert_int_equal(STORE(f->st, idem_claim, "key-A", "idem-1", h1, 1001, 0, &ex),
			 STORE_CONFLICT);
	assert_string_equal(ex.request_hash, h1);
	assert_int_equal(ex.status, 0);
	assert_null(ex.body);
	assert_int_equal(ex.created_at, 1000);
	idem_record_clear(&ex);
	/* a different body under the same key: conflict too, with the first hash reported */
	assert_int_equal(STORE(f->st, idem_claim, "key-A", "idem-1", h2, 1002, 0, &ex),
			 STORE_CONFLICT);
	assert_string_equal(ex.request_hash, h1);
	idem_record_clear(&ex);

	/* the same idem key under another API key, or another idem key: independent */
	assert_int_equal(STORE(f->st, idem_claim, "key-B", "idem-1", h2, 1003, 0, &ex), STORE_OK);
	assert_int_equal(STORE(f->st, idem_claim, "key-A", "idem-2", h2, 1004, 0, &ex), STORE_OK);

	/* complete: the response is stored and replayed */
	assert_int_equal(STORE(f->st, idem_complete, "key-A", "idem-1", 201, "{\"id\":\"x\"}"),
			 STORE_OK);
	assert_int_equal(STORE(f->st, idem_claim, "key-A", "idem-1", h1, 2000, 0, &ex),
			 STORE_CONFLICT);
	assert_string_equal(ex.request_hash, h1);
	assert_int_equal(ex.status, 201);
	assert_non_null(ex.body);
	assert_string_equal(ex.body, "{\"id\":\"x\"}");
	assert_int_equal(ex.created_at, 1000);
	idem_record_clear(&ex);
	assert_null(ex.body);

	/* release only drops an unfinished claim: the completed one stays */
	STORE(f->st, idem_release, "key-A", "idem-1");
	assert_int_equal(STORE(f->st, idem_claim, "key-A", "idem-1", h1, 2001, 0, &ex),
			 STORE_CONFLICT);
	assert_int_equal(ex.status, 201);
	idem_record_clear(&ex);

	/* completing an unknown claim */
	assert_int_equal(STORE(f->st, idem_complete, "key-Z", "nope", 200, "{}"), STORE_NOT_FOUND);
}

static void test_idem_release(void **state)
{
	struct fx *f = *state;
	struct idem_record ex = {0};
	const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
	const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";
	assert_int_equal(STORE(f->st, idem_claim, "key-A", "idem-r", h1, 1000, 0, &ex), STORE_OK);
	assert_int_equal(STORE(f->st, idem_release, "key-A", "idem-r"), STORE_OK);
	/* free again: a retry (even with another body) claims it */
	assert_int_equal(STORE(f->st, idem_claim, "key-A", "idem-r", h2, 1001, 0, &ex), STORE_OK);
	assert_int_equal(STORE(f->st, idem_claim, "key-A", "idem-r", h2, 1002, 0, &ex),
			 STORE_CONFLICT);
	assert_string_equal(ex.request_hash, h2);
	assert_int_equal(ex.created_at, 1001);
	idem_record_clear(&ex);
	/* releasing something never claimed */
	assert_int_equal(STORE(f->st, idem_release, "key-A", "never"), STORE_NOT_FOUND);
}

static void test_idem_expiry_and_purge(void **state)
{
	struct fx *f = *state;
	struct idem_record ex = {0};
	const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
	const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";
	assert_int_equal(STORE(f->st, idem_claim, "k", "old", h1, 1000, 0, &ex), STORE_OK);
	assert_int_equal(STORE(f->st, idem_complete, "k", "old", 201, "{\"v\":1}"), STORE_OK);
	/* not yet expired (created_at 1000 is not before 1000) */
	assert_int_equal(STORE(f->st, idem_claim, "k", "old", h2, 1500, 1000, &ex), STORE_CONFLICT);
	assert_int_equal(ex.status, 201);
	idem_record_clear(&ex);
	/* expired: replaced by a fresh claim */
	assert_int_equal(STORE(f->st, idem_claim, "k", "old", h2, 90000, 1001, &ex), STORE_OK);
	assert_int_equal(STORE(f->st, idem_claim, "k", "old", h1, 90001, 1001, &ex),
			 STORE_CONFLICT);
	assert_string_equal(ex.request_hash, h2);
	assert_int_equal(ex.status, 0);
	assert_null(ex.body);
	assert_int_equal(ex.created_at, 90000);
	idem_record_clear(&ex);

	/* purge drops records created before the cut, keeps the rest */
	assert_int_equal(STORE(f->st, idem_claim, "k", "p-old", h1, 100, 0, &ex), STORE_OK);
	assert_int_equal(STORE(f->st, idem_claim, "k", "p-new", h1, 5000, 0, &ex), STORE_OK);
	assert_int_equal(STORE(f->st, idem_purge, 1000), STORE_OK);
	assert_int_equal(STORE(f->st, idem_claim, "k", "p-old", h2, 6000, 0, &ex), STORE_OK);
	assert_int_equal(STORE(f->st, idem_claim, "k", "p-new", h2, 6000, 0, &ex), STORE_CONFLICT);
	assert_string_equal(ex.request_hash, h1);
	idem_record_clear(&ex);
	assert_int_equal(STORE(f->st, idem_claim, "k", "old", h1, 6000, 0, &ex), STORE_CONFLICT);
	idem_record_clear(&ex);
	/* purging when nothing matches is still OK */
	assert_int_equal(STORE(f->st, idem_purge, 1), STORE_OK);
}

/* store_fail(): the one mapping of a store result onto the caller's error. */
static void test_store_fail_maps_every_result(void **state)
{
	(void)state;
	struct cp_error e = {.code = CP_ERR_INVALID, .message = "stale"};
	assert_int_equal(store_fail(&e, STORE_OK, "call"), CP_OK);
	assert_int_equal(e.code, CP_OK);
	assert_string_equal(e.message, "");
	assert_int_equal(store_fail(&e, STORE_NOT_FOUND, "agent %s", "a-1"), CP_ERR_NOT_FOUND);
	assert_int_equal(e.code, CP_ERR_NOT_FOUND);
	assert_string_equal(e.message, "agent a-1 not found");
	assert_int_equal(store_fail(&e, STORE_CONFLICT, "call"), CP_ERR_INTERNAL);
	assert_string_equal(e.message, "store error");
	assert_int_equal(store_fail(&e, STORE_ERROR, "call"), CP_ERR_INTERNAL);
	assert_int_equal(e.code, CP_ERR_INTERNAL);
	assert_string_equal(e.message, "store error");
	assert_int_equal(store_fail(NULL, STORE_NOT_FOUND, "tenant %s", "t"), CP_ERR_NOT_FOUND);
}

/* A webhook's signing is kept; one created without it (as every webhook before migration 9)
 * is callplane. */
static void test_webhook_signing(void **state)
{
	struct fx *f = *state;
	struct webhook w = {.created_at = cp_now_ms()}, *list = NULL;
	size_t n = 0;
	snprintf(w.tenant_id, sizeof w.tenant_id, "%s", f->tenant);
	snprintf(w.url, sizeof w.url, "http://127.0.0.1:9/a");
	snprintf(w.secret, sizeof w.secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
	snprintf(w.format, sizeof w.format, "canonical");
	snprintf(w.id, sizeof w.id, "00000000-0000-4000-8000-0000000000a1");
	assert_int_equal(STORE(f->st, webhook_create, &w, 20), STORE_OK);
	snprintf(w.id, sizeof w.id, "00000000-0000-4000-8000-0000000000a2");
	snprintf(w.signing, sizeof w.signing, "standard");
	w.created_at++;
	assert_int_equal(STORE(f->st, webhook_create, &w, 20), STORE_OK);
	assert_int_equal(STORE(f->st, webhook_list, f->tenant, &list, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].id, "00000000-0000-4000-8000-0000000000a1");
	assert_string_equal(list[0].signing, "callplane");
	assert_string_equal(list[1].signing, "standard");
	free(list);
}

static void test_dialogs(void **state)
{
	/* the engine's dialog state: kept per call (a put replaces), listed oldest first,
	 * forgotten by clear (also when nothing is kept), part of a batch's transaction */
	struct fx *f = *state;
	struct dialog_row *rows = NULL;
	size_t n = 99;
	assert_int_equal(STORE(f->st, dialog_list, &rows, &n), STORE_OK);
	assert_int_equal(n, 0);
	assert_null(rows);
	assert_int_equal(STORE(f->st, dialog_put, "call-b", "{\"b\":1}", 2000), STORE_OK);
	assert_int_equal(STORE(f->st, dialog_put, "call-a", "{\"a\":1}", 1000), STORE_OK);
	assert_int_equal(STORE(f->st, dialog_put, "call-c", "{\"c\":1}", 3000), STORE_OK);
	assert_int_equal(STORE(f->st, dialog_put, "call-a", "{\"a\":2}", 4000), STORE_OK);
	assert_int_equal(STORE(f->st, dialog_list, &rows, &n), STORE_OK);
	assert_int_equal(n, 3);
	const char *ids[] = {"call-b", "call-c", "call-a"};
	const char *states[] = {"{\"b\":1}", "{\"c\":1}", "{\"a\":2}"};
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(rows[i].call_id, ids[i]);
		assert_string_equal(rows[i].state, states[i]);
	}
	dialog_rows_free(rows, n);
	assert_int_equal(STORE(f->st, dialog_clear, "call-c"), STORE_OK);
	assert_int_equal(STORE(f->st, dialog_clear, "call-c"), STORE_OK);
	assert_int_equal(STORE(f->st, dialog_clear, "no-such-call"), STORE_OK);
	/* a batch rolled back keeps nothing of it; a committed one keeps all of it */
	struct store batch;
	assert_int_equal(store_batch_begin(f->st, &batch), STORE_OK);
	assert_int_equal(STORE(&batch, dialog_put, "call-d", "{}", 5000), STORE_OK);
	assert_int_equal(STORE(&batch, dialog_clear, "call-a"), STORE_OK);
	assert_int_equal(store_batch_end(&batch, false), STORE_OK);
	assert_int_equal(STORE(f->st, dialog_list, &rows, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].call_id, "call-b");
	assert_string_equal(rows[1].call_id, "call-a");
	dialog_rows_free(rows, n);
	assert_int_equal(store_batch_begin(f->st, &batch), STORE_OK);
	assert_int_equal(STORE(&batch, dialog_put, "call-d", "{}", 5000), STORE_OK);
	assert_int_equal(STORE(&batch, dialog_clear, "call-a"), STORE_OK);
	assert_int_equal(store_batch_end(&batch, true), STORE_OK);
	assert_int_equal(STORE(f->st, dialog_list, &rows, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].call_id, "call-b");
	assert_string_equal(rows[1].call_id, "call-d");
	dialog_rows_free(rows, n);
}

/* ---- trunks ----------------------------------------------------------------------------- */

/* A trunk of tenant with every field set from tag, created; its id in id. */
static void new_trunk(struct store *st, const char *tenant, const char *tag,
		      char id[CP_UUID_LEN + 1])
{
	struct trunk t = {0};
	assert_int_equal(cp_uuid4(t.id), 0);
	snprintf(t.tenant_id, sizeof t.tenant_id, "%s", tenant);
	snprintf(t.host, sizeof t.host, "%s.example.com", tag);
	t.port = 5080;
	strcpy(t.transport, "tcp");
	snprintf(t.user, sizeof t.user, "%s-user", tag);
	strcpy(t.password_env, "TRUNK_PW");
	t.do_register = true;
	strcpy(t.outbound_proxy, "sip:proxy.example.com:5070");
	strcpy(t.from_user, "auth1");
	strcpy(t.from_domain, "carrier.example.com");
	strcpy(t.caller_id_header, "pai");
	strcpy(t.srtp, "required");
	strcpy(t.inbound_cidrs, "192.0.2.0/24,2001:db8::/32");
	strcpy(t.headers, "X-Account: 42\r\nX-Foo: bar");
	t.created_at = 1700000000000;
	assert_int_equal(STORE(st, trunk_create, &t), STORE_OK);
	memcpy(id, t.id, sizeof t.id);
}

static int64_t generation(struct store *st)
{
	int64_t g = -1;
	assert_int_equal(STORE(st, trunk_generation, &g), STORE_OK);
	return g;
}

static void test_trunks(void **state)
{
	/* created, read back field for field (empty fields as empty), listed per tenant, used
	 * by an agent (which keeps it from being deleted), deleted; every change moves the
	 * generation the server polls */
	struct fx *f = *state;
	char a[CP_UUID_LEN + 1], b[CP_UUID_LEN + 1], agent[CP_UUID_LEN + 1];
	int64_t g0 = generation(f->st);
	new_trunk(f->st, f->tenant, "a", a);
	assert_int_equal(generation(f->st), g0 + 1); /* one trigger, one row */
	struct trunk t = {0}, plain = {0};
	assert_int_equal(cp_uuid4(plain.id), 0);
	memcpy(b, plain.id, sizeof b);
	strcpy(plain.tenant_id, f->tenant2);
	strcpy(plain.host, "198.51.100.7");
	strcpy(plain.transport, "udp");
	strcpy(plain.caller_id_header, "none");
	plain.created_at = 1700000000001;
	assert_int_equal(STORE(f->st, trunk_create, &plain), STORE_OK);

	assert_int_equal(STORE(f->st, trunk_get, f->tenant, a, &t), STORE_OK);
	assert_string_equal(t.id, a);
	assert_string_equal(t.tenant_id, f->tenant);
	assert_string_equal(t.host, "a.example.com");
	assert_int_equal(t.port, 5080);
	assert_string_equal(t.transport, "tcp");
	assert_string_equal(t.user, "a-user");
	assert_string_equal(t.password_env, "TRUNK_PW");
	assert_string_equal(t.password_file, "");
	assert_true(t.do_register);
	assert_string_equal(t.outbound_proxy, "sip:proxy.example.com:5070");
	assert_string_equal(t.from_user, "auth1");
	assert_string_equal(t.from_domain, "carrier.example.com");
	assert_string_equal(t.caller_id_header, "pai");
	assert_string_equal(t.srtp, "required");
	assert_string_equal(t.inbound_cidrs, "192.0.2.0/24,2001:db8::/32");
	assert_string_equal(t.headers, "X-Account: 42\r\nX-Foo: bar");
	assert_int_equal(t.created_at, 1700000000000);
	assert_string_equal(t.reg.status, "");
	/* another tenant's trunk is not found in this one's scope */
	assert_int_equal(STORE(f->st, trunk_get, f->tenant, b, &t), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, trunk_get, NULL, b, &t), STORE_OK);
	assert_int_equal(t.port, 0);
	assert_string_equal(t.user, "");
	assert_false(t.do_register);
	assert_string_equal(t.srtp, "off"); /* created without one */
	assert_string_equal(t.inbound_cidrs, "");
	struct trunk *list = NULL;
	size_t n = 0;
	assert_int_equal(STORE(f->st, trunk_list, NULL, &list, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].id, a);
	assert_string_equal(list[1].id, b);
	free(list);
	assert_int_equal(STORE(f->st, trunk_list, f->tenant2, &list, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].id, b);
	free(list);
	/* an unknown tenant */
	struct trunk orphan = plain;
	assert_int_equal(cp_uuid4(orphan.id), 0);
	strcpy(orphan.tenant_id, "no-such-tenant");
	assert_int_equal(STORE(f->st, trunk_create, &orphan), STORE_NOT_FOUND);

	/* an agent on trunk a: created with it, then moved off and back on */
	struct agent ag = {0};
	assert_int_equal(cp_uuid4(ag.id), 0);
	memcpy(agent, ag.id, sizeof agent);
	strcpy(ag.tenant_id, f->tenant);
	strcpy(ag.name, "on a trunk");
	memcpy(ag.trunk_id, a, sizeof ag.trunk_id);
	ag.created_at = cp_now_ms();
	assert_int_equal(STORE(f->st, agent_create, &ag), STORE_OK);
	struct scope sc = tenant_scope(f->tenant);
	struct agent got;
	assert_int_equal(STORE(f->st, agent_get, &sc, agent, &got), STORE_OK);
	assert_string_equal(got.trunk_id, a);
	/* another tenant's trunk is refused, at creation and by an update */
	struct agent other = ag;
	assert_int_equal(cp_uuid4(other.id), 0);
	memcpy(other.trunk_id, b, sizeof other.trunk_id);
	assert_int_equal(STORE(f->st, agent_create, &other), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, agent_get, &sc, other.id, &got), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, agent_set_trunk, agent, b), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, agent_get, &sc, agent, &got), STORE_OK);
	assert_string_equal(got.trunk_id, a);
	int64_t g1 = generation(f->st);
	assert_int_equal(STORE(f->st, trunk_delete, NULL, a), STORE_CONFLICT);
	assert_int_equal(STORE(f->st, agent_set_trunk, agent, ""), STORE_OK);
	assert_int_equal(STORE(f->st, agent_get, &sc, agent, &got), STORE_OK);
	assert_string_equal(got.trunk_id, "");
	assert_int_equal(STORE(f->st, agent_set_trunk, agent, "no-such-trunk"), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, agent_set_trunk, "no-such-agent", a), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, agent_set_trunk, agent, a), STORE_OK);
	assert_int_equal(generation(f->st), g1); /* agents do not move it */
	assert_int_equal(STORE(f->st, trunk_delete, NULL, a), STORE_CONFLICT);
	assert_int_equal(STORE(f->st, agent_set_trunk, agent, ""), STORE_OK);
	/* another tenant's scope does not delete it; its own does, once */
	assert_int_equal(STORE(f->st, trunk_delete, f->tenant2, a), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, trunk_delete, f->tenant, a), STORE_OK);
	assert_int_equal(generation(f->st), g1 + 1);
	assert_int_equal(STORE(f->st, trunk_delete, NULL, a), STORE_NOT_FOUND);
	assert_int_equal(STORE(f->st, trunk_get, NULL, a, &t), STORE_NOT_FOUND);
}

/* The trunk.registration events tenant may see, as (status of each event's data). */
static size_t trunk_events(struct store *st, const char *tenant, const char *number, char out[][16],
			   size_t max)
{
	struct scope sc = number ? number_scope(tenant, number) : tenant_scope(tenant);
	struct stored_event *ev = NULL;
	size_t n = 0, k = 0;
	assert_int_equal(STORE(st, events_since, &sc, 0, 100, &ev, &n), STORE_OK);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ev[i].type, "trunk.registration"))
			continue;
		json_t *j = json_loads(ev[i].payload, 0, NULL);
		assert_non_null(j);
		assert_string_equal(json_string_value(json_object_get(j, "type")),
				    "trunk.registration");
		const char *status =
			json_string_value(json_object_get(json_object_get(j, "data"), "status"));
		assert_non_null(status);
		assert_true(k < max);
		snprintf(out[k++], 16, "%s", status);
		json_decref(j);
	}
	event_list_free(ev, n);
	return k;
}

static void put_status(struct store *st, const char *trunk, const char *tenant, const char *status,
		       int sip_status, int64_t at, bool want_event)
{
	struct trunk_status s = {0};
	snprintf(s.trunk_id, sizeof s.trunk_id, "%s", trunk);
	snprintf(s.tenant_id, sizeof s.tenant_id, "%s", tenant);
	snprintf(s.status, sizeof s.status, "%s", status);
	s.sip_status = sip_status;
	snprintf(s.reason, sizeof s.reason, "%s", sip_status >= 300 ? "Unauthorized" : "");
	s.expires_at = sip_status == 200 ? at + 60000 : 0;
	s.updated_at = at;
	char data[128];
	snprintf(data, sizeof data, "{\"status\":\"%s\"}", status);
	bool evented = !want_event;
	assert_int_equal(STORE(st, trunk_status_put, &s, data, &evented), STORE_OK);
	assert_int_equal(evented, want_event);
}

static void test_trunk_status(void **state)
{
	/* the status is one row per trunk, the last one reported; an event is written when a
	 * registration is gained, lost or regained (registered <-> failed), none for a refresh,
	 * a failure repeated, or the states between; the event reaches the tenant's live
	 * stream and tenant-wide canonical webhooks, not a number-scoped key nor an agent's
	 * webhook nor a vendor format's */
	struct fx *f = *state;
	char a[CP_UUID_LEN + 1], agent[CP_UUID_LEN + 1];
	new_trunk(f->st, f->tenant, "a", a);
	assert_int_equal(new_agent(f->st, f->tenant, "ag", "+15550001111", 0, agent), STORE_OK);
	struct webhook w = {0};
	const char *formats[] = {"canonical", "canonical", "talkover"};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(cp_uuid4(w.id), 0);
		strcpy(w.tenant_id, f->tenant);
		strcpy(w.agent_id, i == 1 ? agent : "");
		strcpy(w.url, "http://127.0.0.1:9/hook");
		strcpy(w.secret, "s");
		strcpy(w.format, formats[i]);
		w.created_at = cp_now_ms();
		assert_int_equal(STORE(f->st, webhook_create, &w, 20), STORE_OK);
	}
	put_status(f->st, a, f->tenant, "registering", 0, 1000, false);
	put_status(f->st, a, f->tenant, "failed", 401, 2000, true);
	put_status(f->st, a, f->tenant, "failed", 401, 3000, false);
	put_status(f->st, a, f->tenant, "registering", 0, 4000, false);
	put_status(f->st, a, f->tenant, "registered", 200, 5000, true);
	put_status(f->st, a, f->tenant, "registered", 200, 6000, false);
	put_status(f->st, a, f->tenant, "unregistered", 0, 7000, false);
	put_status(f->st, a, f->tenant, "registered", 200, 8000, false);
	put_status(f->st, a, f->tenant, "failed", 408, 9000, true);
	struct trunk t;
	assert_int_equal(STORE(f->st, trunk_get, NULL, a, &t), STORE_OK);
	assert_string_equal(t.reg.status, "failed");
	assert_int_equal(t.reg.sip_status, 408);
	assert_string_equal(t.reg.reason, "Unauthorized");
	assert_int_equal(t.reg.expires_at, 0);
	assert_int_equal(t.reg.updated_at, 9000);
	char st[8][16];
	assert_int_equal(trunk_events(f->st, f->tenant, NULL, st, 8), 3);
	assert_string_equal(st[0], "failed");
	assert_string_equal(st[1], "registered");
	assert_string_equal(st[2], "failed");
	assert_int_equal(trunk_events(f->st, f->tenant, "+15550001111", st, 8), 0);
	assert_int_equal(trunk_events(f->st, f->tenant2, NULL, st, 8), 0);
	/* one delivery per event, all to the tenant-wide canonical webhook; call_id empty */
	struct delivery_row *d = NULL;
	size_t n = 0;
	assert_int_equal(STORE(f->st, delivery_list, f->tenant, NULL, 100, &d, &n), STORE_OK);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(d[i].event_type, "trunk.registration");
		assert_string_equal(d[i].call_id, "");
	}
	assert_string_equal(d[0].webhook_id, d[2].webhook_id);
	delivery_rows_free(d, n);
	/* a status for a deleted trunk is not kept; the trunk's status went with it */
	assert_int_equal(STORE(f->st, trunk_delete, NULL, a), STORE_OK);
	struct trunk_status s = {0};
	memcpy(s.trunk_id, a, sizeof s.trunk_id);
	strcpy(s.tenant_id, f->tenant);
	strcpy(s.status, "registered");
	s.updated_at = 10000;
	bool evented = true;
	assert_int_equal(STORE(f->st, trunk_status_put, &s, "{}", &evented), STORE_NOT_FOUND);
	assert_false(evented);
	assert_int_equal(trunk_events(f->st, f->tenant, NULL, st, 8), 3);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	json_object_seed(0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_twice_same_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_fresh_file_in_parallel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refuses_newer_schema, setup, teardown),
		cmocka_unit_test(test_open_bad_location),
		cmocka_unit_test(test_store_fail_maps_every_result),
		cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_goodbyes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_number_unique, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_needs_tenant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_parent_is_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_revoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_insert_and_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_get_tenant_isolation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_get_number_scope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_id_not_shadowed_by_provider_id, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_call_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_active_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_count_active, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_update_conditional, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_update_race_same_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_update_race_two_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_redact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idem_claim_complete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idem_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idem_expiry_and_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_webhook_signing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant_dial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dialogs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trunk_status, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
