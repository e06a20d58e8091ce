/*
 * test_call_service.c - the canonical call service over a real SQLite store, first without a
 * telephony engine, then with a fake engine (a test double of struct telephony_ops) whose
 * answers to dial() and hangup() each test chooses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model/call.h"
#include "call/call_service.h"
#include "call/telephony.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "metrics/metrics.h"
#include "store/store.h"
#include "call_json_parsed.h"

#define NUM_A1 "+15550001111"
#define NUM_A3 "+15550002222"
#define NUM_B1 "+15550009999"
#define TO "sip:bob@example.com"
#define NO_SUCH_ID "00000000-0000-4000-8000-000000000000"

/* ---- the fake engine -------------------------------------------------------------------- */

struct fake_engine {
	struct call_service *svc;
	int new_id_calls;
	/* dial */
	int dial_rc;
	int dial_calls;
	char dialed_id[CP_UUID_LEN + 1];
	char dialed_pcid[CALL_PROVIDER_ID_MAX + 1];
	enum call_status dialed_status;
	/* hangup */
	enum cp_err hangup_err;
	enum hangup_kind hangup_kind;
	int hangup_calls;
	char hangup_id[CP_UUID_LEN + 1];
	char hangup_reason[CALL_REASON_MAX + 1];
	enum call_status hangup_status;
	int hangup_wait_ms;
	/* the goodbye of the last hangup(): whether one was given, its audio and deadline, and
	 * the goodbye_ms the fake answers with */
	bool goodbye_given;
	size_t goodbye_len;
	int goodbye_max_wait;
	int answer_goodbye_ms;
	/* before answering, apply this update to the call (something happened on the wire) */
	bool move_first;
	struct call_update move;
	/* send_dtmf */
	int dtmf_rc;
	int dtmf_calls;
	char dtmf_id[CP_UUID_LEN + 1];
	char dtmf_digits[CALL_DTMF_MAX + 1];
	/* ping */
	int ping_rc;
	int ping_calls;
	int ping_timeout_ms;
	/* answer later instead of inside hangup() */
	bool defer;
	hangup_done_fn pending_done;
	void *pending_arg;
};

static void fake_new_call_id(void *engine, char *buf, size_t size)
{
	struct fake_engine *e = engine;
	e->new_id_calls++;
	snprintf(buf, size, "fake-%d@sip.test", e->new_id_calls);
}

static int fake_dial(void *engine, const struct call *c)
{
	struct fake_engine *e = engine;
	e->dial_calls++;
	snprintf(e->dialed_id, sizeof e->dialed_id, "%s", c->id);
	snprintf(e->dialed_pcid, sizeof e->dialed_pcid, "%s", c->provider_call_id);
	e->dialed_status = c->status;
	return e->dial_rc;
}

static void fake_hangup(void *engine, const struct call *c, const char *reason, int wait_ms,
			const struct hangup_goodbye *goodbye, hangup_done_fn done, void *arg)
{
	struct fake_engine *e = engine;
	e->hangup_calls++;
	e->goodbye_given = goodbye != NULL;
	e->goodbye_len = goodbye ? goodbye->len : 0;
	e->goodbye_max_wait = goodbye ? goodbye->max_wait_ms : -1;
	snprintf(e->hangup_id, sizeof e->hangup_id, "%s", c->id);
	snprintf(e->hangup_reason, sizeof e->hangup_reason, "%s", reason ? reason : "");
	e->hangup_status = c->status;
	e->hangup_wait_ms = wait_ms;
	if (e->move_first)
		call_service_event(e->svc, c->id, &e->move, NULL);
	if (e->defer) {
		e->pending_done = done;
		e->pending_arg = arg;
		return;
	}
	done(arg, e->hangup_err, e->hangup_kind, e->goodbye_given ? e->answer_goodbye_ms : 0);
}

static int fake_send_dtmf(void *engine, const struct call *c, const char *digits)
{
	struct fake_engine *e = engine;
	e->dtmf_calls++;
	snprintf(e->dtmf_id, sizeof e->dtmf_id, "%s", c->id);
	snprintf(e->dtmf_digits, sizeof e->dtmf_digits, "%s", digits);
	return e->dtmf_rc;
}

static const struct telephony_ops fake_ops = {
	.new_call_id = fake_new_call_id,
	.dial = fake_dial,
	.hangup = fake_hangup,
};

static int fake_ping(void *engine, int timeout_ms)
{
	struct fake_engine *e = engine;
	e->ping_calls++;
	e->ping_timeout_ms = timeout_ms;
	return e->ping_rc;
}

/* the same engine with a liveness check */
static const struct telephony_ops fake_ping_ops = {
	.new_call_id = fake_new_call_id,
	.dial = fake_dial,
	.hangup = fake_hangup,
	.ping = fake_ping,
};

/* the same engine with DTMF (fake_ops has none, like an engine without a media plane) */
static const struct telephony_ops fake_dtmf_ops = {
	.new_call_id = fake_new_call_id,
	.dial = fake_dial,
	.hangup = fake_hangup,
	.send_dtmf = fake_send_dtmf,
};

/* ---- what an end reported -------------------------------------------------------------- */

struct end_result {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls;
	enum cp_err code;
	char message[200];
	bool has_call;
	struct call call;
	int goodbye_ms;
};

static void result_init(struct end_result *r)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->code = CP_ERR_COUNT;
}

static void result_destroy(struct end_result *r)
{
	call_clear(&r->call);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
}

static void on_end(void *arg, const struct cp_error *err, const struct call *c, int goodbye_ms)
{
	struct end_result *r = arg;
	pthread_mutex_lock(&r->mu);
	r->calls++;
	r->goodbye_ms = goodbye_ms;
	r->code = err ? err->code : CP_ERR_COUNT;
	snprintf(r->message, sizeof r->message, "%s", err ? err->message : "");
	call_clear(&r->call);
	/* may run on the worker thread: no cmocka assert here; a failed copy shows as no call */
	r->has_call = c != NULL && call_copy(&r->call, c) == 0;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Waits (at most 5 s) for the first report. */
static int wait_result(struct end_result *r)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&r->mu);
	while (r->calls == 0) {
		if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
			break;
	}
	int n = r->calls;
	pthread_mutex_unlock(&r->mu);
	return n;
}

/* ---- fixture ---------------------------------------------------------------------------- */

struct fx {
	char dir[64];
	char path[128];
	struct store *st;
	struct call_service *svc;
	char t1[CP_UUID_LEN + 1], t2[CP_UUID_LEN + 1];
	char a1[CP_UUID_LEN + 1]; /* t1, NUM_A1, no max duration */
	char a2[CP_UUID_LEN + 1]; /* t1, no number */
	char a3[CP_UUID_LEN + 1]; /* t1, NUM_A3, max duration 120 */
	char b1[CP_UUID_LEN + 1]; /* t2, NUM_B1 */
	struct scope sc1, sc2;
	struct fake_engine fake;
	struct telephony tel;
};

/* A tenant that may dial any sip: URI (the tests dial sip:bob@...); dial policies have their
 * own tests (test_dial_policy_*). */
static enum store_result add_tenant(struct store *st, const char *id, const char *name)
{
	struct tenant t = {.created_at = cp_now_ms(), .dial = {.sip_uris = "any"}};
	snprintf(t.id, sizeof t.id, "%s", id);
	snprintf(t.name, sizeof t.name, "%s", name);
	return STORE(st, tenant_create, &t);
}

static int add_agent(struct store *st, const char *tenant, const char *name, const char *number,
		     int max_dur, char id[CP_UUID_LEN + 1])
{
	struct agent a = {0};
	if (cp_uuid4(a.id))
		return -1;
	snprintf(a.tenant_id, sizeof a.tenant_id, "%s", tenant);
	snprintf(a.name, sizeof a.name, "%s", name);
	snprintf(a.number, sizeof a.number, "%s", number ? number : "");
	a.max_duration_s = max_dur;
	a.created_at = cp_now_ms();
	memcpy(id, a.id, sizeof a.id);
	return STORE(st, agent_create, &a);
}

static void remove_db(struct fx *f)
{
	char buf[200];
	unlink(f->path);
	snprintf(buf, sizeof buf, "%s-wal", f->path);
	unlink(buf);
	snprintf(buf, sizeof buf, "%s-shm", f->path);
	unlink(buf);
	rmdir(f->dir);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/cp_test_svc_XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/svc.db", f->dir);
	struct store_options opt = {.sync_full = false};
	f->st = store_open(f->path, &opt);
	if (!f->st)
		goto fail;
	if (cp_uuid4(f->t1) || cp_uuid4(f->t2) || add_tenant(f->st, f->t1, "one") != STORE_OK ||
	    add_tenant(f->st, f->t2, "two") != STORE_OK ||
	    add_agent(f->st, f->t1, "a1", NUM_A1, 0, f->a1) != STORE_OK ||
	    add_agent(f->st, f->t1, "a2", NULL, 0, f->a2) != STORE_OK ||
	    add_agent(f->st, f->t1, "a3", NUM_A3, 120, f->a3) != STORE_OK ||
	    add_agent(f->st, f->t2, "b1", NUM_B1, 0, f->b1) != STORE_OK)
		goto fail;
	f->svc = call_service_create(f->st);
	if (!f->svc)
		goto fail;
	snprintf(f->sc1.tenant_id, sizeof f->sc1.tenant_id, "%s", f->t1);
	snprintf(f->sc2.tenant_id, sizeof f->sc2.tenant_id, "%s", f->t2);
	f->fake.svc = f->svc;
	f->fake.hangup_err = CP_OK;
	f->fake.hangup_kind = HANGUP_BYE;
	f->tel.ops = &fake_ops;
	f->tel.engine = &f->fake;
	*state = f;
	return 0;
fail:
	store_close(f->st);
	remove_db(f);
	free(f);
	return -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	call_service_destroy(f->svc);
	store_close(f->st);
	remove_db(f);
	free(f);
	return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static void create_ok(struct fx *f, const char *agent, struct call *out)
{
	struct call_request req = {.agent_id = agent, .to = TO};
	struct cp_error err = {0};
	enum cp_err rc = call_create(f->svc, &f->sc1, &req, "req-create", out, &err);
	if (rc != CP_OK)
		print_error("call_create: %s\n", err.message);
	assert_int_equal(rc, CP_OK);
}

static void stored(struct fx *f, const char *id, struct call *out)
{
	assert_int_equal(STORE(f->st, call_get, NULL, id, out), STORE_OK);
}

static size_t count_calls(struct fx *f, const struct scope *sc)
{
	struct call *calls = NULL;
	size_t n = 0;
	struct call_filter fl = {.limit = 200};
	assert_int_equal(STORE(f->st, call_list, sc, &fl, &calls, &n), STORE_OK);
	call_list_free(calls, n);
	return n;
}

/* Moves a queued call forward as the engine would report it. */
static void to_ringing(struct fx *f, const char *id)
{
	struct call_update u = {
		.from_mask = CALL_BIT(CALL_QUEUED), .to = CALL_RINGING, .sip_status = 180};
	assert_int_equal(call_service_event(f->svc, id, &u, NULL), STORE_OK);
}

static void to_in_progress(struct fx *f, const char *id)
{
	struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
				.to = CALL_IN_PROGRESS,
				.answered_at = cp_now_ms() - 2000,
				.sip_status = 200};
	struct call out = {0};
	assert_int_equal(call_service_event(f->svc, id, &u, &out), STORE_OK);
	assert_int_equal(out.status, CALL_IN_PROGRESS);
	call_clear(&out);
}

static void end_sync(struct fx *f, const struct scope *sc, const char *id, const char *reason,
		     struct end_result *r)
{
	call_end_with(f->svc, sc, id, &(struct call_end_options){.reason = reason}, "req-end",
		      on_end, r);
	assert_int_equal(wait_result(r), 1);
}

/* ---- create ----------------------------------------------------------------------------- */

static void test_create_defaults(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, s = {0};
	int64_t before = cp_now_ms();
	create_ok(f, f->a1, &c);
	assert_true(cp_is_uuid(c.id));
	assert_string_equal(c.tenant_id, f->t1);
	assert_string_equal(c.agent_id, f->a1);
	assert_int_equal(c.direction, CALL_OUTBOUND);
	assert_int_equal(c.status, CALL_QUEUED);
	assert_string_equal(c.from, NUM_A1); /* from defaults to the agent's number */
	assert_string_equal(c.to, TO);
	assert_int_equal(c.max_duration_s, 0);
	assert_true(c.created_at >= before && c.created_at <= cp_now_ms());
	assert_int_equal(c.answered_at, 0);
	assert_int_equal(c.ended_at, 0);
	assert_false(call_is_redacted(&c));
	assert_string_equal(c.provider_call_id, ""); /* no engine: nothing on the wire */
	/* metadata defaults to an empty object */
	json_t *j = call_to_json(&c);
	assert_true(json_is_object(json_object_get(j, "metadata")));
	assert_int_equal(json_object_size(json_object_get(j, "metadata")), 0);
	assert_true(json_is_null(json_object_get(j, "max_duration_s")));
	json_decref(j);
	/* and it is stored as returned; without an engine it stays queued */
	stored(f, c.id, &s);
	assert_int_equal(s.seq, c.seq);
	assert_int_equal(s.status, CALL_QUEUED);
	assert_string_equal(s.from, NUM_A1);
	assert_string_equal(s.to, TO);
	assert_int_equal(s.created_at, c.created_at);
	/* readable through the service within the scope */
	struct cp_error err;
	struct call g = {0};
	assert_int_equal(call_get(f->svc, &f->sc1, c.id, &g, &err), CP_OK);
	assert_string_equal(g.id, c.id);
	assert_int_equal(call_get(f->svc, &f->sc2, c.id, &g, &err), CP_ERR_NOT_FOUND);
	assert_int_equal(err.code, CP_ERR_NOT_FOUND);
	call_clear(&g);
	call_clear(&c);
	call_clear(&s);
}

