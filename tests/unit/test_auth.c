/*
 * test_auth.c - API key minting, header parsing and authentication against a real store.
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

#include "auth/auth.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

static const char *const TENANT_ID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";

/* ---- minting ---------------------------------------------------------------------------- */

static void check_secret_shape(const char *secret)
{
	assert_int_equal(strlen(secret), AUTH_SECRET_LEN);
	assert_int_equal(strlen(secret), 51);
	assert_memory_equal(secret, "cp_", 3);
	for (int i = 3; i < AUTH_SECRET_LEN; i++) {
		char c = secret[i];
		assert_true((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
	}
}

static void test_mint_format(void **state)
{
	(void)state;
	struct api_key k;
	char secret[AUTH_SECRET_LEN + 1];
	memset(&k, 0x5a, sizeof k);
	int64_t before = cp_now_ms();
	assert_int_equal(auth_key_mint(TENANT_ID, NULL, &k, secret), 0);
	int64_t after = cp_now_ms();
	check_secret_shape(secret);

	/* the stored hash is SHA-256 of the whole secret, hex */
	char want[CP_SHA256_HEX_LEN + 1];
	cp_sha256_hex(secret, strlen(secret), want);
	assert_string_equal(k.hash, want);
	assert_int_equal(strlen(k.hash), 64);
	/* the hash does not contain the secret */
	assert_null(strstr(k.hash, secret + 3));

	assert_true(cp_is_uuid(k.id));
	assert_string_equal(k.tenant_id, TENANT_ID);
	assert_string_equal(k.number, "");
	assert_int_equal(k.revoked_at, 0);
	assert_true(k.created_at >= before && k.created_at <= after);
	/* the listing prefix is the secret's first 10 characters: "cp_" and 7 hex digits */
	assert_int_equal(strlen(k.prefix), 10);
	assert_memory_equal(k.prefix, secret, 10);
}

static void test_mint_number_scoped(void **state)
{
	(void)state;
	struct api_key k;
	char secret[AUTH_SECRET_LEN + 1];
	assert_int_equal(auth_key_mint(TENANT_ID, "+15550001111", &k, secret), 0);
	check_secret_shape(secret);
	assert_string_equal(k.number, "+15550001111");
	assert_string_equal(k.tenant_id, TENANT_ID);
}

static void test_mint_distinct(void **state)
{
	(void)state;
	enum { N = 64 };
	static char secrets[N][AUTH_SECRET_LEN + 1];
	static struct api_key keys[N];
	for (int i = 0; i < N; i++) {
		assert_int_equal(auth_key_mint(TENANT_ID, NULL, &keys[i], secrets[i]), 0);
		check_secret_shape(secrets[i]);
	}
	for (int i = 0; i < N; i++) {
		for (int j = i + 1; j < N; j++) {
			assert_string_not_equal(secrets[i], secrets[j]);
			assert_string_not_equal(keys[i].hash, keys[j].hash);
			assert_string_not_equal(keys[i].id, keys[j].id);
		}
	}
}

/* ---- headers ---------------------------------------------------------------------------- */

static void test_secret_from_bearer(void **state)
{
	(void)state;
	const char *s;
	s = auth_secret_from_headers("Bearer cp_abc", NULL);
	assert_non_null(s);
	assert_string_equal(s, "cp_abc");
	/* the scheme is case-insensitive (RFC 7235) */
	s = auth_secret_from_headers("bearer cp_abc", NULL);
	assert_non_null(s);
	assert_string_equal(s, "cp_abc");
	s = auth_secret_from_headers("BEARER cp_abc", NULL);
	assert_non_null(s);
	assert_string_equal(s, "cp_abc");
	s = auth_secret_from_headers("BeArEr cp_abc", NULL);
	assert_non_null(s);
	assert_string_equal(s, "cp_abc");
	/* extra spaces before the token */
	s = auth_secret_from_headers("Bearer    cp_abc", NULL);
	assert_non_null(s);
	assert_string_equal(s, "cp_abc");
	/* Authorization wins over x-api-key */
	s = auth_secret_from_headers("Bearer cp_header", "cp_xapikey");
	assert_non_null(s);
	assert_string_equal(s, "cp_header");
}

static void test_secret_rejects(void **state)
{
	(void)state;
	assert_null(auth_secret_from_headers(NULL, NULL));
	assert_null(auth_secret_from_headers("", NULL));
	assert_null(auth_secret_from_headers(NULL, ""));
	assert_null(auth_secret_from_headers("Basic x", NULL));
	assert_null(auth_secret_from_headers("Basic dXNlcjpwYXNz", NULL));
	assert_null(auth_secret_from_headers("Bearer", NULL));
	assert_null(auth_secret_from_headers("Bearer ", NULL));
	assert_null(auth_secret_from_headers("Bearer    ", NULL));
	assert_null(auth_secret_from_headers("Bearercp_abc", NULL));
	assert_null(auth_secret_from_headers("Token cp_abc", NULL));
	assert_null(auth_secret_from_headers("cp_abc", NULL));
	/* an Authorization header that is present but not Bearer does not fall back to x-api-key */
	assert_null(auth_secret_from_headers("Basic x", "cp_xapikey"));
	assert_null(auth_secret_from_headers("Digest username=\"a\"", "cp_xapikey"));
}

static void test_secret_from_x_api_key(void **state)
{
	(void)state;
	const char *s = auth_secret_from_headers(NULL, "cp_xapikey");
	assert_non_null(s);
	assert_string_equal(s, "cp_xapikey");
}

/* ---- auth_check against a real store ---------------------------------------------------- */

struct fx {
	char dir[64];
	char path[128];
	struct store *st;
	char tenant[CP_UUID_LEN + 1];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/cp_test_auth_XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/auth.db", f->dir);
	struct store_options opt = {.sync_full = false};
	f->st = store_open(f->path, &opt);
	struct tenant t = {.name = "auth tenant", .created_at = cp_now_ms()};
	if (!f->st || cp_uuid4(f->tenant) ||
	    (snprintf(t.id, sizeof t.id, "%s", f->tenant), STORE(f->st, tenant_create, &t)) !=
		    STORE_OK) {
		store_close(f->st);
		rmdir(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char buf[200];
	store_close(f->st);
	unlink(f->path);
	snprintf(buf, sizeof buf, "%s-wal", f->path);
	unlink(buf);
	snprintf(buf, sizeof buf, "%s-shm", f->path);
	unlink(buf);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Mints a key, stores it, returns the secret. */
static void stored_key(struct fx *f, const char *number, struct api_key *k,
		       char secret[AUTH_SECRET_LEN + 1])
{
	assert_int_equal(auth_key_mint(f->tenant, number, k, secret), 0);
	assert_int_equal(STORE(f->st, key_create, k), STORE_OK);
}

static void test_check_valid_tenant_key(void **state)
{
	struct fx *f = *state;
	struct api_key k;
	char secret[AUTH_SECRET_LEN + 1];
	stored_key(f, NULL, &k, secret);
	struct principal who;
	memset(&who, 0x77, sizeof who);
	assert_int_equal(auth_check(f->st, secret, &who), CP_OK);
	assert_string_equal(who.scope.tenant_id, f->tenant);
	assert_string_equal(who.scope.number, "");
	assert_string_equal(who.key.id, k.id);
	assert_string_equal(who.key.tenant_id, f->tenant);
	assert_int_equal(who.key.revoked_at, 0);
	/* the same secret from the header parser */
	char header[128];
	snprintf(header, sizeof header, "Bearer %s", secret);
	assert_int_equal(auth_check(f->st, auth_secret_from_headers(header, NULL), &who), CP_OK);
	assert_string_equal(who.key.id, k.id);
}

static void test_check_valid_number_key(void **state)
{
	struct fx *f = *state;
	struct api_key k;
	char secret[AUTH_SECRET_LEN + 1];
	stored_key(f, "+15550001111", &k, secret);
	struct principal who;
	assert_int_equal(auth_check(f->st, secret, &who), CP_OK);
	assert_string_equal(who.scope.tenant_id, f->tenant);
	assert_string_equal(who.scope.number, "+15550001111");
	assert_string_equal(who.key.number, "+15550001111");
}

static void test_check_operator_key(void **state)
{
	struct fx *f = *state;
	struct api_key k;
	char secret[AUTH_SECRET_LEN + 1];
	assert_int_equal(auth_key_mint(NULL, NULL, &k, secret), 0);
	assert_true(k.is_operator);
	assert_string_equal(k.tenant_id, "");
	assert_int_equal(STORE(f->st, key_create, &k), STORE_OK);
	struct principal who;
	memset(&who, 0x77, sizeof who);
	assert_int_equal(auth_check(f->st, secret, &who), CP_OK);
	assert_true(who.scope.all);
	assert_string_equal(who.scope.tenant_id, "");
	assert_string_equal(who.scope.number, "");
	assert_true(who.key.is_operator);
	assert_string_equal(who.key.tenant_id, "");
	/* a tenant's key is not widened by the flag's existence */
	struct api_key t;
	char tsecret[AUTH_SECRET_LEN + 1];
	stored_key(f, NULL, &t, tsecret);
	assert_int_equal(auth_check(f->st, tsecret, &who), CP_OK);
	assert_false(who.scope.all);
	assert_false(who.key.is_operator);
	assert_string_equal(who.scope.tenant_id, f->tenant);
	/* revoked, it stops like any key */
	assert_int_equal(STORE(f->st, key_revoke, k.id, 1), STORE_OK);
	assert_int_equal(auth_check(f->st, secret, &who), CP_ERR_UNAUTHORIZED);
}

static void test_check_unknown(void **state)
{
	struct fx *f = *state;
	struct api_key k, other;
	char secret[AUTH_SECRET_LEN + 1], unknown[AUTH_SECRET_LEN + 1];
	stored_key(f, NULL, &k, secret);
	/* minted but never stored */
	assert_int_equal(auth_key_mint(f->tenant, NULL, &other, unknown), 0);
	struct principal who;
	assert_int_equal(auth_check(f->st, unknown, &who), CP_ERR_UNAUTHORIZED);
	/* near misses of a real secret */
	char near[AUTH_SECRET_LEN + 8];
	snprintf(near, sizeof near, "%s", secret);
	near[AUTH_SECRET_LEN - 1] = near[AUTH_SECRET_LEN - 1] == '0' ? '1' : '0';
	assert_int_equal(auth_check(f->st, near, &who), CP_ERR_UNAUTHORIZED);
	snprintf(near, sizeof near, "%sx", secret);
	assert_int_equal(auth_check(f->st, near, &who), CP_ERR_UNAUTHORIZED);
	snprintf(near, sizeof near, "%.*s", AUTH_SECRET_LEN - 1, secret);
	assert_int_equal(auth_check(f->st, near, &who), CP_ERR_UNAUTHORIZED);
	/* the stored hash itself is not a credential */
	assert_int_equal(auth_check(f->st, k.hash, &who), CP_ERR_UNAUTHORIZED);
	assert_int_equal(auth_check(f->st, "", &who), CP_ERR_UNAUTHORIZED);
	assert_int_equal(auth_check(f->st, NULL, &who), CP_ERR_UNAUTHORIZED);
	/* absurdly long */
	char *big = malloc(4096);
	assert_non_null(big);
	memset(big, 'a', 4095);
	big[4095] = '\0';
	assert_int_equal(auth_check(f->st, big, &who), CP_ERR_UNAUTHORIZED);
	free(big);
	/* and the real one still works */
	assert_int_equal(auth_check(f->st, secret, &who), CP_OK);
}

static void test_check_revoked(void **state)
{
	struct fx *f = *state;
	struct api_key k1, k2;
	char s1[AUTH_SECRET_LEN + 1], s2[AUTH_SECRET_LEN + 1];
	stored_key(f, NULL, &k1, s1);
	stored_key(f, "+15550002222", &k2, s2);
	struct principal who;
	assert_int_equal(auth_check(f->st, s1, &who), CP_OK);
	assert_int_equal(STORE(f->st, key_revoke, k1.id, cp_now_ms()), STORE_OK);
	assert_int_equal(auth_check(f->st, s1, &who), CP_ERR_UNAUTHORIZED);
	/* revoking one key leaves the others alone */
	assert_int_equal(auth_check(f->st, s2, &who), CP_OK);
	assert_string_equal(who.key.id, k2.id);
	assert_int_equal(STORE(f->st, key_revoke, k2.id, cp_now_ms()), STORE_OK);
	assert_int_equal(auth_check(f->st, s2, &who), CP_ERR_UNAUTHORIZED);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	json_object_seed(0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mint_format),
		cmocka_unit_test(test_mint_number_scoped),
		cmocka_unit_test(test_mint_distinct),
		cmocka_unit_test(test_secret_from_bearer),
		cmocka_unit_test(test_secret_rejects),
		cmocka_unit_test(test_secret_from_x_api_key),
		cmocka_unit_test_setup_teardown(test_check_valid_tenant_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_valid_number_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_operator_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_revoked, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
