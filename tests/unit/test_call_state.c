/*
 * test_call_state.c - the call state machine and the field rules of call_state.c.
 *
 * The expected transition table is written out here by hand from the contract (docs/API.md and
 * call.h), independently of the table in call_state.c, and every ordered pair is checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/call.h"
#include "core/log.h"
#include "core/util.h"
#include "call_json_parsed.h"

#define NS CALL_STATUS_COUNT

/* expected[from][to]: 1 = a legal single step. Rows/columns in enum order:
 * queued, ringing, in_progress, completed, canceled, failed, busy, no_answer */
static const int expected[8][8] = {
	/*                 que rin inp com can fai bus noa */
	/* queued      */ {0, 1, 1, 0, 1, 1, 1, 1},
	/* ringing     */ {0, 0, 1, 0, 1, 1, 1, 1},
	/* in_progress */ {0, 0, 0, 1, 0, 0, 0, 0},
	/* completed   */ {0, 0, 0, 0, 0, 0, 0, 0},
	/* canceled    */ {0, 0, 0, 0, 0, 0, 0, 0},
	/* failed      */ {0, 0, 0, 0, 0, 0, 0, 0},
	/* busy        */ {0, 0, 0, 0, 0, 0, 0, 0},
	/* no_answer   */ {0, 0, 0, 0, 0, 0, 0, 0},
};

/* the names in enum order, written independently of call_state.c */
static const char *const names[8] = {
	"queued", "ringing", "in_progress", "completed", "canceled", "failed", "busy", "no_answer",
};

static void test_enum_has_eight_statuses(void **state)
{
	(void)state;
	assert_int_equal(CALL_STATUS_COUNT, 8);
	assert_int_equal(CALL_QUEUED, 0);
	assert_int_equal(CALL_RINGING, 1);
	assert_int_equal(CALL_IN_PROGRESS, 2);
	assert_int_equal(CALL_COMPLETED, 3);
	assert_int_equal(CALL_CANCELED, 4);
	assert_int_equal(CALL_FAILED, 5);
	assert_int_equal(CALL_BUSY, 6);
	assert_int_equal(CALL_NO_ANSWER, 7);
}

static void test_every_transition_pair(void **state)
{
	(void)state;
	int mismatches = 0;
	for (int from = 0; from < NS; from++) {
		for (int to = 0; to < NS; to++) {
			bool got = call_transition_allowed((enum call_status)from,
							   (enum call_status)to);
			if (got != (expected[from][to] != 0)) {
				print_error("transition %s -> %s: expected %s, got %s\n",
					    names[from], names[to],
					    expected[from][to] ? "allowed" : "refused",
					    got ? "allowed" : "refused");
				mismatches++;
			}
		}
	}
	assert_int_equal(mismatches, 0);
}

static void test_no_self_transitions(void **state)
{
	(void)state;
	for (int s = 0; s < NS; s++)
		assert_false(call_transition_allowed((enum call_status)s, (enum call_status)s));
}

static void test_terminal_states_have_no_exit(void **state)
{
	(void)state;
	const enum call_status terminal[] = {CALL_COMPLETED, CALL_CANCELED, CALL_FAILED, CALL_BUSY,
					     CALL_NO_ANSWER};
	for (size_t i = 0; i < sizeof terminal / sizeof terminal[0]; i++)
		for (int to = 0; to < NS; to++)
			assert_false(call_transition_allowed(terminal[i], (enum call_status)to));
}

static void test_transition_out_of_range(void **state)
{
	(void)state;
	assert_false(call_transition_allowed((enum call_status)NS, CALL_RINGING));
	assert_false(call_transition_allowed(CALL_QUEUED, (enum call_status)NS));
	assert_false(call_transition_allowed((enum call_status)(-1), CALL_COMPLETED));
}

static void test_sources_of_matches_table(void **state)
{
	(void)state;
	for (int to = 0; to < NS; to++) {
		uint32_t want = 0;
		for (int from = 0; from < NS; from++)
			if (expected[from][to])
				want |= 1u << from;
		uint32_t got = call_sources_of((enum call_status)to);
		if (got != want)
			print_error("call_sources_of(%s) = 0x%x, expected 0x%x\n", names[to], got,
				    want);
		assert_int_equal(got, want);
	}
}