static void test_create_explicit_fields(void **state)
{
	struct fx *f = *state;
	struct call_request req = {.agent_id = f->a1,
				   .to = "+442071234567",
				   .from = NUM_A3,
				   .metadata = "{\"crm\":42}",
				   .max_duration_s = 60};
	struct call c = {0}, s = {0};
	struct cp_error err = {0};
	assert_int_equal(call_create(f->svc, &f->sc1, &req, NULL, &c, &err), CP_OK);
	assert_string_equal(c.from, NUM_A3); /* another agent's number of the tenant */
	assert_string_equal(c.to, "+442071234567");
	assert_int_equal(c.max_duration_s, 60);
	stored(f, c.id, &s);
	assert_string_equal(s.from, NUM_A3);
	assert_int_equal(s.max_duration_s, 60);
	json_t *m = json_loads(s.metadata, 0, NULL);
	assert_non_null(m);
	assert_int_equal(json_integer_value(json_object_get(m, "crm")), 42);
	json_decref(m);
	call_clear(&c);
	call_clear(&s);

	/* max_duration_s 0 takes the agent's default */
	struct call_request req3 = {.agent_id = f->a3, .to = TO};
	assert_int_equal(call_create(f->svc, &f->sc1, &req3, NULL, &c, &err), CP_OK);
	assert_int_equal(c.max_duration_s, 120);
	assert_string_equal(c.from, NUM_A3);
	call_clear(&c);
	/* an explicit one wins over the agent's */
	req3.max_duration_s = 30;
	assert_int_equal(call_create(f->svc, &f->sc1, &req3, NULL, &c, &err), CP_OK);
	assert_int_equal(c.max_duration_s, 30);
	call_clear(&c);
}

static const char MSG_AGENT[] = "agent_id is required";
static const char MSG_TO[] = "to must be a sip: URI or an E.164 number of at most 256 bytes";
static const char MSG_FROM[] = "from must be an E.164 number: the number of one of the tenant's"
			       " agents";
static const char MSG_MAX_DURATION[] = "max_duration_s must be an integer in 1..86400";
static const char MSG_METADATA[] = "metadata must be a JSON object of at most 16384 bytes";

/* call_create() refuses req as invalid with `message`, the one check it failed. */
static void expect_invalid(struct fx *f, const struct call_request *req, const char *what,
			   const char *message)
{
	struct call c = {0};
	struct cp_error err = {0};
	enum cp_err rc = call_create(f->svc, &f->sc1, req, NULL, &c, &err);
	if (rc != CP_ERR_INVALID)
		print_error("%s: expected CP_ERR_INVALID, got %d\n", what, rc);
	assert_int_equal(rc, CP_ERR_INVALID);
	assert_int_equal(err.code, CP_ERR_INVALID);
	if (strcmp(err.message, message))
		print_error("%s: message \"%s\"\n", what, err.message);
	assert_string_equal(err.message, message);
	call_clear(&c);
}

static void test_create_validation(void **state)
{
	struct fx *f = *state;
	size_t before = count_calls(f, &f->sc1);

	struct call_request r = {.agent_id = NULL, .to = TO};
	expect_invalid(f, &r, "agent NULL", MSG_AGENT);
	r.agent_id = "";
	expect_invalid(f, &r, "agent empty", MSG_AGENT);

	const char *bad_to[] = {"hello",
				"sip:",
				"+0123",
				"+1",
				"",
				"sip:bob @example.com",
				"tel:+15550001111",
				"sip:bob\x01@example.com"};
	for (size_t i = 0; i < sizeof bad_to / sizeof bad_to[0]; i++) {
		r = (struct call_request){.agent_id = f->a1, .to = bad_to[i]};
		expect_invalid(f, &r, bad_to[i], MSG_TO);
	}
	r = (struct call_request){.agent_id = f->a1, .to = NULL};
	expect_invalid(f, &r, "to NULL", MSG_TO);
	char long_to[CALL_ADDR_MAX + 2];
	memset(long_to, 'a', sizeof long_to - 1);
	long_to[sizeof long_to - 1] = '\0';
	memcpy(long_to, "sip:", 4);
	r = (struct call_request){.agent_id = f->a1, .to = long_to};
	expect_invalid(f, &r, "to too long", MSG_TO);

	const char *bad_from[] = {"hello",
				  "sip:",
				  "+0123",
				  "",
				  "15550001111",
				  "sip:+15550001111@example.com",
				  "sips:alice@example.com"};
	for (size_t i = 0; i < sizeof bad_from / sizeof bad_from[0]; i++) {
		r = (struct call_request){.agent_id = f->a1, .to = TO, .from = bad_from[i]};
		expect_invalid(f, &r, bad_from[i], MSG_FROM);
	}

	const char *bad_meta[] = {"[]",   "[1,2]",    "\"text\"", "42",       "null",
				  "true", "not json", "{",        "{\"a\":}", ""};
	for (size_t i = 0; i < sizeof bad_meta / sizeof bad_meta[0]; i++) {
		r = (struct call_request){.agent_id = f->a1, .to = TO, .metadata = bad_meta[i]};
		expect_invalid(f, &r, bad_meta[i], MSG_METADATA);
	}

	r = (struct call_request){.agent_id = f->a1, .to = TO, .max_duration_s = -1};
	expect_invalid(f, &r, "max_duration -1", MSG_MAX_DURATION);
	r.max_duration_s = 86401;
	expect_invalid(f, &r, "max_duration 86401", MSG_MAX_DURATION);
	r.max_duration_s = -86400;
	expect_invalid(f, &r, "max_duration -86400", MSG_MAX_DURATION);

	/* nothing was stored by any of these */
	assert_int_equal(count_calls(f, &f->sc1), before);
}

/* {"k":"xxx...x"} of exactly len bytes (heap) */
static char *object_of_len(size_t len)
{
	char *m = malloc(len + 1);
	assert_non_null(m);
	memcpy(m, "{\"k\":\"", 6);
	memset(m + 6, 'x', len - 8);
	memcpy(m + len - 2, "\"}", 3);
	assert_int_equal(strlen(m), len);
	return m;
}

static void test_create_metadata_size(void **state)
{
	struct fx *f = *state;
	/* exactly CALL_METADATA_MAX (16 KiB) bytes is accepted */
	char *meta = object_of_len(CALL_METADATA_MAX);
	struct call_request r = {.agent_id = f->a1, .to = TO, .metadata = meta};
	struct call c = {0};
	struct cp_error err = {0};
	assert_int_equal(call_create(f->svc, &f->sc1, &r, NULL, &c, &err), CP_OK);
	assert_non_null(c.metadata);
	assert_int_equal(strlen(c.metadata), CALL_METADATA_MAX);
	call_clear(&c);
	free(meta);
	/* one byte more is not */
	meta = object_of_len(CALL_METADATA_MAX + 1);
	r.metadata = meta;
	expect_invalid(f, &r, "metadata 16 KiB + 1", MSG_METADATA);
	free(meta);
	/* nor is something far bigger */
	meta = object_of_len(64 * 1024);
	r.metadata = meta;
	expect_invalid(f, &r, "metadata 64 KiB", MSG_METADATA);
	free(meta);
	assert_int_equal(count_calls(f, &f->sc1), 1);
}

static void test_create_max_duration_bounds(void **state)
{
	struct fx *f = *state;
	const int ok[] = {1, 60, 86400};
	for (size_t i = 0; i < 3; i++) {
		struct call_request r = {.agent_id = f->a1, .to = TO, .max_duration_s = ok[i]};
		struct call c = {0};
		struct cp_error err = {0};
		assert_int_equal(call_create(f->svc, &f->sc1, &r, NULL, &c, &err), CP_OK);
		assert_int_equal(c.max_duration_s, ok[i]);
		call_clear(&c);
	}
}

static void test_create_agent_out_of_scope(void **state)
{
	struct fx *f = *state;
	struct call c = {0};
	struct cp_error err = {0};
	/* another tenant's agent */
	struct call_request r = {.agent_id = f->b1, .to = TO};
	assert_int_equal(call_create(f->svc, &f->sc1, &r, NULL, &c, &err), CP_ERR_NOT_FOUND);
	assert_int_equal(err.code, CP_ERR_NOT_FOUND);
	/* an unknown agent */
	r.agent_id = NO_SUCH_ID;
	assert_int_equal(call_create(f->svc, &f->sc1, &r, NULL, &c, &err), CP_ERR_NOT_FOUND);
	r.agent_id = "not-a-uuid";
	assert_int_equal(call_create(f->svc, &f->sc1, &r, NULL, &c, &err), CP_ERR_NOT_FOUND);
	/* a number-scoped key may use only its own number's agent */
	struct scope num = f->sc1;
	snprintf(num.number, sizeof num.number, "%s", NUM_A1);
	r.agent_id = f->a3;
	assert_int_equal(call_create(f->svc, &num, &r, NULL, &c, &err), CP_ERR_NOT_FOUND);
	r.agent_id = f->a2;
	assert_int_equal(call_create(f->svc, &num, &r, NULL, &c, &err), CP_ERR_NOT_FOUND);
	r.agent_id = f->a1;
	assert_int_equal(call_create(f->svc, &num, &r, NULL, &c, &err), CP_OK);
	assert_string_equal(c.agent_id, f->a1);
	call_clear(&c);
	/* nothing reached tenant 2 */
	assert_int_equal(count_calls(f, &f->sc2), 0);
	assert_int_equal(count_calls(f, &f->sc1), 1);
}

static void test_create_agent_without_number(void **state)
{
	struct fx *f = *state;
	struct call c = {0};
	struct cp_error err = {0};
	struct call_request r = {.agent_id = f->a2, .to = TO};
	assert_int_equal(call_create(f->svc, &f->sc1, &r, NULL, &c, &err), CP_ERR_INVALID);
	assert_int_equal(count_calls(f, &f->sc1), 0);
	r.from = NUM_A1;
	assert_int_equal(call_create(f->svc, &f->sc1, &r, NULL, &c, &err), CP_OK);
	assert_string_equal(c.from, NUM_A1);
	call_clear(&c);
}

/* call_create() refuses req from scope sc as from_not_allowed with `message`, storing nothing. */
static void expect_from_refused(struct fx *f, const struct scope *sc,
				const struct call_request *req, const char *message)
{
	struct call c = {0};
	struct cp_error err = {0};
	size_t before = count_calls(f, &f->sc1) + count_calls(f, &f->sc2);
	assert_int_equal(call_create(f->svc, sc, req, NULL, &c, &err), CP_ERR_FROM_NOT_ALLOWED);
	assert_int_equal(err.code, CP_ERR_FROM_NOT_ALLOWED);
	assert_string_equal(err.message, message);
	assert_int_equal(count_calls(f, &f->sc1) + count_calls(f, &f->sc2), before);
	call_clear(&c);
}

static void test_create_from_only_the_tenants_numbers(void **state)
{
	struct fx *f = *state;
	static const char tenant_msg[] = "from must be the number of one of the tenant's agents";
	struct call c = {0};
	struct cp_error err = {0};
	/* another tenant's agent's number, and a number nobody here holds: the same refusal */
	struct call_request r = {.agent_id = f->a1, .to = TO, .from = NUM_B1};
	expect_from_refused(f, &f->sc1, &r, tenant_msg);
	r.from = "+15550007777";
	expect_from_refused(f, &f->sc1, &r, tenant_msg);
	/* and the other way round: tenant 2 may not send tenant 1's numbers */
	r = (struct call_request){.agent_id = f->b1, .to = TO, .from = NUM_A1};
	expect_from_refused(f, &f->sc2, &r, tenant_msg);
	/* a number-scoped key: only its own number, not the tenant's others */
	struct scope num = f->sc1;
	snprintf(num.number, sizeof num.number, "%s", NUM_A1);
	r = (struct call_request){.agent_id = f->a1, .to = TO, .from = NUM_A3};
	expect_from_refused(f, &num, &r, "from must be this key's number, " NUM_A1);
	r.from = NUM_A1;
	assert_int_equal(call_create(f->svc, &num, &r, NULL, &c, &err), CP_OK);
	assert_string_equal(c.from, NUM_A1);
	call_clear(&c);
	/* a tenant-scoped key: any of the tenant's agents' numbers */
	r = (struct call_request){.agent_id = f->a3, .to = TO, .from = NUM_A1};
	assert_int_equal(call_create(f->svc, &f->sc1, &r, NULL, &c, &err), CP_OK);
	assert_string_equal(c.from, NUM_A1);
	call_clear(&c);
	assert_string_equal(cp_err_code(CP_ERR_FROM_NOT_ALLOWED), "from_not_allowed");
	assert_int_equal(cp_err_status(CP_ERR_FROM_NOT_ALLOWED), 403);
}

/* ---- end without an engine -------------------------------------------------------------- */

static void test_end_queued_default_reason(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, NULL, &r);
	assert_int_equal(r.code, CP_OK);
	assert_true(r.has_call);
	assert_string_equal(r.call.id, c.id);
	assert_int_equal(r.call.status, CALL_CANCELED);
	assert_string_equal(r.call.end_reason, "ended_by_api");
	assert_true(r.call.ended_at >= c.created_at);
	assert_int_equal(r.call.answered_at, 0);
	assert_int_equal(call_duration_s(&r.call), -1);
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_CANCELED);
	assert_string_equal(s.end_reason, "ended_by_api");
	assert_int_equal(s.ended_at, r.call.ended_at);
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

static void test_end_queued_given_reason(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, "customer.hung-up:1", &r);
	assert_int_equal(r.code, CP_OK);
	assert_true(r.has_call);
	assert_int_equal(r.call.status, CALL_CANCELED);
	assert_string_equal(r.call.end_reason, "customer.hung-up:1");
	stored(f, c.id, &s);
	assert_string_equal(s.end_reason, "customer.hung-up:1");
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

static void test_end_twice_not_active(void **state)
{
	struct fx *f = *state;
	struct call c = {0};
	create_ok(f, f->a1, &c);
	struct end_result r1, r2;
	result_init(&r1);
	result_init(&r2);
	end_sync(f, &f->sc1, c.id, "first", &r1);
	assert_int_equal(r1.code, CP_OK);
	end_sync(f, &f->sc1, c.id, "second", &r2);
	assert_int_equal(r2.code, CP_ERR_NOT_ACTIVE);
	assert_string_equal(r2.message, "call is not active");
	/* the current call comes with the error, unchanged by the second attempt */
	assert_true(r2.has_call);
	assert_string_equal(r2.call.id, c.id);
	assert_int_equal(r2.call.status, CALL_CANCELED);
	assert_string_equal(r2.call.end_reason, "first");
	assert_int_equal(r2.call.ended_at, r1.call.ended_at);
	result_destroy(&r1);
	result_destroy(&r2);
	call_clear(&c);
}

