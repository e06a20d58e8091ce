/*
 * test_range.c - http/range.c: the one range served, what is ignored (the whole file) and
 * what is refused (416), against RFC 9110 section 14.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http/range.h"

static void expect_part(const char *header, uint64_t size, uint64_t off, uint64_t len)
{
	uint64_t o = 99, l = 99;
	assert_int_equal(http_range_parse(header, size, &o, &l), HTTP_RANGE_PARTIAL);
	assert_int_equal(o, off);
	assert_int_equal(l, len);
}

static void expect_kind(const char *header, uint64_t size, enum http_range kind)
{
	uint64_t o = 99, l = 99;
	assert_int_equal(http_range_parse(header, size, &o, &l), kind);
}

static void test_one_range(void **state)
{
	(void)state;
	expect_part("bytes=0-43", 1000, 0, 44);
	expect_part("bytes=100-", 1000, 100, 900);
	expect_part("bytes=-100", 1000, 900, 100);
	expect_part("bytes=999-999", 1000, 999, 1);
	expect_part("bytes=990-5000", 1000, 990, 10); /* the end is clipped */
	expect_part("bytes=-5000", 1000, 0, 1000);    /* a longer suffix: all of it */
	expect_part("BYTES=1-2", 1000, 1, 2);         /* the unit is case-insensitive */
	expect_part("bytes= 1-2 ", 1000, 1, 2);       /* optional whitespace */
	expect_part("bytes=0-18446744073709551615", 10, 0, 10);
}

static void test_unsatisfiable(void **state)
{
	(void)state;
	expect_kind("bytes=1000-", 1000, HTTP_RANGE_UNSATISFIABLE);
	expect_kind("bytes=1000-2000", 1000, HTTP_RANGE_UNSATISFIABLE);
	expect_kind("bytes=-0", 1000, HTTP_RANGE_UNSATISFIABLE);
	expect_kind("bytes=0-", 0, HTTP_RANGE_UNSATISFIABLE); /* an empty file has no byte 0 */
	expect_kind("bytes=-5", 0, HTTP_RANGE_UNSATISFIABLE);
}

static void test_ignored_means_the_whole_file(void **state)
{
	(void)state;
	const char *ignored[] = {
		NULL,
		"",
		"bytes=",
		"bytes=-",
		"bytes=5-2",
		"bytes=0-1,5-6",
		"items=0-1",
		"bytes=a-b",
		"bytes=+1-2",
		"bytes=1--2",
		"bytes=0x10-",
		"bytes=1-2x",
		"bytes=18446744073709551616-", /* overflows: not a number we read */
		"bytes 0-1",
	};
	for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
		expect_kind(ignored[i], 1000, HTTP_RANGE_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_range),
		cmocka_unit_test(test_unsatisfiable),
		cmocka_unit_test(test_ignored_means_the_whole_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
