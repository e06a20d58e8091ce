/*
 * test_store_cache.c - the server-mode store: the server lock, the call cache's coherence and
 * the key cache's epoch, against a real database file, plus the call cache on its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "model/call.h"
#include "core/log.h"
#include "core/util.h"
#include "store/call_cache.h"
#include "store/store.h"

struct fx {
	char dir[64];
	char path[128];
	struct store *st; /* server mode */
	char tenant[CP_UUID_LEN + 1];
	char agent[CP_UUID_LEN + 1];
	struct call call; /* one queued call of agent (+15550001111) */
};

static const struct store_options server = {.sync_full = false, .server = true};
static const struct store_options admin = {.sync_full = false};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/cp_test_cache_XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/callplane.db", f->dir);
	f->st = store_open(f->path, &server);
	if (!f->st)
		return -1;
	cp_uuid4(f->tenant);
	struct tenant t = {.name = "t", .created_at = cp_now_ms()};
	snprintf(t.id, sizeof t.id, "%s", f->tenant);
	if (STORE(f->st, tenant_create, &t) != STORE_OK)
		return -1;
	struct agent a = {0};
	cp_uuid4(a.id);
	snprintf(a.tenant_id, sizeof a.tenant_id, "%s", f->tenant);
	strcpy(a.name, "a");
	strcpy(a.number, "+15550001111");
	a.created_at = cp_now_ms();
	if (STORE(f->st, agent_create, &a) != STORE_OK)
		return -1;
	memcpy(f->agent, a.id, sizeof a.id);
	struct call *c = &f->call;
	cp_uuid4(c->id);
	memcpy(c->tenant_id, f->tenant, sizeof f->tenant);
	memcpy(c->agent_id, f->agent, sizeof f->agent);
	c->status = CALL_QUEUED;
	strcpy(c->from, "+15550001111");
	strcpy(c->to, "sip:bob@example.com");
	c->created_at = cp_now_ms();
	c->metadata = strdup("{\"k\":\"v\"}");
	if (STORE(f->st, call_insert, c) != STORE_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->st);
	call_clear(&f->call);
	const char *suffix[] = {"", "-wal", "-shm", "-keys"};
	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		char p[160];
		snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct scope scope_of(const char *tenant, const char *number)
{
	struct scope sc = {0};
	snprintf(sc.tenant_id, sizeof sc.tenant_id, "%s", tenant);
	snprintf(sc.number, sizeof sc.number, "%s", number ? number : "");
	return sc;
}

static enum call_status status_of(struct store *st, const char *id)
{
	struct call c = {0};
	assert_int_equal(STORE(st, call_get, NULL, id, &c), STORE_OK);
	enum call_status s = c.status;
	call_clear(&c);
	return s;
}

static int step(struct store *st, const char *id, enum call_status from, enum call_status to)
{
	struct call_update u = {.from_mask = CALL_BIT(from), .to = to};
	if (call_status_is_terminal(to)) {
		u.ended_at = cp_now_ms();
		u.end_reason = "test";
	}
	return STORE(st, call_update, id, &u, NULL, NULL);
}

/* ---- the server lock -------------------------------------------------------------------- */

static void test_second_server_refused_admin_allowed(void **state)
{
	struct fx *f = *state;
	assert_null(store_open(f->path, &server));
	struct store *cli = store_open(f->path, &admin);
	assert_non_null(cli);
	assert_int_equal(STORE(cli, tenant_exists, f->tenant), STORE_OK);
	store_close(cli);
	/* the lock goes with the server: closed, another may open */
	store_close(f->st);
	f->st = store_open(f->path, &server);
	assert_non_null(f->st);
}

/* ---- call rows -------------------------------------------------------------------------- */

