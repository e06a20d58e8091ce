/*
 * test_jitter_g711.c - the media plane's pure parts: the receive jitter buffer (media/jitter.c)
 * and G.711 coding (media/g711.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "media/g711.h"
#include "media/jitter.h"

static const uint8_t frame[160] = {1, 2, 3};

static void put(struct jitter *j, uint16_t seq, int64_t now, enum jitter_put_result want)
{
	assert_int_equal(jitter_put(j, seq, (uint32_t)seq * 160, frame, sizeof frame, now), want);
}

static uint16_t get_seq(struct jitter *j, int64_t now)
{
	const struct jitter_frame *f = jitter_get(j, now);
	assert_non_null(f);
	return f->seq;
}

static void test_in_order_goes_out_at_once(void **state)
{
	(void)state;
	struct jitter j;
	jitter_init(&j, 60);
	assert_null(jitter_get(&j, 0));
	for (uint16_t s = 100; s < 110; s++) {
		put(&j, s, 0, JITTER_QUEUED);
		assert_int_equal(get_seq(&j, 0), s);
		assert_null(jitter_get(&j, 0));
	}
	assert_int_equal(j.n_lost, 0);
	assert_int_equal(j.n_late, 0);
}

static void test_reorder_within_hold(void **state)
{
	(void)state;
	struct jitter j;
	jitter_init(&j, 60);
	put(&j, 10, 0, JITTER_QUEUED);
	assert_int_equal(get_seq(&j, 0), 10);
	put(&j, 12, 5, JITTER_QUEUED); /* 11 is missing: 12 waits */
	assert_null(jitter_get(&j, 5));
	put(&j, 11, 10, JITTER_QUEUED); /* the gap fills */
	assert_int_equal(get_seq(&j, 10), 11);
	assert_int_equal(get_seq(&j, 10), 12);
	assert_null(jitter_get(&j, 10));
	assert_int_equal(j.n_lost, 0);
}

static void test_gap_skipped_after_hold(void **state)
{
	(void)state;
	struct jitter j;
	jitter_init(&j, 60);
	put(&j, 10, 0, JITTER_QUEUED);
	assert_int_equal(get_seq(&j, 0), 10);
	put(&j, 13, 100, JITTER_QUEUED); /* 11 and 12 lost */
	assert_null(jitter_get(&j, 159));
	assert_int_equal(get_seq(&j, 160), 13);
	assert_int_equal(j.n_lost, 2);
	/* 11 arriving now is late and dropped */
	put(&j, 11, 170, JITTER_LATE);
	assert_null(jitter_get(&j, 170));
}

static void test_duplicate_dropped(void **state)
{
	(void)state;
	struct jitter j;
	jitter_init(&j, 60);
	put(&j, 1, 0, JITTER_QUEUED);
	put(&j, 3, 0, JITTER_QUEUED);
	put(&j, 3, 0, JITTER_DUP);
	assert_int_equal(get_seq(&j, 0), 1);
	put(&j, 1, 0, JITTER_LATE); /* already delivered */
	assert_int_equal(j.n_dup, 1);
}

static void test_wraparound(void **state)
{
	(void)state;
	struct jitter j;
	jitter_init(&j, 60);
	put(&j, 65534, 0, JITTER_QUEUED);
	put(&j, 0, 0, JITTER_QUEUED);
	put(&j, 65535, 0, JITTER_QUEUED);
	assert_int_equal(get_seq(&j, 0), 65534);
	assert_int_equal(get_seq(&j, 0), 65535);
	assert_int_equal(get_seq(&j, 0), 0);
}

static void test_huge_jump_resyncs(void **state)
{
	(void)state;
	struct jitter j;
	jitter_init(&j, 60);
	put(&j, 10, 0, JITTER_QUEUED);
	assert_int_equal(get_seq(&j, 0), 10);
	put(&j, 5000, 0, JITTER_QUEUED);
	assert_int_equal(get_seq(&j, 0), 5000);
	assert_int_equal(j.n_reset, 1);
	assert_int_equal(j.n_lost, 4989);
}

static void test_sender_restart_behind_is_followed(void **state)
{
	(void)state;
	struct jitter j;
	jitter_init(&j, 60);
	put(&j, 1000, 0, JITTER_QUEUED);
	assert_int_equal(get_seq(&j, 0), 1000);
	for (uint16_t s = 200; s < 207; s++)
		put(&j, s, 0, JITTER_LATE);
	put(&j, 207, 0, JITTER_QUEUED); /* the eighth in a row: a restart */
	assert_int_equal(get_seq(&j, 0), 207);
	put(&j, 208, 0, JITTER_QUEUED);
	assert_int_equal(get_seq(&j, 0), 208);
}

static void test_oversize_refused(void **state)
{
	(void)state;
	struct jitter j;
	uint8_t big[JITTER_FRAME_MAX + 1] = {0};
	jitter_init(&j, 60);
	assert_int_equal(jitter_put(&j, 1, 0, big, sizeof big, 0), JITTER_OVERSIZE);
	assert_null(jitter_get(&j, 1000));
}

static void test_g711_round_trips(void **state)
{
	(void)state;
	for (int i = 0; i < 256; i++) {
		uint8_t a = (uint8_t)i;
		assert_int_equal(g711_alaw_encode(g711_alaw_decode(a)), a);
		uint8_t u = (uint8_t)i;
		/* 0x7F and 0xFF are -0 and +0: both decode to 0, which encodes as 0xFF */
		assert_int_equal(g711_ulaw_encode(g711_ulaw_decode(u)), u == 0x7F ? 0xFF : u);
	}
	assert_int_equal(g711_ulaw_decode(0xFF), 0);
	assert_int_equal(g711_ulaw_decode(0x80), 32124);
	assert_int_equal(g711_ulaw_decode(0x00), -32124);
	assert_int_equal(g711_alaw_decode(0xD5), 8);
	assert_int_equal(g711_ulaw_encode(32767), 0x80);
	assert_int_equal(g711_ulaw_encode(-32768), 0x00);
}

static void test_g711_transcode(void **state)
{
	(void)state;
	uint8_t u[256], a[256], back[256];
	for (int i = 0; i < 256; i++)
		u[i] = (uint8_t)i;
	g711_ulaw_to_alaw(u, a, sizeof u);
	g711_alaw_to_ulaw(a, back, sizeof a);
	for (int i = 0; i < 256; i++) {
		int16_t want = g711_ulaw_decode(u[i]);
		int16_t got = g711_ulaw_decode(back[i]);
		int diff = want > got ? want - got : got - want;
		/* two quantisations: within the coarser step of the two laws at that level */
		int bound = (want < 0 ? -want : want) / 16 + 16;
		assert_true(diff <= bound);
	}
	assert_int_equal(a[G711_ULAW_SILENCE], G711_ALAW_SILENCE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order_goes_out_at_once),
		cmocka_unit_test(test_reorder_within_hold),
		cmocka_unit_test(test_gap_skipped_after_hold),
		cmocka_unit_test(test_duplicate_dropped),
		cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_huge_jump_resyncs),
		cmocka_unit_test(test_sender_restart_behind_is_followed),
		cmocka_unit_test(test_oversize_refused),
		cmocka_unit_test(test_g711_round_trips),
		cmocka_unit_test(test_g711_transcode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
