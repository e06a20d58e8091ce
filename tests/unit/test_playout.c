/*
 * test_playout.c - the agent's audio on its way to the far end (media/stream.c's playout queue
 * and media/rtp.c's sending), on one session over a real UDP socket pair: a frame that finds
 * the queue empty goes out on arrival, never more than two frames ahead of the 20 ms clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "media/g711.h"
#include "media/media_internal.h"

#include <sndfile.h>

struct rig {
	struct media_engine me;
	struct session s;
	int peer; /* the far end's socket */
};

#define RING 4096

static int bound_udp(struct sockaddr_in *sin)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	memset(sin, 0, sizeof *sin);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sin, sizeof *sin), 0);
	socklen_t len = sizeof *sin;
	assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &len), 0);
	return fd;
}

static int setup(void **state)
{
	struct rig *r = calloc(1, sizeof *r);
	assert_non_null(r);
	struct sockaddr_in ours, theirs;
	r->s.me = &r->me;
	r->s.rtp_fd = bound_udp(&ours);
	r->peer = bound_udp(&theirs);
	sa_set_sa(&r->s.remote, (struct sockaddr *)&theirs);
	r->s.have_remote = true;
	r->s.pt = 0;
	r->s.te_pt = -1;
	r->s.play = malloc(RING);
	assert_non_null(r->s.play);
	r->s.play_cap = RING;
	r->s.marks_tail = &r->s.marks;
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct rig *r = *state;
	close(r->s.rtp_fd);
	close(r->peer);
	free(r->s.play);
	free(r);
	return 0;
}

/* The payload of the next packet the far end holds, or -1 when none is there. */
static ssize_t far_end_reads(struct rig *r, uint8_t *payload, size_t cap)
{
	uint8_t pkt[1500];
	ssize_t n = recv(r->peer, pkt, sizeof pkt, 0);
	if (n < 0) {
		assert_int_equal(errno, EAGAIN);
		return -1;
	}
	assert_true(n >= 12);
	size_t len = (size_t)n - 12 < cap ? (size_t)n - 12 : cap;
	memcpy(payload, pkt + 12, len);
	return n - 12;
}

static uint64_t samples(const struct latency_hist *h)
{
	uint64_t n = 0;
	for (int b = 0; b < LATENCY_BUCKETS; b++)
		n += h->bucket[b];
	return n;
}

static void test_frame_into_empty_queue_goes_out_at_once(void **state)
{
	struct rig *r = *state;
	int64_t now = media_now_ms();
	r->s.next_tx_ms = now + 15; /* the tick is 15 ms away */
	uint8_t frame[FRAME_SAMPLES], got[FRAME_SAMPLES];
	memset(frame, 0x42, sizeof frame);
	r->s.back_from_us = cp_mono_us();
	r->s.back_at = r->s.queued;
	playout_push(&r->s, frame, sizeof frame);
	rtp_send_ahead(&r->s);
	assert_int_equal(far_end_reads(r, got, sizeof got), FRAME_SAMPLES);
	assert_memory_equal(got, frame, sizeof frame);
	/* the tick it stood for has nothing left to send */
	assert_int_equal(r->s.next_tx_ms, now + 15 + FRAME_MS);
	assert_int_equal(r->s.play_len, 0);
	assert_int_equal(r->s.played, FRAME_SAMPLES);
	assert_int_equal(r->s.ts, FRAME_SAMPLES);
	assert_int_equal(samples(&r->me.to_phone), 1);
	assert_int_equal(r->s.back_from_us, 0);
}

static void test_never_more_than_two_frames_ahead(void **state)
{
	struct rig *r = *state;
	int64_t now = media_now_ms();
	r->s.next_tx_ms = now + 5;
	uint8_t burst[5 * FRAME_SAMPLES], got[FRAME_SAMPLES];
	for (size_t i = 0; i < sizeof burst; i++)
		burst[i] = (uint8_t)(i / FRAME_SAMPLES + 1);
	playout_push(&r->s, burst, sizeof burst);
	for (int i = 0; i < 5; i++)
		rtp_send_ahead(&r->s);
	/* the frames due at now + 5 and now + 25 go at once; the one due at now + 45 would be more
	 * than two frames (40 ms) early */
	for (uint8_t want = 1; want <= 2; want++) {
		assert_int_equal(far_end_reads(r, got, sizeof got), FRAME_SAMPLES);
		assert_int_equal(got[0], want);
	}
	assert_int_equal(far_end_reads(r, got, sizeof got), -1);
	assert_int_equal(r->s.next_tx_ms, now + 5 + 2 * FRAME_MS);
	assert_int_equal(r->s.play_len, 3 * FRAME_SAMPLES);
	/* the ticks take the rest, one frame each, in order */
	rtp_send_frame(&r->s);
	assert_int_equal(far_end_reads(r, got, sizeof got), FRAME_SAMPLES);
	assert_int_equal(got[0], 3);
}