static void test_end_invalid_reason(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	char long_reason[CALL_REASON_MAX + 2];
	memset(long_reason, 'r', sizeof long_reason - 1);
	long_reason[sizeof long_reason - 1] = '\0';
	const char *bad[] = {"", "has space", "caf\xc3\xa9", "semi;colon", long_reason};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct end_result r;
		result_init(&r);
		end_sync(f, &f->sc1, c.id, bad[i], &r);
		assert_int_equal(r.code, CP_ERR_INVALID);
		assert_false(r.has_call);
		result_destroy(&r);
		stored(f, c.id, &s);
		assert_int_equal(s.status, CALL_QUEUED);
		assert_string_equal(s.end_reason, "");
		assert_int_equal(s.ended_at, 0);
	}
	call_clear(&c);
	call_clear(&s);
}

static void test_end_not_found(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, NO_SUCH_ID, NULL, &r);
	assert_int_equal(r.code, CP_ERR_NOT_FOUND);
	assert_false(r.has_call);
	result_destroy(&r);
	/* another tenant cannot end it, and learns nothing */
	result_init(&r);
	end_sync(f, &f->sc2, c.id, NULL, &r);
	assert_int_equal(r.code, CP_ERR_NOT_FOUND);
	assert_false(r.has_call);
	result_destroy(&r);
	/* nor can a key scoped to another number of the same tenant */
	struct scope num = f->sc1;
	snprintf(num.number, sizeof num.number, "%s", NUM_A3);
	result_init(&r);
	end_sync(f, &num, c.id, NULL, &r);
	assert_int_equal(r.code, CP_ERR_NOT_FOUND);
	result_destroy(&r);
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_QUEUED);
	call_clear(&c);
	call_clear(&s);
}

static void test_end_without_engine_answered(void **state)
{
	/* no engine, but the call was answered (e.g. reported before the engine went away): an
	 * answered call can only end completed */
	struct fx *f = *state;
	struct call c = {0};
	create_ok(f, f->a1, &c);
	to_ringing(f, c.id);
	to_in_progress(f, c.id);
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, NULL, &r);
	assert_int_equal(r.code, CP_OK);
	assert_int_equal(r.call.status, CALL_COMPLETED);
	/* answered 2 s before the end (to_in_progress), which follows at once */
	assert_int_equal(call_duration_s(&r.call), 2);
	result_destroy(&r);
	call_clear(&c);
}

/* ---- redact ----------------------------------------------------------------------------- */

static void test_redact(void **state)
{
	struct fx *f = *state;
	struct call_request req = {.agent_id = f->a1, .to = TO, .metadata = "{\"pii\":\"x\"}"};
	struct call c = {0}, out = {0}, s = {0};
	struct cp_error err = {0};
	assert_int_equal(call_create(f->svc, &f->sc1, &req, NULL, &c, &err), CP_OK);

	/* active: refused, nothing cleared */
	assert_int_equal(call_redact(f->svc, &f->sc1, c.id, "req-r", &out, &err),
			 CP_ERR_NOT_ACTIVE);
	assert_int_equal(err.code, CP_ERR_NOT_ACTIVE);
	stored(f, c.id, &s);
	assert_string_equal(s.from, NUM_A1);
	assert_non_null(s.metadata);
	assert_int_equal(s.redacted_at, 0);

	/* another tenant: not found */
	assert_int_equal(call_redact(f->svc, &f->sc2, c.id, NULL, &out, &err), CP_ERR_NOT_FOUND);
	assert_int_equal(call_redact(f->svc, &f->sc1, NO_SUCH_ID, NULL, &out, &err),
			 CP_ERR_NOT_FOUND);

	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, NULL, &r);
	assert_int_equal(r.code, CP_OK);
	result_destroy(&r);

	assert_int_equal(call_redact(f->svc, &f->sc1, c.id, "req-r", &out, &err), CP_OK);
	assert_true(call_is_redacted(&out));
	assert_in_range(out.redacted_at, c.created_at, cp_now_ms());
	assert_string_equal(out.from, "");
	assert_string_equal(out.to, "");
	assert_null(out.metadata);
	assert_int_equal(out.status, CALL_CANCELED);
	int64_t first = out.redacted_at;
	json_t *j = call_to_json(&out);
	assert_true(json_is_null(json_object_get(j, "from")));
	assert_true(json_is_null(json_object_get(j, "to")));
	assert_true(json_is_null(json_object_get(j, "metadata")));
	assert_true(json_is_string(json_object_get(j, "redacted_at")));
	json_decref(j);

	/* repeatable */
	assert_int_equal(call_redact(f->svc, &f->sc1, c.id, NULL, &out, &err), CP_OK);
	assert_true(call_is_redacted(&out));
	assert_int_equal(out.redacted_at, first);
	stored(f, c.id, &s);
	assert_true(call_is_redacted(&s));
	assert_null(s.metadata);
	assert_string_equal(s.to, "");
	call_clear(&c);
	call_clear(&out);
	call_clear(&s);
}

static void test_list_through_service(void **state)
{
	struct fx *f = *state;
	struct call c1 = {0}, c2 = {0};
	create_ok(f, f->a1, &c1);
	create_ok(f, f->a3, &c2);
	struct call *calls = NULL;
	size_t n = 0;
	struct cp_error err;
	struct call_filter fl = {.limit = 10};
	assert_int_equal(call_list(f->svc, &f->sc1, &fl, &calls, &n, &err), CP_OK);
	assert_int_equal(n, 2);
	assert_string_equal(calls[0].id, c2.id);
	assert_string_equal(calls[1].id, c1.id);
	call_list_free(calls, n);
	struct scope num = f->sc1;
	snprintf(num.number, sizeof num.number, "%s", NUM_A3);
	assert_int_equal(call_list(f->svc, &num, &fl, &calls, &n, &err), CP_OK);
	assert_int_equal(n, 1);
	assert_string_equal(calls[0].id, c2.id);
	call_list_free(calls, n);
	assert_int_equal(call_list(f->svc, &f->sc2, &fl, &calls, &n, &err), CP_OK);
	assert_int_equal(n, 0);
	call_list_free(calls, n);
	call_clear(&c1);
	call_clear(&c2);
}

static void test_event_conflict(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, out = {0};
	create_ok(f, f->a1, &c);
	/* completed is not reachable from queued */
	struct call_update u = {.from_mask = CALL_BIT(CALL_IN_PROGRESS),
				.to = CALL_COMPLETED,
				.ended_at = cp_now_ms()};
	assert_int_equal(call_service_event(f->svc, c.id, &u, &out), STORE_CONFLICT);
	assert_int_equal(out.status, CALL_QUEUED);
	assert_int_equal(call_service_event(f->svc, NO_SUCH_ID, &u, NULL), STORE_NOT_FOUND);
	call_clear(&c);
	call_clear(&out);
}

/* A caller that passes a mask naming the call's current state still cannot take a step the
 * state machine forbids: the service restricts every mask to the target's sources. */
static void test_event_illegal_step_refused(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, out = {0};
	create_ok(f, f->a1, &c);
	struct call_update to_completed = {
		.from_mask = CALL_BIT(CALL_QUEUED), .to = CALL_COMPLETED, .ended_at = cp_now_ms()};
	assert_int_equal(call_service_event(f->svc, c.id, &to_completed, &out), STORE_CONFLICT);
	assert_int_equal(out.status, CALL_QUEUED);
	struct call_update to_queued = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
					.to = CALL_RINGING};
	assert_int_equal(call_service_event(f->svc, c.id, &to_queued, &out), STORE_OK);
	struct call_update back = {.from_mask = CALL_BIT(CALL_RINGING), .to = CALL_QUEUED};
	assert_int_equal(call_service_event(f->svc, c.id, &back, &out), STORE_CONFLICT);
	assert_int_equal(out.status, CALL_RINGING);
	call_clear(&c);
	call_clear(&out);
}

/* ---- with the fake engine --------------------------------------------------------------- */

static void test_fake_dial_accepted(void **state)
{
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	assert_int_equal(f->fake.dial_calls, 1);
	assert_string_equal(f->fake.dialed_id, c.id);
	assert_int_equal(f->fake.dialed_status, CALL_QUEUED);
	/* the engine's Call-ID is stored before dialling */
	assert_int_equal(f->fake.new_id_calls, 1);
	assert_string_equal(f->fake.dialed_pcid, "fake-1@sip.test");
	assert_string_equal(c.provider_call_id, "fake-1@sip.test");
	assert_int_equal(c.status, CALL_QUEUED);
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_QUEUED);
	assert_string_equal(s.provider_call_id, "fake-1@sip.test");
	/* findable by it */
	struct cp_error err;
	struct call g = {0};
	assert_int_equal(call_get(f->svc, &f->sc1, "fake-1@sip.test", &g, &err), CP_OK);
	assert_string_equal(g.id, c.id);
	call_clear(&g);
	call_clear(&c);
	call_clear(&s);
}

static void test_fake_dial_refused(void **state)
{
	struct fx *f = *state;
	f->fake.dial_rc = -1;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	assert_int_equal(f->fake.dial_calls, 1);
	assert_int_equal(c.status, CALL_FAILED);
	assert_in_range(c.ended_at, c.created_at, cp_now_ms());
	assert_int_equal(c.answered_at, 0);
	assert_string_equal(c.end_reason, "failed");
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_FAILED);
	assert_int_equal(s.ended_at, c.ended_at);
	/* a failed call cannot be ended */
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, NULL, &r);
	assert_int_equal(r.code, CP_ERR_NOT_ACTIVE);
	assert_int_equal(f->fake.hangup_calls, 0);
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

static void test_fake_hangup_undeliverable(void **state)
{
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0}, before = {0}, s = {0};
	create_ok(f, f->a1, &c);
	to_ringing(f, c.id);
	to_in_progress(f, c.id);
	stored(f, c.id, &before);
	f->fake.hangup_err = CP_ERR_UNDELIVERABLE;
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, "try_once", &r);
	assert_int_equal(f->fake.hangup_calls, 1);
	assert_int_equal(r.code, CP_ERR_UNDELIVERABLE);
	assert_false(r.has_call);
	assert_string_equal(
		r.message,
		"the hang-up could not be handed to the network; nothing changed, retry");
	/* nothing changed */
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_IN_PROGRESS);
	assert_int_equal(s.ended_at, 0);
	assert_string_equal(s.end_reason, "");
	assert_int_equal(s.answered_at, before.answered_at);
	result_destroy(&r);

	/* the client may retry, and this time the BYE goes out */
	f->fake.hangup_err = CP_OK;
	f->fake.hangup_kind = HANGUP_BYE;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, "try_twice", &r);
	assert_int_equal(r.code, CP_OK);
	assert_int_equal(r.call.status, CALL_COMPLETED);
	assert_string_equal(r.call.end_reason, "try_twice");
	result_destroy(&r);
	call_clear(&c);
	call_clear(&before);
	call_clear(&s);
}

static void test_fake_hangup_bye(void **state)
{
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	to_ringing(f, c.id);
	to_in_progress(f, c.id);
	f->fake.hangup_err = CP_OK;
	f->fake.hangup_kind = HANGUP_BYE;
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, NULL, &r);
	/* the engine was asked, with the call as it stood and the reason */
	assert_int_equal(f->fake.hangup_calls, 1);
	assert_string_equal(f->fake.hangup_id, c.id);
	assert_int_equal(f->fake.hangup_status, CALL_IN_PROGRESS);
	assert_string_equal(f->fake.hangup_reason, "ended_by_api");
	assert_int_equal(f->fake.hangup_wait_ms, -1); /* an API end: the engine's default bound */
	assert_int_equal(r.code, CP_OK);
	assert_true(r.has_call);
	assert_int_equal(r.call.status, CALL_COMPLETED);
	assert_string_equal(r.call.end_reason, "ended_by_api");
	assert_true(r.call.answered_at > 0);
	assert_true(r.call.ended_at >= r.call.answered_at);
	assert_int_equal(call_duration_s(&r.call), 2); /* answered 2 s before (to_in_progress) */
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_COMPLETED);
	assert_int_equal(s.ended_at, r.call.ended_at);
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

static void test_fake_hangup_cancel(void **state)
{
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	to_ringing(f, c.id);
	f->fake.hangup_err = CP_OK;
	f->fake.hangup_kind = HANGUP_CANCEL;
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, "changed_mind", &r);
	assert_int_equal(f->fake.hangup_calls, 1);
	assert_int_equal(f->fake.hangup_status, CALL_RINGING);
	assert_string_equal(f->fake.hangup_reason, "changed_mind");
	assert_int_equal(r.code, CP_OK);
	assert_int_equal(r.call.status, CALL_CANCELED);
	assert_string_equal(r.call.end_reason, "changed_mind");
	assert_int_equal(r.call.answered_at, 0);
	assert_int_equal(call_duration_s(&r.call), -1);
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_CANCELED);
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

static void test_fake_hangup_not_active(void **state)
{
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	to_ringing(f, c.id);
	to_in_progress(f, c.id);
	f->fake.hangup_err = CP_ERR_NOT_ACTIVE;
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, NULL, &r);
	assert_int_equal(r.code, CP_ERR_NOT_ACTIVE);
	assert_true(r.has_call);
	assert_string_equal(r.call.id, c.id);
	/* the service itself recorded nothing */
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_IN_PROGRESS);
	assert_string_equal(s.end_reason, "");
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

static void test_fake_hangup_none_queued(void **state)
{
	/* the engine had no dialog yet (never dialled): nothing went on the wire, and the call
	 * ends canceled */
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	f->fake.hangup_err = CP_OK;
	f->fake.hangup_kind = HANGUP_NONE;
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, NULL, &r);
	assert_int_equal(f->fake.hangup_calls, 1);
	assert_int_equal(f->fake.hangup_status, CALL_QUEUED);
	assert_int_equal(r.code, CP_OK);
	assert_int_equal(r.call.status, CALL_CANCELED);
	assert_string_equal(r.call.end_reason, "ended_by_api");
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_CANCELED);
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

static void test_fake_bye_on_unanswered_call(void **state)
{
	/* whatever the engine says went on the wire, a call the store has as never answered
	 * cannot become completed (ringing -> completed is not a step of the state machine) */
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	to_ringing(f, c.id);
	f->fake.hangup_err = CP_OK;
	f->fake.hangup_kind = HANGUP_BYE;
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, NULL, &r);
	assert_int_equal(r.code, CP_OK);
	assert_int_equal(r.call.status, CALL_CANCELED);
	assert_int_equal(r.call.answered_at, 0);
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_CANCELED);
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

