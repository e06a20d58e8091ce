/*
 * goodbye.h - what the call service keeps for goodbyes (an end whose BYE waits until the call
 * has said its last words, docs/API.md): the table of goodbyes under way, which a second end
 * of the same call joins instead of sending a BYE of its own, the speech they say, and the
 * speaker, the thread that starts the goodbyes the telephony engine asks for.
 *
 * Threads: the table is shared by the HTTP threads (ends), the speaker and the worker (which
 * finishes ends), under one mutex. Speech is rendered by the thread that ends the call: an
 * HTTP thread for an API end, the speaker for a max-duration end; never the SIP or media
 * thread, and never the worker, whose group commits must not wait tens of milliseconds for
 * espeak-ng.
 */
#ifndef CP_CALL_GOODBYE_H
#define CP_CALL_GOODBYE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call/call_service.h"

/* An end that joined a goodbye under way: told the goodbye's result when it is known. */
struct goodbye_waiter {
	struct goodbye_waiter *next;
	call_end_fn done;
	void *arg;
};

struct goodbyes;

/* An empty table; NULL if out of memory. */
struct goodbyes *goodbyes_create(void);
/* Frees the table; every goodbye must have been released. */
void goodbyes_destroy(struct goodbyes *g);
/* If call_id has a goodbye under way, adds (done, arg) to its waiters and returns true: the
 * caller's end is that goodbye's. Otherwise returns false, and with claim enters call_id as
 * under way: the caller's end is the goodbye, until goodbyes_release(). One lock for both, so
 * two ends racing never both claim. false also when out of memory (the caller's end then goes
 * on alone). */
bool goodbyes_join(struct goodbyes *g, const char *call_id, bool claim, call_end_fn done,
		   void *arg);
/* call_id's goodbye is over: takes it out of the table and hands back its waiters, in the
 * order they joined (the caller tells each and frees it). */
struct goodbye_waiter *goodbyes_release(struct goodbyes *g, const char *call_id);

/* Speaks text (valid per call_goodbye_text_valid) for call_id: *audio, *len of 8 kHz mu-law
 * (malloc'd, the caller's). On failure (espeak-ng's data missing, out of memory) logs a
 * warning and leaves *audio NULL, *len 0: the goodbye still waits for the audio queued before
 * it, and the call still ends. */
void goodbye_speech(const char *text, const char *call_id, uint8_t **audio, size_t *len);

/* The speaker: one thread running fn(ctx, call_id, reason, text) for each goodbye posted, in
 * order. */
typedef void speaker_fn(void *ctx, const char *call_id, const char *reason, const char *text);
struct speaker;
/* Starts the thread; NULL on failure. */
struct speaker *speaker_start(speaker_fn *fn, void *ctx);
/* Queues one goodbye (the strings are copied). -1 if out of memory (nothing runs). */
int speaker_post(struct speaker *sp, const char *call_id, const char *reason, const char *text);
/* Runs what is queued, then joins and frees the thread. */
void speaker_stop(struct speaker *sp);

#endif
