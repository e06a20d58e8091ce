/*
 * test_web.c - a web call's far end in the media plane (media/web.c), against a real media
 * engine: the test is the browser, a wslay client on the other end of a socketpair.
 *
 * What is checked: the session says "started"; after the hello, one binary message of 20 ms
 * at the browser's rate per tick (960 samples at 48 kHz); what the call plays (a goodbye's
 * 1 kHz tone) reaches the browser as 1 kHz at its rate; the browser's 440 Hz reaches the
 * recording's left channel as 440 Hz at 8 kHz; the browser closing (a close frame, or EOF)
 * ends the call remote_hangup; the call ending tells the browser ("ended", close 1000) and
 * gives the socket back exactly once after the close handshake; bad messages end nothing, an
 * oversized one closes the socket (1009); a start the engine cannot take gives the socket back
 * at once. Frequencies are measured with
 * the Goertzel algorithm, never compared sample by sample (resampling shifts phase).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "core/log.h"
#include "core/util.h"
#include "media/g711.h"
#include "media/media.h"

#define CALL "33333333-3333-4333-8333-333333333333"
#define RATE 48000
#define FRAME_BYTES (RATE / 50 * 2) /* 20 ms of 16-bit samples at RATE */

/* ---- what the media engine tells its owner ---------------------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char end_reason[64];
static int ends, goodbyes;
static atomic_int releases;

static void hook_end_call(void *arg, const char *call_id, const char *reason)
{
	(void)arg;
	(void)call_id;
	pthread_mutex_lock(&mu);
	snprintf(end_reason, sizeof end_reason, "%s", reason);
	ends++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void hook_goodbye_done(void *arg, const char *call_id, int goodbye_ms)
{
	(void)arg;
	(void)call_id;
	(void)goodbye_ms;
	pthread_mutex_lock(&mu);
	goodbyes++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void hook_released(void *arg, int addr_index)
{
	(void)arg;
	(void)addr_index;
	fail_msg("a web call released an RTP port");
}

/* The socket's owner: closes it when the engine gives it back. */
static void release_fd(void *ctx)
{
	close((int)(intptr_t)ctx);
	atomic_fetch_add(&releases, 1);
}

static bool wait_count(int *counter, int want, int ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&mu);
	while (*counter < want && !pthread_cond_timedwait(&cv, &mu, &until))
		;
	bool ok = *counter >= want;
	pthread_mutex_unlock(&mu);
	return ok;
}

static bool wait_releases(int want, int ms)
{
	for (int i = 0; i < ms / 5 && atomic_load(&releases) < want; i++)
		usleep(5000);
	return atomic_load(&releases) >= want;
}

/* ---- the browser ------------------------------------------------------------------------ */

struct browser {
	int fd;
	wslay_event_context_ptr ctx;
	char texts[8][128];
	int n_texts;
	int16_t *audio; /* every binary message, one after the other */
	size_t audio_len, audio_cap;
	int binaries, odd_sized; /* binary messages; those not FRAME_BYTES long */
	bool closed;             /* its close frame came */
	uint16_t close_code;
	bool eof;
};

