/*
 * test_dial.c - call/dial.c: which destinations a tenant's dial policy and a key's narrowing
 * let through (a table of policy, key, destination and the exact answer), and which policy
 * texts are well-formed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "call/dial.h"
#include "core/log.h"

#define NOT_ALLOWED "sip: URIs are not allowed"
#define HOST_NOT "this sip: URI's host is not allowed"
#define REDIRECTS                                                                   \
	"sip: URIs with a maddr parameter, headers or several '@' are not allowed " \
	"where only some hosts are"
#define DENIED "this number is not allowed for this tenant: its prefix is denied"
#define NOT_LISTED "this number is not allowed for this tenant: no allowed prefix starts it"

struct row {
	const char *sip, *allow, *deny; /* the tenant's policy */
	const char *key;                /* the key's sip: policy ("" = none) */
	const char *to;
	const char *refusal; /* NULL: allowed */
};

static const struct row table[] = {
	/* sip: URIs under none (and "", a tenant stored without a policy), any, a host list */
	{"none", "", "", "", "sip:bob@127.0.0.1:5070", NOT_ALLOWED " for this tenant"},
	{"", "", "", "", "sip:bob@127.0.0.1:5070", NOT_ALLOWED " for this tenant"},
	{"none", "", "", "", "SIPS:bob@pbx.example", NOT_ALLOWED " for this tenant"},
	{"any", "", "", "", "sip:bob@127.0.0.1:5070", NULL},
	{"any", "", "", "", "sips:anyone@anywhere.example;transport=tls", NULL},
	{"pbx.example,10.0.0.5", "", "", "", "sip:bob@pbx.example", NULL},
	{"pbx.example,10.0.0.5", "", "", "", "sip:bob@PBX.Example:5061;transport=tcp", NULL},
	{"pbx.example,10.0.0.5", "", "", "", "sip:10.0.0.5", NULL},
	{"pbx.example,10.0.0.5", "", "", "", "sip:+1;phone-context=x@10.0.0.5:5080", NULL},
	{"pbx.example,10.0.0.5", "", "", "", "sip:bob@pbx.example.evil.example",
	 HOST_NOT " for this tenant"},
	{"pbx.example,10.0.0.5", "", "", "", "sip:bob@example", HOST_NOT " for this tenant"},
	{"pbx.example,10.0.0.5", "", "", "", "sip:bob@10.0.0.50", HOST_NOT " for this tenant"},
	{"pbx.example", "", "", "", "sip:bob@pbx.example;maddr=evil.example",
	 REDIRECTS " for this tenant"},
	{"pbx.example", "", "", "", "sip:bob@pbx.example;lr;MADDR=evil.example",
	 REDIRECTS " for this tenant"},
	{"pbx.example", "", "", "", "sip:bob@pbx.example?Route=%3Csip:evil.example%3E",
	 REDIRECTS " for this tenant"},
	{"pbx.example", "", "", "", "sip:bob@evil.example@pbx.example",
	 REDIRECTS " for this tenant"},
	{"pbx.example", "", "", "", "sip:pbx.example", NULL},
	{"[::1]", "", "", "", "sip:bob@[::1]:5070", NULL},
	{"[::1]", "", "", "", "sip:bob@[::2]:5070", HOST_NOT " for this tenant"},
	/* a key narrows, never widens */
	{"any", "", "", "pbx.example", "sip:bob@pbx.example", NULL},
	{"any", "", "", "pbx.example", "sip:bob@other.example", HOST_NOT " for this key"},
	{"any", "", "", "none", "sip:bob@pbx.example", NOT_ALLOWED " for this key"},
	{"any", "", "", "any", "sip:bob@other.example", NULL},
	{"pbx.example", "", "", "any", "sip:bob@other.example", HOST_NOT " for this tenant"},
	{"none", "", "", "any", "sip:bob@pbx.example", NOT_ALLOWED " for this tenant"},
	{"a.example,b.example", "", "", "b.example", "sip:x@a.example", HOST_NOT " for this key"},
	{"a.example,b.example", "", "", "b.example", "sip:x@b.example", NULL},
	/* E.164: allowed unless the prefix lists say otherwise; sip: policies do not apply */
	{"none", "", "", "none", "+15551234567", NULL},
	{"none", "", "+1900,+44871", "", "+19005551234", DENIED},
	{"none", "", "+1900,+44871", "", "+448712345678", DENIED},
	{"none", "", "+1900,+44871", "", "+19015551234", NULL},
	{"none", "+1,+44", "", "", "+15551234567", NULL},
	{"none", "+1,+44", "", "", "+4420123456", NULL},
	{"none", "+1,+44", "", "", "+33123456789", NOT_LISTED},
	{"none", "+1", "+1900", "", "+19005551234", DENIED}, /* deny wins */
	/* prefix lists do not reach sip: URIs (the sip: policy decides) */
	{"any", "+1", "+1900", "", "sip:+19005551234@pbx.example", NULL},
};