static void test_get_after_update_and_redact(void **state)
{
	struct fx *f = *state;
	struct scope sc = scope_of(f->tenant, NULL);
	struct call c = {0};
	for (int i = 0; i < 2; i++) { /* the second read is served by the cache */
		assert_int_equal(STORE(f->st, call_get, &sc, f->call.id, &c), STORE_OK);
		assert_int_equal(c.status, CALL_QUEUED);
		assert_string_equal(c.metadata, "{\"k\":\"v\"}");
		assert_string_equal(c.to, "sip:bob@example.com");
	}
	assert_int_equal(step(f->st, f->call.id, CALL_QUEUED, CALL_RINGING), STORE_OK);
	assert_int_equal(status_of(f->st, f->call.id), CALL_RINGING);
	assert_int_equal(step(f->st, f->call.id, CALL_RINGING, CALL_CANCELED), STORE_OK);
	assert_int_equal(status_of(f->st, f->call.id), CALL_CANCELED);
	int64_t at = cp_now_ms();
	assert_int_equal(STORE(f->st, call_redact, f->call.id, at, &c), STORE_OK);
	assert_int_equal(STORE(f->st, call_get, &sc, f->call.id, &c), STORE_OK);
	assert_int_equal(c.redacted_at, at);
	assert_null(c.metadata);
	assert_string_equal(c.to, "");
	call_clear(&c);
}

static void test_scope_checked_on_cached_rows(void **state)
{
	struct fx *f = *state;
	struct call c = {0};
	struct scope mine = scope_of(f->tenant, "+15550001111");
	struct scope other_number = scope_of(f->tenant, "+15550002222");
	char t2[CP_UUID_LEN + 1];
	cp_uuid4(t2);
	struct scope other_tenant = scope_of(t2, NULL);
	for (int i = 0; i < 2; i++) { /* cold, then cached */
		assert_int_equal(STORE(f->st, call_get, &mine, f->call.id, &c), STORE_OK);
		assert_int_equal(STORE(f->st, call_get, &other_number, f->call.id, &c),
				 STORE_NOT_FOUND);
		assert_int_equal(STORE(f->st, call_get, &other_tenant, f->call.id, &c),
				 STORE_NOT_FOUND);
	}
	call_clear(&c);
}

static void test_batch_sees_own_writes_and_readers_see_commit(void **state)
{
	struct fx *f = *state;
	assert_int_equal(status_of(f->st, f->call.id), CALL_QUEUED); /* cached */

	/* rolled back: the cached row is still the truth */
	struct store batch;
	assert_int_equal(store_batch_begin(f->st, &batch), STORE_OK);
	assert_int_equal(step(&batch, f->call.id, CALL_QUEUED, CALL_RINGING), STORE_OK);
	assert_int_equal(status_of(&batch, f->call.id), CALL_RINGING); /* its own write */
	assert_int_equal(status_of(f->st, f->call.id), CALL_QUEUED);   /* not committed */
	assert_int_equal(store_batch_end(&batch, false), STORE_OK);
	assert_int_equal(status_of(f->st, f->call.id), CALL_QUEUED);

	/* committed: every reader sees it at once */
	assert_int_equal(store_batch_begin(f->st, &batch), STORE_OK);
	assert_int_equal(step(&batch, f->call.id, CALL_QUEUED, CALL_RINGING), STORE_OK);
	assert_int_equal(store_batch_end(&batch, true), STORE_OK);
	assert_int_equal(status_of(f->st, f->call.id), CALL_RINGING);
	struct store *cli = store_open(f->path, &admin);
	assert_non_null(cli);
	assert_int_equal(status_of(cli, f->call.id), CALL_RINGING);
	store_close(cli);
}

/* A batch is ended through its own handle only, and does not open another. */
static void test_batch_handles(void **state)
{
	struct fx *f = *state;
	struct store batch, inner;
	assert_int_equal(store_batch_end(f->st, true), STORE_ERROR);
	assert_int_equal(store_batch_begin(f->st, &batch), STORE_OK);
	assert_int_equal(store_batch_begin(&batch, &inner), STORE_ERROR);
	assert_int_equal(step(&batch, f->call.id, CALL_QUEUED, CALL_RINGING), STORE_OK);
	assert_int_equal(store_batch_end(&batch, true), STORE_OK);
	assert_int_equal(status_of(f->st, f->call.id), CALL_RINGING);
	/* the store is free again: a write of its own and a second batch both go through */
	assert_int_equal(step(f->st, f->call.id, CALL_RINGING, CALL_IN_PROGRESS), STORE_OK);
	assert_int_equal(store_batch_begin(f->st, &batch), STORE_OK);
	assert_int_equal(store_batch_end(&batch, true), STORE_OK);
}

