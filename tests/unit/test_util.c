/*
 * test_util.c - core/util.c (time, ids, hex, SHA-256, integer parsing), core/list.h, and the
 * percent-decoder of the HTTP router (http_percent_decode, the part of src/http/ that stands
 * alone).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "core/list.h"
#include "core/log.h"
#include "core/util.h"
#include "http/http_internal.h"

/* ---- cp_rfc3339 ------------------------------------------------------------------------- */

static void check_rfc3339(int64_t ms, const char *want)
{
	char buf[CP_RFC3339_LEN + 1];
	memset(buf, 'X', sizeof buf);
	cp_rfc3339(ms, buf);
	assert_string_equal(buf, want);
	assert_int_equal(strlen(buf), CP_RFC3339_LEN);
}

static void test_rfc3339_known_values(void **state)
{
	(void)state;
	check_rfc3339(0, "1970-01-01T00:00:00.000Z");
	check_rfc3339(1, "1970-01-01T00:00:00.001Z");
	check_rfc3339(999, "1970-01-01T00:00:00.999Z");
	check_rfc3339(1000, "1970-01-01T00:00:01.000Z");
	check_rfc3339(61010, "1970-01-01T00:01:01.010Z");
	check_rfc3339(1795316516123, "2026-11-22T03:01:56.123Z");
	check_rfc3339(951827696007, "2000-02-29T12:34:56.007Z");    /* leap day */
	check_rfc3339(253402300799999, "9999-12-31T23:59:59.999Z"); /* the last representable */
	check_rfc3339(-1, "1969-12-31T23:59:59.999Z");              /* before the epoch */
	/* out of four-digit years (a corrupt row or clock): clamped, never longer */
	check_rfc3339(253402300800000, "9999-12-31T23:59:59.999Z");
	check_rfc3339(INT64_MAX, "9999-12-31T23:59:59.999Z");
	check_rfc3339(INT64_MIN, "0000-01-01T00:00:00.000Z");
}

static void test_rfc3339_now_is_sane(void **state)
{
	(void)state;
	int64_t before = (int64_t)time(NULL) * 1000;
	int64_t now = cp_now_ms();
	int64_t after = (int64_t)time(NULL) * 1000 + 1000;
	assert_true(now >= before && now <= after);
	char buf[CP_RFC3339_LEN + 1];
	cp_rfc3339(now, buf);
	assert_int_equal(strlen(buf), CP_RFC3339_LEN);
	assert_int_equal(buf[10], 'T');
	assert_int_equal(buf[19], '.');
	assert_int_equal(buf[23], 'Z');
	int64_t m1 = cp_mono_us();
	int64_t m2 = cp_mono_us();
	assert_true(m2 >= m1);
}

/* ---- uuid ------------------------------------------------------------------------------- */

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_uuid4_shape(const char *u)
{
	assert_int_equal(strlen(u), CP_UUID_LEN);
	for (int i = 0; i < CP_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(u[i], '-');
		else
			assert_true(is_lower_hex(u[i]));
	}
	assert_int_equal(u[14], '4');           /* version 4 */
	assert_non_null(strchr("89ab", u[19])); /* RFC 4122 variant */
	assert_true(u[19] != '\0');
	assert_true(cp_is_uuid(u));
}