static void test_table(void **state)
{
	(void)state;
	int wrong = 0;
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		const struct row *r = &table[i];
		struct dial_policy p = {0};
		snprintf(p.sip_uris, sizeof p.sip_uris, "%s", r->sip);
		snprintf(p.allow_prefixes, sizeof p.allow_prefixes, "%s", r->allow);
		snprintf(p.deny_prefixes, sizeof p.deny_prefixes, "%s", r->deny);
		struct cp_error err = {0};
		enum cp_err e = dial_check(&p, r->key, r->to, &err);
		bool ok = r->refusal ? e == CP_ERR_DESTINATION && !strcmp(err.message, r->refusal)
				     : e == CP_OK;
		if (!ok) {
			fprintf(stderr, "row %zu (%s | key %s | %s): got %d \"%s\", expected %s\n",
				i, r->sip, r->key, r->to, e, err.message,
				r->refusal ? r->refusal : "allowed");
			wrong++;
		}
	}
	assert_int_equal(wrong, 0);
}

static void test_code(void **state)
{
	(void)state;
	assert_int_equal(cp_err_status(CP_ERR_DESTINATION), 403);
	assert_string_equal(cp_err_code(CP_ERR_DESTINATION), "destination_not_allowed");
}

static void test_hosts_valid(void **state)
{
	(void)state;
	static const char *const good[] = {"none",        "any",
					   "pbx.example", "PBX.example,10.0.0.5",
					   "[::1]",       "a-b.example,[2001:db8::1],c.example"};
	static const char *const bad[] = {"",
					  "pbx.example,",
					  ",pbx.example",
					  "a,,b",
					  "pbx example",
					  "pbx.example:5060",
					  "*.example",
					  "sip:pbx.example",
					  "[::1",
					  "[zz::1]",
					  "user@host",
					  "any,pbx.example",
					  "pbx.example,None",
					  "*"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_true(dial_hosts_valid(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (dial_hosts_valid(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
	char longest[DIAL_HOSTS_MAX + 2];
	memset(longest, 'a', sizeof longest);
	for (size_t i = 100; i < DIAL_HOSTS_MAX; i += 101)
		longest[i] = ',';
	longest[DIAL_HOSTS_MAX] = '\0';
	assert_true(dial_hosts_valid(longest));
	longest[DIAL_HOSTS_MAX] = 'a';
	longest[DIAL_HOSTS_MAX + 1] = '\0';
	assert_false(dial_hosts_valid(longest));
}

static void test_prefixes_valid(void **state)
{
	(void)state;
	static const char *const good[] = {"", "+1", "+1900,+44871", "+123456789012345"};
	static const char *const bad[] = {
		"1900", "+", "+1,", ",+1", "+1,,+2", "+19a", "+1234567890123456", "+1 900"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_true(dial_prefixes_valid(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (dial_prefixes_valid(bad[i]))
			fail_msg("accepted \"%s\"", bad[i]);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_code),
		cmocka_unit_test(test_hosts_valid),
		cmocka_unit_test(test_prefixes_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
