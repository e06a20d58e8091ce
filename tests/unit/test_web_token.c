/*
 * test_web_token.c - the access tokens of web calls (call/web_token.c): shape, single use,
 * expiry, scope to one call, forgetting, and one winner among threads taking one token.
 *
 * The clock is the tests': every call takes now_ms.
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

#include "call/web_token.h"

#define CALL_A "11111111-1111-4111-8111-111111111111"
#define CALL_B "22222222-2222-4222-8222-222222222222"
#define T0 1000000

static void test_issued_token_is_43_chars_of_base64url(void **state)
{
	(void)state;
	struct web_tokens *t = web_tokens_create();
	char a[WEB_TOKEN_LEN + 1], b[WEB_TOKEN_LEN + 1];
	assert_int_equal(web_token_issue(t, CALL_A, T0, 60000, a), 0);
	assert_int_equal(web_token_issue(t, CALL_A, T0, 60000, b), 0);
	assert_int_equal(strlen(a), 43);
	assert_int_equal(
		strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
	/* 256 random bits: two tokens never match */
	assert_string_not_equal(a, b);
	web_tokens_destroy(t);
}

static void test_check_uses_nothing_take_uses_it_once(void **state)
{
	(void)state;
	struct web_tokens *t = web_tokens_create();
	char tok[WEB_TOKEN_LEN + 1], call[CP_UUID_LEN + 1] = "";
	assert_int_equal(web_token_issue(t, CALL_A, T0, 60000, tok), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(web_token_check(t, tok, NULL, T0 + 10, call), WEB_TOKEN_OK);
		assert_string_equal(call, CALL_A);
	}
	memset(call, 0, sizeof call);
	assert_int_equal(web_token_take(t, tok, CALL_A, T0 + 20, call), WEB_TOKEN_OK);
	assert_string_equal(call, CALL_A);
	memset(call, 0, sizeof call);
	assert_int_equal(web_token_take(t, tok, CALL_A, T0 + 30, call), WEB_TOKEN_USED);
	assert_int_equal(web_token_check(t, tok, NULL, T0 + 30, call), WEB_TOKEN_USED);
	assert_string_equal(call, ""); /* nothing told about a refused token */
	web_tokens_destroy(t);
}

static void test_expires_at_its_ttl(void **state)
{
	(void)state;
	struct web_tokens *t = web_tokens_create();
	char tok[WEB_TOKEN_LEN + 1];
	assert_int_equal(web_token_issue(t, CALL_A, T0, 60000, tok), 0);
	assert_int_equal(web_token_check(t, tok, NULL, T0 + 59999, NULL), WEB_TOKEN_OK);
	assert_int_equal(web_token_check(t, tok, NULL, T0 + 60000, NULL), WEB_TOKEN_EXPIRED);
	assert_int_equal(web_token_take(t, tok, NULL, T0 + 60000, NULL), WEB_TOKEN_EXPIRED);
	/* an expired take used nothing: it is expired, not used */
	assert_int_equal(web_token_check(t, tok, NULL, T0 + 60001, NULL), WEB_TOKEN_EXPIRED);
	web_tokens_destroy(t);
}

static void test_scoped_to_its_call(void **state)
{
	(void)state;
	struct web_tokens *t = web_tokens_create();
	char a[WEB_TOKEN_LEN + 1], b[WEB_TOKEN_LEN + 1], call[CP_UUID_LEN + 1] = "";
	assert_int_equal(web_token_issue(t, CALL_A, T0, 60000, a), 0);
	assert_int_equal(web_token_issue(t, CALL_B, T0, 60000, b), 0);
	assert_int_equal(web_token_take(t, a, CALL_B, T0 + 1, call), WEB_TOKEN_FOREIGN);
	assert_string_equal(call, "");
	/* the refusal used nothing: A's token still opens A */
	assert_int_equal(web_token_take(t, a, CALL_A, T0 + 2, call), WEB_TOKEN_OK);
	assert_string_equal(call, CALL_A);
	assert_int_equal(web_token_take(t, b, NULL, T0 + 3, call), WEB_TOKEN_OK);
	assert_string_equal(call, CALL_B);
	web_tokens_destroy(t);
}