static void test_fake_remote_ended_meanwhile(void **state)
{
	/* the far end hung up (engine recorded completed/remote) just before our BYE was
	 * confirmed: the client hears call_not_active and sees the engine's end */
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	to_ringing(f, c.id);
	to_in_progress(f, c.id);
	f->fake.move_first = true;
	f->fake.move = (struct call_update){.from_mask = CALL_BIT(CALL_IN_PROGRESS),
					    .to = CALL_COMPLETED,
					    .ended_at = cp_now_ms(),
					    .end_reason = "remote_bye"};
	f->fake.hangup_err = CP_OK;
	f->fake.hangup_kind = HANGUP_BYE;
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, NULL, &r);
	assert_int_equal(r.code, CP_ERR_NOT_ACTIVE);
	assert_true(r.has_call);
	assert_int_equal(r.call.status, CALL_COMPLETED);
	assert_string_equal(r.call.end_reason, "remote_bye");
	stored(f, c.id, &s);
	assert_string_equal(s.end_reason, "remote_bye");
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

static void test_fake_answered_while_cancelling(void **state)
{
	/* CANCEL crossed a 200 OK: the call got answered, so it can only end completed */
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0};
	create_ok(f, f->a1, &c);
	to_ringing(f, c.id);
	f->fake.move_first = true;
	f->fake.move = (struct call_update){.from_mask = CALL_BIT(CALL_RINGING),
					    .to = CALL_IN_PROGRESS,
					    .answered_at = cp_now_ms()};
	f->fake.hangup_err = CP_OK;
	f->fake.hangup_kind = HANGUP_CANCEL;
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, c.id, NULL, &r);
	assert_int_equal(r.code, CP_OK);
	assert_int_equal(r.call.status, CALL_COMPLETED);
	assert_int_equal(r.call.answered_at, f->fake.move.answered_at);
	assert_string_equal(r.call.end_reason, "ended_by_api");
	result_destroy(&r);
	call_clear(&c);
}

static void test_fake_deferred_with_worker(void **state)
{
	/* the engine answers later, from another thread than the caller's, with the service's
	 * worker running: done still runs exactly once with the ended call */
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	assert_int_equal(call_service_start(f->svc), 0);
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	to_ringing(f, c.id);
	to_in_progress(f, c.id);
	f->fake.defer = true;
	f->fake.hangup_err = CP_OK;
	f->fake.hangup_kind = HANGUP_BYE;
	struct end_result r;
	result_init(&r);
	call_end_with(f->svc, &f->sc1, c.id, &(struct call_end_options){.reason = "later"}, NULL,
		      on_end, &r);
	assert_int_equal(f->fake.hangup_calls, 1);
	assert_non_null(f->fake.pending_done);
	/* not answered yet: nothing reported, nothing recorded */
	pthread_mutex_lock(&r.mu);
	assert_int_equal(r.calls, 0);
	pthread_mutex_unlock(&r.mu);
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_IN_PROGRESS);
	/* the engine confirms */
	f->fake.pending_done(f->fake.pending_arg, CP_OK, HANGUP_BYE, 0);
	assert_int_equal(wait_result(&r), 1);
	call_service_stop(f->svc); /* drains the worker */
	pthread_mutex_lock(&r.mu);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.code, CP_OK);
	assert_int_equal(r.call.status, CALL_COMPLETED);
	assert_string_equal(r.call.end_reason, "later");
	pthread_mutex_unlock(&r.mu);
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_COMPLETED);
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

/* ---- end all / recovery ----------------------------------------------------------------- */

struct end_all_result {
	int calls;
	enum cp_err code;
	size_t ended, not_active, failed;
};

static void on_end_all(void *arg, const struct cp_error *err, size_t ended, size_t not_active,
		       size_t failed)
{
	struct end_all_result *r = arg;
	r->calls++;
	r->code = err->code;
	r->ended = ended;
	r->not_active = not_active;
	r->failed = failed;
}

static void test_end_all_in_scope(void **state)
{
	struct fx *f = *state;
	struct call q = {0}, p = {0}, done = {0}, other = {0}, s = {0};
	create_ok(f, f->a1, &q);
	create_ok(f, f->a3, &p);
	to_ringing(f, p.id);
	to_in_progress(f, p.id);
	create_ok(f, f->a1, &done);
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, done.id, NULL, &r);
	result_destroy(&r);
	struct call_request req = {.agent_id = f->b1, .to = TO};
	struct cp_error err;
	assert_int_equal(call_create(f->svc, &f->sc2, &req, NULL, &other, &err), CP_OK);

	struct end_all_result ea = {0};
	call_end_all(f->svc, &f->sc1, NULL, "emergency", NULL, on_end_all, &ea);
	assert_int_equal(ea.calls, 1);
	assert_int_equal(ea.code, CP_OK);
	assert_int_equal(ea.ended, 2);
	assert_int_equal(ea.failed, 0);
	stored(f, q.id, &s);
	assert_int_equal(s.status, CALL_CANCELED);
	assert_string_equal(s.end_reason, "emergency");
	stored(f, p.id, &s);
	assert_int_equal(s.status, CALL_COMPLETED);
	stored(f, done.id, &s);
	assert_string_equal(s.end_reason, "ended_by_api"); /* untouched */
	stored(f, other.id, &s);
	assert_int_equal(s.status, CALL_QUEUED); /* another tenant: untouched */
	call_clear(&q);
	call_clear(&p);
	call_clear(&done);
	call_clear(&other);
	call_clear(&s);
}

static void test_end_all_with_engine(void **state)
{
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call a = {0}, b = {0}, s = {0};
	create_ok(f, f->a1, &a);
	create_ok(f, f->a3, &b);
	to_ringing(f, a.id);
	to_ringing(f, b.id);
	f->fake.hangup_err = CP_OK;
	f->fake.hangup_kind = HANGUP_CANCEL;
	struct end_all_result ea = {0};
	/* limited to one agent */
	call_end_all(f->svc, &f->sc1, f->a3, NULL, NULL, on_end_all, &ea);
	assert_int_equal(ea.calls, 1);
	assert_int_equal(ea.code, CP_OK);
	assert_int_equal(ea.ended, 1);
	assert_int_equal(f->fake.hangup_calls, 1);
	assert_string_equal(f->fake.hangup_id, b.id);
	assert_int_equal(f->fake.hangup_wait_ms, 0); /* an emergency stop waits as needed */
	stored(f, b.id, &s);
	assert_int_equal(s.status, CALL_CANCELED);
	stored(f, a.id, &s);
	assert_int_equal(s.status, CALL_RINGING);
	/* an invalid reason ends nothing */
	ea = (struct end_all_result){0};
	call_end_all(f->svc, &f->sc1, NULL, "bad reason", NULL, on_end_all, &ea);
	assert_int_equal(ea.calls, 1);
	assert_int_equal(ea.code, CP_ERR_INVALID);
	stored(f, a.id, &s);
	assert_int_equal(s.status, CALL_RINGING);
	/* undeliverable hang-ups are counted as failed */
	f->fake.hangup_err = CP_ERR_UNDELIVERABLE;
	ea = (struct end_all_result){0};
	call_end_all(f->svc, &f->sc1, NULL, NULL, NULL, on_end_all, &ea);
	assert_int_equal(ea.calls, 1);
	assert_int_equal(ea.ended, 0);
	assert_int_equal(ea.failed, 1);
	stored(f, a.id, &s);
	assert_int_equal(s.status, CALL_RINGING);
	call_clear(&a);
	call_clear(&b);
	call_clear(&s);
}

struct inbound_result {
	int calls;
	enum cp_err err;
	struct call call;
};

static void on_inbound(void *arg, enum cp_err err, const struct call *c)
{
	struct inbound_result *r = arg;
	r->calls++;
	r->err = err;
	call_clear(&r->call);
	if (c && call_copy(&r->call, c))
		r->err = CP_ERR_INTERNAL; /* out of memory copying: shows as a failure */
}

static void test_inbound(void **state)
{
	struct fx *f = *state;
	struct inbound_result r = {0};
	struct inbound_call in = {.number = NUM_A3,
				  .from = "sip:caller@example.net",
				  .to = "sip:" NUM_A3 "@callplane.test",
				  .provider_call_id = "inbound-1@example.net"};
	call_service_inbound(f->svc, &in, on_inbound, &r);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, CP_OK);
	assert_true(cp_is_uuid(r.call.id));
	assert_int_equal(r.call.direction, CALL_INBOUND);
	assert_int_equal(r.call.status, CALL_QUEUED);
	assert_string_equal(r.call.agent_id, f->a3);
	assert_string_equal(r.call.tenant_id, f->t1);
	assert_string_equal(r.call.from, "sip:caller@example.net");
	assert_int_equal(r.call.max_duration_s, 120);
	struct call s = {0};
	struct cp_error err;
	assert_int_equal(call_get(f->svc, &f->sc1, "inbound-1@example.net", &s, &err), CP_OK);
	assert_string_equal(s.id, r.call.id);
	assert_int_equal(s.direction, CALL_INBOUND);
	assert_int_equal(call_get(f->svc, &f->sc2, "inbound-1@example.net", &s, &err),
			 CP_ERR_NOT_FOUND);
	/* a number no agent has */
	struct inbound_result r2 = {0};
	in.number = "+15550005555";
	in.provider_call_id = "inbound-2@example.net";
	call_service_inbound(f->svc, &in, on_inbound, &r2);
	assert_int_equal(r2.calls, 1);
	assert_int_equal(r2.err, CP_ERR_NOT_FOUND);
	assert_int_equal(count_calls(f, &f->sc1), 1);
	call_clear(&r.call);
	call_clear(&r2.call);
	call_clear(&s);
}

static void test_inbound_only_admitted_tenants(void **state)
{
	/* an INVITE admitted by some tenants' trunks reaches their agents only: another
	 * tenant's number is unknown to it, and no call is made */
	struct fx *f = *state;
	char only_t2[2 * CP_UUID_LEN + 4], both[2 * CP_UUID_LEN + 4];
	snprintf(only_t2, sizeof only_t2, "%s", f->t2);
	snprintf(both, sizeof both, "%s,%s", f->t2, f->t1);
	struct inbound_result r = {0};
	struct inbound_call in = {.number = NUM_A3,
				  .from = "sip:caller@example.net",
				  .to = "sip:" NUM_A3 "@callplane.test",
				  .provider_call_id = "inbound-t@example.net",
				  .tenants = only_t2};
	call_service_inbound(f->svc, &in, on_inbound, &r);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, CP_ERR_NOT_FOUND);
	assert_int_equal(count_calls(f, &f->sc1), 0);
	in.tenants = both;
	call_service_inbound(f->svc, &in, on_inbound, &r);
	assert_int_equal(r.calls, 2);
	assert_int_equal(r.err, CP_OK);
	assert_string_equal(r.call.agent_id, f->a3);
	assert_int_equal(count_calls(f, &f->sc1), 1);
	call_clear(&r.call);
}

static void test_end_by_provider_call_id(void **state)
{
	/* {id} may be the provider call id; the end is recorded on the call it names */
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	assert_string_equal(c.provider_call_id, "fake-1@sip.test");
	to_ringing(f, c.id);
	f->fake.hangup_err = CP_OK;
	f->fake.hangup_kind = HANGUP_CANCEL;
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, "fake-1@sip.test", NULL, &r);
	assert_int_equal(r.code, CP_OK);
	assert_string_equal(r.call.id, c.id);
	assert_string_equal(f->fake.hangup_id, c.id);
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_CANCELED);
	result_destroy(&r);
	/* and redacted by it */
	struct cp_error err;
	assert_int_equal(call_redact(f->svc, &f->sc1, "fake-1@sip.test", NULL, &s, &err), CP_OK);
	assert_string_equal(s.id, c.id);
	assert_true(call_is_redacted(&s));
	call_clear(&c);
	call_clear(&s);
}

static void test_post_event_in_order(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, s = {0};
	create_ok(f, f->a1, &c);
	assert_int_equal(call_service_start(f->svc), 0);
	/* the engine's view of one call, posted without waiting */
	char pcid[64];
	snprintf(pcid, sizeof pcid, "posted-%s", c.id);
	struct call_update ring = {.from_mask = CALL_BIT(CALL_QUEUED),
				   .to = CALL_RINGING,
				   .sip_status = 180,
				   .provider_call_id = pcid};
	struct call_update answer = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
				     .to = CALL_IN_PROGRESS,
				     .answered_at = 1000,
				     .sip_status = 200};
	char reason[32];
	snprintf(reason, sizeof reason, "remote_bye");
	struct call_update bye = {.from_mask = CALL_BIT(CALL_IN_PROGRESS),
				  .to = CALL_COMPLETED,
				  .ended_at = 4000,
				  .end_reason = reason};
	call_service_post_event(f->svc, c.id, &ring);
	call_service_post_event(f->svc, c.id, &answer);
	call_service_post_event(f->svc, c.id, &bye);
	/* the service copied what it needs: the caller's buffers may change at once */
	memset(pcid, 'X', sizeof pcid - 1);
	memset(reason, 'X', sizeof reason - 1);
	call_service_stop(f->svc); /* drains the queue */
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_COMPLETED);
	assert_int_equal(s.answered_at, 1000);
	assert_int_equal(s.ended_at, 4000);
	assert_int_equal(call_duration_s(&s), 3);
	assert_string_equal(s.end_reason, "remote_bye");
	assert_int_equal(s.sip_status, 200);
	assert_true(strncmp(s.provider_call_id, "posted-", 7) == 0);
	call_clear(&c);
	call_clear(&s);
}

static void test_end_all_many(void **state)
{
	/* more active calls than one page of the walk */
	struct fx *f = *state;
	enum { N = 205 };
	for (int i = 0; i < N; i++) {
		struct call c = {0};
		create_ok(f, f->a1, &c);
		call_clear(&c);
	}
	struct end_all_result ea = {0};
	call_end_all(f->svc, &f->sc1, NULL, NULL, NULL, on_end_all, &ea);
	assert_int_equal(ea.calls, 1);
	assert_int_equal(ea.code, CP_OK);
	assert_int_equal(ea.ended, N);
	assert_int_equal(ea.failed, 0);
	struct call *calls = NULL;
	size_t n = 0;
	struct call_filter fl = {.limit = 200, .status_mask = CALL_ACTIVE_MASK};
	assert_int_equal(STORE(f->st, call_list, &f->sc1, &fl, &calls, &n), STORE_OK);
	assert_int_equal(n, 0);
	call_list_free(calls, n);
}

struct end_racer {
	struct fx *f;
	const char *id;
	pthread_barrier_t *barrier;
	bool answer; /* report an answer instead of ending */
	int event_rc;
	struct end_result r;
};