static ssize_t b_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *arg)
{
	struct browser *b = arg;
	(void)flags;
	ssize_t n = recv(b->fd, buf, len, MSG_DONTWAIT);
	if (n > 0)
		return n;
	if (n == 0)
		b->eof = true;
	wslay_event_set_error(ctx, n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
					   ? WSLAY_ERR_WOULDBLOCK
					   : WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t b_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		      void *arg)
{
	struct browser *b = arg;
	(void)flags;
	ssize_t n = send(b->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n >= 0)
		return n;
	wslay_event_set_error(ctx,
			      errno == EAGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static int b_mask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *arg)
{
	(void)ctx;
	(void)arg;
	return cp_random(buf, len);
}

static void b_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
		  void *arg)
{
	struct browser *b = arg;
	(void)ctx;
	if (m->opcode == WSLAY_TEXT_FRAME && b->n_texts < 8) {
		snprintf(b->texts[b->n_texts++], sizeof b->texts[0], "%.*s", (int)m->msg_length,
			 (const char *)m->msg);
	} else if (m->opcode == WSLAY_BINARY_FRAME) {
		b->binaries++;
		if (m->msg_length != FRAME_BYTES)
			b->odd_sized++;
		size_t n = m->msg_length / 2;
		if (b->audio_len + n > b->audio_cap) {
			b->audio_cap = (b->audio_len + n) * 2;
			b->audio = realloc(b->audio, b->audio_cap * sizeof b->audio[0]);
			assert_non_null(b->audio);
		}
		for (size_t i = 0; i < n; i++)
			b->audio[b->audio_len++] =
				(int16_t)(m->msg[2 * i] | m->msg[2 * i + 1] << 8);
	} else if (m->opcode == WSLAY_CONNECTION_CLOSE) {
		b->closed = true;
		b->close_code = m->status_code;
	}
}

static void browser_init(struct browser *b, int fd)
{
	static const struct wslay_event_callbacks cb = {
		.recv_callback = b_recv,
		.send_callback = b_send,
		.genmask_callback = b_mask,
		.on_msg_recv_callback = b_msg,
	};
	memset(b, 0, sizeof *b);
	b->fd = fd;
	assert_int_equal(wslay_event_context_client_init(&b->ctx, &cb, b), 0);
}

static void browser_free(struct browser *b)
{
	wslay_event_context_free(b->ctx);
	free(b->audio);
	close(b->fd);
}

/* Reads and writes for ms milliseconds (or until the peer's EOF). */
static void pump(struct browser *b, int ms)
{
	int64_t until = cp_mono_us() + (int64_t)ms * 1000;
	while (!b->eof) {
		int64_t left = (until - cp_mono_us()) / 1000;
		if (left <= 0)
			break;
		struct pollfd p = {.fd = b->fd, .events = POLLIN};
		if (poll(&p, 1, (int)left) > 0)
			wslay_event_recv(b->ctx);
		wslay_event_send(b->ctx);
	}
	wslay_event_send(b->ctx);
}

static void send_text(struct browser *b, const char *text)
{
	struct wslay_event_msg m = {.opcode = WSLAY_TEXT_FRAME,
				    .msg = (const uint8_t *)text,
				    .msg_length = strlen(text)};
	assert_int_equal(wslay_event_queue_msg(b->ctx, &m), 0);
	wslay_event_send(b->ctx);
}

static void send_binary(struct browser *b, const uint8_t *data, size_t len)
{
	struct wslay_event_msg m = {.opcode = WSLAY_BINARY_FRAME, .msg = data, .msg_length = len};
	assert_int_equal(wslay_event_queue_msg(b->ctx, &m), 0);
	wslay_event_send(b->ctx);
}

/* ---- audio ------------------------------------------------------------------------------ */

/* The Goertzel power of freq in x[0..n) at rate, normalised by n. */
static double goertzel(const int16_t *x, size_t n, double freq, double rate)
{
	double c = 2.0 * cos(2.0 * M_PI * freq / rate), s1 = 0, s2 = 0;
	for (size_t i = 0; i < n; i++) {
		double s0 = x[i] + c * s1 - s2;
		s2 = s1;
		s1 = s0;
	}
	return (s1 * s1 + s2 * s2 - c * s1 * s2) / ((double)n * (double)n);
}

/* The strongest of 100..3900 Hz in steps of 20 Hz. */
static double dominant(const int16_t *x, size_t n, double rate)
{
	double best = 0, best_p = -1;
	for (double f = 100; f < 3900; f += 20) {
		double p = goertzel(x, n, f, rate);
		if (p > best_p) {
			best_p = p;
			best = f;
		}
	}
	return best;
}

/* ---- fixture ---------------------------------------------------------------------------- */

struct fx {
	struct media_engine *me;
	struct browser b;
	char dir[64];
};

static int setup_dir(struct fx *f, bool record)
{
	f->dir[0] = '\0';
	struct media_config cfg = {0};
	media_config_defaults(&cfg);
	if (record) {
		snprintf(f->dir, sizeof f->dir, "/tmp/cp-web-XXXXXX");
		assert_non_null(mkdtemp(f->dir));
		cfg.recordings_dir = f->dir;
	}
	struct media_hooks hooks = {.end_call = hook_end_call,
				    .goodbye_done = hook_goodbye_done,
				    .released = hook_released};
	f->me = media_engine_start(&cfg, &hooks);
	assert_non_null(f->me);
	ends = goodbyes = 0;
	end_reason[0] = '\0';
	atomic_store(&releases, 0);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	*state = f;
	return setup_dir(f, false);
}

static int setup_recorded(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	*state = f;
	return setup_dir(f, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	media_engine_stop(f->me);
	media_engine_destroy(f->me);
	if (f->dir[0]) {
		char cmd[96];
		snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
		assert_int_equal(system(cmd), 0);
	}
	free(f);
	return 0;
}

/* Starts a web session for CALL on a socketpair (pending: bytes given as read past the
 * handshake); the test keeps the other end as its browser. */
static void start_web(struct fx *f, bool record, const uint8_t *pending, size_t pending_len)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	browser_init(&f->b, sv[1]);
	struct media_web web = {.fd = sv[0],
				.pending = pending,
				.pending_len = pending_len,
				.release = release_fd,
				.ctx = (void *)(intptr_t)sv[0]};
	struct media_start ms = {.call_id = CALL,
				 .rtp_fd = -1,
				 .rtcp_fd = -1,
				 .addr_index = -1,
				 .te_payload_type = -1,
				 .account = "tenant",
				 .record = record,
				 .web = &web};
	assert_int_equal(media_session_start(f->me, &ms), 0);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_started_then_20ms_frames_at_the_browsers_rate(void **state)
{
	struct fx *f = *state;
	start_web(f, false, NULL, 0);
	pump(&f->b, 200);
	assert_int_equal(f->b.n_texts, 1); /* "started", nothing else before the hello */
	assert_string_equal(f->b.texts[0], "{\"event\":\"started\",\"call_id\":\"" CALL "\"}");
	assert_int_equal(f->b.binaries, 0); /* nothing before the hello */
	send_text(&f->b, "{\"event\":\"hello\",\"sample_rate\":48000}");
	pump(&f->b, 1000);
	/* a frame per 20 ms tick: about 50 in a second (fewer on a loaded machine), each exactly
	 * 20 ms at 48 kHz */
	assert_in_range(f->b.binaries, 25, 55);
	assert_int_equal(f->b.odd_sized, 0);
	/* no agent, nothing queued: silence */
	for (size_t i = 0; i < f->b.audio_len; i++)
		assert_int_equal(f->b.audio[i], 0);
	media_session_stop(f->me, CALL);
	pump(&f->b, 500);
	assert_int_equal(f->b.n_texts, 2);
	assert_string_equal(f->b.texts[1], "{\"event\":\"ended\"}");
	assert_true(f->b.closed);
	assert_int_equal(f->b.close_code, 1000);
	/* the browser's close reply went back: the socket is given back, once */
	assert_true(wait_releases(1, 2000));
	usleep(100 * 1000);
	assert_int_equal(atomic_load(&releases), 1);
	assert_int_equal(ends, 0); /* ended by its owner, not by the media plane */
	browser_free(&f->b);
}

static void test_what_the_call_plays_reaches_the_browser(void **state)
{
	struct fx *f = *state;
	/* the hello comes with the handshake: read before the socket */
	static const char hello[] = "{\"event\":\"hello\",\"sample_rate\":48000}";
	uint8_t frame[2 + sizeof hello - 1 + 4];
	/* a masked client text frame, mask 0, by hand: wslay's would be as good */
	frame[0] = 0x81;
	frame[1] = 0x80 | (uint8_t)(sizeof hello - 1);
	memset(frame + 2, 0, 4);
	memcpy(frame + 6, hello, sizeof hello - 1);
	start_web(f, false, frame, sizeof frame);
	/* one second of 1 kHz as a goodbye: what the call plays before it ends */
	static uint8_t tone[8000];
	for (int i = 0; i < 8000; i++)
		tone[i] = g711_ulaw_encode((int16_t)(8000 * sin(2 * M_PI * 1000 * i / 8000.0)));
	assert_int_equal(media_session_goodbye(f->me, CALL, tone, sizeof tone, 5000), 0);
	for (int i = 0; i < 40 && goodbyes == 0; i++)
		pump(&f->b, 50);
	assert_true(wait_count(&goodbyes, 1, 100));
	pump(&f->b, 100);
	assert_int_equal(f->b.odd_sized, 0);
	assert_true(f->b.audio_len >= (size_t)RATE);
	/* the loudest half second is the tone, at 48 kHz */
	size_t best = 0;
	double best_e = -1;
	for (size_t i = 0; i + RATE / 2 <= f->b.audio_len; i += RATE / 50) {
		double e = 0;
		for (size_t k = i; k < i + RATE / 2; k++)
			e += (double)f->b.audio[k] * f->b.audio[k];
		if (e > best_e) {
			best_e = e;
			best = i;
		}
	}
	assert_true(fabs(dominant(f->b.audio + best, RATE / 2, RATE) - 1000) <= 20);
	media_session_stop(f->me, CALL);
	pump(&f->b, 300);
	assert_true(wait_releases(1, 2000));
	browser_free(&f->b);
}

static void test_browser_audio_reaches_the_recording(void **state)
{
	struct fx *f = *state;
	start_web(f, true, NULL, 0);
	send_text(&f->b, "{\"event\":\"hello\",\"sample_rate\":44100}");
	/* 2 s of 440 Hz at 44.1 kHz, in 20 ms messages at real time */
	static uint8_t msg[882 * 2];
	for (int m = 0; m < 100; m++) {
		for (int i = 0; i < 882; i++) {
			int16_t v = (int16_t)(8000 * sin(2 * M_PI * 440 * (m * 882 + i) / 44100.0));
			msg[2 * i] = (uint8_t)(v & 0xFF);
			msg[2 * i + 1] = (uint8_t)((uint16_t)v >> 8);
		}
		send_binary(&f->b, msg, sizeof msg);
		pump(&f->b, 20);
	}
	media_session_stop(f->me, CALL);
	pump(&f->b, 300);
	assert_true(wait_releases(1, 2000));
	/* the writer finishes the file with the engine's stop */
	media_engine_stop(f->me);
	char path[128];
	snprintf(path, sizeof path, "%s/%s.wav", f->dir, CALL);
	SF_INFO info = {0};
	SNDFILE *sf = sf_open(path, SFM_READ, &info);
	assert_non_null(sf);
	assert_int_equal(info.samplerate, 8000);
	assert_int_equal(info.channels, 2);
	assert_true(info.frames >= 12000);
	int16_t *all = calloc((size_t)info.frames * 2, sizeof *all);
	int16_t *left = calloc((size_t)info.frames, sizeof *left);
	assert_int_equal(sf_readf_short(sf, all, info.frames), info.frames);
	sf_close(sf);
	for (sf_count_t i = 0; i < info.frames; i++)
		left[i] = all[2 * i];
	/* the middle second of the left channel is the browser's tone, now at 8 kHz */
	size_t mid = (size_t)info.frames / 2 - 4000;
	assert_true(fabs(dominant(left + mid, 8000, 8000) - 440) <= 20);
	double e = 0;
	for (size_t i = mid; i < mid + 8000; i++)
		e += (double)left[i] * left[i];
	assert_true(sqrt(e / 8000) > 3000); /* ~5657 for amplitude 8000, mu-law aside */
	free(all);
	free(left);
	browser_free(&f->b);
	/* the teardown stops the engine again: a second stop is harmless */
}

static void test_close_frame_ends_the_call_remote_hangup(void **state)
{
	struct fx *f = *state;
	start_web(f, false, NULL, 0);
	send_text(&f->b, "{\"event\":\"hello\",\"sample_rate\":16000}");
	pump(&f->b, 100);
	assert_int_equal(wslay_event_queue_close(f->b.ctx, 1000, NULL, 0), 0);
	pump(&f->b, 100);
	assert_true(wait_count(&ends, 1, 2000));
	assert_string_equal(end_reason, "remote_hangup");
	/* the engine answered the close; the socket stays until the owner stops the session */
	assert_true(f->b.closed);
	assert_int_equal(atomic_load(&releases), 0);
	media_session_stop(f->me, CALL);
	assert_true(wait_releases(1, 2000));
	usleep(50 * 1000);
	assert_int_equal(ends, 1);
	assert_int_equal(atomic_load(&releases), 1);
	browser_free(&f->b);
}

static void test_eof_ends_the_call_remote_hangup(void **state)
{
	struct fx *f = *state;
	start_web(f, false, NULL, 0);
	pump(&f->b, 100);
	shutdown(f->b.fd, SHUT_WR); /* the tab is gone: no close frame */
	assert_true(wait_count(&ends, 1, 2000));
	assert_string_equal(end_reason, "remote_hangup");
	media_session_stop(f->me, CALL);
	assert_true(wait_releases(1, 2000));
	browser_free(&f->b);
}

static void test_bad_messages_end_nothing(void **state)
{
	struct fx *f = *state;
	start_web(f, false, NULL, 0);
	static const uint8_t early[4] = {1, 2, 3, 4};
	send_binary(&f->b, early, sizeof early); /* audio before the hello */
	send_text(&f->b, "not json");
	send_text(&f->b, "{\"event\":\"dance\"}");
	send_text(&f->b, "{\"event\":\"hello\",\"sample_rate\":7999}");
	send_text(&f->b, "{\"event\":\"hello\",\"sample_rate\":\"48000\"}");
	send_text(&f->b, "{\"event\":\"hello\",\"sample_rate\":48000}");
	send_text(&f->b, "{\"event\":\"hello\",\"sample_rate\":16000}"); /* a second one */
	static const uint8_t odd[3] = {1, 2, 3};
	send_binary(&f->b, odd, sizeof odd);
	pump(&f->b, 500);
	assert_int_equal(ends, 0);
	/* the first valid hello stands: 48 kHz frames */
	assert_true(f->b.binaries > 10);
	assert_int_equal(f->b.odd_sized, 0);
	media_session_stop(f->me, CALL);
	pump(&f->b, 300);
	assert_true(wait_releases(1, 2000));
	browser_free(&f->b);
}

static void test_oversized_message_closes_1009_and_ends_the_call(void **state)
{
	struct fx *f = *state;
	start_web(f, false, NULL, 0);
	send_text(&f->b, "{\"event\":\"hello\",\"sample_rate\":48000}");
	static uint8_t big[64 * 1024 + 2];
	send_binary(&f->b, big, sizeof big);
	for (int i = 0; i < 40 && !f->b.closed; i++)
		pump(&f->b, 50);
	assert_true(f->b.closed);
	assert_int_equal(f->b.close_code, 1009);
	/* the browser's client answered the close: it has left */
	pump(&f->b, 100);
	assert_true(wait_count(&ends, 1, 2000));
	assert_string_equal(end_reason, "remote_hangup");
	media_session_stop(f->me, CALL);
	assert_true(wait_releases(1, 2000));
	browser_free(&f->b);
}

static void test_start_refused_gives_the_socket_back(void **state)
{
	struct fx *f = *state;
	media_engine_stop(f->me);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct media_web web = {.fd = sv[0], .release = release_fd, .ctx = (void *)(intptr_t)sv[0]};
	struct media_start ms = {.call_id = CALL,
				 .rtp_fd = -1,
				 .rtcp_fd = -1,
				 .addr_index = -1,
				 .te_payload_type = -1,
				 .web = &web};
	assert_int_equal(media_session_start(f->me, &ms), -1);
	assert_int_equal(atomic_load(&releases), 1);
	close(sv[1]);
}

static void test_engine_stop_releases_a_lingering_socket(void **state)
{
	struct fx *f = *state;
	start_web(f, false, NULL, 0);
	pump(&f->b, 100);
	/* the browser never answers the close: the engine's stop does not wait for it */
	media_session_stop(f->me, CALL);
	usleep(100 * 1000);
	assert_int_equal(atomic_load(&releases), 0);
	media_engine_stop(f->me);
	assert_int_equal(atomic_load(&releases), 1);
	browser_free(&f->b);
}

int main(void)
{
	log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_started_then_20ms_frames_at_the_browsers_rate,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_what_the_call_plays_reaches_the_browser, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_browser_audio_reaches_the_recording,
						setup_recorded, teardown),
		cmocka_unit_test_setup_teardown(test_close_frame_ends_the_call_remote_hangup, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_eof_ends_the_call_remote_hangup, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_messages_end_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_oversized_message_closes_1009_and_ends_the_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_refused_gives_the_socket_back, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_engine_stop_releases_a_lingering_socket, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