static void test_unknown_tokens(void **state)
{
	(void)state;
	struct web_tokens *t = web_tokens_create();
	char tok[WEB_TOKEN_LEN + 1], forged[WEB_TOKEN_LEN + 1];
	assert_int_equal(web_token_issue(t, CALL_A, T0, 60000, tok), 0);
	/* one character changed */
	memcpy(forged, tok, sizeof forged);
	forged[10] = forged[10] == 'A' ? 'B' : 'A';
	assert_int_equal(web_token_check(t, forged, NULL, T0, NULL), WEB_TOKEN_UNKNOWN);
	assert_int_equal(web_token_take(t, forged, NULL, T0, NULL), WEB_TOKEN_UNKNOWN);
	/* a prefix, the token with more after it, empty, NULL */
	char longer[WEB_TOKEN_LEN + 2];
	snprintf(longer, sizeof longer, "%sx", tok);
	char prefix[WEB_TOKEN_LEN];
	memcpy(prefix, tok, WEB_TOKEN_LEN - 1);
	prefix[WEB_TOKEN_LEN - 1] = '\0';
	assert_int_equal(web_token_check(t, longer, NULL, T0, NULL), WEB_TOKEN_UNKNOWN);
	assert_int_equal(web_token_check(t, prefix, NULL, T0, NULL), WEB_TOKEN_UNKNOWN);
	assert_int_equal(web_token_check(t, "", NULL, T0, NULL), WEB_TOKEN_UNKNOWN);
	assert_int_equal(web_token_check(t, NULL, NULL, T0, NULL), WEB_TOKEN_UNKNOWN);
	/* the real one is untouched by all that */
	assert_int_equal(web_token_take(t, tok, NULL, T0, NULL), WEB_TOKEN_OK);
	web_tokens_destroy(t);
}

static void test_forgotten_one_lifetime_after_expiry(void **state)
{
	(void)state;
	struct web_tokens *t = web_tokens_create();
	char old[WEB_TOKEN_LEN + 1], fresh[WEB_TOKEN_LEN + 1];
	assert_int_equal(web_token_issue(t, CALL_A, T0, 1000, old), 0);
	assert_int_equal(web_token_take(t, old, NULL, T0 + 1, NULL), WEB_TOKEN_OK);
	/* issuing forgets what is due: before 2000 ms after issue, it is still known as used */
	assert_int_equal(web_token_issue(t, CALL_B, T0 + 1999, 1000, fresh), 0);
	assert_int_equal(web_token_check(t, old, NULL, T0 + 1999, NULL), WEB_TOKEN_USED);
	assert_int_equal(web_token_issue(t, CALL_B, T0 + 2000, 1000, fresh), 0);
	assert_int_equal(web_token_check(t, old, NULL, T0 + 2000, NULL), WEB_TOKEN_UNKNOWN);
	assert_int_equal(web_token_check(t, fresh, NULL, T0 + 2000, NULL), WEB_TOKEN_OK);
	web_tokens_destroy(t);
}

struct race {
	struct web_tokens *t;
	const char *tok;
	pthread_barrier_t *go;
	int ok;
};

static void *take_it(void *arg)
{
	struct race *r = arg;
	pthread_barrier_wait(r->go);
	r->ok = web_token_take(r->t, r->tok, CALL_A, T0 + 5, NULL) == WEB_TOKEN_OK;
	return NULL;
}

static void test_concurrent_takes_one_winner(void **state)
{
	(void)state;
	enum { THREADS = 8, ROUNDS = 50 };
	struct web_tokens *t = web_tokens_create();
	for (int round = 0; round < ROUNDS; round++) {
		char tok[WEB_TOKEN_LEN + 1];
		assert_int_equal(web_token_issue(t, CALL_A, T0, 60000, tok), 0);
		pthread_barrier_t go;
		pthread_barrier_init(&go, NULL, THREADS);
		pthread_t th[THREADS];
		struct race r[THREADS];
		for (int i = 0; i < THREADS; i++) {
			r[i] = (struct race){.t = t, .tok = tok, .go = &go};
			assert_int_equal(pthread_create(&th[i], NULL, take_it, &r[i]), 0);
		}
		int winners = 0;
		for (int i = 0; i < THREADS; i++) {
			pthread_join(th[i], NULL);
			winners += r[i].ok;
		}
		pthread_barrier_destroy(&go);
		assert_int_equal(winners, 1);
	}
	web_tokens_destroy(t);
}

static void test_result_names(void **state)
{
	(void)state;
	assert_string_equal(web_token_result_name(WEB_TOKEN_OK), "ok");
	assert_string_equal(web_token_result_name(WEB_TOKEN_UNKNOWN), "unknown");
	assert_string_equal(web_token_result_name(WEB_TOKEN_EXPIRED), "expired");
	assert_string_equal(web_token_result_name(WEB_TOKEN_USED), "used");
	assert_string_equal(web_token_result_name(WEB_TOKEN_FOREIGN), "foreign");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issued_token_is_43_chars_of_base64url),
		cmocka_unit_test(test_check_uses_nothing_take_uses_it_once),
		cmocka_unit_test(test_expires_at_its_ttl),
		cmocka_unit_test(test_scoped_to_its_call),
		cmocka_unit_test(test_unknown_tokens),
		cmocka_unit_test(test_forgotten_one_lifetime_after_expiry),
		cmocka_unit_test(test_concurrent_takes_one_winner),
		cmocka_unit_test(test_result_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