static void *end_race_one(void *arg)
{
	struct end_racer *x = arg;
	pthread_barrier_wait(x->barrier);
	if (x->answer) {
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
					.to = CALL_IN_PROGRESS,
					.answered_at = cp_now_ms()};
		x->event_rc = call_service_event(x->f->svc, x->id, &u, NULL);
	} else {
		call_end_with(x->f->svc, &x->f->sc1, x->id, &(struct call_end_options){0}, NULL,
			      on_end, &x->r);
	}
	return NULL;
}

static void test_end_race_two_ends(void **state)
{
	/* two clients end the same call at once: exactly one ends it, the other is told it is
	 * not active (never two successes, never an internal error) */
	struct fx *f = *state;
	int bad = 0;
	for (int round = 0; round < 60; round++) {
		struct call c = {0};
		create_ok(f, f->a1, &c);
		if (round % 2)
			to_ringing(f, c.id);
		pthread_barrier_t barrier;
		pthread_barrier_init(&barrier, NULL, 2);
		struct end_racer x[2];
		pthread_t t[2];
		for (int i = 0; i < 2; i++) {
			x[i] = (struct end_racer){.f = f, .id = c.id, .barrier = &barrier};
			result_init(&x[i].r);
			assert_int_equal(pthread_create(&t[i], NULL, end_race_one, &x[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&barrier);
		int ok = 0, not_active = 0;
		for (int i = 0; i < 2; i++) {
			if (x[i].r.calls != 1)
				bad++;
			ok += x[i].r.code == CP_OK;
			not_active += x[i].r.code == CP_ERR_NOT_ACTIVE;
		}
		if (ok != 1 || not_active != 1) {
			print_error("round %d: codes %d and %d\n", round, x[0].r.code, x[1].r.code);
			bad++;
		}
		for (int i = 0; i < 2; i++)
			result_destroy(&x[i].r);
		call_clear(&c);
	}
	assert_int_equal(bad, 0);
}

static void test_end_race_with_answer(void **state)
{
	/* an end and an answer race: whichever wins, the end succeeds and the result obeys the
	 * state machine (answered -> completed, else canceled) */
	struct fx *f = *state;
	int bad = 0;
	for (int round = 0; round < 60; round++) {
		struct call c = {0}, s = {0};
		create_ok(f, f->a1, &c);
		to_ringing(f, c.id);
		pthread_barrier_t barrier;
		pthread_barrier_init(&barrier, NULL, 2);
		struct end_racer x[2] = {
			{.f = f, .id = c.id, .barrier = &barrier, .answer = false},
			{.f = f, .id = c.id, .barrier = &barrier, .answer = true},
		};
		result_init(&x[0].r);
		result_init(&x[1].r);
		pthread_t t[2];
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&t[i], NULL, end_race_one, &x[i]), 0);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&barrier);
		stored(f, c.id, &s);
		bool answered = x[1].event_rc == STORE_OK;
		if (x[0].r.calls != 1 || x[0].r.code != CP_OK) {
			print_error("round %d: end reported %d\n", round, x[0].r.code);
			bad++;
		} else if (answered ? s.status != CALL_COMPLETED || !s.answered_at
				    : s.status != CALL_CANCELED || s.answered_at) {
			print_error("round %d: answered=%d status=%s\n", round, answered,
				    call_status_name(s.status));
			bad++;
		} else if (x[0].r.call.status != s.status) {
			bad++;
		}
		result_destroy(&x[0].r);
		result_destroy(&x[1].r);
		call_clear(&c);
		call_clear(&s);
	}
	assert_int_equal(bad, 0);
}

static void test_recover(void **state)
{
	struct fx *f = *state;
	struct call q = {0}, r = {0}, p = {0}, s = {0};
	create_ok(f, f->a1, &q);
	create_ok(f, f->a1, &r);
	to_ringing(f, r.id);
	create_ok(f, f->a1, &p);
	to_ringing(f, p.id);
	to_in_progress(f, p.id);
	/* without an engine queued calls were never dialled: they stay queued */
	assert_int_equal(call_service_recover(f->svc, false), 2);
	stored(f, q.id, &s);
	assert_int_equal(s.status, CALL_QUEUED);
	stored(f, r.id, &s);
	assert_int_equal(s.status, CALL_CANCELED);
	assert_string_equal(s.end_reason, "node_restart");
	stored(f, p.id, &s);
	assert_int_equal(s.status, CALL_COMPLETED);
	assert_string_equal(s.end_reason, "node_restart");
	assert_in_range(s.ended_at, p.created_at, cp_now_ms());
	/* with an engine they may have been dialled: ended too */
	assert_int_equal(call_service_recover(f->svc, true), 1);
	stored(f, q.id, &s);
	assert_int_equal(s.status, CALL_CANCELED);
	assert_string_equal(s.end_reason, "node_restart");
	/* nothing left */
	assert_int_equal(call_service_recover(f->svc, true), 0);
	call_clear(&q);
	call_clear(&r);
	call_clear(&p);
	call_clear(&s);
}

/* ---- stream url ------------------------------------------------------------------------- */

#define AGENT_URL "wss://agent.example.com/stream?token=s3cret"
#define CALL_URL "ws://127.0.0.1:9000/call"

static void test_create_stream_url(void **state)
{
	struct fx *f = *state;
	struct cp_error err = {0};
	struct call c = {0}, s = {0};
	/* no URL anywhere: none */
	create_ok(f, f->a1, &c);
	assert_null(c.stream_url);
	stored(f, c.id, &s);
	assert_null(s.stream_url);
	/* the agent's, when the request has none */
	assert_int_equal(STORE(f->st, agent_set_stream_url, f->a1, AGENT_URL), STORE_OK);
	create_ok(f, f->a1, &c);
	assert_string_equal(c.stream_url, AGENT_URL);
	stored(f, c.id, &s);
	assert_string_equal(s.stream_url, AGENT_URL);
	/* the request's wins */
	struct call_request req = {.agent_id = f->a1, .to = TO, .stream_url = CALL_URL};
	assert_int_equal(call_create(f->svc, &f->sc1, &req, NULL, &c, &err), CP_OK);
	assert_string_equal(c.stream_url, CALL_URL);
	stored(f, c.id, &s);
	assert_string_equal(s.stream_url, CALL_URL);
	/* and on every read path: scoped get, list */
	assert_int_equal(call_get(f->svc, &f->sc1, c.id, &s, &err), CP_OK);
	assert_string_equal(s.stream_url, CALL_URL);
	struct call *calls = NULL;
	size_t n = 0;
	struct call_filter fl = {.limit = 1};
	assert_int_equal(call_list(f->svc, &f->sc1, &fl, &calls, &n, &err), CP_OK);
	assert_int_equal(n, 1);
	assert_string_equal(calls[0].stream_url, CALL_URL);
	call_list_free(calls, n);
	/* never in the call's JSON */
	char *text = call_to_json_text(&s, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "stream_url"));
	assert_null(strstr(text, "127.0.0.1:9000"));
	free(text);
	/* invalid: 400, and the message does not repeat the URL */
	size_t before = count_calls(f, &f->sc1);
	const char *bad[] = {"http://x", "ws://", "ws://h x", "wss://h:0/?token=leak"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		req.stream_url = bad[i];
		assert_int_equal(call_create(f->svc, &f->sc1, &req, NULL, &c, &err),
				 CP_ERR_INVALID);
		assert_non_null(strstr(err.message, "stream_url"));
		assert_null(strstr(err.message, "leak"));
	}
	assert_int_equal(count_calls(f, &f->sc1), before);
	/* cleared on the agent: new calls have none */
	assert_int_equal(STORE(f->st, agent_set_stream_url, f->a1, NULL), STORE_OK);
	create_ok(f, f->a1, &c);
	assert_null(c.stream_url);
	assert_int_equal(STORE(f->st, agent_set_stream_url, NO_SUCH_ID, AGENT_URL),
			 STORE_NOT_FOUND);
	call_clear(&c);
	call_clear(&s);
}

static void test_inbound_stream_url(void **state)
{
	struct fx *f = *state;
	assert_int_equal(STORE(f->st, agent_set_stream_url, f->a3, AGENT_URL), STORE_OK);
	struct inbound_result r = {0};
	struct inbound_call in = {.number = NUM_A3,
				  .from = "sip:caller@example.net",
				  .to = "sip:" NUM_A3 "@callplane.test",
				  .provider_call_id = "inbound-url@example.net"};
	call_service_inbound(f->svc, &in, on_inbound, &r);
	assert_int_equal(r.err, CP_OK);
	assert_string_equal(r.call.stream_url, AGENT_URL);
	struct call s = {0};
	stored(f, r.call.id, &s);
	assert_string_equal(s.stream_url, AGENT_URL);
	call_clear(&r.call);
	call_clear(&s);
}

/* ---- recordings ------------------------------------------------------------------------- */

static void create_recorded(struct fx *f, const char *agent, enum call_record_choice choice,
			    bool want)
{
	struct call_request req = {.agent_id = agent, .to = TO, .record = choice};
	struct cp_error err = {0};
	struct call c = {0}, s = {0};
	assert_int_equal(call_create(f->svc, &f->sc1, &req, NULL, &c, &err), CP_OK);
	assert_int_equal(c.record, want);
	stored(f, c.id, &s);
	assert_int_equal(s.record, want);
	call_clear(&c);
	call_clear(&s);
}

/* The request's choice wins over the agent's, both ways; without one the agent's holds. */
static void test_create_record_choice(void **state)
{
	struct fx *f = *state;
	create_recorded(f, f->a1, CALL_RECORD_AGENT, false);
	create_recorded(f, f->a1, CALL_RECORD_YES, true);
	create_recorded(f, f->a1, CALL_RECORD_NO, false);
	assert_int_equal(STORE(f->st, agent_set_record, f->a1, true), STORE_OK);
	create_recorded(f, f->a1, CALL_RECORD_AGENT, true);
	create_recorded(f, f->a1, CALL_RECORD_YES, true);
	create_recorded(f, f->a1, CALL_RECORD_NO, false);
}

