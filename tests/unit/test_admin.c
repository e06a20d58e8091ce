/*
 * test_admin.c - admin/admin.c, the rules the admin CLI and the admin API share: each field
 * check (the field and rule it names, exactly), a key's sip_uris never widening the minting
 * key's, who may mint what, a key not revoking itself, and that a refused request changes
 * nothing in a real store (a fresh mkdtemp() database).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "core/log.h"
#include "core/util.h"

#define SIP_RULE "must be none, any or HOST[,HOST...] (at most 255 bytes)"
#define PREFIX_RULE "must be +DIGITS[,+DIGITS...] (at most 255 bytes)"
#define GOODBYE_RULE "must be 1..1000 characters of UTF-8"

static void expect_bad(bool ok, const struct admin_bad *bad, const char *field, const char *rule)
{
	assert_false(ok);
	assert_string_equal(bad->field, field);
	assert_string_equal(bad->rule, rule);
}

static void test_tenant_check(void **state)
{
	(void)state;
	struct admin_bad bad;
	char long_name[STORE_NAME_MAX + 2];
	memset(long_name, 'n', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	assert_true(admin_tenant_check(&(struct admin_tenant_req){.name = "acme"}, true, &bad));
	expect_bad(admin_tenant_check(&(struct admin_tenant_req){0}, true, &bad), &bad, "name",
		   "is required");
	/* an update gives what it changes */
	assert_true(admin_tenant_check(&(struct admin_tenant_req){.sip_uris = "any"}, false, &bad));
	expect_bad(admin_tenant_check(&(struct admin_tenant_req){.name = ""}, false, &bad), &bad,
		   "name", "must be 1..128 characters");
	expect_bad(admin_tenant_check(&(struct admin_tenant_req){.name = long_name}, true, &bad),
		   &bad, "name", "must be 1..128 characters");
	long_name[STORE_NAME_MAX] = '\0';
	assert_true(admin_tenant_check(&(struct admin_tenant_req){.name = long_name}, true, &bad));
	expect_bad(admin_tenant_check(&(struct admin_tenant_req){.name = "a", .sip_uris = "*"},
				      true, &bad),
		   &bad, "sip_uris", SIP_RULE);
	expect_bad(admin_tenant_check(&(struct admin_tenant_req){.allow_prefixes = "1900"}, false,
				      &bad),
		   &bad, "allow_prefixes", PREFIX_RULE);
	/* "" is a value (refused); admin_clear clears */
	expect_bad(admin_tenant_check(&(struct admin_tenant_req){.deny_prefixes = ""}, false, &bad),
		   &bad, "deny_prefixes", PREFIX_RULE);
	assert_true(admin_tenant_check(&(struct admin_tenant_req){.deny_prefixes = admin_clear},
				       false, &bad));
}

static void test_agent_check(void **state)
{
	(void)state;
	struct admin_bad bad;
	struct admin_agent_req ok = {.tenant_id = "t",
				     .name = "a",
				     .number = "+15550001111",
				     .max_duration_s = 86400,
				     .record = 1,
				     .stream_url = "wss://x.example/a",
				     .goodbye_text = "Bye."};
	assert_true(admin_agent_check(&ok, true, &bad));
	struct admin_agent_req r = ok;
	r.tenant_id = NULL;
	expect_bad(admin_agent_check(&r, true, &bad), &bad, "tenant_id", "must be a tenant id");
	r = ok;
	r.number = "5550001111";
	expect_bad(admin_agent_check(&r, true, &bad), &bad, "number",
		   "must be an E.164 number (+ and 2..15 digits)");
	r = ok;
	r.max_duration_s = 86401;
	expect_bad(admin_agent_check(&r, true, &bad), &bad, "max_duration_s",
		   "must be an integer in 1..86400");
	r = ok;
	r.stream_url = "http://x.example/a";
	expect_bad(admin_agent_check(&r, true, &bad), &bad, "stream_url",
		   "must be an absolute ws:// or wss:// URL with a host, at most 1024 bytes,"
		   " without spaces or control characters");
	/* an update: only its fields, "" refused, admin_clear clears */
	struct admin_agent_req u = {.record = -1, .goodbye_text = ""};
	expect_bad(admin_agent_check(&u, false, &bad), &bad, "goodbye_text", GOODBYE_RULE);
	u.goodbye_text = admin_clear;
	assert_true(admin_agent_check(&u, false, &bad));
	u.max_duration_goodbye = "\xff";
	expect_bad(admin_agent_check(&u, false, &bad), &bad, "max_duration_goodbye", GOODBYE_RULE);
	u = (struct admin_agent_req){.record = -1, .trunk_id = ""};
	expect_bad(admin_agent_check(&u, false, &bad), &bad, "trunk_id", "must be a trunk id");
	u.trunk_id = admin_clear;
	assert_true(admin_agent_check(&u, false, &bad));
}