static int cmp_uuid(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static void test_uuid4_format_and_uniqueness(void **state)
{
	(void)state;
	enum { N = 1000 };
	char(*ids)[CP_UUID_LEN + 1] = calloc(N, sizeof *ids);
	assert_non_null(ids);
	for (int i = 0; i < N; i++) {
		assert_int_equal(cp_uuid4(ids[i]), 0);
		check_uuid4_shape(ids[i]);
	}
	qsort(ids, N, sizeof *ids, cmp_uuid);
	int dups = 0;
	for (int i = 1; i < N; i++)
		dups += strcmp(ids[i - 1], ids[i]) == 0;
	free(ids);
	assert_int_equal(dups, 0);
}

static void test_uuid4_variant_nibbles_vary(void **state)
{
	/* over many ids, every variant nibble 8,9,a,b shows up and the version is always 4 */
	(void)state;
	static const char variants[] = "89ab";
	bool seen[4] = {false};
	for (int i = 0; i < 400; i++) {
		char u[CP_UUID_LEN + 1];
		assert_int_equal(cp_uuid4(u), 0);
		assert_int_equal(u[14], '4');
		const char *p = strchr(variants, u[19]);
		assert_non_null(p);
		assert_true(*p != '\0');
		seen[p - variants] = true;
	}
	for (int i = 0; i < 4; i++)
		assert_true(seen[i]);
}

static void test_is_uuid(void **state)
{
	(void)state;
	assert_true(cp_is_uuid("1b4e28ba-2fa1-41d2-883f-0016d3cca427"));
	assert_true(cp_is_uuid("00000000-0000-0000-0000-000000000000"));
	assert_true(cp_is_uuid("1B4E28BA-2FA1-41D2-883F-0016D3CCA427"));
	const char *bad[] = {
		"",
		"1b4e28ba-2fa1-41d2-883f-0016d3cca42",   /* 35 */
		"1b4e28ba-2fa1-41d2-883f-0016d3cca4271", /* 37 */
		"1b4e28ba2fa141d2883f0016d3cca427",      /* no dashes */
		"1b4e28ba-2fa1-41d2-883f_0016d3cca427",  /* wrong separator */
		"1b4e28b-a2fa1-41d2-883f-0016d3cca427",  /* dash misplaced */
		"1b4e28ba-2fa1-41d2-883f-0016d3cca42g",  /* non-hex */
		"1b4e28ba-2fa1-41d2-883f-0016d3cca42 ",
		" 1b4e28ba-2fa1-41d2-883f-0016d3cca42",
		"../../../../../../../../../etc/passwd",
		"1b4e28ba-2fa1-41d2-883f-0016d3cca4\xc3\xa9",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (cp_is_uuid(bad[i]))
			print_error("accepted \"%s\"\n", bad[i]);
		assert_false(cp_is_uuid(bad[i]));
	}
	assert_false(cp_is_uuid(NULL));
}

/* ---- E.164 ------------------------------------------------------------------------------ */

static void test_is_e164(void **state)
{
	(void)state;
	const char *good[] = {"+12", "+15550001111", "+442071234567", "+123456789012345"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_true(cp_is_e164(good[i]));
	const char *bad[] = {"",
			     "+",
			     "+1",
			     "+0123",
			     "+01",
			     "15550001111",
			     "++15550001111",
			     "+1234567890123456",
			     "+1555 0001111",
			     "+1555-0001111",
			     "+1555a",
			     " +15550001111",
			     "+15550001111 ",
			     "+\xd9\xa3\xd9\xa3",
			     "tel:+1555"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (cp_is_e164(bad[i]))
			print_error("accepted \"%s\"\n", bad[i]);
		assert_false(cp_is_e164(bad[i]));
	}
	assert_false(cp_is_e164(NULL));
}

/* ---- cp_parse_int ----------------------------------------------------------------------- */

static void test_parse_int_valid(void **state)
{
	(void)state;
	long long v = -1;
	assert_true(cp_parse_int("42", 0, 100, &v));
	assert_int_equal(v, 42);
	assert_true(cp_parse_int("0", 0, 100, &v));
	assert_int_equal(v, 0);
	assert_true(cp_parse_int("-5", -10, 10, &v));
	assert_true(v == -5);
	/* bounds are inclusive */
	assert_true(cp_parse_int("1", 1, 200, &v));
	assert_int_equal(v, 1);
	assert_true(cp_parse_int("200", 1, 200, &v));
	assert_int_equal(v, 200);
	assert_true(cp_parse_int("86400", 1, 86400, &v));
	assert_int_equal(v, 86400);
	/* the extremes of long long */
	assert_true(cp_parse_int("9223372036854775807", LLONG_MIN, LLONG_MAX, &v));
	assert_true(v == LLONG_MAX);
	assert_true(cp_parse_int("-9223372036854775808", LLONG_MIN, LLONG_MAX, &v));
	assert_true(v == LLONG_MIN);
}

static void test_parse_int_rejects(void **state)
{
	(void)state;
	long long v = 12345;
	/* out of bounds */
	assert_false(cp_parse_int("0", 1, 200, &v));
	assert_false(cp_parse_int("201", 1, 200, &v));
	assert_false(cp_parse_int("-1", 0, 100, &v));
	assert_false(cp_parse_int("86401", 1, 86400, &v));
	/* overflow: strtoll would clamp to LLONG_MAX/LLONG_MIN, which is within the bounds */
	assert_false(cp_parse_int("9223372036854775808", LLONG_MIN, LLONG_MAX, &v));
	assert_false(cp_parse_int("-9223372036854775809", LLONG_MIN, LLONG_MAX, &v));
	assert_false(cp_parse_int("99999999999999999999999", LLONG_MIN, LLONG_MAX, &v));
	/* not (only) a number */
	const char *junk[] = {"",    "abc", "12abc", "12 ", "12\n", " 12",   "\t12", "\n12",
			      "1.5", "1e3", "0x10",  "-",   "--1",  "1,000", "5%"};
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		if (cp_parse_int(junk[i], LLONG_MIN, LLONG_MAX, &v))
			print_error("accepted \"%s\"\n", junk[i]);
		assert_false(cp_parse_int(junk[i], LLONG_MIN, LLONG_MAX, &v));
	}
	assert_false(cp_parse_int(NULL, LLONG_MIN, LLONG_MAX, &v));
}

/* ---- hex / sha256 ----------------------------------------------------------------------- */

static void test_hex(void **state)
{
	(void)state;
	const unsigned char in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff};
	char out[2 * sizeof in + 1];
	memset(out, 'X', sizeof out);
	cp_hex(in, sizeof in, out);
	assert_string_equal(out, "00017f80abcdefff");
	char empty[1] = {'X'};
	cp_hex(in, 0, empty);
	assert_string_equal(empty, "");
	char one[3];
	cp_hex("\x0a", 1, one);
	assert_string_equal(one, "0a");
}

