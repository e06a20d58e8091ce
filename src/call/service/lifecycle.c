/*
 * lifecycle.c - the call service's life (create, start, stop, destroy), its settings, and
 * what the rest of the server asks about it: draining, live calls, health.
 *
 * Draining (call_service_drain): one flag, read without a lock by call_create() and by the
 * engine for each INVITE. Nothing else looks at it, so the calls already taken go on as
 * before: their ends, DTMF, goodbyes, events.
 */
#include "service_internal.h"
#include "call/goodbye.h"

#include <stdlib.h>
#include <string.h>

/* The collector: how many calls are in each active status. */
static void collect_active(void *arg, struct metrics_sample *out)
{
	struct call_service *svc = arg;
	int64_t counts[CALL_STATUS_COUNT];
	if (STORE(svc->st, call_count_active, counts) != STORE_OK)
		return;
	out->calls_active[0] += counts[CALL_QUEUED];
	out->calls_active[1] += counts[CALL_RINGING];
	out->calls_active[2] += counts[CALL_IN_PROGRESS];
}

struct call_service *call_service_create(struct store *st)
{
	struct call_service *svc = calloc(1, sizeof *svc);
	if (!svc)
		return NULL;
	svc->st = st;
	svc->goodbyes = goodbyes_create();
	svc->tokens = web_tokens_create();
	if (!svc->goodbyes || !svc->tokens) {
		goodbyes_destroy(svc->goodbyes);
		web_tokens_destroy(svc->tokens);
		free(svc);
		return NULL;
	}
	pthread_mutex_init(&svc->mu, NULL);
	pthread_cond_init(&svc->cv, NULL);
	svc->collector = (struct metrics_collector){.collect = collect_active, .arg = svc};
	metrics_collector_add(&svc->collector);
	return svc;
}

int call_service_start(struct call_service *svc)
{
	if (svc_worker_start(svc))
		return -1;
	svc->speaker = speaker_start(svc_speak, svc);
	if (!svc->speaker) {
		call_service_stop(svc);
		return -1;
	}
	return 0;
}

void call_service_stop(struct call_service *svc)
{
	/* the speaker first: the ends it starts are answered through the worker */
	speaker_stop(svc->speaker);
	svc->speaker = NULL;
	svc_worker_stop(svc);
}

void call_service_destroy(struct call_service *svc)
{
	if (!svc)
		return;
	call_service_stop(svc);
	metrics_collector_remove(&svc->collector);
	goodbyes_destroy(svc->goodbyes);
	pthread_mutex_destroy(&svc->mu);
	pthread_cond_destroy(&svc->cv);
	free(svc->recordings_dir);
	web_tokens_destroy(svc->tokens);
	free(svc);
}

int call_service_set_recordings(struct call_service *svc, const char *dir)
{
	char *copy = dir ? strdup(dir) : NULL;
	if (dir && !copy)
		return -1;
	free(svc->recordings_dir);
	svc->recordings_dir = copy;
	return 0;
}

void call_service_on_event(struct call_service *svc, void (*fn)(void *arg), void *arg)
{
	svc->on_event = fn;
	svc->on_event_arg = arg;
}

void call_service_set_telephony(struct call_service *svc, const struct telephony *tel)
{
	if (tel)
		svc->tel = *tel;
	else
		memset(&svc->tel, 0, sizeof svc->tel);
}

void call_service_drain(struct call_service *svc)
{
	atomic_store(&svc->draining, true);
}

bool call_service_accepting(const struct call_service *svc)
{
	return !atomic_load(&svc->draining);
}

int call_service_live_calls(struct call_service *svc, size_t *n)
{
	*n = 0;
	if (!svc->tel.ops)
		return 0;
	char(*ids)[CP_UUID_LEN + 1] = NULL;
	enum store_result rc = STORE(svc->st, call_active_ids, &ids, n);
	free(ids);
	return rc == STORE_OK ? 0 : -1;
}

void call_service_health(struct call_service *svc, int engine_timeout_ms,
			 struct call_service_health *out)
{
	int64_t seq;
	out->store_ok = STORE(svc->st, events_last_seq, &seq) == STORE_OK;
	out->has_engine = svc->tel.ops != NULL;
	out->engine_ok = !svc->tel.ops || !svc->tel.ops->ping ||
			 svc->tel.ops->ping(svc->tel.engine, engine_timeout_ms) == 0;
	out->draining = atomic_load(&svc->draining);
}
