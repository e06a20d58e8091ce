/*
 * events.c - what the telephony engine reports about calls and trunks, queued to the worker
 * so the engine never waits on the store: a call's status updates (ringing, answered, ended,
 * a late sip_status) and a trunk's registration status.
 */
#include "service_internal.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a call's status update -------------------------------------------------------------- */

struct event_job {
	struct job job;
	char call_id[CP_UUID_LEN + 1];
	struct kept_update update;
};

static void event_apply(struct writer *w, struct job *j)
{
	struct event_job *ej = (struct event_job *)j;
	svc_transition(w, ej->call_id, &ej->update.u, NULL, NULL);
}

static void event_finish(struct job *j)
{
	free(j);
}

static const struct job_ops event_ops = {.apply = event_apply, .finish = event_finish};

void call_service_post_event(struct call_service *svc, const char *call_id,
			     const struct call_update *u)
{
	struct event_job *ej = calloc(1, sizeof *ej);
	if (!ej) {
		log_msg(LOG_ERROR, "call_event_lost", "out of memory for call %s", call_id);
		return;
	}
	ej->job.ops = &event_ops;
	snprintf(ej->call_id, sizeof ej->call_id, "%s", call_id);
	svc_keep_update(&ej->update, u);
	svc_post(svc, &ej->job);
}

/* ---- a trunk's registration status ------------------------------------------------------- */

struct trunk_job {
	struct job job;
	struct trunk_status trunk;
	char *event_data; /* heap, the data of its event, if it makes one */
};

/* Keeps a trunk's registration status, with its event when it changed. */
static void trunk_apply(struct writer *w, struct job *j)
{
	struct trunk_job *tj = (struct trunk_job *)j;
	bool evented = false;
	enum store_result rc = STORE(w->st, trunk_status_put, &tj->trunk, tj->event_data, &evented);
	if (evented)
		svc_event_written(w);
	else if (rc != STORE_OK && rc != STORE_NOT_FOUND) /* NOT_FOUND: deleted meanwhile */
		log_msg(LOG_ERROR, "trunk_status_lost", "trunk %s: status %s not kept",
			tj->trunk.trunk_id, tj->trunk.status);
}

static void trunk_finish(struct job *j)
{
	struct trunk_job *tj = (struct trunk_job *)j;
	free(tj->event_data);
	free(tj);
}

static const struct job_ops trunk_ops = {.apply = trunk_apply, .finish = trunk_finish};

void call_service_post_trunk_status(struct call_service *svc, const struct trunk_status *s,
				    const char *event_data)
{
	struct trunk_job *tj = calloc(1, sizeof *tj);
	if (tj && !(tj->event_data = strdup(event_data))) {
		free(tj);
		tj = NULL;
	}
	if (!tj) {
		log_msg(LOG_ERROR, "trunk_status_lost", "out of memory for trunk %s", s->trunk_id);
		return;
	}
	tj->job.ops = &trunk_ops;
	tj->trunk = *s;
	svc_post(svc, &tj->job);
}
