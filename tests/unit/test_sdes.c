/*
 * test_sdes.c - the a=crypto attribute (sip/sdes.c, RFC 4568): what is read as usable, what
 * is refused and why, and what is written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sip/sdes.h"

/* base64 of the bytes 1..30 */
#define KEY_B64 "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e"
#define S80 "AES_CM_128_HMAC_SHA1_80"
#define S32 "AES_CM_128_HMAC_SHA1_32"

static enum sdes_result parse(const char *text, struct sdes_crypto *out)
{
	memset(out, 0xA5, sizeof *out);
	return sdes_parse(text, strlen(text), out);
}

/* A refusal leaves *out as it was. */
static void refused(const char *text, enum sdes_result want)
{
	struct sdes_crypto c;
	assert_int_equal(parse(text, &c), want);
	struct sdes_crypto untouched;
	memset(&untouched, 0xA5, sizeof untouched);
	assert_memory_equal(&c, &untouched, sizeof c);
}

static void test_a_plain_line_is_read(void **state)
{
	(void)state;
	struct sdes_crypto c;
	assert_int_equal(parse("1 " S80 " inline:" KEY_B64, &c), SDES_OK);
	assert_int_equal(c.tag, 1);
	assert_int_equal(c.suite, MEDIA_SRTP_AES128_SHA1_80);
	for (int i = 0; i < MEDIA_SRTP_KEY_LEN; i++)
		assert_int_equal(c.key[i], i + 1);
	assert_int_equal(parse("999999999 " S32 " inline:" KEY_B64 "\r\n", &c), SDES_OK);
	assert_int_equal(c.tag, 999999999);
	assert_int_equal(c.suite, MEDIA_SRTP_AES128_SHA1_32);
	/* ABNF strings are case-insensitive; several spaces or tabs separate */
	assert_int_equal(parse("7\taes_cm_128_hmac_sha1_80  INLINE:" KEY_B64 " ", &c), SDES_OK);
	assert_int_equal(c.tag, 7);
	assert_int_equal(c.suite, MEDIA_SRTP_AES128_SHA1_80);
	/* the value is read up to len, not to a NUL */
	const char *line = "3 " S80 " inline:" KEY_B64 "|2^31 and what follows";
	assert_int_equal(sdes_parse(line, strlen(line) - strlen(" and what follows"), &c), SDES_OK);
	assert_int_equal(c.tag, 3);
}

static void test_lifetimes(void **state)
{
	(void)state;
	struct sdes_crypto c;
	assert_int_equal(parse("1 " S80 " inline:" KEY_B64 "|2^20", &c), SDES_OK);
	assert_int_equal(parse("1 " S80 " inline:" KEY_B64 "|2^31", &c), SDES_OK);
	assert_int_equal(parse("1 " S80 " inline:" KEY_B64 "|2^48", &c), SDES_OK);
	assert_int_equal(parse("1 " S80 " inline:" KEY_B64 "|1048576", &c), SDES_OK);
	assert_int_equal(parse("1 " S80 " inline:" KEY_B64 "|281474976710656", &c), SDES_OK);
	refused("1 " S80 " inline:" KEY_B64 "|2^19", SDES_UNSUPPORTED);
	refused("1 " S80 " inline:" KEY_B64 "|2^49", SDES_UNSUPPORTED);
	refused("1 " S80 " inline:" KEY_B64 "|1048575", SDES_UNSUPPORTED);
	refused("1 " S80 " inline:" KEY_B64 "|281474976710657", SDES_UNSUPPORTED);
	refused("1 " S80 " inline:" KEY_B64 "|2^", SDES_MALFORMED);
	refused("1 " S80 " inline:" KEY_B64 "|2^x", SDES_MALFORMED);
	refused("1 " S80 " inline:" KEY_B64 "|", SDES_MALFORMED);
	refused("1 " S80 " inline:" KEY_B64 "|forever", SDES_MALFORMED);
	refused("1 " S80 " inline:" KEY_B64 "|99999999999999999999999", SDES_MALFORMED);
	refused("1 " S80 " inline:" KEY_B64 "|2^31|2^31", SDES_MALFORMED);
}

static void test_an_mki_is_not_used(void **state)
{
	(void)state;
	refused("1 " S80 " inline:" KEY_B64 "|1:4", SDES_UNSUPPORTED);
	refused("1 " S80 " inline:" KEY_B64 "|2^31|1:4", SDES_UNSUPPORTED);
	refused("1 " S80 " inline:" KEY_B64 "|1:128", SDES_UNSUPPORTED);
	refused("1 " S80 " inline:" KEY_B64 "|1:0", SDES_MALFORMED);
	refused("1 " S80 " inline:" KEY_B64 "|1:129", SDES_MALFORMED);
	refused("1 " S80 " inline:" KEY_B64 "|1:", SDES_MALFORMED);
	refused("1 " S80 " inline:" KEY_B64 "|:4", SDES_MALFORMED);
	refused("1 " S80 " inline:" KEY_B64 "|1:0004", SDES_MALFORMED);
}