static void test_part_of_a_frame_waits_for_the_tick(void **state)
{
	struct rig *r = *state;
	r->s.next_tx_ms = media_now_ms() + 5;
	uint8_t half[FRAME_SAMPLES / 2], got[FRAME_SAMPLES];
	memset(half, 0x11, sizeof half);
	playout_push(&r->s, half, sizeof half);
	rtp_send_ahead(&r->s);
	assert_int_equal(far_end_reads(r, got, sizeof got), -1);
	/* the tick sends it, padded with silence */
	rtp_send_frame(&r->s);
	assert_int_equal(far_end_reads(r, got, sizeof got), FRAME_SAMPLES);
	assert_int_equal(got[0], 0x11);
	assert_int_equal(got[FRAME_SAMPLES / 2 - 1], 0x11);
	assert_int_equal(got[FRAME_SAMPLES / 2], 0xFF); /* mu-law silence */
}

static void test_clear_forgets_the_waiting_frame(void **state)
{
	struct rig *r = *state;
	r->s.next_tx_ms = media_now_ms() + 5 + 2 * FRAME_MS; /* already 40 ms ahead */
	uint8_t frame[FRAME_SAMPLES];
	memset(frame, 0x33, sizeof frame);
	r->s.back_from_us = cp_mono_us();
	r->s.back_at = r->s.queued;
	playout_push(&r->s, frame, sizeof frame);
	rtp_send_ahead(&r->s);
	playout_clear(&r->s);
	rtp_send_frame(&r->s); /* silence: nothing was played */
	assert_int_equal(samples(&r->me.to_phone), 0);
}

/* ---- goodbye ---- */

static int goodbyes, goodbye_ms;
static char goodbye_call[64];

static void on_goodbye_done(void *arg, const char *call_id, int ms)
{
	(void)arg;
	goodbyes++;
	goodbye_ms = ms;
	snprintf(goodbye_call, sizeof goodbye_call, "%s", call_id);
}

static void goodbye_rig(struct rig *r)
{
	goodbyes = goodbye_ms = 0;
	goodbye_call[0] = '\0';
	r->me.hooks.goodbye_done = on_goodbye_done;
	snprintf(r->s.call_id, sizeof r->s.call_id, "call-1");
}

static void test_goodbye_after_the_queued_audio_and_its_own(void **state)
{
	struct rig *r = *state;
	goodbye_rig(r);
	uint8_t agent[2 * FRAME_SAMPLES], bye[FRAME_SAMPLES * 3 / 2], got[FRAME_SAMPLES];
	memset(agent, 0x21, sizeof agent);
	memset(bye, 0x42, sizeof bye);
	playout_push(&r->s, agent, sizeof agent);
	goodbye_begin(&r->s, bye, sizeof bye, media_now_ms() + 10000);
	/* frames 1-2: the agent's; 3: the goodbye's first 160; 4: its last 80 then silence */
	for (int i = 1; i <= 3; i++) {
		rtp_send_frame(&r->s);
		assert_int_equal(far_end_reads(r, got, sizeof got), FRAME_SAMPLES);
		assert_int_equal(got[0], i <= 2 ? 0x21 : 0x42);
		assert_int_equal(goodbyes, 0);
	}
	rtp_send_frame(&r->s);
	assert_int_equal(far_end_reads(r, got, sizeof got), FRAME_SAMPLES);
	assert_int_equal(got[FRAME_SAMPLES / 2 - 1], 0x42);
	assert_int_equal(got[FRAME_SAMPLES / 2], 0xFF);
	/* done the moment its last packet left: 2 + 1.5 frames = 70 ms played since the request */
	assert_int_equal(goodbyes, 1);
	assert_int_equal(goodbye_ms, 70);
	assert_string_equal(goodbye_call, "call-1");
	/* once: later frames, checks and the session's end call nothing more */
	rtp_send_frame(&r->s);
	goodbye_check(&r->s, media_now_ms());
	goodbye_abandon(&r->s);
	goodbye_begin(&r->s, bye, sizeof bye, media_now_ms());
	goodbye_check(&r->s, media_now_ms() + 1);
	assert_int_equal(goodbyes, 1);
}

static void test_goodbye_grows_a_full_ring_instead_of_cutting(void **state)
{
	struct rig *r = *state;
	goodbye_rig(r);
	/* the ring (4096 bytes) nearly full of the agent's audio, a goodbye larger than what is
	 * left: nothing is dropped */
	uint8_t agent[4000], bye[1000];
	memset(agent, 0x21, sizeof agent);
	memset(bye, 0x42, sizeof bye);
	playout_push(&r->s, agent, sizeof agent);
	goodbye_begin(&r->s, bye, sizeof bye, media_now_ms() + 10000);
	assert_int_equal(r->s.play_len, 5000);
	assert_int_equal(r->s.played, 0);
	uint8_t all[5000];
	playout_take(&r->s, all, sizeof all);
	for (size_t i = 0; i < sizeof all; i++)
		assert_int_equal(all[i], i < 4000 ? 0x21 : 0x42);
	assert_int_equal(atomic_load(&r->me.stats.playout_dropped), 0);
}

