/*
 * frame.c - what every far end of a session does with a frame, whatever carries it: the
 * recording's two channels, the audio handed to the agent and the agent -> far end latency.
 * rtp.c (a phone's RTP) and web.c (a browser's WebSocket) call it for each 20 ms frame they
 * play and for the far end's audio as it comes, so a web call is recorded and bridged exactly
 * as a phone call is.
 *
 * The recording pairs each frame played with the far end's oldest audio not yet recorded:
 * what the far end sends waits in s->far until our 20 ms clock plays the next frame, so the two
 * channels stay in step with that clock whatever the far end's own pace.
 */
#include "media/media_internal.h"
#include "media/g711.h"

#include <string.h>

void frame_played(struct session *s, const uint8_t *ulaw)
{
	if (!s->rec)
		return;
	int16_t played[FRAME_SAMPLES], far[FRAME_SAMPLES];
	for (int i = 0; i < FRAME_SAMPLES; i++)
		played[i] = ulaw ? g711_ulaw_decode(ulaw[i]) : 0;
	size_t n = s->far_len < FRAME_SAMPLES ? s->far_len : FRAME_SAMPLES;
	memcpy(far, s->far, n * sizeof far[0]);
	memset(far + n, 0, (FRAME_SAMPLES - n) * sizeof far[0]);
	memmove(s->far, s->far + n, (s->far_len - n) * sizeof far[0]);
	s->far_len -= n;
	recording_write(s->rec, far, played, FRAME_SAMPLES);
}

void frame_sent(struct session *s)
{
	if (s->back_from_us && s->played > s->back_at) {
		latency_add(&s->me->to_phone, cp_mono_us() - s->back_from_us);
		s->back_from_us = 0;
	}
}

/* A far end whose clock runs fast fills far[]: its oldest audio gives way. */
static void record_far(struct session *s, const uint8_t *ulaw, size_t n)
{
	size_t cap = sizeof s->far / sizeof s->far[0];
	if (n > cap)
		n = cap;
	if (s->far_len + n > cap) {
		size_t drop = s->far_len + n - cap;
		memmove(s->far, s->far + drop, (s->far_len - drop) * sizeof s->far[0]);
		s->far_len -= drop;
	}
	for (size_t i = 0; i < n; i++)
		s->far[s->far_len++] = g711_ulaw_decode(ulaw[i]);
}

void frame_heard(struct session *s, const uint8_t *ulaw, size_t n, uint32_t ts_ms)
{
	if (s->rec)
		record_far(s, ulaw, n);
	if (s->agent)
		s->agent->media(s, ulaw, n, ts_ms);
}