static void test_bad_keys(void **state)
{
	(void)state;
	/* one character outside base64; one short; 32 bytes (44 characters, padded); padding */
	refused("1 " S80 " inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0!", SDES_BAD_KEY);
	refused("1 " S80 " inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0", SDES_BAD_KEY);
	refused("1 " S80 " inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=", SDES_BAD_KEY);
	refused("1 " S80 " inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB==", SDES_BAD_KEY);
	refused("1 " S80 " inline:", SDES_BAD_KEY);
	refused("1 " S80 " inline:|2^31", SDES_BAD_KEY);
}

static void test_unknown_suites(void **state)
{
	(void)state;
	refused("1 AES_256_CM_HMAC_SHA1_80 inline:" KEY_B64, SDES_UNKNOWN_SUITE);
	refused("1 F8_128_HMAC_SHA1_80 inline:" KEY_B64, SDES_UNKNOWN_SUITE);
	refused("1 AES_CM_128_HMAC_SHA1_8 inline:" KEY_B64, SDES_UNKNOWN_SUITE);
	refused("1 NULL_HMAC_SHA1_80 inline:" KEY_B64, SDES_UNKNOWN_SUITE);
}

static void test_malformed_lines(void **state)
{
	(void)state;
	refused("", SDES_MALFORMED);
	refused("1", SDES_MALFORMED);
	refused("1 " S80, SDES_MALFORMED);
	refused("1 " S80 " ", SDES_MALFORMED);
	refused("0 " S80 " inline:" KEY_B64, SDES_MALFORMED);          /* tag 0 */
	refused("1000000000 " S80 " inline:" KEY_B64, SDES_MALFORMED); /* ten digits */
	refused("x1 " S80 " inline:" KEY_B64, SDES_MALFORMED);
	refused("1" S80 " inline:" KEY_B64, SDES_MALFORMED);
	refused("1 " S80 " key:" KEY_B64, SDES_MALFORMED);
	refused("1 " S80 " " KEY_B64, SDES_MALFORMED);
}

static void test_session_parameters_and_several_keys(void **state)
{
	(void)state;
	refused("1 " S80 " inline:" KEY_B64 " KDR=1", SDES_UNSUPPORTED);
	refused("1 " S80 " inline:" KEY_B64 " UNENCRYPTED_SRTP", SDES_UNSUPPORTED);
	refused("1 " S80 " inline:" KEY_B64 "|2^31 UNAUTHENTICATED_SRTP", SDES_UNSUPPORTED);
	refused("1 " S80 " inline:" KEY_B64 ";inline:" KEY_B64, SDES_UNSUPPORTED);
}

static void test_printing(void **state)
{
	(void)state;
	struct sdes_crypto c = {.tag = 1, .suite = MEDIA_SRTP_AES128_SHA1_80};
	for (int i = 0; i < MEDIA_SRTP_KEY_LEN; i++)
		c.key[i] = (uint8_t)(i + 1);
	char buf[128];
	const char *want = "a=crypto:1 " S80 " inline:" KEY_B64 "\r\n";
	assert_int_equal(sdes_print(&c, buf, sizeof buf), (int)strlen(want));
	assert_string_equal(buf, want);
	c.tag = 42;
	c.suite = MEDIA_SRTP_AES128_SHA1_32;
	memset(c.key, 0xFF, sizeof c.key);
	want = "a=crypto:42 " S32 " inline:////////////////////////////////////////\r\n";
	assert_int_equal(sdes_print(&c, buf, sizeof buf), (int)strlen(want));
	assert_string_equal(buf, want);
	/* what is printed reads back the same */
	struct sdes_crypto back;
	assert_int_equal(sdes_parse(buf + 9, strlen(buf) - 9, &back), SDES_OK);
	assert_int_equal(back.tag, 42);
	assert_int_equal(back.suite, MEDIA_SRTP_AES128_SHA1_32);
	assert_memory_equal(back.key, c.key, sizeof c.key);
	/* too small a buffer, no tag, no suite: nothing */
	assert_int_equal(sdes_print(&c, buf, strlen(want)), -1);
	assert_string_equal(buf, "");
	c.tag = 0;
	assert_int_equal(sdes_print(&c, buf, sizeof buf), -1);
	c.tag = 1;
	c.suite = MEDIA_SRTP_NONE;
	assert_int_equal(sdes_print(&c, buf, sizeof buf), -1);
	assert_null(sdes_suite_name(MEDIA_SRTP_NONE));
	assert_string_equal(sdes_suite_name(MEDIA_SRTP_AES128_SHA1_32), S32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_plain_line_is_read),
		cmocka_unit_test(test_lifetimes),
		cmocka_unit_test(test_an_mki_is_not_used),
		cmocka_unit_test(test_bad_keys),
		cmocka_unit_test(test_unknown_suites),
		cmocka_unit_test(test_malformed_lines),
		cmocka_unit_test(test_session_parameters_and_several_keys),
		cmocka_unit_test(test_printing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
