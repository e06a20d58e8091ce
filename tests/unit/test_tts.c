/*
 * test_tts.c - media/tts.c: espeak-ng through speexdsp to 8 kHz mu-law.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "media/g711.h"
#include "media/tts.h"

static void test_goodbye_is_a_second_or_two_of_speech(void **state)
{
	(void)state;
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	assert_int_equal(tts_render_ulaw("Thank you for calling. Goodbye.", "", &a, &alen), 0);
	/* 8 samples per ms: between 1 and 4 seconds of audio */
	assert_in_range(alen, 8000, 32000);
	size_t loud = 0;
	for (size_t i = 0; i < alen; i++) {
		int v = g711_ulaw_decode(a[i]);
		loud += v > 1000 || v < -1000;
	}
	assert_true(loud * 10 >= alen); /* speech, not silence: >= 10 % of samples loud */
	/* the same text, the same speech again (espeak-ng's state between renders moves its
	 * samples by a few; not by more than 1 %) */
	assert_int_equal(tts_render_ulaw("Thank you for calling. Goodbye.", "en", &b, &blen), 0);
	assert_in_range(blen, alen - alen / 100, alen + alen / 100);
	free(a);
	free(b);
}

static void test_longer_text_is_longer_speech(void **state)
{
	(void)state;
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	assert_int_equal(tts_render_ulaw("Goodbye.", NULL, &a, &alen), 0);
	assert_int_equal(tts_render_ulaw("Goodbye. Goodbye. Goodbye. Goodbye.", NULL, &b, &blen),
			 0);
	assert_true(blen > 3 * alen);
	free(a);
	free(b);
}

static void test_refused(void **state)
{
	(void)state;
	uint8_t *out = NULL;
	size_t len = 0;
	assert_int_equal(tts_render_ulaw("", "", &out, &len), -1);
	assert_int_equal(tts_render_ulaw(NULL, "", &out, &len), -1);
	assert_int_equal(tts_render_ulaw("hello", "no-such-voice-xx", &out, &len), -1);
	char *text = malloc(TTS_TEXT_MAX + 2);
	assert_non_null(text);
	memset(text, 'a', TTS_TEXT_MAX + 1);
	text[TTS_TEXT_MAX + 1] = '\0';
	assert_int_equal(tts_render_ulaw(text, "", &out, &len), -1);
	free(text);
	assert_null(out);
	assert_int_equal(len, 0);
}

static int teardown(void **state)
{
	(void)state;
	tts_shutdown();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_goodbye_is_a_second_or_two_of_speech),
		cmocka_unit_test(test_longer_text_is_longer_speech),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
