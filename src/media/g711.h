/*
 * g711.h - G.711 sample coding (mu-law, A-law) and transcoding between the two laws.
 */
#ifndef CP_MEDIA_G711_H
#define CP_MEDIA_G711_H

#include <stddef.h>
#include <stdint.h>

#define G711_ULAW_SILENCE 0xFF
#define G711_ALAW_SILENCE 0xD5

int16_t g711_ulaw_decode(uint8_t u);
uint8_t g711_ulaw_encode(int16_t pcm);
int16_t g711_alaw_decode(uint8_t a);
uint8_t g711_alaw_encode(int16_t pcm);
/* n samples; in and out may be the same buffer. */
void g711_ulaw_to_alaw(const uint8_t *in, uint8_t *out, size_t n);
void g711_alaw_to_ulaw(const uint8_t *in, uint8_t *out, size_t n);

#endif