static void test_sources_of_explicit(void **state)
{
	(void)state;
	assert_int_equal(call_sources_of(CALL_QUEUED), 0);
	assert_int_equal(call_sources_of(CALL_RINGING), CALL_BIT(CALL_QUEUED));
	assert_int_equal(call_sources_of(CALL_IN_PROGRESS),
			 CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING));
	assert_int_equal(call_sources_of(CALL_COMPLETED), CALL_BIT(CALL_IN_PROGRESS));
	const enum call_status unanswered[] = {CALL_CANCELED, CALL_FAILED, CALL_BUSY,
					       CALL_NO_ANSWER};
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(call_sources_of(unanswered[i]),
				 CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING));
}

static void test_end_status(void **state)
{
	(void)state;
	assert_int_equal(call_end_status(CALL_QUEUED), CALL_CANCELED);
	assert_int_equal(call_end_status(CALL_RINGING), CALL_CANCELED);
	assert_int_equal(call_end_status(CALL_IN_PROGRESS), CALL_COMPLETED);
	/* and the result is always a legal step from an active state */
	assert_true(call_transition_allowed(CALL_QUEUED, call_end_status(CALL_QUEUED)));
	assert_true(call_transition_allowed(CALL_RINGING, call_end_status(CALL_RINGING)));
	assert_true(call_transition_allowed(CALL_IN_PROGRESS, call_end_status(CALL_IN_PROGRESS)));
}

static void test_status_names_round_trip(void **state)
{
	(void)state;
	for (int s = 0; s < NS; s++) {
		assert_string_equal(call_status_name((enum call_status)s), names[s]);
		enum call_status out = (enum call_status)99;
		assert_true(call_status_parse(names[s], &out));
		assert_int_equal(out, s);
	}
	assert_string_equal(call_status_name((enum call_status)NS), "unknown");
}

static void test_status_parse_rejects_unknown(void **state)
{
	(void)state;
	const char *bad[] = {"",           "unknown", "QUEUED",  "Queued",  "in-progress",
			     "inprogress", "active",  "queued ", " queued", "cancelled",
			     "no-answer",  "complete"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum call_status out = CALL_BUSY;
		if (call_status_parse(bad[i], &out))
			print_error("call_status_parse accepted \"%s\"\n", bad[i]);
		assert_false(call_status_parse(bad[i], &out));
		assert_int_equal(out, CALL_BUSY);
	}
	enum call_status out = CALL_BUSY;
	assert_false(call_status_parse(NULL, &out));
}

static void test_active_and_terminal(void **state)
{
	(void)state;
	for (int s = 0; s < NS; s++) {
		bool active = s == CALL_QUEUED || s == CALL_RINGING || s == CALL_IN_PROGRESS;
		assert_int_equal(call_status_is_active((enum call_status)s), active);
		assert_int_equal(call_status_is_terminal((enum call_status)s), !active);
		assert_int_equal((CALL_ACTIVE_MASK & CALL_BIT(s)) != 0, active);
	}
	assert_false(call_status_is_active((enum call_status)NS));
	assert_false(call_status_is_terminal((enum call_status)NS));
}

static void test_direction_name(void **state)
{
	(void)state;
	assert_string_equal(call_direction_name(CALL_OUTBOUND), "outbound");
	assert_string_equal(call_direction_name(CALL_INBOUND), "inbound");
	assert_string_equal(call_direction_name(CALL_WEB), "web");
}

static void test_reason_valid(void **state)
{
	(void)state;
	char max[CALL_REASON_MAX + 2];
	memset(max, 'a', CALL_REASON_MAX);
	max[CALL_REASON_MAX] = '\0';
	assert_int_equal(strlen(max), 64);
	assert_true(call_reason_valid(max));
	max[CALL_REASON_MAX] = 'b';
	max[CALL_REASON_MAX + 1] = '\0';
	assert_int_equal(strlen(max), 65);
	assert_false(call_reason_valid(max));

	const char *good[] = {"ended_by_api",  "a", "Z", "0", "user-hangup", "v1.2:ok",
			      "ABCxyz_019.:-", "-", "."};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (!call_reason_valid(good[i]))
			print_error("rejected valid reason \"%s\"\n", good[i]);
		assert_true(call_reason_valid(good[i]));
	}
	const char *bad[] = {"",          "has space",   " lead",        "trail ",     "tab\there",
			     "new\nline", "caf\xc3\xa9", "\xe2\x82\xac", "semi;colon", "slash/x",
			     "quote\"",   "plus+",       "at@",          "comma,",     "percent%"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (call_reason_valid(bad[i]))
			print_error("accepted invalid reason \"%s\"\n", bad[i]);
		assert_false(call_reason_valid(bad[i]));
	}
	assert_false(call_reason_valid(NULL));
}