/* Readers race a writer that moves sip_status up one commit at a time. No reader may ever see
 * the value go down, and once the writer is done every reader sees the last value. */
struct race {
	struct store *st;
	const char *id;
	atomic_bool done;
	atomic_int went_back;
	int rounds;
};

static void *race_reader(void *arg)
{
	struct race *r = arg;
	int last = 0;
	while (!atomic_load(&r->done)) {
		struct call c = {0};
		if (STORE(r->st, call_get, NULL, r->id, &c) == STORE_OK) {
			if (c.sip_status < last)
				atomic_fetch_add(&r->went_back, 1);
			last = c.sip_status;
		}
		call_clear(&c);
	}
	return NULL;
}

static void *race_writer(void *arg)
{
	struct race *r = arg;
	for (int i = 1; i <= r->rounds; i++) {
		struct call_update u = {.from_mask = CALL_BIT(CALL_RINGING),
					.to = CALL_RINGING,
					.sip_status = 100 + i};
		bool batched = i % 3 == 0; /* both write paths: autocommit and group commit */
		struct store batch, *st = r->st;
		if (batched) {
			assert_int_equal(store_batch_begin(r->st, &batch), STORE_OK);
			st = &batch;
		}
		assert_int_equal(STORE(st, call_update, r->id, &u, NULL, NULL), STORE_OK);
		if (batched)
			assert_int_equal(store_batch_end(&batch, true), STORE_OK);
	}
	return NULL;
}

static void test_readers_never_see_the_past(void **state)
{
	struct fx *f = *state;
	assert_int_equal(step(f->st, f->call.id, CALL_QUEUED, CALL_RINGING), STORE_OK);
	struct race r = {.st = f->st, .id = f->call.id, .rounds = 300};
	pthread_t readers[3], writer;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&readers[i], NULL, race_reader, &r), 0);
	assert_int_equal(pthread_create(&writer, NULL, race_writer, &r), 0);
	pthread_join(writer, NULL);
	/* done writing: the very next read anywhere is the last value */
	struct call c = {0};
	assert_int_equal(STORE(f->st, call_get, NULL, f->call.id, &c), STORE_OK);
	assert_int_equal(c.sip_status, 100 + r.rounds);
	call_clear(&c);
	atomic_store(&r.done, true);
	for (int i = 0; i < 3; i++)
		pthread_join(readers[i], NULL);
	assert_int_equal(atomic_load(&r.went_back), 0);
}

/* ---- keys ------------------------------------------------------------------------------- */

static void test_key_revoked_by_another_process_is_refused_at_once(void **state)
{
	struct fx *f = *state;
	struct api_key k;
	char secret[AUTH_SECRET_LEN + 1];
	assert_int_equal(auth_key_mint(f->tenant, NULL, &k, secret), 0);
	assert_int_equal(STORE(f->st, key_create, &k), STORE_OK);
	struct principal who;
	for (int i = 0; i < 3; i++) /* cold, then cached */
		assert_int_equal(auth_check(f->st, secret, &who), CP_OK);

	/* the admin CLI's way: another handle (another process in production) */
	struct store *cli = store_open(f->path, &admin);
	assert_non_null(cli);
	assert_int_equal(STORE(cli, key_revoke, k.id, cp_now_ms()), STORE_OK);
	store_close(cli);
	assert_int_equal(auth_check(f->st, secret, &who), CP_ERR_UNAUTHORIZED);

	/* a key created meanwhile works at once: misses are not cached */
	assert_int_equal(auth_key_mint(f->tenant, NULL, &k, secret), 0);
	assert_int_equal(auth_check(f->st, secret, &who), CP_ERR_UNAUTHORIZED);
	cli = store_open(f->path, &admin);
	assert_int_equal(STORE(cli, key_create, &k), STORE_OK);
	store_close(cli);
	assert_int_equal(auth_check(f->st, secret, &who), CP_OK);
}