static void test_goodbye_deadline_cuts_it_short(void **state)
{
	struct rig *r = *state;
	goodbye_rig(r);
	uint8_t bye[10 * FRAME_SAMPLES], got[FRAME_SAMPLES];
	memset(bye, 0x42, sizeof bye);
	int64_t now = media_now_ms();
	goodbye_begin(&r->s, bye, sizeof bye, now + 40);
	rtp_send_frame(&r->s);
	assert_int_equal(far_end_reads(r, got, sizeof got), FRAME_SAMPLES);
	goodbye_check(&r->s, now + 39);
	assert_int_equal(goodbyes, 0);
	goodbye_check(&r->s, now + 40);
	assert_int_equal(goodbyes, 1);
	assert_int_equal(goodbye_ms, 20);
}

static void test_goodbye_with_nothing_to_say_is_over_at_once(void **state)
{
	struct rig *r = *state;
	goodbye_rig(r);
	goodbye_begin(&r->s, NULL, 0, media_now_ms() + 10000);
	goodbye_check(&r->s, media_now_ms());
	assert_int_equal(goodbyes, 1);
	assert_int_equal(goodbye_ms, 0);
}

static void test_goodbye_session_ended_first(void **state)
{
	struct rig *r = *state;
	goodbye_rig(r);
	uint8_t bye[FRAME_SAMPLES];
	memset(bye, 0x42, sizeof bye);
	goodbye_begin(&r->s, bye, sizeof bye, media_now_ms() + 10000);
	goodbye_abandon(&r->s);
	assert_int_equal(goodbyes, 1);
	assert_int_equal(goodbye_ms, 0);
}

/* ---- recording ---- */

static void test_recording_pairs_far_end_and_played_frames(void **state)
{
	struct rig *r = *state;
	char dir[] = "/tmp/cp-playout-rec-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct recorder *rc = recorder_start(dir);
	assert_non_null(rc);
	snprintf(r->s.call_id, sizeof r->s.call_id, "call-rec");
	r->s.rec = recording_open(rc, r->s.call_id);
	jitter_init(&r->s.jb, 60);
	/* a far end packet (PCMU, 160 x 0x21), then our frame (the agent's 160 x 0x42) */
	uint8_t pkt[12 + FRAME_SAMPLES];
	memset(pkt, 0, 12);
	pkt[0] = 0x80;
	pkt[3] = 7;  /* seq 7 */
	pkt[11] = 1; /* ssrc 1 */
	memset(pkt + 12, 0x21, FRAME_SAMPLES);
	struct sa src = r->s.remote;
	rtp_input(&r->s, pkt, sizeof pkt, &src, media_now_ms(), cp_mono_us());
	uint8_t frame[FRAME_SAMPLES];
	memset(frame, 0x42, sizeof frame);
	playout_push(&r->s, frame, sizeof frame);
	rtp_send_frame(&r->s);
	rtp_send_frame(&r->s); /* nothing from either side: silence */
	recording_close(r->s.rec);
	r->s.rec = NULL;
	recorder_stop(rc);

	char path[128];
	snprintf(path, sizeof path, "%s/call-rec.wav", dir);
	SF_INFO info = {0};
	SNDFILE *sf = sf_open(path, SFM_READ, &info);
	assert_non_null(sf);
	assert_int_equal(info.frames, 2 * FRAME_SAMPLES);
	short got[2 * 2 * FRAME_SAMPLES];
	assert_int_equal(sf_readf_short(sf, got, 2 * FRAME_SAMPLES), 2 * FRAME_SAMPLES);
	sf_close(sf);
	for (int i = 0; i < 2 * FRAME_SAMPLES; i++) {
		assert_int_equal(got[2 * i], i < FRAME_SAMPLES ? g711_ulaw_decode(0x21) : 0);
		assert_int_equal(got[2 * i + 1], i < FRAME_SAMPLES ? g711_ulaw_decode(0x42)
								   : g711_ulaw_decode(0xFF));
	}
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_frame_into_empty_queue_goes_out_at_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_never_more_than_two_frames_ahead, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_part_of_a_frame_waits_for_the_tick, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_clear_forgets_the_waiting_frame, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_goodbye_after_the_queued_audio_and_its_own,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_goodbye_grows_a_full_ring_instead_of_cutting,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_goodbye_deadline_cuts_it_short, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_goodbye_with_nothing_to_say_is_over_at_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_goodbye_session_ended_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recording_pairs_far_end_and_played_frames,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