static void test_address_valid(void **state)
{
	(void)state;
	const char *good[] = {
		"sip:bob@example.com",
		"sip:bob@127.0.0.1:5070",
		"sips:alice@example.com:5061",
		"sip:example.com",
		"sip:+15550001111@gw.example.com;user=phone",
		"+15550001111",
		"+12",              /* 2 digits: the minimum */
		"+123456789012345", /* 15 digits: the maximum */
		"+442071234567",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (!call_address_valid(good[i]))
			print_error("rejected valid address \"%s\"\n", good[i]);
		assert_true(call_address_valid(good[i]));
	}
	const char *bad[] = {
		"",
		"hello",
		"sip:",
		"sips:",
		"+0123",
		"+1",
		"+",
		"15550001111",
		"+1234567890123456", /* 16 digits */
		"+1555 0001111",
		"+1555-000-1111",
		"+1555a",
		"tel:+15550001111",
		"http://example.com",
		"sip:@example.com",
		"sip:bob @example.com",
		" sip:bob@example.com",
		"sip:bob@example.com ",
		"sip:bob\t@example.com",
		"sip:bob\x01@example.com",
		"sip:bob@example.com\x7f",
		"sip:bob\r\n@example.com",
		"sip:<bob@example.com>",
		"sip:b\"ob@example.com",
		"sip:bob@ex\xc3\xa9.com",
		"sipbob@example.com",
		"si:bob@example.com",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (call_address_valid(bad[i]))
			print_error("accepted invalid address \"%s\"\n", bad[i]);
		assert_false(call_address_valid(bad[i]));
	}
	assert_false(call_address_valid(NULL));
}

static void test_address_length_limit(void **state)
{
	(void)state;
	char buf[CALL_ADDR_MAX + 8];
	/* exactly 256 bytes: accepted */
	strcpy(buf, "sip:bob@");
	size_t n = strlen(buf);
	memset(buf + n, 'a', CALL_ADDR_MAX - n);
	buf[CALL_ADDR_MAX] = '\0';
	assert_int_equal(strlen(buf), 256);
	assert_true(call_address_valid(buf));
	/* 257 bytes: refused */
	buf[CALL_ADDR_MAX] = 'a';
	buf[CALL_ADDR_MAX + 1] = '\0';
	assert_int_equal(strlen(buf), 257);
	assert_false(call_address_valid(buf));
	/* far too long */
	char big[1024];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	memcpy(big, "sips:", 5);
	assert_false(call_address_valid(big));
}

static void test_stream_url_valid(void **state)
{
	(void)state;
	const char *good[] = {
		"ws://agent.example.com/stream",
		"wss://agent.example.com/media?token=abc&x=1",
		"wss://agent.example.com:8443/twilio",
		"WSS://Agent.Example.com",
		"ws://127.0.0.1:9000",
		"ws://[::1]:9000/s",
		"wss://user:pass@agent.example.com/s",
		"ws://h#frag",
		"ws://h:65535",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (!call_stream_url_valid(good[i]))
			print_error("rejected valid stream url \"%s\"\n", good[i]);
		assert_true(call_stream_url_valid(good[i]));
	}
	const char *bad[] = {
		"",
		"agent.example.com",
		"/stream",
		"http://agent.example.com",
		"https://agent.example.com",
		"ws:/agent.example.com",
		"ws:agent.example.com",
		"ws://",
		"wss://",
		"ws:///path",
		"ws://?q",
		"ws://:9000",
		"ws://user@",
		"ws://user@/p",
		"ws://h:",
		"ws://h:0",
		"ws://h:65536",
		"ws://h:123456",
		"ws://h:80a",
		"ws://[::1",
		"ws://[]:80",
		"ws://[::1]x",
		"ws://[::1]:",
		"ws://agent example.com",
		" ws://h",
		"ws://h ",
		"ws://h/\tx",
		"ws://h/\x01",
		"ws://h/\x7f",
		"ws://h/\r\n",
		"ws://h/caf\xc3\xa9",
		"wsx://h",
		"sip:bob@h",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (call_stream_url_valid(bad[i]))
			print_error("accepted invalid stream url \"%s\"\n", bad[i]);
		assert_false(call_stream_url_valid(bad[i]));
	}
	assert_false(call_stream_url_valid(NULL));
	/* exactly 1024 bytes: accepted; 1025: refused */
	char buf[CALL_STREAM_URL_MAX + 8];
	strcpy(buf, "wss://h/");
	size_t n = strlen(buf);
	memset(buf + n, 'a', CALL_STREAM_URL_MAX - n);
	buf[CALL_STREAM_URL_MAX] = '\0';
	assert_int_equal(strlen(buf), 1024);
	assert_true(call_stream_url_valid(buf));
	buf[CALL_STREAM_URL_MAX] = 'a';
	buf[CALL_STREAM_URL_MAX + 1] = '\0';
	assert_false(call_stream_url_valid(buf));
}