/* The server and the CLI given different paths to one database (a symlink) still share one
 * key epoch: it lives next to the real file, as SQLite's -wal and -shm do. */
static void test_revocation_through_a_symlinked_path(void **state)
{
	struct fx *f = *state;
	char link[160];
	snprintf(link, sizeof link, "%s/link.db", f->dir);
	assert_int_equal(symlink(f->path, link), 0);
	store_close(f->st);
	f->st = store_open(link, &server); /* the server was given the link */
	assert_non_null(f->st);
	struct api_key k;
	char secret[AUTH_SECRET_LEN + 1];
	assert_int_equal(auth_key_mint(f->tenant, NULL, &k, secret), 0);
	assert_int_equal(STORE(f->st, key_create, &k), STORE_OK);
	struct principal who;
	assert_int_equal(auth_check(f->st, secret, &who), CP_OK);
	assert_int_equal(auth_check(f->st, secret, &who), CP_OK); /* cached */
	struct store *cli = store_open(f->path, &admin);          /* the CLI, the real path */
	assert_non_null(cli);
	assert_int_equal(STORE(cli, key_revoke, k.id, cp_now_ms()), STORE_OK);
	store_close(cli);
	assert_int_equal(auth_check(f->st, secret, &who), CP_ERR_UNAUTHORIZED);
	unlink(link);
	char stray[200];
	snprintf(stray, sizeof stray, "%s-keys", link);
	assert_int_not_equal(access(stray, F_OK), 0); /* no second epoch file */
}

/* ---- the cache alone -------------------------------------------------------------------- */

static void test_cache_fill_rules(void **state)
{
	(void)state;
	struct call_cache *cc = call_cache_create(1024);
	assert_non_null(cc);
	struct call c = {0}, out = {0};
	char number[CALL_CACHE_NUMBER_MAX + 1];
	strcpy(c.id, "00000000-0000-4000-8000-000000000001");
	c.status = CALL_RINGING;

	uint64_t t = call_cache_ticket(cc, c.id);
	call_cache_fill(cc, t, &c, "+1555");
	assert_true(call_cache_get(cc, c.id, &out, number));
	assert_int_equal(out.status, CALL_RINGING);
	assert_string_equal(number, "+1555");

	/* a write began after the ticket: the fill is dropped */
	t = call_cache_ticket(cc, c.id);
	unsigned stripe = call_cache_write_begin(cc, c.id);
	assert_false(call_cache_get(cc, c.id, &out, number));
	call_cache_fill(cc, t, &c, "+1555");
	assert_false(call_cache_get(cc, c.id, &out, number));
	/* while it is open no ticket is good */
	call_cache_fill(cc, call_cache_ticket(cc, c.id), &c, "+1555");
	assert_false(call_cache_get(cc, c.id, &out, number));
	/* a fill from before its end is dropped too */
	t = call_cache_ticket(cc, c.id);
	call_cache_write_end(cc, stripe, 1);
	call_cache_fill(cc, t, &c, "+1555");
	assert_false(call_cache_get(cc, c.id, &out, number));
	/* after it: cached again */
	c.status = CALL_IN_PROGRESS;
	call_cache_fill(cc, call_cache_ticket(cc, c.id), &c, "+1555");
	assert_true(call_cache_get(cc, c.id, &out, number));
	assert_int_equal(out.status, CALL_IN_PROGRESS);

	call_clear(&out);
	call_cache_destroy(cc);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_second_server_refused_admin_allowed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_get_after_update_and_redact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_checked_on_cached_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_sees_own_writes_and_readers_see_commit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_handles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readers_never_see_the_past, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_key_revoked_by_another_process_is_refused_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revocation_through_a_symlinked_path, setup,
						teardown),
		cmocka_unit_test(test_cache_fill_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
