/*
 * tts.h - local text-to-speech for what callplane itself says (a goodbye before the BYE):
 * text in, 8 kHz mu-law out, the format every call's playout queue holds.
 */
#ifndef CP_MEDIA_TTS_H
#define CP_MEDIA_TTS_H

#include <stddef.h>
#include <stdint.h>

#define TTS_TEXT_MAX 1000      /* characters the API accepts */
#define TTS_AUDIO_MAX_MS 60000 /* a rendering is cut at the longest goodbye wait */

/*
 * Renders UTF-8 text (1..TTS_TEXT_MAX characters) in voice ("" = espeak-ng's default,
 * English). On success *out is a malloc'd buffer of *len mu-law bytes (8 samples per ms),
 * the caller's to free. Returns 0, or -1 (text empty or too long, voice unknown, espeak-ng's
 * data missing, out of memory). Thread-safe (renders are serialised: espeak-ng keeps global
 * state); a sentence takes tens of milliseconds, so it is never called on the media thread.
 */
int tts_render_ulaw(const char *text, const char *voice, uint8_t **out, size_t *len);

/* Frees espeak-ng's state at shutdown; a later render initialises it again. */
void tts_shutdown(void);

#endif
