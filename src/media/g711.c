/*
 * g711.c - G.711 mu-law and A-law (ITU-T G.711), and the conversion between them.
 *
 * The agent's stream is always 8 kHz mu-law (the Twilio format); a call that negotiated
 * PCMA is converted byte by byte through two 256-entry tables built once from the linear
 * segment rules, so the hot path is one table load per sample.
 */
#include "media/g711.h"

#include <pthread.h>

#define ULAW_BIAS 0x84
#define ULAW_CLIP 32635

int16_t g711_ulaw_decode(uint8_t u)
{
	u = (uint8_t)~u;
	int t = ((u & 0x0F) << 3) + ULAW_BIAS;
	t <<= (u & 0x70) >> 4;
	return (int16_t)((u & 0x80) ? (ULAW_BIAS - t) : (t - ULAW_BIAS));
}

uint8_t g711_ulaw_encode(int16_t pcm)
{
	int v = pcm;
	int sign = 0;
	if (v < 0) {
		v = -v;
		sign = 0x80;
	}
	if (v > ULAW_CLIP)
		v = ULAW_CLIP;
	v += ULAW_BIAS;
	int exp = 7;
	for (int mask = 0x4000; !(v & mask) && exp > 0; mask >>= 1)
		exp--;
	int mant = (v >> (exp + 3)) & 0x0F;
	return (uint8_t) ~(sign | (exp << 4) | mant);
}

int16_t g711_alaw_decode(uint8_t a)
{
	a ^= 0x55;
	int t = (a & 0x0F) << 4;
	int seg = (a & 0x70) >> 4;
	if (seg == 0)
		t += 8;
	else if (seg == 1)
		t += 0x108;
	else
		t = (t + 0x108) << (seg - 1);
	return (int16_t)((a & 0x80) ? t : -t);
}

uint8_t g711_alaw_encode(int16_t pcm)
{
	/* 13-bit magnitude; segment ends of the A-law curve */
	static const int seg_end[8] = {0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF};
	int v = pcm >> 3;
	int mask;
	if (v >= 0) {
		mask = 0xD5;
	} else {
		mask = 0x55;
		v = -v - 1;
	}
	int seg = 0;
	while (seg < 8 && v > seg_end[seg])
		seg++;
	if (seg >= 8)
		return (uint8_t)(0x7F ^ mask);
	int a = seg << 4;
	a |= seg < 2 ? (v >> 1) & 0x0F : (v >> seg) & 0x0F;
	return (uint8_t)(a ^ mask);
}

static uint8_t u2a[256], a2u[256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void)
{
	for (int i = 0; i < 256; i++) {
		u2a[i] = g711_alaw_encode(g711_ulaw_decode((uint8_t)i));
		a2u[i] = g711_ulaw_encode(g711_alaw_decode((uint8_t)i));
	}
}

void g711_ulaw_to_alaw(const uint8_t *in, uint8_t *out, size_t n)
{
	pthread_once(&tables_once, build_tables);
	for (size_t i = 0; i < n; i++)
		out[i] = u2a[in[i]];
}

void g711_alaw_to_ulaw(const uint8_t *in, uint8_t *out, size_t n)
{
	pthread_once(&tables_once, build_tables);
	for (size_t i = 0; i < n; i++)
		out[i] = a2u[in[i]];
}