static void test_inbound_record_follows_agent(void **state)
{
	struct fx *f = *state;
	struct inbound_result r = {0};
	struct inbound_call in = {.number = NUM_A3,
				  .from = "sip:caller@example.net",
				  .to = "sip:" NUM_A3 "@callplane.test",
				  .provider_call_id = "inbound-rec-1@example.net"};
	call_service_inbound(f->svc, &in, on_inbound, &r);
	assert_int_equal(r.err, CP_OK);
	assert_false(r.call.record);
	assert_int_equal(STORE(f->st, agent_set_record, f->a3, true), STORE_OK);
	in.provider_call_id = "inbound-rec-2@example.net";
	call_service_inbound(f->svc, &in, on_inbound, &r);
	assert_int_equal(r.err, CP_OK);
	assert_true(r.call.record);
	struct call s = {0};
	stored(f, r.call.id, &s);
	assert_true(s.record);
	call_clear(&r.call);
	call_clear(&s);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static bool file_exists(const char *dir, const char *name)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/* A recorded call, answered and ended as the engine would report it. */
static void recorded_and_ended(struct fx *f, enum call_record_choice choice, struct call *out)
{
	struct call_request req = {.agent_id = f->a1, .to = TO, .record = choice};
	struct cp_error err = {0};
	assert_int_equal(call_create(f->svc, &f->sc1, &req, NULL, out, &err), CP_OK);
	to_in_progress(f, out->id);
	struct call_update u = {.from_mask = CALL_BIT(CALL_IN_PROGRESS),
				.to = CALL_COMPLETED,
				.ended_at = cp_now_ms(),
				.end_reason = "remote_hangup"};
	assert_int_equal(call_service_event(f->svc, out->id, &u, out), STORE_OK);
}

/* The message of a call_recording_open() that failed with 404, with the call it saw. */
static const char *open_fails(struct fx *f, const struct scope *sc, const char *id,
			      struct cp_error *err, bool visible)
{
	struct call seen = {0};
	int fd = 12345;
	assert_int_equal(call_recording_open(f->svc, sc, id, &fd, &seen, err), CP_ERR_NOT_FOUND);
	assert_int_equal(fd, -1);
	assert_int_equal(seen.id[0] != '\0', visible);
	call_clear(&seen);
	return err->message;
}

static void test_recording_open_and_redaction(void **state)
{
	struct fx *f = *state;
	char rec[128];
	snprintf(rec, sizeof rec, "%s/rec", f->dir);
	assert_int_equal(mkdir(rec, 0700), 0);
	assert_int_equal(call_service_set_recordings(f->svc, rec), 0);
	struct cp_error err = {0};
	struct call c = {0}, other = {0}, plain = {0};

	/* while up: nothing (the file is served once finished) */
	struct call_request req = {.agent_id = f->a1, .to = TO, .record = CALL_RECORD_YES};
	assert_int_equal(call_create(f->svc, &f->sc1, &req, NULL, &c, &err), CP_OK);
	to_in_progress(f, c.id);
	assert_string_equal(open_fails(f, &f->sc1, c.id, &err, true),
			    "the call is still up: its recording is served once it ends");
	call_clear(&c);

	recorded_and_ended(f, CALL_RECORD_YES, &c);
	assert_true(call_has_recording(&c));
	assert_string_equal(open_fails(f, &f->sc1, c.id, &err, true),
			    "the call's recording file is missing");
	char name[64];
	snprintf(name, sizeof name, "%s.wav", c.id);
	write_file(rec, name, "RIFF-recording");
	int fd = -1;
	struct call seen = {0};
	assert_int_equal(call_recording_open(f->svc, &f->sc1, c.id, &fd, &seen, &err), CP_OK);
	assert_string_equal(seen.id, c.id);
	char buf[32] = {0};
	assert_int_equal(read(fd, buf, sizeof buf - 1), 14);
	assert_string_equal(buf, "RIFF-recording");
	close(fd);
	/* never in another tenant's scope */
	assert_string_equal(open_fails(f, &f->sc2, c.id, &err, false), "call not found");
	assert_string_equal(open_fails(f, &f->sc1, NO_SUCH_ID, &err, false), "call not found");

	/* not recorded: never served, even with a file of that name */
	recorded_and_ended(f, CALL_RECORD_NO, &plain);
	snprintf(name, sizeof name, "%s.wav", plain.id);
	write_file(rec, name, "x");
	assert_string_equal(open_fails(f, &f->sc1, plain.id, &err, true),
			    "the call was not recorded");

	/* redaction deletes the file, finished or not, and nothing serves it after */
	snprintf(name, sizeof name, "%s.wav.part", c.id);
	write_file(rec, name, "x");
	assert_int_equal(call_redact(f->svc, &f->sc1, c.id, NULL, &seen, &err), CP_OK);
	assert_false(call_has_recording(&seen));
	snprintf(name, sizeof name, "%s.wav", c.id);
	assert_false(file_exists(rec, name));
	snprintf(name, sizeof name, "%s.wav.part", c.id);
	assert_false(file_exists(rec, name));
	assert_string_equal(open_fails(f, &f->sc1, c.id, &err, true), "the call was redacted");
	assert_int_equal(call_redact(f->svc, &f->sc1, c.id, NULL, &seen, &err), CP_OK);

	/* a file that cannot be deleted: the redaction is done, the answer says retry */
	recorded_and_ended(f, CALL_RECORD_YES, &other);
	char blocker[256];
	snprintf(blocker, sizeof blocker, "%s/%s.wav", rec, other.id);
	assert_int_equal(mkdir(blocker, 0700), 0);
	write_file(blocker, "inside", "x");
	assert_int_equal(call_redact(f->svc, &f->sc1, other.id, NULL, &seen, &err),
			 CP_ERR_INTERNAL);
	assert_string_equal(err.message, "the call's recording could not be deleted; retry");
	struct call s = {0};
	stored(f, other.id, &s);
	assert_true(call_is_redacted(&s));
	char inside[300];
	snprintf(inside, sizeof inside, "%s/inside", blocker);
	assert_int_equal(unlink(inside), 0);
	assert_int_equal(rmdir(blocker), 0);
	assert_int_equal(call_redact(f->svc, &f->sc1, other.id, NULL, &seen, &err), CP_OK);

	/* a node without recordings serves none */
	assert_int_equal(call_service_set_recordings(f->svc, NULL), 0);
	recorded_and_ended(f, CALL_RECORD_YES, &s);
	assert_string_equal(open_fails(f, &f->sc1, s.id, &err, true),
			    "the call's recording file is missing");

	snprintf(name, sizeof name, "%s.wav", plain.id);
	snprintf(inside, sizeof inside, "%s/%s", rec, name);
	assert_int_equal(unlink(inside), 0);
	assert_int_equal(rmdir(rec), 0);
	call_clear(&c);
	call_clear(&other);
	call_clear(&plain);
	call_clear(&seen);
	call_clear(&s);
}

/* ---- dtmf out --------------------------------------------------------------------------- */

static void test_send_dtmf(void **state)
{
	struct fx *f = *state;
	struct cp_error err = {0};
	struct call c = {0}, out = {0};
	create_ok(f, f->a1, &c);
	/* digits first: lower case a-d, other characters, empty, too long */
	const char *bad[] = {"", "a", "12d", "1 2", "E", "123456789012345678901234567890123"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(call_send_dtmf(f->svc, &f->sc1, c.id, bad[i], NULL, &out, &err),
				 CP_ERR_INVALID);
	assert_int_equal(call_send_dtmf(f->svc, &f->sc1, c.id, NULL, NULL, &out, &err),
			 CP_ERR_INVALID);
	/* not visible */
	assert_int_equal(call_send_dtmf(f->svc, &f->sc2, c.id, "1", NULL, &out, &err),
			 CP_ERR_NOT_FOUND);
	assert_int_equal(call_send_dtmf(f->svc, &f->sc1, NO_SUCH_ID, "1", NULL, &out, &err),
			 CP_ERR_NOT_FOUND);
	/* not answered yet */
	assert_int_equal(call_send_dtmf(f->svc, &f->sc1, c.id, "1", NULL, &out, &err),
			 CP_ERR_NOT_IN_PROGRESS);
	to_ringing(f, c.id);
	assert_int_equal(call_send_dtmf(f->svc, &f->sc1, c.id, "1", NULL, &out, &err),
			 CP_ERR_NOT_IN_PROGRESS);
	to_in_progress(f, c.id);
	/* no engine; an engine without DTMF */
	assert_int_equal(call_send_dtmf(f->svc, &f->sc1, c.id, "1", NULL, &out, &err),
			 CP_ERR_MEDIA_UNAVAILABLE);
	call_service_set_telephony(f->svc, &f->tel);
	assert_int_equal(call_send_dtmf(f->svc, &f->sc1, c.id, "1", NULL, &out, &err),
			 CP_ERR_MEDIA_UNAVAILABLE);
	/* an engine that takes them; then one that cannot */
	struct telephony tel = {.ops = &fake_dtmf_ops, .engine = &f->fake};
	call_service_set_telephony(f->svc, &tel);
	assert_int_equal(
		call_send_dtmf(f->svc, &f->sc1, c.id, "0123456789*#ABCD", "req-dtmf", &out, &err),
		CP_OK);
	assert_int_equal(f->fake.dtmf_calls, 1);
	assert_string_equal(f->fake.dtmf_id, c.id);
	assert_string_equal(f->fake.dtmf_digits, "0123456789*#ABCD");
	assert_string_equal(out.id, c.id);
	f->fake.dtmf_rc = -1;
	assert_int_equal(call_send_dtmf(f->svc, &f->sc1, c.id, "5", NULL, &out, &err),
			 CP_ERR_MEDIA_UNAVAILABLE);
	assert_int_equal(f->fake.dtmf_calls, 2);
	/* ended: 409 again, and the engine is not asked */
	f->fake.dtmf_rc = 0;
	struct call_update bye = {.from_mask = CALL_BIT(CALL_IN_PROGRESS),
				  .to = CALL_COMPLETED,
				  .ended_at = cp_now_ms(),
				  .end_reason = "remote_hangup"};
	assert_int_equal(call_service_event(f->svc, c.id, &bye, NULL), STORE_OK);
	assert_int_equal(call_send_dtmf(f->svc, &f->sc1, c.id, "5", NULL, &out, &err),
			 CP_ERR_NOT_IN_PROGRESS);
	assert_int_equal(err.code, CP_ERR_NOT_IN_PROGRESS);
	assert_int_equal(f->fake.dtmf_calls, 2);
	assert_string_equal(cp_err_code(CP_ERR_NOT_IN_PROGRESS), "call_not_in_progress");
	assert_int_equal(cp_err_status(CP_ERR_NOT_IN_PROGRESS), 409);
	assert_string_equal(cp_err_code(CP_ERR_MEDIA_UNAVAILABLE), "media_unavailable");
	assert_int_equal(cp_err_status(CP_ERR_MEDIA_UNAVAILABLE), 502);
	call_clear(&c);
	call_clear(&out);
}

/* ---- dtmf in ---------------------------------------------------------------------------- */

static int64_t last_seq(struct fx *f)
{
	int64_t seq = -1;
	assert_int_equal(STORE(f->st, events_last_seq, &seq), STORE_OK);
	return seq;
}

/* The events after seq, in the scope of tenant one. */
static size_t events_after(struct fx *f, int64_t seq, struct stored_event **ev)
{
	size_t n = 0;
	assert_int_equal(STORE(f->st, events_since, &f->sc1, seq, 20, ev, &n), STORE_OK);
	return n;
}

static void add_webhook(struct fx *f, const char *format)
{
	struct webhook w = {0};
	assert_int_equal(cp_uuid4(w.id), 0);
	snprintf(w.tenant_id, sizeof w.tenant_id, "%s", f->t1);
	snprintf(w.url, sizeof w.url, "http://127.0.0.1:9/%s", format);
	snprintf(w.secret, sizeof w.secret, "whsec_test");
	snprintf(w.format, sizeof w.format, "%s", format);
	w.created_at = cp_now_ms();
	assert_int_equal(STORE(f->st, webhook_create, &w, 20), STORE_OK);
}

/* Pending deliveries of one event type, over every webhook of tenant one. */
static size_t deliveries_of(struct fx *f, const char *type)
{
	struct delivery_row *list = NULL;
	size_t count = 0, n = 0;
	assert_int_equal(STORE(f->st, delivery_list, f->t1, "pending", 200, &list, &count),
			 STORE_OK);
	for (size_t i = 0; i < count; i++)
		n += !strcmp(list[i].event_type, type);
	delivery_rows_free(list, count);
	return n;
}

static void test_post_dtmf_one_event(void **state)
{
	struct fx *f = *state;
	add_webhook(f, "canonical");
	add_webhook(f, "talkover");
	add_webhook(f, "pilotstatus");
	struct call c = {0}, before = {0}, after = {0};
	create_ok(f, f->a1, &c);
	to_in_progress(f, c.id);
	stored(f, c.id, &before);
	int64_t seq = last_seq(f);
	call_service_post_dtmf(f->svc, c.id, '5');
	struct stored_event *ev = NULL;
	size_t n = events_after(f, seq, &ev);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].type, "call.dtmf");
	json_t *j = json_loads(ev[0].payload, 0, NULL);
	assert_non_null(j);
	/* the envelope of every event plus the digit; data is the call as it stands */
	assert_int_equal(json_object_size(j), 5);
	assert_true(cp_is_uuid(json_string_value(json_object_get(j, "id"))));
	assert_string_equal(json_string_value(json_object_get(j, "type")), "call.dtmf");
	assert_non_null(json_string_value(json_object_get(j, "created_at")));
	assert_string_equal(json_string_value(json_object_get(j, "digit")), "5");
	json_t *want = call_to_json(&before);
	assert_true(json_equal(json_object_get(j, "data"), want));
	json_decref(want);
	json_decref(j);
	event_list_free(ev, n);
	/* the call row is untouched */
	stored(f, c.id, &after);
	assert_int_equal(after.status, CALL_IN_PROGRESS);
	char *t1 = call_to_json_text(&before, NULL), *t2 = call_to_json_text(&after, NULL);
	assert_string_equal(t1, t2);
	free(t1);
	free(t2);
	/* one delivery, to the canonical webhook only */
	assert_int_equal(deliveries_of(f, "call.dtmf"), 1);
	assert_int_equal(deliveries_of(f, "call.answered"), 3);
	call_clear(&c);
	call_clear(&before);
	call_clear(&after);
}

static void test_delivery_backlog(void **state)
{
	/* the store's count of the webhook backlog (the metrics' collector reads it) */
	struct fx *f = *state;
	int64_t pending = -1, due = -1;
	assert_int_equal(STORE(f->st, delivery_backlog, cp_now_ms(), &pending, &due), STORE_OK);
	assert_int_equal(pending, 0);
	assert_int_equal(due, 0);
	add_webhook(f, "canonical");
	add_webhook(f, "talkover");
	struct call c = {0};
	create_ok(f, f->a1, &c);
	to_in_progress(f, c.id); /* call.answered: one delivery per webhook */
	assert_int_equal(STORE(f->st, delivery_backlog, cp_now_ms(), &pending, &due), STORE_OK);
	assert_int_equal(pending, 2);
	assert_int_equal(due, 2);
	/* due counts only those whose next attempt has come */
	assert_int_equal(STORE(f->st, delivery_backlog, 1, &pending, &due), STORE_OK);
	assert_int_equal(pending, 2);
	assert_int_equal(due, 0);
	call_clear(&c);
}

static void test_post_dtmf_ignored(void **state)
{
	struct fx *f = *state;
	struct call c = {0};
	struct stored_event *ev = NULL;
	create_ok(f, f->a1, &c);
	to_in_progress(f, c.id);
	int64_t seq = last_seq(f);
	/* an unknown call; something that is not a digit */
	call_service_post_dtmf(f->svc, NO_SUCH_ID, '1');
	call_service_post_dtmf(f->svc, c.id, 'a');
	call_service_post_dtmf(f->svc, c.id, '\0');
	assert_int_equal(events_after(f, seq, &ev), 0);
	event_list_free(ev, 0);
	/* an ended call */
	struct call_update bye = {.from_mask = CALL_BIT(CALL_IN_PROGRESS),
				  .to = CALL_COMPLETED,
				  .ended_at = cp_now_ms(),
				  .end_reason = "remote_hangup"};
	assert_int_equal(call_service_event(f->svc, c.id, &bye, NULL), STORE_OK);
	seq = last_seq(f);
	call_service_post_dtmf(f->svc, c.id, '1');
	assert_int_equal(events_after(f, seq, &ev), 0);
	event_list_free(ev, 0);
	call_clear(&c);
}

static void test_post_dtmf_in_order_with_worker(void **state)
{
	/* digits share the FIFO with the call's transitions: events come out as posted */
	struct fx *f = *state;
	struct call c = {0};
	create_ok(f, f->a1, &c);
	int64_t seq = last_seq(f);
	assert_int_equal(call_service_start(f->svc), 0);
	struct call_update answer = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
				     .to = CALL_IN_PROGRESS,
				     .answered_at = 1000,
				     .sip_status = 200};
	struct call_update bye = {.from_mask = CALL_BIT(CALL_IN_PROGRESS),
				  .to = CALL_COMPLETED,
				  .ended_at = 4000,
				  .end_reason = "remote_hangup"};
	call_service_post_event(f->svc, c.id, &answer);
	call_service_post_dtmf(f->svc, c.id, '1');
	call_service_post_dtmf(f->svc, c.id, '#');
	call_service_post_event(f->svc, c.id, &bye);
	call_service_post_dtmf(f->svc, c.id, '2'); /* after the end: dropped */
	call_service_stop(f->svc);
	struct stored_event *ev = NULL;
	size_t n = events_after(f, seq, &ev);
	assert_int_equal(n, 4);
	const char *types[] = {"call.answered", "call.dtmf", "call.dtmf", "call.ended"};
	const char *digits[] = {NULL, "1", "#", NULL};
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(ev[i].type, types[i]);
		json_t *j = json_loads(ev[i].payload, 0, NULL);
		const char *d = json_string_value(json_object_get(j, "digit"));
		if (digits[i])
			assert_string_equal(d, digits[i]);
		else
			assert_null(json_object_get(j, "digit"));
		json_decref(j);
	}
	event_list_free(ev, n);
	call_clear(&c);
}

/* ---- dialogs kept for a restart --------------------------------------------------------- */

/* The dialogs the store keeps, as (call_id, state) pairs in order, into a heap array. */
static size_t kept_dialogs(struct fx *f, struct dialog_row **rows)
{
	size_t n = 0;
	assert_int_equal(STORE(f->st, dialog_list, rows, &n), STORE_OK);
	return n;
}

static int durable_calls;