static void test_key_check(void **state)
{
	(void)state;
	struct admin_bad bad;
	assert_true(admin_key_check(&(struct admin_key_req){.is_operator = true}, &bad));
	assert_true(admin_key_check(&(struct admin_key_req){.tenant_id = "t",
							    .number = "+1555",
							    .sip_uris = "none",
							    .rate_limit = 1000000},
				    &bad));
	expect_bad(admin_key_check(&(struct admin_key_req){.is_operator = true, .number = "+1555"},
				   &bad),
		   &bad, "number", "is not for an operator key");
	expect_bad(admin_key_check(&(struct admin_key_req){0}, &bad), &bad, "tenant_id",
		   "must be a tenant id");
	expect_bad(admin_key_check(&(struct admin_key_req){.tenant_id = "t", .rate_limit = 1000001},
				   &bad),
		   &bad, "rate_limit", "must be an integer in 1..1000000");
	expect_bad(admin_key_check(&(struct admin_key_req){.tenant_id = "t", .sip_uris = ""}, &bad),
		   &bad, "sip_uris", SIP_RULE);
}

static void test_sip_uris_within(void **state)
{
	(void)state;
	static const struct {
		const char *inner, *outer;
		bool within;
	} rows[] = {
		{"", "", true},
		{"any", "", true},
		{"pbx.example", "any", true},
		{"none", "none", true},
		{"pbx.example", "none", false},
		{"", "none", false},
		{"none", "pbx.example", true},
		{"PBX.example", "pbx.example,10.0.0.5", true},
		{"10.0.0.5,pbx.example", "pbx.example,10.0.0.5", true},
		{"pbx.example,other.example", "pbx.example", false},
		{"any", "pbx.example", false},
		{"", "pbx.example", false},
		{"pbx.exampl", "pbx.example", false},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (admin_sip_uris_within(rows[i].inner, rows[i].outer) != rows[i].within)
			fail_msg("\"%s\" within \"%s\": expected %d", rows[i].inner, rows[i].outer,
				 rows[i].within);
}

static const char *dashed(const char *field)
{
	return !strcmp(field, "password_env") ? "--password-env" : field;
}

static void test_trunk_check(void **state)
{
	(void)state;
	struct trunk t = {0};
	char why[512];
	const char *hdrs[] = {"X-Account: 42", "Via: x"};
	struct admin_trunk_req ok = {.host = "[2001:db8::1]:5070",
				     .transport = "tcp",
				     .user = "acme",
				     .password_file = "/etc/pw",
				     .inbound_cidrs = "10.0.0.1/8",
				     .headers = hdrs,
				     .n_headers = 1};
	assert_true(admin_trunk_check(&ok, dashed, &t, why, sizeof why));
	assert_string_equal(t.host, "2001:db8::1");
	assert_int_equal(t.port, 5070);
	assert_string_equal(t.transport, "tcp");
	assert_string_equal(t.inbound_cidrs, "10.0.0.0/8"); /* canonical */
	assert_string_equal(t.headers, "X-Account: 42");
	assert_string_equal(t.caller_id_header, "none");
	struct admin_trunk_req r = ok;
	r.password_file = NULL;
	r.password_env = "1A";
	assert_false(admin_trunk_check(&r, dashed, &t, why, sizeof why));
	assert_string_equal(why, "--password-env must be an environment variable's name"
				 " ([A-Za-z_][A-Za-z0-9_]*), got '1A'");
	r = ok;
	r.password_file = "pw";
	assert_false(admin_trunk_check(&r, dashed, &t, why, sizeof why));
	assert_string_equal(why, "password_file must be an absolute path of at most 1024 bytes");
	r = ok;
	r.n_headers = 2;
	assert_false(admin_trunk_check(&r, dashed, &t, why, sizeof why));
	assert_string_equal(why, "headers 'Via: x': the engine writes this header itself");
	r = ok;
	r.n_headers = 17;
	assert_false(admin_trunk_check(&r, dashed, &t, why, sizeof why));
	assert_string_equal(why, "headers: at most 16 lines");
}

/* ---- against a store -------------------------------------------------------------------- */

struct fx {
	char dir[64], path[96];
	struct store *st;
	struct tenant t;
};

static int setup(void **state)
{
	static const struct store_options fast = {.sync_full = false};
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/cp_test_admin_XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/callplane.db", f->dir);
	f->st = store_open(f->path, &fast);
	struct cp_error err;
	if (!f->st || admin_tenant_create(f->st, &(struct admin_tenant_req){.name = "acme"}, &f->t,
					  &err) != CP_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[160];
	store_close(f->st);
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	free(f);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_tenant_update_refused_changes_nothing(void **state)
{
	struct fx *f = *state;
	struct cp_error err = {0};
	struct tenant t;
	assert_int_equal(admin_tenant_update(f->st, f->t.id,
					     &(struct admin_tenant_req){.name = "renamed",
									.allow_prefixes = "+1,bad"},
					     &t, &err),
			 CP_ERR_INVALID);
	assert_string_equal(err.message, "allow_prefixes " PREFIX_RULE);
	assert_int_equal(admin_tenant_get(f->st, f->t.id, &t, &err), CP_OK);
	assert_string_equal(t.name, "acme");
	assert_string_equal(t.dial.allow_prefixes, "");
	assert_int_equal(admin_tenant_update(f->st, f->t.id,
					     &(struct admin_tenant_req){.name = "renamed",
									.allow_prefixes = "+1"},
					     &t, &err),
			 CP_OK);
	assert_string_equal(t.name, "renamed");
	assert_string_equal(t.dial.allow_prefixes, "+1");
	assert_string_equal(t.dial.sip_uris, "none");
	assert_int_equal(admin_tenant_update(f->st, "nope", &(struct admin_tenant_req){.name = "x"},
					     &t, &err),
			 CP_ERR_NOT_FOUND);
	assert_int_equal(
		admin_tenant_update(f->st, f->t.id, &(struct admin_tenant_req){0}, &t, &err),
		CP_ERR_INVALID);
}

static void test_agent_number_conflict_and_trunk(void **state)
{
	struct fx *f = *state;
	struct cp_error err = {0};
	struct agent a, b;
	struct admin_agent_req req = {.tenant_id = f->t.id, .name = "a", .number = "+15550001111"};
	assert_int_equal(admin_agent_create(f->st, &req, &a, &err), CP_OK);
	req.name = "b";
	assert_int_equal(admin_agent_create(f->st, &req, &b, &err), CP_ERR_CONFLICT);
	assert_string_equal(err.message, "another agent already has the number +15550001111");
	req = (struct admin_agent_req){.record = -1, .goodbye_text = "Bye.", .trunk_id = "nope"};
	assert_int_equal(admin_agent_update(f->st, NULL, a.id, &req, &b, &err), CP_ERR_INVALID);
	assert_string_equal(err.message, "trunk_id must be one of the tenant's trunks");
	assert_int_equal(admin_agent_get(f->st, NULL, a.id, &b, &err), CP_OK);
	assert_string_equal(b.goodbye_text, ""); /* the refused update changed nothing */
	req.trunk_id = NULL;
	req.record = 1;
	assert_int_equal(admin_agent_update(f->st, NULL, a.id, &req, &b, &err), CP_OK);
	assert_string_equal(b.goodbye_text, "Bye.");
	assert_true(b.record);
	/* another tenant's scope does not see it */
	struct scope other = {0};
	snprintf(other.tenant_id, sizeof other.tenant_id, "%s", "someone-else");
	assert_int_equal(admin_agent_get(f->st, &other, a.id, &b, &err), CP_ERR_NOT_FOUND);
}

static void test_key_minting_and_revoking(void **state)
{
	struct fx *f = *state;
	struct cp_error err = {0};
	struct api_key k, op_k, got;
	char secret[AUTH_SECRET_LEN + 1];
	struct admin_key_req narrow = {.tenant_id = f->t.id, .sip_uris = "pbx.example"};
	assert_int_equal(admin_key_create(f->st, NULL, &narrow, &k, secret, &err), CP_OK);
	assert_int_equal(strlen(secret), AUTH_SECRET_LEN);
	struct principal by = {.key = k};
	snprintf(by.scope.tenant_id, sizeof by.scope.tenant_id, "%s", f->t.id);
	/* wider than its own: refused; as narrow or narrower: minted */
	struct admin_key_req wider = {.tenant_id = f->t.id, .sip_uris = "any"};
	assert_int_equal(admin_key_create(f->st, &by, &wider, &got, secret, &err),
			 CP_ERR_FORBIDDEN);
	wider.sip_uris = NULL;
	assert_int_equal(admin_key_create(f->st, &by, &wider, &got, secret, &err),
			 CP_ERR_FORBIDDEN);
	struct admin_key_req same = {.tenant_id = f->t.id, .sip_uris = "PBX.example"};
	assert_int_equal(admin_key_create(f->st, &by, &same, &got, secret, &err), CP_OK);
	struct admin_key_req op = {.is_operator = true};
	assert_int_equal(admin_key_create(f->st, &by, &op, &got, secret, &err), CP_ERR_FORBIDDEN);
	assert_string_equal(err.message, "only an operator key creates operator keys");
	struct admin_key_req other = {.tenant_id = "someone-else"};
	assert_int_equal(admin_key_create(f->st, &by, &other, &got, secret, &err),
			 CP_ERR_FORBIDDEN);
	assert_int_equal(admin_key_create(f->st, NULL, &op, &op_k, secret, &err), CP_OK);
	assert_true(op_k.is_operator);
	/* revoking: not itself; not another tenant's key; then revoked, once */
	assert_int_equal(admin_key_revoke(f->st, f->t.id, k.id, k.id, &got, &err), CP_ERR_CONFLICT);
	assert_int_equal(admin_key_revoke(f->st, f->t.id, op_k.id, k.id, &got, &err),
			 CP_ERR_NOT_FOUND);
	assert_int_equal(admin_key_revoke(f->st, NULL, k.id, op_k.id, &got, &err), CP_OK);
	assert_in_range(got.revoked_at, k.created_at, cp_now_ms());
	int64_t first = got.revoked_at;
	usleep(2000);
	assert_int_equal(admin_key_revoke(f->st, NULL, k.id, NULL, &got, &err), CP_OK);
	assert_int_equal(got.revoked_at, first);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tenant_check),
		cmocka_unit_test(test_agent_check),
		cmocka_unit_test(test_key_check),
		cmocka_unit_test(test_sip_uris_within),
		cmocka_unit_test(test_trunk_check),
		cmocka_unit_test_setup_teardown(test_tenant_update_refused_changes_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_agent_number_conflict_and_trunk, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_key_minting_and_revoking, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