static void test_dtmf_digits_valid(void **state)
{
	(void)state;
	const char *good[] = {"0",
			      "9",
			      "*",
			      "#",
			      "A",
			      "B",
			      "C",
			      "D",
			      "12#",
			      "0123456789*#ABCD",
			      "11111111111111111111111111111111" /* 32: the maximum */};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (!call_dtmf_digits_valid(good[i]))
			print_error("rejected valid digits \"%s\"\n", good[i]);
		assert_true(call_dtmf_digits_valid(good[i]));
	}
	const char *bad[] = {"",
			     "a",
			     "b",
			     "c",
			     "d",
			     "12a",
			     "E",
			     "1 2",
			     " 1",
			     "1\n",
			     "+",
			     "p",
			     "w",
			     ",",
			     "1-2",
			     "\xc2\xb9",
			     "111111111111111111111111111111111" /* 33 */};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (call_dtmf_digits_valid(bad[i]))
			print_error("accepted invalid digits \"%s\"\n", bad[i]);
		assert_false(call_dtmf_digits_valid(bad[i]));
	}
	assert_false(call_dtmf_digits_valid(NULL));
	/* one received digit */
	assert_true(call_dtmf_digit_valid('5'));
	assert_true(call_dtmf_digit_valid('#'));
	assert_true(call_dtmf_digit_valid('D'));
	assert_false(call_dtmf_digit_valid('d'));
	assert_false(call_dtmf_digit_valid('\0'));
	assert_false(call_dtmf_digit_valid('E'));
}

static void test_goodbye_text_valid(void **state)
{
	(void)state;
	char text[4 * CALL_GOODBYE_TEXT_MAX + 8];
	const char *good[] = {"Goodbye.",
			      "x",
			      "Au revoir, \xc3\xa0 bient\xc3\xb4t",
			      "\xe2\x82\xac" /* 3 bytes */,
			      "\xf0\x9f\x91\x8b" /* 4 bytes */,
			      "line one\nline two",
			      " "};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (!call_goodbye_text_valid(good[i]))
			print_error("rejected valid text \"%s\"\n", good[i]);
		assert_true(call_goodbye_text_valid(good[i]));
	}
	const char *bad[] = {"",
			     "\xc3" /* cut */,
			     "\xc3\x28",
			     "\xc0\xaf" /* overlong '/' */,
			     "\xe0\x80\xaf",
			     "\xed\xa0\x80" /* a surrogate */,
			     "\xf4\x90\x80\x80" /* above U+10FFFF */,
			     "\xff",
			     "ok\x80"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (call_goodbye_text_valid(bad[i]))
			print_error("accepted invalid text #%zu\n", i);
		assert_false(call_goodbye_text_valid(bad[i]));
	}
	assert_false(call_goodbye_text_valid(NULL));
	/* characters are counted, not bytes: 1000 of any width, not 1001 */
	memset(text, 'a', CALL_GOODBYE_TEXT_MAX);
	text[CALL_GOODBYE_TEXT_MAX] = '\0';
	assert_true(call_goodbye_text_valid(text));
	text[CALL_GOODBYE_TEXT_MAX] = 'a';
	text[CALL_GOODBYE_TEXT_MAX + 1] = '\0';
	assert_false(call_goodbye_text_valid(text));
	for (int i = 0; i < CALL_GOODBYE_TEXT_MAX; i++)
		memcpy(text + 4 * i, "\xf0\x9f\x91\x8b", 4);
	text[4 * CALL_GOODBYE_TEXT_MAX] = '\0';
	assert_true(call_goodbye_text_valid(text));
	memcpy(text + 4 * CALL_GOODBYE_TEXT_MAX, "\xc3\xa9", 3);
	assert_false(call_goodbye_text_valid(text));
}

