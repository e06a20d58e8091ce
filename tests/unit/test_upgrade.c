/*
 * test_upgrade.c - the WebSocket handshake's accept value (http/upgrade.c): RFC 6455's own
 * example, and the keys that are not 16 bytes in base64.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http/http_internal.h"

static void test_rfc6455_example(void **state)
{
	(void)state;
	char out[HTTP_WS_ACCEPT_LEN + 1];
	/* RFC 6455 1.3 and 4.2.2: "the sample nonce" */
	assert_true(http_websocket_accept("dGhlIHNhbXBsZSBub25jZQ==", out));
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	/* RFC 6455 4.1's example key */
	assert_true(http_websocket_accept("x3JJHMbDL1EzLkh9GBhXDw==", out));
	assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

static void test_keys_that_are_not_16_bytes(void **state)
{
	(void)state;
	char out[HTTP_WS_ACCEPT_LEN + 1] = "untouched";
	static const char *const bad[] = {
		NULL,
		"",
		"dGhlIHNhbXBsZSBub25jZQ=",
		"dGhlIHNhbXBsZSBub25jZQ===",
		"dGhlIHNhbXBsZSBub25jZQ",   /* no padding */
		"dGhlIHNhbXBsZSBub25jZR==", /* bits below the 16th byte set */
		"dGhlIHNhbXBsZSBub25j*Q==", /* not base64 */
		"dGhlIHNhbXBsZSBub25jZQ==x",
		"dGhlIHNhbXBsZSBub25jZXM=", /* 17 bytes */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (http_websocket_accept(bad[i], out))
			fail_msg("key %zu (%s) accepted", i, bad[i] ? bad[i] : "NULL");
	}
	assert_string_equal(out, "untouched");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6455_example),
		cmocka_unit_test(test_keys_that_are_not_16_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
