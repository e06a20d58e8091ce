/*
 * tts.c - text to 8 kHz mu-law with Debian's libraries: espeak-ng synthesises at its own rate
 * (22,050 Hz), speexdsp's resampler brings that to 8 kHz, g711.c encodes it.
 *
 * espeak-ng is one global synthesiser: it is initialised on the first render (a server that
 * never says goodbye never loads its data) in synchronous mode, where espeak_Synth() calls
 * back with the samples before it returns, and one mutex serialises renders. The callback
 * resamples each block as it comes and appends the mu-law bytes to the render's buffer,
 * which grows by doubling up to TTS_AUDIO_MAX_MS of audio; beyond that the rest is dropped.
 */
#include "media/tts.h"
#include "media/g711.h"

#include <espeak-ng/speak_lib.h>
#include <pthread.h>
#include <speex/speex_resampler.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define OUT_RATE 8000
#define RESAMPLE_QUALITY 5 /* speexdsp's default for voice: quality vs. cost */
#define OUT_MAX ((size_t)TTS_AUDIO_MAX_MS * (OUT_RATE / 1000))

static pthread_mutex_t tts_mu = PTHREAD_MUTEX_INITIALIZER;
static int in_rate; /* espeak-ng's, once initialised; 0 before */

struct render {
	SpeexResamplerState *rs;
	uint8_t *buf;
	size_t len, cap;
	bool failed;
};

static void append(struct render *r, const spx_int16_t *pcm, size_t n)
{
	if (r->len + n > OUT_MAX)
		n = OUT_MAX - r->len;
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 8192;
		while (cap < r->len + n)
			cap *= 2;
		uint8_t *b = realloc(r->buf, cap);
		if (!b) {
			r->failed = true;
			return;
		}
		r->buf = b;
		r->cap = cap;
	}
	for (size_t i = 0; i < n; i++)
		r->buf[r->len++] = g711_ulaw_encode(pcm[i]);
}

/* espeak-ng's synth callback: samples == NULL marks the end; returning 1 stops synthesis. */
static int on_samples(short *samples, int n, espeak_EVENT *events)
{
	struct render *r = events ? events->user_data : NULL;
	if (!r || r->failed)
		return 1;
	spx_int16_t out[1024];
	spx_uint32_t consumed = 0;
	while (samples && (int)consumed < n && r->len < OUT_MAX && !r->failed) {
		spx_uint32_t in_len = (spx_uint32_t)n - consumed, out_len = 1024;
		speex_resampler_process_int(r->rs, 0, samples + consumed, &in_len, out, &out_len);
		consumed += in_len;
		append(r, out, out_len);
		if (!in_len && !out_len)
			break;
	}
	return r->failed ? 1 : 0;
}

static int ensure_init(void)
{
	if (in_rate > 0)
		return 0;
	int rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL, 0);
	if (rate <= 0)
		return -1;
	espeak_SetSynthCallback(on_samples);
	in_rate = rate;
	return 0;
}

int tts_render_ulaw(const char *text, const char *voice, uint8_t **out, size_t *len)
{
	size_t chars = 0;
	for (const unsigned char *p = (const unsigned char *)text; p && *p; p++)
		chars += (*p & 0xC0) != 0x80; /* UTF-8 lead bytes */
	if (chars == 0 || chars > TTS_TEXT_MAX)
		return -1;
	int rc = -1;
	struct render r = {0};
	pthread_mutex_lock(&tts_mu);
	if (ensure_init())
		goto out;
	if (espeak_SetVoiceByName(voice && *voice ? voice : "en") != EE_OK)
		goto out;
	int err = 0;
	r.rs = speex_resampler_init(1, (spx_uint32_t)in_rate, OUT_RATE, RESAMPLE_QUALITY, &err);
	if (!r.rs)
		goto out;
	if (espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, &r) !=
		    EE_OK ||
	    espeak_Synchronize() != EE_OK || r.failed || r.len == 0)
		goto out;
	/* the resampler holds back its filter's latency: push it out with silence */
	short zeros[256] = {0};
	espeak_EVENT end = {.user_data = &r};
	on_samples(zeros,
		   speex_resampler_get_input_latency(r.rs) < 256
			   ? speex_resampler_get_input_latency(r.rs)
			   : 256,
		   &end);
	if (r.failed)
		goto out;
	*out = r.buf;
	*len = r.len;
	r.buf = NULL;
	rc = 0;
out:
	pthread_mutex_unlock(&tts_mu);
	if (r.rs)
		speex_resampler_destroy(r.rs);
	free(r.buf);
	return rc;
}

void tts_shutdown(void)
{
	pthread_mutex_lock(&tts_mu);
	if (in_rate > 0)
		espeak_Terminate();
	in_rate = 0;
	pthread_mutex_unlock(&tts_mu);
}