static void test_duration(void **state)
{
	(void)state;
	struct call c = {0};
	c.created_at = 1000;
	/* never answered */
	assert_int_equal(call_duration_s(&c), -1);
	c.ended_at = 5000;
	assert_int_equal(call_duration_s(&c), -1);
	/* answered, not ended */
	c.ended_at = 0;
	c.answered_at = 2000;
	assert_int_equal(call_duration_s(&c), -1);
	/* rounding to the nearest second */
	c.answered_at = 10000;
	c.ended_at = 10000;
	assert_int_equal(call_duration_s(&c), 0);
	c.ended_at = 10499;
	assert_int_equal(call_duration_s(&c), 0);
	c.ended_at = 10500;
	assert_int_equal(call_duration_s(&c), 1);
	c.ended_at = 11499;
	assert_int_equal(call_duration_s(&c), 1);
	c.ended_at = 11500;
	assert_int_equal(call_duration_s(&c), 2);
	c.ended_at = 12000;
	assert_int_equal(call_duration_s(&c), 2);
	c.answered_at = 1795316516123;
	c.ended_at = c.answered_at + 3600 * 1000 + 499;
	assert_int_equal(call_duration_s(&c), 3600);
	/* inconsistent clocks never give a negative duration */
	c.answered_at = 20000;
	c.ended_at = 19000;
	assert_int_equal(call_duration_s(&c), -1);
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
static bool is_rfc3339_ms(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	if (!s || strlen(s) != strlen(shape))
		return false;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return false;
	}
	return true;
}

static const char *const call_keys[] = {
	"id",          "agent_id",         "direction",     "from",           "to",
	"status",      "provider_call_id", "created_at",    "answered_at",    "ended_at",
	"duration_s",  "end_reason",       "sip_status",    "max_duration_s", "metadata",
	"redacted_at", "has_recording",    "recording_url",
};
#define N_CALL_KEYS (sizeof call_keys / sizeof call_keys[0])

static void assert_exact_keys(json_t *o)
{
	assert_non_null(o);
	assert_true(json_is_object(o));
	for (size_t i = 0; i < N_CALL_KEYS; i++) {
		if (!json_object_get(o, call_keys[i]))
			print_error("missing key %s\n", call_keys[i]);
		assert_non_null(json_object_get(o, call_keys[i]));
	}
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		bool known = false;
		for (size_t i = 0; i < N_CALL_KEYS; i++)
			known = known || !strcmp(k, call_keys[i]);
		if (!known)
			print_error("unexpected key %s\n", k);
		assert_true(known);
	}
	assert_int_equal(json_object_size(o), N_CALL_KEYS);
}

