/*
 * test_agent_msg.c - media/agent_msg.c: what each text message from the agent becomes, and
 * the sentence each unusable one is logged with.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media/agent_msg.h"

#define SID "MZ0123456789abcdef0123456789abcdef"

static uint8_t audio[AGENT_AUDIO_MAX];

static int parse(const char *text, struct agent_msg *m, const char **why)
{
	*why = NULL;
	return agent_msg_parse(text, strlen(text), SID, m, audio, why);
}

static void rejected(const char *text, const char *want_why)
{
	struct agent_msg m;
	const char *why;
	assert_int_equal(parse(text, &m, &why), -1);
	assert_non_null(why);
	assert_string_equal(why, want_why);
}

static void test_media_decodes_its_payload(void **state)
{
	(void)state;
	struct agent_msg m;
	const char *why;
	/* "AAEC/w==" is 00 01 02 ff */
	assert_int_equal(parse("{\"event\":\"media\",\"streamSid\":\"" SID "\","
			       "\"media\":{\"payload\":\"AAEC/w==\"}}",
			       &m, &why),
			 0);
	assert_int_equal(m.event, AGENT_MEDIA);
	assert_int_equal(m.audio_len, 4);
	const uint8_t want[] = {0x00, 0x01, 0x02, 0xff};
	assert_memory_equal(audio, want, sizeof want);
	/* no streamSid: this stream's */
	assert_int_equal(parse("{\"event\":\"media\",\"media\":{\"payload\":\"/w==\"}}", &m, &why),
			 0);
	assert_int_equal(m.audio_len, 1);
	assert_int_equal(audio[0], 0xff);
}

static void test_mark_and_clear(void **state)
{
	(void)state;
	struct agent_msg m;
	const char *why;
	assert_int_equal(
		parse("{\"event\":\"mark\",\"mark\":{\"name\":\"greeting-done\"}}", &m, &why), 0);
	assert_int_equal(m.event, AGENT_MARK);
	assert_string_equal(m.mark_name, "greeting-done");
	assert_int_equal(parse("{\"event\":\"clear\",\"streamSid\":\"" SID "\"}", &m, &why), 0);
	assert_int_equal(m.event, AGENT_CLEAR);
}

static void test_long_mark_name_is_cut_on_a_character(void **state)
{
	(void)state;
	/* 126 ASCII bytes then "é" (2 bytes): 128 bytes, one over; the cut may not split the é */
	char name[200], text[300];
	memset(name, 'a', 126);
	strcpy(name + 126, "\xc3\xa9");
	snprintf(text, sizeof text, "{\"event\":\"mark\",\"mark\":{\"name\":\"%s\"}}", name);
	struct agent_msg m;
	const char *why;
	assert_int_equal(parse(text, &m, &why), 0);
	assert_int_equal(strlen(m.mark_name), 126);
	assert_memory_equal(m.mark_name, name, 126);
}

static void test_unusable_messages(void **state)
{
	(void)state;
	rejected("not json", "not JSON");
	rejected("", "not JSON");
	rejected("{\"streamSid\":\"" SID "\"}", "no event");
	rejected("{\"event\":42}", "no event");
	rejected("{\"event\":\"dance\"}", "unknown event");
	rejected("{\"event\":\"media\",\"streamSid\":\"MZother\",\"media\":{\"payload\":\"AAAA\"}}",
		 "another stream's streamSid");
	rejected("{\"event\":\"media\"}", "media without media.payload");
	rejected("{\"event\":\"media\",\"media\":{\"payload\":7}}", "media without media.payload");
	rejected("{\"event\":\"media\",\"media\":{\"payload\":\"AAE\"}}",
		 "media payload is not base64");
	rejected("{\"event\":\"media\",\"media\":{\"payload\":\"AA*=\"}}",
		 "media payload is not base64");
	rejected("{\"event\":\"media\",\"media\":{\"payload\":\"AA=A\"}}",
		 "media payload is not base64");
	rejected("{\"event\":\"media\",\"media\":{\"payload\":\"AA==AA==\"}}",
		 "media payload is not base64");
	rejected("{\"event\":\"media\",\"media\":{\"payload\":\"====\"}}",
		 "media payload is not base64");
	rejected("{\"event\":\"mark\",\"mark\":{}}", "mark without mark.name");
	rejected("{\"event\":\"mark\"}", "mark without mark.name");
}

static void test_payload_over_the_limit(void **state)
{
	(void)state;
	size_t n = AGENT_PAYLOAD_MAX + 4;
	char *text = malloc(n + 64);
	assert_non_null(text);
	int head = sprintf(text, "{\"event\":\"media\",\"media\":{\"payload\":\"");
	memset(text + head, 'A', n);
	strcpy(text + head + n, "\"}}");
	rejected(text, "media payload too large");
	/* exactly at the limit: accepted, decoded to the most audio a message may carry */
	strcpy(text + head + AGENT_PAYLOAD_MAX, "\"}}");
	struct agent_msg m;
	const char *why;
	assert_int_equal(parse(text, &m, &why), 0);
	assert_int_equal(m.audio_len, AGENT_AUDIO_MAX);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_media_decodes_its_payload),
		cmocka_unit_test(test_mark_and_clear),
		cmocka_unit_test(test_long_mark_name_is_cut_on_a_character),
		cmocka_unit_test(test_unusable_messages),
		cmocka_unit_test(test_payload_over_the_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