static void count_durable(void *arg)
{
	assert_ptr_equal(arg, &durable_calls);
	durable_calls++;
}

static void test_post_dialog_with_answer(void **state)
{
	/* the answered transition and the dialog that ends it are one job: one group commit;
	 * durable() runs once both are written, after the events posted before them */
	struct fx *f = *state;
	struct call c = {0}, s = {0};
	struct dialog_row *rows = NULL;
	create_ok(f, f->a1, &c);
	assert_int_equal(call_service_start(f->svc), 0);
	durable_calls = 0;
	struct call_update ring = {.from_mask = CALL_BIT(CALL_QUEUED), .to = CALL_RINGING};
	struct call_update answer = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
				     .to = CALL_IN_PROGRESS,
				     .answered_at = 1000,
				     .sip_status = 200};
	call_service_post_dialog(f->svc, c.id, &ring, "{\"request\":\"CANCEL\"}", NULL, NULL);
	call_service_post_dialog(f->svc, c.id, &answer, "{\"request\":\"BYE\"}", count_durable,
				 &durable_calls);
	call_service_stop(f->svc);
	assert_int_equal(durable_calls, 1);
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_IN_PROGRESS);
	assert_int_equal(s.answered_at, 1000);
	/* the second state replaced the first */
	assert_int_equal(kept_dialogs(f, &rows), 1);
	assert_string_equal(rows[0].call_id, c.id);
	assert_string_equal(rows[0].state, "{\"request\":\"BYE\"}");
	dialog_rows_free(rows, 1);
	/* NULL forgets it, without a transition */
	call_service_post_dialog(f->svc, c.id, NULL, NULL, count_durable, &durable_calls);
	assert_int_equal(durable_calls, 2);
	assert_int_equal(kept_dialogs(f, &rows), 0);
	dialog_rows_free(rows, 0);
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_IN_PROGRESS);
	call_clear(&c);
	call_clear(&s);
}

static void test_left_dialogs(void **state)
{
	/* what a dead run kept comes back at start-up; once the engine has tried each, what the
	 * far end answered is a call.restart_hangup event (canonical webhooks only) and the
	 * dialog is forgotten, whether or not an answer came */
	struct fx *f = *state;
	add_webhook(f, "canonical");
	add_webhook(f, "talkover");
	struct call a = {0}, b = {0}, u = {0}, s = {0};
	create_ok(f, f->a1, &a);
	create_ok(f, f->a1, &b);
	create_ok(f, f->a1, &u);
	to_in_progress(f, a.id);
	to_ringing(f, b.id);
	to_in_progress(f, u.id);
	call_service_post_dialog(f->svc, a.id, NULL, "state-a", NULL, NULL);
	call_service_post_dialog(f->svc, b.id, NULL, "state-b", NULL, NULL);
	call_service_post_dialog(f->svc, u.id, NULL, "state-u", NULL, NULL);
	struct left_dialog *left = NULL;
	size_t n = 0;
	assert_int_equal(call_service_left_dialogs(f->svc, &left, &n), 0);
	assert_int_equal(n, 3);
	/* (kept within one millisecond: their order is the call ids') */
	struct left_dialog *la = NULL, *lb = NULL, *lu = NULL;
	for (size_t i = 0; i < n; i++) {
		struct left_dialog *d = &left[i];
		if (!strcmp(d->call_id, a.id))
			la = d;
		else if (!strcmp(d->call_id, b.id))
			lb = d;
		else if (!strcmp(d->call_id, u.id))
			lu = d;
		assert_null(d->request);
		assert_int_equal(d->status, 0);
	}
	assert_non_null(la);
	assert_non_null(lb);
	assert_non_null(lu);
	assert_string_equal(la->state, "state-a");
	assert_string_equal(lb->state, "state-b");
	assert_string_equal(lu->state, "state-u");
	assert_int_equal(call_service_recover(f->svc, true), 3);
	int64_t seq = last_seq(f);
	/* the engine's answers: a BYE answered 200, a CANCEL unanswered, a state it could not use */
	la->request = "BYE";
	la->status = 200;
	lb->request = "CANCEL";
	assert_int_equal(call_service_left_dialogs_done(f->svc, left, n), 1);
	struct stored_event *ev = NULL;
	size_t m = events_after(f, seq, &ev);
	assert_int_equal(m, 2);
	for (size_t i = 0; i < m; i++) {
		assert_string_equal(ev[i].type, "call.restart_hangup");
		json_t *j = json_loads(ev[i].payload, 0, NULL);
		assert_int_equal(json_object_size(j), 6);
		json_t *data = json_object_get(j, "data");
		const char *id = json_string_value(json_object_get(data, "id"));
		bool is_a = !strcmp(id, a.id);
		assert_true(is_a || !strcmp(id, b.id));
		assert_string_equal(json_string_value(json_object_get(j, "request")),
				    is_a ? "BYE" : "CANCEL");
		json_t *st = json_object_get(j, "sip_status");
		if (is_a)
			assert_int_equal(json_integer_value(st), 200);
		else
			assert_true(json_is_null(st));
		assert_string_equal(json_string_value(json_object_get(data, "end_reason")),
				    "node_restart");
		json_decref(j);
	}
	event_list_free(ev, m);
	assert_int_equal(deliveries_of(f, "call.restart_hangup"), 2);
	/* every dialog is forgotten, the calls stay as recovery left them */
	struct dialog_row *rows = NULL;
	assert_int_equal(kept_dialogs(f, &rows), 0);
	dialog_rows_free(rows, 0);
	stored(f, a.id, &s);
	assert_int_equal(s.status, CALL_COMPLETED);
	stored(f, b.id, &s);
	assert_int_equal(s.status, CALL_CANCELED);
	/* nothing left: an empty list, no array */
	assert_int_equal(call_service_left_dialogs(f->svc, &left, &n), 0);
	assert_int_equal(n, 0);
	assert_null(left);
	call_clear(&a);
	call_clear(&b);
	call_clear(&u);
	call_clear(&s);
}

/* ---- goodbye ---------------------------------------------------------------------------- */

#define BYE_TEXT "Thank you for calling. Goodbye."

/* An answered call of agent `agent`, with the fake engine attached. */
static void answered_with_engine(struct fx *f, const char *agent, struct call *c)
{
	call_service_set_telephony(f->svc, &f->tel);
	create_ok(f, agent, c);
	to_ringing(f, c->id);
	to_in_progress(f, c->id);
}

static void end_with_sync(struct fx *f, const char *id, const struct call_end_options *opt,
			  struct end_result *r)
{
	call_end_with(f->svc, &f->sc1, id, opt, "req-bye", on_end, r);
	assert_int_equal(wait_result(r), 1);
}

static void test_goodbye_validation(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, s = {0};
	answered_with_engine(f, f->a1, &c);
	char long_text[CALL_GOODBYE_TEXT_MAX + 2];
	memset(long_text, 'a', CALL_GOODBYE_TEXT_MAX + 1);
	long_text[CALL_GOODBYE_TEXT_MAX + 1] = '\0';
	static const char MSG_TEXT[] = "goodbye.text must be 1..1000 characters";
	static const char MSG_WAIT[] = "max_wait_ms must be an integer in 0..60000";
	struct {
		struct call_end_options opt;
		const char *message;
	} bad[] = {
		{{.goodbye_text = ""}, MSG_TEXT},
		{{.goodbye_text = long_text}, MSG_TEXT},
		{{.goodbye_text = "caf\xc3"}, MSG_TEXT},
		{{.after_playout = true, .has_max_wait = true, .max_wait_ms = -1}, MSG_WAIT},
		{{.after_playout = true, .has_max_wait = true, .max_wait_ms = 60001}, MSG_WAIT},
		{{.has_max_wait = true, .max_wait_ms = 500},
		 "max_wait_ms needs after_playout or goodbye"},
		{{.reason = "bad reason", .after_playout = true},
		 "reason must be 1..64 characters of [A-Za-z0-9_.:-]"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct end_result r;
		result_init(&r);
		end_with_sync(f, c.id, &bad[i].opt, &r);
		assert_int_equal(r.code, CP_ERR_INVALID);
		assert_string_equal(r.message, bad[i].message);
		assert_false(r.has_call);
		result_destroy(&r);
	}
	assert_int_equal(f->fake.hangup_calls, 0);
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_IN_PROGRESS);
	/* the bounds themselves are accepted: 1000 characters, 0 and 60000 ms */
	long_text[CALL_GOODBYE_TEXT_MAX] = '\0';
	struct call_end_options edge = {
		.goodbye_text = long_text, .has_max_wait = true, .max_wait_ms = 60000};
	struct end_result r;
	result_init(&r);
	end_with_sync(f, c.id, &edge, &r);
	assert_int_equal(r.code, CP_OK);
	assert_int_equal(f->fake.goodbye_max_wait, 60000);
	assert_true(f->fake.goodbye_len > 0);
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

static void test_goodbye_after_playout_and_text(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, d = {0};
	answered_with_engine(f, f->a1, &c);
	f->fake.answer_goodbye_ms = 1234;
	/* after_playout alone: the BYE waits for the queued audio, nothing of our own */
	struct call_end_options opt = {.after_playout = true};
	struct end_result r;
	result_init(&r);
	end_with_sync(f, c.id, &opt, &r);
	assert_int_equal(r.code, CP_OK);
	assert_true(f->fake.goodbye_given);
	assert_int_equal(f->fake.goodbye_len, 0);
	assert_int_equal(f->fake.goodbye_max_wait, 10000); /* the default deadline */
	assert_int_equal(f->fake.hangup_wait_ms, -1);      /* an API end: the pacer's wait */
	assert_int_equal(r.goodbye_ms, 1234);
	assert_int_equal(r.call.status, CALL_COMPLETED);
	assert_string_equal(r.call.end_reason, "ended_by_api");
	result_destroy(&r);

	/* a text: rendered here, 1 to 4 s of speech handed to the engine, its own deadline */
	answered_with_engine(f, f->a1, &d);
	struct call_end_options spoken = {.reason = "done",
					  .goodbye_text = BYE_TEXT,
					  .has_max_wait = true,
					  .max_wait_ms = 2500};
	result_init(&r);
	end_with_sync(f, d.id, &spoken, &r);
	assert_int_equal(r.code, CP_OK);
	assert_true(f->fake.goodbye_given);
	assert_in_range(f->fake.goodbye_len, 8000, 32000);
	assert_int_equal(f->fake.goodbye_max_wait, 2500);
	assert_string_equal(f->fake.hangup_reason, "done");
	assert_int_equal(r.goodbye_ms, 1234);
	assert_string_equal(r.call.end_reason, "done");
	result_destroy(&r);
	call_clear(&c);
	call_clear(&d);
}

static void test_goodbye_on_unanswered_call_ends_at_once(void **state)
{
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call c = {0};
	create_ok(f, f->a1, &c);
	to_ringing(f, c.id);
	f->fake.hangup_kind = HANGUP_CANCEL;
	f->fake.answer_goodbye_ms = 999;
	struct call_end_options opt = {.goodbye_text = BYE_TEXT, .after_playout = true};
	struct end_result r;
	result_init(&r);
	end_with_sync(f, c.id, &opt, &r);
	assert_int_equal(r.code, CP_OK);
	assert_false(f->fake.goodbye_given); /* nothing to play on: CANCEL now */
	assert_int_equal(r.goodbye_ms, 0);
	assert_int_equal(r.call.status, CALL_CANCELED);
	result_destroy(&r);
	call_clear(&c);
}

static void test_goodbye_second_end_joins(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, s = {0};
	answered_with_engine(f, f->a1, &c);
	int64_t seq = last_seq(f);
	f->fake.defer = true;
	struct call_end_options first = {.reason = "bye_first", .after_playout = true};
	struct call_end_options other = {.reason = "bye_other", .goodbye_text = "Something else."};
	struct end_result r1, r2, r3;
	result_init(&r1);
	result_init(&r2);
	result_init(&r3);
	call_end_with(f->svc, &f->sc1, c.id, &first, "req-1", on_end, &r1);
	assert_int_equal(f->fake.hangup_calls, 1);
	/* a plain end and another goodbye while the first is under way: both join it */
	call_end_with(f->svc, &f->sc1, c.id, &(struct call_end_options){.reason = "plain"}, "req-2",
		      on_end, &r2);
	call_end_with(f->svc, &f->sc1, c.id, &other, "req-3", on_end, &r3);
	assert_int_equal(f->fake.hangup_calls, 1); /* one hang-up, so one BYE */
	assert_int_equal(r1.calls + r2.calls + r3.calls, 0);
	f->fake.pending_done(f->fake.pending_arg, CP_OK, HANGUP_BYE, 777);
	struct end_result *rs[] = {&r1, &r2, &r3};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rs[i]->calls, 1);
		assert_int_equal(rs[i]->code, CP_OK);
		assert_int_equal(rs[i]->goodbye_ms, 777);
		assert_int_equal(rs[i]->call.status, CALL_COMPLETED);
		assert_string_equal(rs[i]->call.end_reason, "bye_first");
		assert_int_equal(rs[i]->call.ended_at, r1.call.ended_at);
	}
	/* one transition: one call.ended event */
	struct stored_event *ev = NULL;
	size_t n = events_after(f, seq, &ev);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].type, "call.ended");
	event_list_free(ev, n);
	stored(f, c.id, &s);
	assert_string_equal(s.end_reason, "bye_first");
	/* the goodbye is over: a later end is an end of an ended call */
	f->fake.defer = false;
	struct end_result r4;
	result_init(&r4);
	end_sync(f, &f->sc1, c.id, NULL, &r4);
	assert_int_equal(r4.code, CP_ERR_NOT_ACTIVE);
	assert_int_equal(f->fake.hangup_calls, 1);
	result_destroy(&r1);
	result_destroy(&r2);
	result_destroy(&r3);
	result_destroy(&r4);
	call_clear(&c);
	call_clear(&s);
}