static void fill_ended_call(struct call *c)
{
	memset(c, 0, sizeof *c);
	c->seq = 7;
	strcpy(c->id, "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
	strcpy(c->tenant_id, "2b4e28ba-2fa1-41d2-883f-0016d3cca427");
	strcpy(c->agent_id, "3b4e28ba-2fa1-41d2-883f-0016d3cca427");
	c->direction = CALL_OUTBOUND;
	c->status = CALL_COMPLETED;
	strcpy(c->from, "+15550001111");
	strcpy(c->to, "sip:bob@127.0.0.1:5070");
	strcpy(c->provider_call_id, "abc123@10.0.0.1");
	strcpy(c->end_reason, "ended_by_api");
	c->sip_status = 200;
	c->max_duration_s = 300;
	c->created_at = 1795316516123;  /* 2026-11-22T03:01:56.123Z */
	c->answered_at = 1795316518000; /* +1.877 s */
	c->ended_at = 1795316530600;    /* 12.6 s after answer -> 13 */
	c->metadata = strdup("{\"crm\":{\"id\":42},\"tag\":\"x\"}");
	assert_non_null(c->metadata);
}

static void test_to_json_full(void **state)
{
	(void)state;
	struct call c;
	fill_ended_call(&c);
	json_t *o = call_to_json(&c);
	assert_exact_keys(o);
	assert_string_equal(json_string_value(json_object_get(o, "id")), c.id);
	assert_string_equal(json_string_value(json_object_get(o, "agent_id")), c.agent_id);
	assert_string_equal(json_string_value(json_object_get(o, "direction")), "outbound");
	assert_string_equal(json_string_value(json_object_get(o, "from")), "+15550001111");
	assert_string_equal(json_string_value(json_object_get(o, "to")), "sip:bob@127.0.0.1:5070");
	assert_string_equal(json_string_value(json_object_get(o, "status")), "completed");
	assert_string_equal(json_string_value(json_object_get(o, "provider_call_id")),
			    "abc123@10.0.0.1");
	assert_string_equal(json_string_value(json_object_get(o, "created_at")),
			    "2026-11-22T03:01:56.123Z");
	assert_string_equal(json_string_value(json_object_get(o, "answered_at")),
			    "2026-11-22T03:01:58.000Z");
	assert_string_equal(json_string_value(json_object_get(o, "ended_at")),
			    "2026-11-22T03:02:10.600Z");
	assert_true(json_is_integer(json_object_get(o, "duration_s")));
	assert_int_equal(json_integer_value(json_object_get(o, "duration_s")), 13);
	assert_string_equal(json_string_value(json_object_get(o, "end_reason")), "ended_by_api");
	assert_int_equal(json_integer_value(json_object_get(o, "sip_status")), 200);
	assert_int_equal(json_integer_value(json_object_get(o, "max_duration_s")), 300);
	json_t *want_meta = json_loads("{\"tag\":\"x\",\"crm\":{\"id\":42}}", 0, NULL);
	assert_non_null(want_meta);
	assert_true(json_is_object(json_object_get(o, "metadata")));
	assert_true(json_equal(json_object_get(o, "metadata"), want_meta));
	json_decref(want_meta);
	assert_true(json_is_null(json_object_get(o, "redacted_at")));
	/* every timestamp present is RFC 3339 UTC with milliseconds */
	const char *ts[] = {"created_at", "answered_at", "ended_at"};
	for (size_t i = 0; i < 3; i++)
		assert_true(is_rfc3339_ms(json_string_value(json_object_get(o, ts[i]))));
	json_decref(o);
	call_clear(&c);
	assert_null(c.metadata);
}

static void test_to_json_fresh_call(void **state)
{
	(void)state;
	struct call c = {0};
	strcpy(c.id, "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
	strcpy(c.agent_id, "3b4e28ba-2fa1-41d2-883f-0016d3cca427");
	c.direction = CALL_INBOUND;
	c.status = CALL_QUEUED;
	strcpy(c.from, "sip:alice@example.com");
	strcpy(c.to, "+15550001111");
	c.created_at = 1;
	c.metadata = strdup("{}");
	json_t *o = call_to_json(&c);
	assert_exact_keys(o);
	assert_string_equal(json_string_value(json_object_get(o, "direction")), "inbound");
	assert_string_equal(json_string_value(json_object_get(o, "status")), "queued");
	assert_string_equal(json_string_value(json_object_get(o, "created_at")),
			    "1970-01-01T00:00:00.001Z");
	const char *nulls[] = {"provider_call_id", "answered_at", "ended_at",       "duration_s",
			       "end_reason",       "sip_status",  "max_duration_s", "redacted_at"};
	for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++) {
		if (!json_is_null(json_object_get(o, nulls[i])))
			print_error("%s should be null\n", nulls[i]);
		assert_true(json_is_null(json_object_get(o, nulls[i])));
	}
	assert_true(json_is_object(json_object_get(o, "metadata")));
	assert_int_equal(json_object_size(json_object_get(o, "metadata")), 0);
	json_decref(o);

	/* canceled before answer: ended_at set, duration still null */
	c.status = CALL_CANCELED;
	c.ended_at = 5000;
	o = call_to_json(&c);
	assert_string_equal(json_string_value(json_object_get(o, "ended_at")),
			    "1970-01-01T00:00:05.000Z");
	assert_true(json_is_null(json_object_get(o, "duration_s")));
	json_decref(o);

	/* metadata NULL renders as null */
	free(c.metadata);
	c.metadata = NULL;
	o = call_to_json(&c);
	assert_exact_keys(o);
	assert_true(json_is_null(json_object_get(o, "metadata")));
	json_decref(o);
	call_clear(&c);
}

static void test_to_json_redacted(void **state)
{
	(void)state;
	struct call c;
	fill_ended_call(&c);
	/* the struct still holds the values: the rendering must not leak them */
	c.redacted_at = 1795316600042;
	json_t *o = call_to_json(&c);
	assert_exact_keys(o);
	assert_true(json_is_null(json_object_get(o, "from")));
	assert_true(json_is_null(json_object_get(o, "to")));
	assert_true(json_is_null(json_object_get(o, "metadata")));
	assert_string_equal(json_string_value(json_object_get(o, "redacted_at")),
			    "2026-11-22T03:03:20.042Z");
	/* everything else survives redaction */
	assert_string_equal(json_string_value(json_object_get(o, "id")), c.id);
	assert_string_equal(json_string_value(json_object_get(o, "status")), "completed");
	assert_int_equal(json_integer_value(json_object_get(o, "duration_s")), 13);
	assert_string_equal(json_string_value(json_object_get(o, "end_reason")), "ended_by_api");
	json_decref(o);
	call_clear(&c);
}

static void test_call_move(void **state)
{
	(void)state;
	struct call a, b = {0};
	fill_ended_call(&a);
	b.metadata = strdup("{\"old\":1}"); /* must be freed by the move (LeakSanitizer) */
	call_move(&b, &a);
	assert_string_equal(b.id, "1b4e28ba-2fa1-41d2-883f-0016d3cca427");
	assert_non_null(b.metadata);
	assert_string_equal(b.metadata, "{\"crm\":{\"id\":42},\"tag\":\"x\"}");
	assert_null(a.metadata);
	assert_string_equal(a.id, "");
	assert_int_equal(a.status, 0);
	call_clear(&b);
}

/* A jansson string, or null for "", absent, or text jansson refuses (not UTF-8). */
static json_t *STR_OR_NULL(const char *s, bool present)
{
	json_t *j = present && s[0] ? json_string(s) : NULL;
	return j ? j : json_null();
}

/* The text writer must say exactly what jansson would: build the object the jansson way, dump
 * it with the flags the server used, and compare bytes. Strings with every escape class, UTF-8,
 * and a provider id that is not UTF-8 (jansson would refuse it; we write null). */
static void expect_same_as_jansson(const struct call *c)
{
	bool red = call_is_redacted(c);
	long long dur = call_duration_s(c);
	char ts[4][CP_RFC3339_LEN + 1];
	const int64_t t[4] = {c->created_at, c->answered_at, c->ended_at, c->redacted_at};
	json_t *tv[4];
	for (int i = 0; i < 4; i++) {
		cp_rfc3339(t[i], ts[i]);
		tv[i] = t[i] ? json_string(ts[i]) : json_null();
	}
	json_t *meta = c->metadata && !red ? json_loads(c->metadata, 0, NULL) : json_null();
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(c->id));
	json_object_set_new(o, "agent_id", json_string(c->agent_id));
	json_object_set_new(o, "direction", json_string(call_direction_name(c->direction)));
	json_object_set_new(o, "from", STR_OR_NULL(c->from, !red));
	json_object_set_new(o, "to", STR_OR_NULL(c->to, !red));
	json_object_set_new(o, "status", json_string(call_status_name(c->status)));
	json_object_set_new(o, "provider_call_id", STR_OR_NULL(c->provider_call_id, true));
	json_object_set_new(o, "created_at", tv[0]);
	json_object_set_new(o, "answered_at", tv[1]);
	json_object_set_new(o, "ended_at", tv[2]);
	json_object_set_new(o, "duration_s", dur >= 0 ? json_integer(dur) : json_null());
	json_object_set_new(o, "end_reason", STR_OR_NULL(c->end_reason, true));
	json_object_set_new(o, "sip_status",
			    c->sip_status ? json_integer(c->sip_status) : json_null());
	json_object_set_new(o, "max_duration_s",
			    c->max_duration_s ? json_integer(c->max_duration_s) : json_null());
	json_object_set_new(o, "metadata", meta ? meta : json_null());
	json_object_set_new(o, "redacted_at", tv[3]);
	bool rec = c->record && c->answered_at && call_status_is_terminal(c->status) && !red;
	char url[80];
	snprintf(url, sizeof url, "/v1/calls/%s/recording", c->id);
	json_object_set_new(o, "has_recording", json_boolean(rec));
	json_object_set_new(o, "recording_url", rec ? json_string(url) : json_null());
	char *want = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	size_t len = 0;
	char *got = call_to_json_text(c, &len);
	assert_non_null(want);
	assert_non_null(got);
	assert_string_equal(got, want);
	assert_int_equal(len, strlen(want));
	free(want);
	free(got);
	json_decref(o);
}

