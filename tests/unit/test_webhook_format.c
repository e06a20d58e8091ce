/*
 * test_webhook_format.c - webhook/format.c's signatures: Callplane-Signature over a known
 * input, and Standard Webhooks' webhook-signature against the specification's published
 * example (secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek,
 * timestamp 1614265330, body {"test": 2432232314}), and which secrets a standard signing takes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <openssl/evp.h>

#include "core/log.h"
#include "webhook/webhook.h"

#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_T 1614265330
#define SPEC_BODY "{\"test\": 2432232314}"

static void test_standard_matches_the_spec_example(void **state)
{
	(void)state;
	char sig[128];
	assert_int_equal(webhook_signature_standard(SPEC_SECRET, SPEC_ID, SPEC_T, SPEC_BODY, sig,
						    sizeof sig),
			 0);
	assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* any change of id, time or body changes it */
	assert_int_equal(webhook_signature_standard(SPEC_SECRET, "msg_x", SPEC_T, SPEC_BODY, sig,
						    sizeof sig),
			 0);
	assert_string_not_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	assert_int_equal(webhook_signature_standard(SPEC_SECRET, SPEC_ID, SPEC_T + 1, SPEC_BODY,
						    sig, sizeof sig),
			 0);
	assert_string_not_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* too small a buffer: refused, not cut */
	assert_int_equal(
		webhook_signature_standard(SPEC_SECRET, SPEC_ID, SPEC_T, SPEC_BODY, sig, 20), -1);
}

static void test_callplane_signature(void **state)
{
	(void)state;
	char sig[200];
	/* HMAC-SHA256("s3cret-for-webhook-tests", "1700000000.{}"), computed with Python's hmac */
	webhook_signature("s3cret-for-webhook-tests", 1700000000, "{}", sig, sizeof sig);
	assert_string_equal(sig,
			    "t=1700000000,v1="
			    "a287630c776f26b68c96db1ae6dff6a31f9bd95d877e70063e977968ed2b6dee");
}

static void test_standard_key(void **state)
{
	(void)state;
	unsigned char key[WEBHOOK_STANDARD_KEY_MAX];
	size_t n = 0;
	assert_int_equal(webhook_standard_key(SPEC_SECRET, key, &n), 0);
	assert_int_equal(n, 24);
	assert_int_equal(key[0], 0x31);
	assert_int_equal(key[23], 0xb0);
	/* 64 bytes, padded: the longest */
	static const char s64[] = "whsec_"
				  "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v"
				  "MDEyMzQ1Njc4OTo7PD0+Pw==";
	assert_int_equal(webhook_standard_key(s64, key, &n), 0);
	assert_int_equal(n, 64);
	assert_int_equal(key[63], 63);
	static const char *const bad[] = {
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",       /* no prefix */
		"whsec_",                                 /* nothing */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La",     /* 21 bytes */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  /* not a multiple of 4 */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w", /* URL-safe alphabet */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La=aSw", /* padding inside */
		"whsec_MfKQ9r8GKYqrTwjUPD8I PZIo2LaLaSw", /* a space */
		/* 65 bytes */
		"whsec_"
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD"
		"0+P0A=",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(webhook_standard_key(bad[i], key, &n), -1);
	char sig[128];
	assert_int_equal(
		webhook_signature_standard(bad[0], SPEC_ID, SPEC_T, SPEC_BODY, sig, sizeof sig),
		-1);
}

static void test_standard_secret_generated(void **state)
{
	(void)state;
	char a[WEBHOOK_SECRET_MAX + 1], b[WEBHOOK_SECRET_MAX + 1];
	unsigned char key[WEBHOOK_STANDARD_KEY_MAX];
	size_t n = 0;
	assert_int_equal(webhook_standard_secret(a, sizeof a), 0);
	assert_int_equal(webhook_standard_secret(b, sizeof b), 0);
	assert_int_equal(strlen(a), strlen("whsec_") + 32);
	assert_string_not_equal(a, b);
	assert_int_equal(webhook_standard_key(a, key, &n), 0);
	assert_int_equal(n, WEBHOOK_STANDARD_KEY_MIN);
	assert_int_equal(webhook_standard_secret(a, 38), -1); /* no room for the NUL */
}

static void test_signing_names(void **state)
{
	(void)state;
	assert_true(webhook_signing_valid("callplane"));
	assert_true(webhook_signing_valid("standard"));
	assert_false(webhook_signing_valid("Standard"));
	assert_false(webhook_signing_valid(""));
	assert_false(webhook_signing_valid(NULL));
}

int main(void)
{
	log_set_level(LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_standard_matches_the_spec_example),
		cmocka_unit_test(test_callplane_signature),
		cmocka_unit_test(test_standard_key),
		cmocka_unit_test(test_standard_secret_generated),
		cmocka_unit_test(test_signing_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