static void test_sha256(void **state)
{
	(void)state;
	char out[CP_SHA256_HEX_LEN + 1];
	cp_sha256_hex("abc", 3, out);
	assert_string_equal(out,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	cp_sha256_hex("", 0, out);
	assert_string_equal(out,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	cp_sha256_hex(two, strlen(two), out);
	assert_string_equal(out,
			    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* length is honoured: embedded bytes past len do not count */
	cp_sha256_hex("abcdef", 3, out);
	assert_string_equal(out,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_random(void **state)
{
	(void)state;
	unsigned char a[32] = {0}, b[32] = {0};
	assert_int_equal(cp_random(a, sizeof a), 0);
	assert_int_equal(cp_random(b, sizeof b), 0);
	assert_memory_not_equal(a, b, sizeof a);
}

/* ---- http_percent_decode ---------------------------------------------------------------- */

static void check_decode(const char *in, bool plus, const char *want)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", in);
	bool ok = http_percent_decode(buf, plus);
	if (!ok)
		print_error("decode(\"%s\", %d) failed\n", in, plus);
	assert_true(ok);
	assert_string_equal(buf, want);
}

static void check_decode_fails(const char *in, bool plus)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", in);
	bool ok = http_percent_decode(buf, plus);
	if (ok)
		print_error("decode(\"%s\", %d) accepted\n", in, plus);
	assert_false(ok);
}

static void test_percent_decode_valid(void **state)
{
	(void)state;
	check_decode("", false, "");
	check_decode("plain", false, "plain");
	check_decode("a%2Fb", false, "a/b");
	check_decode("a%2fb", false, "a/b");
	check_decode("%41%42%43", false, "ABC");
	check_decode("%2F", true, "/");
	check_decode("abc123%40host", false, "abc123@host");
	check_decode("%e2%82%AC", false, "\xe2\x82\xac"); /* UTF-8 euro sign */
	check_decode("%25", false, "%");                  /* a literal percent */
	check_decode("%2541", false, "%41");              /* decoded once only */
	check_decode("%20", false, " ");
	check_decode("%20", true, " ");
}

static void test_percent_decode_plus(void **state)
{
	(void)state;
	check_decode("a+b", true, "a b");
	check_decode("a+b", false, "a+b");
	check_decode("++", true, "  ");
	check_decode("++", false, "++");
	/* an encoded plus is always a plus */
	check_decode("a%2Bb", true, "a+b");
	check_decode("a%2Bb", false, "a+b");
}

static void test_percent_decode_rejects(void **state)
{
	(void)state;
	for (int plus = 0; plus < 2; plus++) {
		check_decode_fails("%zz", plus);
		check_decode_fails("a%zzb", plus);
		check_decode_fails("%g1", plus);
		check_decode_fails("%1g", plus);
		check_decode_fails("%00", plus);
		check_decode_fails("a%00b", plus);
		check_decode_fails("%2", plus);
		check_decode_fails("abc%2", plus);
		check_decode_fails("%", plus);
		check_decode_fails("abc%", plus);
		check_decode_fails("% 1", plus);
		check_decode_fails("%-1", plus);
		check_decode_fails("ok%2Fthen%zz", plus);
	}
}

/* ---- args_parse (cli/args.h) ------------------------------------------------------------ */

#define USAGE "usage: test [--name NAME] [--tenant ID] POS...\n"

static void test_args_ok(void **state)
{
	(void)state;
	const char *name = NULL, *tenant = NULL, *num = NULL;
	struct opt opts[] = {{"name", &name, OPT_REQUIRED},
			     {"tenant", &tenant, OPT_OPTIONAL},
			     {"max-duration", &num, OPT_OPTIONAL},
			     {NULL, NULL, OPT_OPTIONAL}};
	char *argv[] = {"first",  "--name",         "alice", "--tenant=t-1",
			"second", "--max-duration", "-5",    NULL};
	const char *pos[4] = {NULL};
	int n_pos = -1;
	assert_int_equal(args_parse(7, argv, opts, pos, 4, &n_pos, USAGE), ARGS_OK);
	assert_int_equal(n_pos, 2);
	assert_string_equal(pos[0], "first");
	assert_string_equal(pos[1], "second");
	assert_string_equal(name, "alice");
	assert_string_equal(tenant, "t-1");
	assert_string_equal(num, "-5"); /* a value may look like a negative number */
	/* values point into argv */
	assert_ptr_equal(name, argv[2]);
}

static void test_args_equals_forms(void **state)
{
	(void)state;
	const char *name = NULL;
	struct opt opts[] = {{"name", &name, OPT_OPTIONAL}, {NULL, NULL, OPT_OPTIONAL}};
	char *argv[] = {"--name=a=b", NULL};
	int n_pos;
	assert_int_equal(args_parse(1, argv, opts, NULL, 0, &n_pos, USAGE), ARGS_OK);
	assert_string_equal(name, "a=b"); /* only the first '=' separates */
	assert_int_equal(n_pos, 0);
	/* an option given twice is an error, whichever forms */
	char *argv2[] = {"--name", "x", "--name=y", NULL};
	assert_int_equal(args_parse(3, argv2, opts, NULL, 0, &n_pos, USAGE), ARGS_ERROR);
	/* "--" ends the options */
	const char *pos[2];
	name = NULL;
	char *argv3[] = {"--name", "x", "--", "--name", "-y", NULL};
	assert_int_equal(args_parse(5, argv3, opts, pos, 2, &n_pos, USAGE), ARGS_OK);
	assert_string_equal(name, "x");
	assert_int_equal(n_pos, 2);
	assert_string_equal(pos[0], "--name");
	assert_string_equal(pos[1], "-y");
	/* a value that is itself an option: the option before it has none */
	name = NULL;
	char *argv4[] = {"--name", "--name", NULL};
	assert_int_equal(args_parse(2, argv4, opts, NULL, 0, &n_pos, USAGE), ARGS_ERROR);
}

static void test_args_errors(void **state)
{
	(void)state;
	const char *name = NULL, *tenant = NULL;
	struct opt opts[] = {{"name", &name, OPT_REQUIRED},
			     {"tenant", &tenant, OPT_OPTIONAL},
			     {NULL, NULL, OPT_OPTIONAL}};
	const char *pos[1];
	int n_pos;
	/* unknown option, and a mere prefix of a known one */
	char *a1[] = {"--name", "x", "--bogus", "1", NULL};
	assert_int_equal(args_parse(4, a1, opts, pos, 1, &n_pos, USAGE), ARGS_ERROR);
	name = NULL;
	char *a2[] = {"--name", "x", "--ten", "1", NULL};
	assert_int_equal(args_parse(4, a2, opts, pos, 1, &n_pos, USAGE), ARGS_ERROR);
	/* a value is missing */
	name = NULL;
	char *a3[] = {"--name", NULL};
	assert_int_equal(args_parse(1, a3, opts, pos, 1, &n_pos, USAGE), ARGS_ERROR);
	/* a required option is missing */
	name = NULL;
	char *a4[] = {"--tenant", "t", NULL};
	assert_int_equal(args_parse(2, a4, opts, pos, 1, &n_pos, USAGE), ARGS_ERROR);
	/* too many positionals */
	name = NULL;
	char *a5[] = {"--name", "x", "p1", "p2", NULL};
	assert_int_equal(args_parse(4, a5, opts, pos, 1, &n_pos, USAGE), ARGS_ERROR);
	/* no positionals allowed at all */
	name = NULL;
	char *a6[] = {"--name", "x", "p1", NULL};
	assert_int_equal(args_parse(3, a6, opts, NULL, 0, &n_pos, USAGE), ARGS_ERROR);
}

static void test_args_flags(void **state)
{
	(void)state;
	const char *all = NULL, *db = NULL;
	struct opt opts[] = {
		{"all", &all, OPT_FLAG}, {"db", &db, OPT_OPTIONAL}, {NULL, NULL, OPT_OPTIONAL}};
	const char *pos[1];
	int n_pos;
	/* a flag takes no value: what follows it is the next argument */
	char *a1[] = {"--all", "p1", "--db", "x", NULL};
	assert_int_equal(args_parse(4, a1, opts, pos, 1, &n_pos, USAGE), ARGS_OK);
	assert_string_equal(all, "1");
	assert_int_equal(n_pos, 1);
	assert_string_equal(pos[0], "p1");
	assert_string_equal(db, "x");
	/* absent: left as it was */
	all = NULL;
	char *a2[] = {"--db", "y", NULL};
	assert_int_equal(args_parse(2, a2, opts, pos, 1, &n_pos, USAGE), ARGS_OK);
	assert_null(all);
	/* --flag=value is an error */
	char *a3[] = {"--all=yes", NULL};
	assert_int_equal(args_parse(1, a3, opts, pos, 1, &n_pos, USAGE), ARGS_ERROR);
}

static void test_args_help(void **state)
{
	(void)state;
	const char *name = NULL;
	struct opt opts[] = {{"name", &name, OPT_REQUIRED}, {NULL, NULL, OPT_OPTIONAL}};
	int n_pos;
	char *a1[] = {"--help", NULL};
	assert_int_equal(args_parse(1, a1, opts, NULL, 0, &n_pos, USAGE), ARGS_HELP);
	char *a2[] = {"-h", NULL};
	assert_int_equal(args_parse(1, a2, opts, NULL, 0, &n_pos, USAGE), ARGS_HELP);
	/* a bad option alone is an error, but --help before it still gives help (and name, though
	 * required, is missing in both) */
	char *a3[] = {"--bogus=1", NULL};
	assert_int_equal(args_parse(1, a3, opts, NULL, 0, &n_pos, USAGE), ARGS_ERROR);
	char *a4[] = {"--help", "--bogus=1", NULL};
	assert_int_equal(args_parse(2, a4, opts, NULL, 0, &n_pos, USAGE), ARGS_HELP);
}

static void test_utf8_scrub(void **state)
{
	(void)state;
	struct {
		const char *in, *out;
		size_t bad;
	} cases[] = {
		{"plain ascii", "plain ascii", 0},
		{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x9e",
		 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x9e", 0},
		{"status \"\xff\"", "status \"?\"", 1},
		{"\xc0\xaf", "??", 2},           /* overlong '/' */
		{"\xe0\x80\xaf", "???", 3},      /* overlong, 3 bytes */
		{"\xed\xa0\x80", "???", 3},      /* a surrogate, U+D800 */
		{"\xf4\x90\x80\x80", "????", 4}, /* above U+10FFFF */
		{"cut \xe2\x82", "cut ??", 2},   /* a sequence cut short at the end */
		{"\x80x", "?x", 1},              /* a lone continuation byte */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char buf[64];
		snprintf(buf, sizeof buf, "%s", cases[i].in);
		assert_int_equal(cp_utf8_scrub(buf), cases[i].bad);
		assert_string_equal(buf, cases[i].out);
	}
}

/* ---- core/list.h ------------------------------------------------------------------------ */

struct item {
	char name;
	struct item *prev, *next;
};

/* The names along next from head, and checks that prev mirrors next. */
static void list_names(struct item *head, char *out)
{
	struct item *before = NULL;
	for (struct item *e = head; e; e = e->next) {
		assert_ptr_equal(e->prev, before);
		*out++ = e->name;
		before = e;
	}
	*out = 0;
}

static void test_list_push_and_unlink(void **state)
{
	(void)state;
	struct item a = {.name = 'a'}, b = {.name = 'b'}, c = {.name = 'c'}, d = {.name = 'd'};
	struct item *head = NULL;
	char names[8];
	LIST_PUSH(head, &a);
	LIST_PUSH(head, &b);
	LIST_PUSH(head, &c);
	LIST_PUSH(head, &d);
	list_names(head, names);
	assert_string_equal(names, "dcba");
	LIST_UNLINK(head, &c); /* a middle one */
	list_names(head, names);
	assert_string_equal(names, "dba");
	assert_null(c.prev);
	assert_null(c.next);
	LIST_UNLINK(head, &d); /* the first */
	list_names(head, names);
	assert_string_equal(names, "ba");
	LIST_UNLINK(head, &a); /* the last */
	list_names(head, names);
	assert_string_equal(names, "b");
	LIST_PUSH(head, &c); /* an element taken out goes back in */
	list_names(head, names);
	assert_string_equal(names, "cb");
	LIST_UNLINK(head, &b);
	LIST_UNLINK(head, &c); /* the only one */
	assert_null(head);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	json_object_seed(0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3339_known_values),
		cmocka_unit_test(test_rfc3339_now_is_sane),
		cmocka_unit_test(test_uuid4_format_and_uniqueness),
		cmocka_unit_test(test_uuid4_variant_nibbles_vary),
		cmocka_unit_test(test_is_uuid),
		cmocka_unit_test(test_is_e164),
		cmocka_unit_test(test_parse_int_valid),
		cmocka_unit_test(test_parse_int_rejects),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_percent_decode_valid),
		cmocka_unit_test(test_percent_decode_plus),
		cmocka_unit_test(test_percent_decode_rejects),
		cmocka_unit_test(test_args_ok),
		cmocka_unit_test(test_args_equals_forms),
		cmocka_unit_test(test_args_errors),
		cmocka_unit_test(test_args_flags),
		cmocka_unit_test(test_args_help),
		cmocka_unit_test(test_utf8_scrub),
		cmocka_unit_test(test_list_push_and_unlink),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