static void test_json_text_matches_jansson(void **state)
{
	(void)state;
	struct call c;
	fill_ended_call(&c);
	expect_same_as_jansson(&c);

	/* every escape jansson knows, control bytes, DEL, UTF-8 in a URI user part */
	strcpy(c.to, "sip:\"q\\uo\"te\b\f\n\r\t\x01\x1f\x7f/\xc3\xa9t\xc3\xa9@h");
	strcpy(c.provider_call_id, "\xe2\x98\x83-\xf0\x9f\x93\x9e@x");
	expect_same_as_jansson(&c);

	/* not UTF-8: null, as jansson cannot hold it */
	strcpy(c.provider_call_id, "bad\xff\xfe@x");
	strcpy(c.from, "\xc3");
	struct call copy = c;
	size_t len;
	char *got = call_to_json_text(&copy, &len);
	json_t *parsed = json_loads(got, 0, NULL);
	assert_non_null(parsed);
	assert_true(json_is_null(json_object_get(parsed, "provider_call_id")));
	assert_true(json_is_null(json_object_get(parsed, "from")));
	json_decref(parsed);
	free(got);

	/* fresh (mostly nulls), then redacted */
	call_clear(&c);
	fill_ended_call(&c);
	c.answered_at = c.ended_at = 0;
	c.end_reason[0] = c.provider_call_id[0] = '\0';
	c.sip_status = c.max_duration_s = 0;
	c.status = CALL_QUEUED;
	free(c.metadata);
	c.metadata = NULL;
	expect_same_as_jansson(&c);
	call_clear(&c);
	fill_ended_call(&c);
	c.redacted_at = c.ended_at + 5;
	expect_same_as_jansson(&c);
	/* recorded: the same, redacted or not */
	c.record = true;
	expect_same_as_jansson(&c);
	c.redacted_at = 0;
	expect_same_as_jansson(&c);
	call_clear(&c);
}