static void test_goodbye_cut_by_end_all(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, s = {0};
	answered_with_engine(f, f->a1, &c);
	f->fake.defer = true;
	struct call_end_options opt = {.goodbye_text = BYE_TEXT};
	struct end_result r;
	result_init(&r);
	call_end_with(f->svc, &f->sc1, c.id, &opt, "req-bye", on_end, &r);
	hangup_done_fn goodbye_done = f->fake.pending_done;
	void *goodbye_arg = f->fake.pending_arg;
	/* the emergency stop does not join: its own immediate hang-up, no wait bound */
	f->fake.defer = false;
	struct end_all_result ea = {0};
	call_end_all(f->svc, &f->sc1, NULL, "emergency", NULL, on_end_all, &ea);
	assert_int_equal(ea.calls, 1);
	assert_int_equal(ea.ended, 1);
	assert_int_equal(f->fake.hangup_calls, 2);
	assert_false(f->fake.goodbye_given);
	assert_int_equal(f->fake.hangup_wait_ms, 0);
	/* the engine answers the cut goodbye not active: its end reports what the stop recorded */
	assert_int_equal(r.calls, 0);
	goodbye_done(goodbye_arg, CP_ERR_NOT_ACTIVE, HANGUP_NONE, 0);
	assert_int_equal(wait_result(&r), 1);
	assert_int_equal(r.code, CP_ERR_NOT_ACTIVE);
	assert_int_equal(r.goodbye_ms, 0);
	assert_true(r.has_call);
	assert_string_equal(r.call.end_reason, "emergency");
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_COMPLETED);
	assert_string_equal(s.end_reason, "emergency");
	result_destroy(&r);
	call_clear(&c);
	call_clear(&s);
}

static void test_goodbye_of_the_agent(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, d = {0};
	/* a dialect's end: a goodbye only when the agent has a text */
	struct call_end_options opt = {.reason = "api_ended", .agent_goodbye = true};
	answered_with_engine(f, f->a1, &c);
	struct end_result r;
	result_init(&r);
	end_with_sync(f, c.id, &opt, &r);
	assert_int_equal(r.code, CP_OK);
	assert_false(f->fake.goodbye_given);
	result_destroy(&r);

	assert_int_equal(STORE(f->st, agent_set_goodbye, f->a1, BYE_TEXT, NULL), STORE_OK);
	answered_with_engine(f, f->a1, &d);
	f->fake.answer_goodbye_ms = 2000;
	result_init(&r);
	end_with_sync(f, d.id, &opt, &r);
	assert_int_equal(r.code, CP_OK);
	assert_true(f->fake.goodbye_given);
	assert_in_range(f->fake.goodbye_len, 8000, 32000);
	assert_int_equal(f->fake.goodbye_max_wait, 10000);
	assert_int_equal(r.goodbye_ms, 2000);
	assert_string_equal(r.call.end_reason, "api_ended");
	result_destroy(&r);
	call_clear(&c);
	call_clear(&d);
}

static void test_goodbye_at_max_duration(void **state)
{
	struct fx *f = *state;
	struct call c = {0}, none = {0}, s = {0};
	assert_int_equal(STORE(f->st, agent_set_goodbye, f->a3, NULL, "Time is up. Goodbye."),
			 STORE_OK);
	assert_int_equal(STORE(f->st, agent_set_goodbye, f->a1, NULL, "Never said."), STORE_OK);
	/* the call carries the text to the engine when it has a max duration */
	answered_with_engine(f, f->a3, &c);
	assert_non_null(c.max_duration_goodbye);
	assert_string_equal(c.max_duration_goodbye, "Time is up. Goodbye.");
	create_ok(f, f->a1, &none);
	assert_null(none.max_duration_goodbye);
	/* the engine's timer fired: the service says it, as a goodbye end without a wait bound */
	f->fake.answer_goodbye_ms = 1500;
	call_service_post_goodbye(f->svc, c.id, "max_duration", c.max_duration_goodbye);
	assert_int_equal(f->fake.hangup_calls, 1);
	assert_true(f->fake.goodbye_given);
	assert_in_range(f->fake.goodbye_len, 4000, 32000);
	assert_int_equal(f->fake.goodbye_max_wait, 10000);
	assert_int_equal(f->fake.hangup_wait_ms, 0);
	assert_string_equal(f->fake.hangup_reason, "max_duration");
	stored(f, c.id, &s);
	assert_int_equal(s.status, CALL_COMPLETED);
	assert_string_equal(s.end_reason, "max_duration");
	/* a call that ended meanwhile is left alone */
	call_service_post_goodbye(f->svc, c.id, "max_duration", c.max_duration_goodbye);
	assert_int_equal(f->fake.hangup_calls, 1);
	call_clear(&c);
	call_clear(&none);
	call_clear(&s);
}

/* ---- metrics ---------------------------------------------------------------------------- */

/* The value of one series of the metrics ("name{labels}" as rendered); 0 when absent (a sparse
 * family shows only what is not zero). */
static double metric(const char *series)
{
	size_t len = 0, n = strlen(series);
	char *text = metrics_render(&len);
	assert_non_null(text);
	double v = 0;
	for (const char *line = text; line && *line;) {
		if (!strncmp(line, series, n) && line[n] == ' ')
			v = strtod(line + n + 1, NULL);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	free(text);
	return v;
}

#define ENDED(status, reason, dialect)                                       \
	"callplane_calls_ended_total{status=\"" status "\",reason=\"" reason \
	"\",dialect=\"" dialect "\"}"

static void test_metrics_of_calls(void **state)
{
	/* through the worker's group commits: each call created or ended is counted once, once
	 * durable, with the dialect of the API request that ended it (none for the engine's
	 * events); the active calls are read from the store */
	struct fx *f = *state;
	const char *out = "callplane_calls_created_total{direction=\"outbound\"}";
	const char *in = "callplane_calls_created_total{direction=\"inbound\"}";
	const char *by_talkover = ENDED("completed", "ended_by_api", "talkover");
	const char *remote = ENDED("completed", "remote_hangup", "none");
	const char *custom = ENDED("completed", "other", "canonical");
	const char *wire = "callplane_end_to_wire_seconds_count";
	double out0 = metric(out), in0 = metric(in), talkover0 = metric(by_talkover);
	double remote0 = metric(remote), custom0 = metric(custom), wire0 = metric(wire);
	call_service_set_telephony(f->svc, &f->tel);
	assert_int_equal(call_service_start(f->svc), 0);
	struct call c[3] = {0};
	for (int i = 0; i < 3; i++) {
		create_ok(f, f->a1, &c[i]);
		to_in_progress(f, c[i].id);
	}
	struct inbound_result r = {0};
	struct inbound_call inb = {.number = NUM_A3,
				   .from = "sip:caller@example.net",
				   .to = "sip:" NUM_A3 "@callplane.test",
				   .provider_call_id = "inbound-metrics@example.net"};
	call_service_inbound(f->svc, &inb, on_inbound, &r);
	assert_float_equal(metric(out), out0 + 3, 0);
	/* an end through a vendor dialect, twice: the second finds it ended */
	struct call_end_options opt = {.dialect = METRICS_TALKOVER};
	for (int i = 0; i < 2; i++) {
		struct end_result e;
		result_init(&e);
		call_end_with(f->svc, &f->sc1, c[0].id, &opt, NULL, on_end, &e);
		assert_int_equal(wait_result(&e), 1);
		assert_int_equal(e.code, i ? CP_ERR_NOT_ACTIVE : CP_OK);
		result_destroy(&e);
	}
	/* the far end hangs up the second; the third ends with a reason of the client's */
	struct call_update bye = {.from_mask = CALL_BIT(CALL_IN_PROGRESS),
				  .to = CALL_COMPLETED,
				  .ended_at = cp_now_ms(),
				  .end_reason = "remote_hangup"};
	call_service_post_event(f->svc, c[1].id, &bye);
	struct end_result e;
	result_init(&e);
	call_end_with(f->svc, &f->sc1, c[2].id,
		      &(struct call_end_options){.reason = "customer_done"}, NULL, on_end, &e);
	assert_int_equal(wait_result(&e), 1);
	result_destroy(&e);
	call_service_stop(f->svc); /* drains the worker */
	assert_int_equal(r.err, CP_OK);
	assert_float_equal(metric(in), in0 + 1, 0);
	assert_float_equal(metric(by_talkover), talkover0 + 1, 0);
	assert_float_equal(metric(remote), remote0 + 1, 0);
	assert_float_equal(metric(custom), custom0 + 1, 0);
	assert_float_equal(metric(wire), wire0 + 2, 0); /* the two BYEs of API ends */
	/* this test's store: the inbound call is queued, nothing else is active */
	assert_float_equal(metric("callplane_calls_active{status=\"queued\"}"), 1, 0);
	assert_float_equal(metric("callplane_calls_active{status=\"in_progress\"}"), 0, 0);
	call_clear(&r.call);
	for (int i = 0; i < 3; i++)
		call_clear(&c[i]);
}

/* A draining service refuses new calls (first, whatever the request) and nothing else: the
 * calls it has are still read and ended. */
static void test_drain_refuses_new_calls_only(void **state)
{
	struct fx *f = *state;
	call_service_set_telephony(f->svc, &f->tel);
	struct call live = {0}, c = {0};
	create_ok(f, f->a1, &live);
	assert_true(call_service_accepting(f->svc));
	call_service_drain(f->svc);
	assert_false(call_service_accepting(f->svc));
	struct cp_error err = {0};
	struct call_request req = {.agent_id = f->a1, .to = TO};
	assert_int_equal(call_create(f->svc, &f->sc1, &req, "r", &c, &err), CP_ERR_UNAVAILABLE);
	assert_string_equal(err.message, "this server is draining: it takes no new calls");
	struct call_request bad = {.agent_id = "", .to = TO};
	assert_int_equal(call_create(f->svc, &f->sc1, &bad, "r", &c, &err), CP_ERR_UNAVAILABLE);
	assert_int_equal(f->fake.dial_calls, 1);
	assert_int_equal(count_calls(f, &f->sc1), 1);
	struct call got = {0};
	assert_int_equal(call_get(f->svc, &f->sc1, live.id, &got, &err), CP_OK);
	call_clear(&got);
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, live.id, NULL, &r);
	assert_int_equal(r.code, CP_OK);
	result_destroy(&r);
	call_clear(&live);
}

/* Live calls are the active ones in the store when an engine runs, none without one. */
static void test_live_calls(void **state)
{
	struct fx *f = *state;
	struct call q = {0}, a = {0}, b = {0};
	create_ok(f, f->a1, &q); /* no engine: stays queued, is not live */
	size_t n = 99;
	assert_int_equal(call_service_live_calls(f->svc, &n), 0);
	assert_int_equal(n, 0);
	call_service_set_telephony(f->svc, &f->tel);
	create_ok(f, f->a1, &a);
	create_ok(f, f->a3, &b);
	to_in_progress(f, a.id);
	assert_int_equal(call_service_live_calls(f->svc, &n), 0);
	assert_int_equal(n, 3); /* the queued one may be dialled now */
	struct end_result r;
	result_init(&r);
	end_sync(f, &f->sc1, a.id, NULL, &r);
	assert_int_equal(r.code, CP_OK);
	result_destroy(&r);
	assert_int_equal(call_service_live_calls(f->svc, &n), 0);
	assert_int_equal(n, 2);
	call_clear(&q);
	call_clear(&a);
	call_clear(&b);
}

/* The health check reads the store and pings the engine with the caller's timeout. */
static void test_health(void **state)
{
	struct fx *f = *state;
	struct call_service_health h;
	call_service_health(f->svc, 250, &h);
	assert_true(h.store_ok);
	assert_false(h.has_engine);
	assert_true(h.engine_ok);
	assert_false(h.draining);
	struct telephony tel = {.ops = &fake_ping_ops, .engine = &f->fake};
	call_service_set_telephony(f->svc, &tel);
	call_service_health(f->svc, 250, &h);
	assert_true(h.has_engine && h.engine_ok);
	assert_int_equal(f->fake.ping_calls, 1);
	assert_int_equal(f->fake.ping_timeout_ms, 250);
	f->fake.ping_rc = -1; /* the engine's thread does not answer */
	call_service_health(f->svc, 250, &h);
	assert_true(h.store_ok);
	assert_false(h.engine_ok);
	call_service_drain(f->svc);
	call_service_health(f->svc, 250, &h);
	assert_true(h.draining);
	call_service_set_telephony(f->svc, &f->tel); /* an engine without a ping: alive */
	call_service_health(f->svc, 250, &h);
	assert_true(h.engine_ok);
	assert_int_equal(f->fake.ping_calls, 3);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	json_object_seed(0);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_create_defaults),
		T(test_create_explicit_fields),
		T(test_create_validation),
		T(test_create_metadata_size),
		T(test_create_max_duration_bounds),
		T(test_create_agent_out_of_scope),
		T(test_create_agent_without_number),
		T(test_create_from_only_the_tenants_numbers),
		T(test_end_queued_default_reason),
		T(test_end_queued_given_reason),
		T(test_end_twice_not_active),
		T(test_end_invalid_reason),
		T(test_end_not_found),
		T(test_end_without_engine_answered),
		T(test_redact),
		T(test_event_illegal_step_refused),
		T(test_list_through_service),
		T(test_event_conflict),
		T(test_fake_dial_accepted),
		T(test_fake_dial_refused),
		T(test_fake_hangup_undeliverable),
		T(test_fake_hangup_bye),
		T(test_fake_hangup_cancel),
		T(test_fake_hangup_not_active),
		T(test_fake_hangup_none_queued),
		T(test_fake_bye_on_unanswered_call),
		T(test_fake_remote_ended_meanwhile),
		T(test_fake_answered_while_cancelling),
		T(test_fake_deferred_with_worker),
		T(test_end_all_in_scope),
		T(test_end_all_with_engine),
		T(test_inbound),
		T(test_inbound_only_admitted_tenants),
		T(test_end_by_provider_call_id),
		T(test_post_event_in_order),
		T(test_end_all_many),
		T(test_goodbye_validation),
		T(test_goodbye_after_playout_and_text),
		T(test_goodbye_on_unanswered_call_ends_at_once),
		T(test_goodbye_second_end_joins),
		T(test_goodbye_cut_by_end_all),
		T(test_goodbye_of_the_agent),
		T(test_goodbye_at_max_duration),
		T(test_end_race_two_ends),
		T(test_end_race_with_answer),
		T(test_recover),
		T(test_create_stream_url),
		T(test_inbound_stream_url),
		T(test_create_record_choice),
		T(test_inbound_record_follows_agent),
		T(test_recording_open_and_redaction),
		T(test_send_dtmf),
		T(test_post_dtmf_one_event),
		T(test_delivery_backlog),
		T(test_post_dtmf_ignored),
		T(test_post_dtmf_in_order_with_worker),
		T(test_post_dialog_with_answer),
		T(test_left_dialogs),
		T(test_metrics_of_calls),
		T(test_drain_refuses_new_calls_only),
		T(test_live_calls),
		T(test_health),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
