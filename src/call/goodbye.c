/*
 * goodbye.c - the call service's goodbyes: the table of goodbyes under way, their speech, and
 * the speaker thread. See goodbye.h.
 *
 * The table is a fixed array of chains indexed by a hash of the call id, each entry a call id
 * and the ends that joined it. It holds the calls whose goodbye is being said, a few at a time
 * on a busy node (each for a few seconds at most): it never resizes, and an end of a call with
 * no goodbye costs one lock and an empty chain.
 */
#include "call/goodbye.h"
#include "core/log.h"
#include "media/tts.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define GOODBYE_CHAINS 256

struct entry {
	struct entry *next;
	char call_id[CP_UUID_LEN + 1];
	struct goodbye_waiter *waiters, **tail;
};

struct goodbyes {
	pthread_mutex_t mu;
	struct entry *chain[GOODBYE_CHAINS];
};

/* FNV-1a of a call id, as a chain index. */
static unsigned chain_of(const char *call_id)
{
	unsigned h = 2166136261u;
	for (const char *p = call_id; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % GOODBYE_CHAINS;
}

struct goodbyes *goodbyes_create(void)
{
	struct goodbyes *g = calloc(1, sizeof *g);
	if (g)
		pthread_mutex_init(&g->mu, NULL);
	return g;
}

void goodbyes_destroy(struct goodbyes *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* The entry of call_id in chain *head; NULL if none. With g->mu held. */
static struct entry **find(struct entry **head, const char *call_id)
{
	for (struct entry **p = head; *p; p = &(*p)->next)
		if (!strcmp((*p)->call_id, call_id))
			return p;
	return NULL;
}

bool goodbyes_join(struct goodbyes *g, const char *call_id, bool claim, call_end_fn done, void *arg)
{
	struct entry **head = &g->chain[chain_of(call_id)];
	bool joined = false;
	pthread_mutex_lock(&g->mu);
	struct entry **at = find(head, call_id);
	if (at) {
		struct goodbye_waiter *w = calloc(1, sizeof *w);
		if (w) {
			w->done = done;
			w->arg = arg;
			*(*at)->tail = w;
			(*at)->tail = &w->next;
			joined = true;
		}
	} else if (claim) {
		struct entry *e = calloc(1, sizeof *e);
		if (e) {
			snprintf(e->call_id, sizeof e->call_id, "%s", call_id);
			e->tail = &e->waiters;
			e->next = *head;
			*head = e;
		}
	}
	pthread_mutex_unlock(&g->mu);
	return joined;
}

struct goodbye_waiter *goodbyes_release(struct goodbyes *g, const char *call_id)
{
	struct goodbye_waiter *w = NULL;
	pthread_mutex_lock(&g->mu);
	struct entry **at = find(&g->chain[chain_of(call_id)], call_id);
	if (at) {
		struct entry *e = *at;
		*at = e->next;
		w = e->waiters;
		free(e);
	}
	pthread_mutex_unlock(&g->mu);
	return w;
}

void goodbye_speech(const char *text, const char *call_id, uint8_t **audio, size_t *len)
{
	*audio = NULL;
	*len = 0;
	if (tts_render_ulaw(text, "", audio, len)) {
		log_msg(LOG_WARN, "call_goodbye_speech_failed",
			"call %s: the goodbye could not be rendered; the call ends after its queued"
			" audio",
			call_id);
		*audio = NULL;
		*len = 0;
	}
}

/* ---- the speaker ------------------------------------------------------------------------ */

struct speech {
	struct speech *next;
	char call_id[CP_UUID_LEN + 1];
	char reason[CALL_REASON_MAX + 1];
	char *text;
};

struct speaker {
	speaker_fn *fn;
	void *ctx;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct speech *head, **tail;
	bool stopping;
};

static void *speaker_main(void *arg)
{
	struct speaker *sp = arg;
	pthread_setname_np(pthread_self(), "cp-speaker");
	pthread_mutex_lock(&sp->mu);
	for (;;) {
		while (!sp->head && !sp->stopping)
			pthread_cond_wait(&sp->cv, &sp->mu);
		struct speech *s = sp->head;
		if (!s)
			break;
		sp->head = s->next;
		if (!sp->head)
			sp->tail = &sp->head;
		pthread_mutex_unlock(&sp->mu);
		sp->fn(sp->ctx, s->call_id, s->reason, s->text);
		free(s->text);
		free(s);
		pthread_mutex_lock(&sp->mu);
	}
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

struct speaker *speaker_start(speaker_fn *fn, void *ctx)
{
	struct speaker *sp = calloc(1, sizeof *sp);
	if (!sp)
		return NULL;
	sp->fn = fn;
	sp->ctx = ctx;
	sp->tail = &sp->head;
	pthread_mutex_init(&sp->mu, NULL);
	pthread_cond_init(&sp->cv, NULL);
	if (pthread_create(&sp->thread, NULL, speaker_main, sp)) {
		pthread_mutex_destroy(&sp->mu);
		pthread_cond_destroy(&sp->cv);
		free(sp);
		return NULL;
	}
	return sp;
}

int speaker_post(struct speaker *sp, const char *call_id, const char *reason, const char *text)
{
	struct speech *s = calloc(1, sizeof *s);
	if (!s || !(s->text = strdup(text))) {
		free(s);
		return -1;
	}
	snprintf(s->call_id, sizeof s->call_id, "%s", call_id);
	snprintf(s->reason, sizeof s->reason, "%s", reason);
	pthread_mutex_lock(&sp->mu);
	*sp->tail = s;
	sp->tail = &s->next;
	pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	return 0;
}

void speaker_stop(struct speaker *sp)
{
	if (!sp)
		return;
	pthread_mutex_lock(&sp->mu);
	sp->stopping = true;
	pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	pthread_join(sp->thread, NULL);
	pthread_mutex_destroy(&sp->mu);
	pthread_cond_destroy(&sp->cv);
	free(sp);
}