/* has_recording and recording_url: a recorded call that was answered and has ended, until it
 * is redacted; null/false in every other case. */
static void test_to_json_recording(void **state)
{
	(void)state;
	struct call c;
	fill_ended_call(&c);
	json_t *o = call_to_json(&c);
	assert_exact_keys(o);
	assert_true(json_is_false(json_object_get(o, "has_recording"))); /* not recorded */
	assert_true(json_is_null(json_object_get(o, "recording_url")));
	json_decref(o);

	c.record = true;
	o = call_to_json(&c);
	assert_exact_keys(o);
	assert_true(json_is_true(json_object_get(o, "has_recording")));
	assert_string_equal(json_string_value(json_object_get(o, "recording_url")),
			    "/v1/calls/1b4e28ba-2fa1-41d2-883f-0016d3cca427/recording");
	json_decref(o);

	struct {
		enum call_status status;
		int64_t answered_at, redacted_at;
		bool has;
	} cases[] = {
		{CALL_COMPLETED, 1795316518000, 0, true},
		{CALL_IN_PROGRESS, 1795316518000, 0, false}, /* still up: file not finished */
		{CALL_CANCELED, 0, 0, false},                /* never answered */
		{CALL_COMPLETED, 1795316518000, 1795316600042, false}, /* redacted */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		c.status = cases[i].status;
		c.answered_at = cases[i].answered_at;
		c.redacted_at = cases[i].redacted_at;
		assert_int_equal(call_has_recording(&c), cases[i].has);
		o = call_to_json(&c);
		assert_int_equal(json_is_true(json_object_get(o, "has_recording")), cases[i].has);
		assert_int_equal(json_is_string(json_object_get(o, "recording_url")), cases[i].has);
		json_decref(o);
	}
	call_clear(&c);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	json_object_seed(0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enum_has_eight_statuses),
		cmocka_unit_test(test_every_transition_pair),
		cmocka_unit_test(test_no_self_transitions),
		cmocka_unit_test(test_terminal_states_have_no_exit),
		cmocka_unit_test(test_transition_out_of_range),
		cmocka_unit_test(test_sources_of_matches_table),
		cmocka_unit_test(test_sources_of_explicit),
		cmocka_unit_test(test_end_status),
		cmocka_unit_test(test_status_names_round_trip),
		cmocka_unit_test(test_status_parse_rejects_unknown),
		cmocka_unit_test(test_active_and_terminal),
		cmocka_unit_test(test_direction_name),
		cmocka_unit_test(test_reason_valid),
		cmocka_unit_test(test_address_valid),
		cmocka_unit_test(test_address_length_limit),
		cmocka_unit_test(test_stream_url_valid),
		cmocka_unit_test(test_dtmf_digits_valid),
		cmocka_unit_test(test_goodbye_text_valid),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_to_json_full),
		cmocka_unit_test(test_to_json_recording),
		cmocka_unit_test(test_to_json_fresh_call),
		cmocka_unit_test(test_to_json_redacted),
		cmocka_unit_test(test_json_text_matches_jansson),
		cmocka_unit_test(test_call_move),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
