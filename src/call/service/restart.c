/*
 * restart.c - what a crash leaves behind, and what is kept so that it can be cleaned up:
 * while a call is up, the engine's dialog state (what an in-dialog request needs) is kept
 * durably through the worker; at start-up, before the engine runs, the calls a previous run
 * left active are ended node_restart, the dialogs it left up are handed to the engine to hang
 * up, and what each far end answered is recorded.
 */
#include "service_internal.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- dialogs kept while calls are up ----------------------------------------------------- */

struct dialog_job {
	struct job job;
	char call_id[CP_UUID_LEN + 1];
	struct kept_update update; /* only when has_update */
	bool has_update;
	char *dialog;              /* heap; NULL forgets the call's dialog */
	dialog_durable_fn durable; /* told once it is written (arg) */
	void *arg;
};

/* Keeps or forgets a call's dialog, after the transition that came with it. */
static void dialog_apply(struct writer *w, struct job *j)
{
	struct dialog_job *dj = (struct dialog_job *)j;
	if (dj->has_update)
		svc_transition(w, dj->call_id, &dj->update.u, NULL, NULL);
	enum store_result rc =
		dj->dialog ? STORE(w->st, dialog_put, dj->call_id, dj->dialog, cp_now_ms())
			   : STORE(w->st, dialog_clear, dj->call_id);
	if (rc != STORE_OK)
		log_msg(LOG_ERROR, "call_dialog_lost", "call %s: the dialog state could not be %s",
			dj->call_id, dj->dialog ? "kept" : "forgotten");
}

static void dialog_finish(struct job *j)
{
	struct dialog_job *dj = (struct dialog_job *)j;
	if (dj->durable)
		dj->durable(dj->arg);
	free(dj->dialog);
	free(dj);
}

static const struct job_ops dialog_ops = {.apply = dialog_apply, .finish = dialog_finish};

void call_service_post_dialog(struct call_service *svc, const char *call_id,
			      const struct call_update *u, const char *state,
			      dialog_durable_fn durable, void *arg)
{
	struct dialog_job *dj = calloc(1, sizeof *dj);
	if (dj && state && !(dj->dialog = strdup(state))) {
		free(dj);
		dj = NULL;
	}
	if (!dj) {
		/* the engine still waits for durable(): an answer is acknowledged either way */
		log_msg(LOG_ERROR, "call_event_lost", "out of memory for call %s", call_id);
		if (durable)
			durable(arg);
		return;
	}
	dj->job.ops = &dialog_ops;
	snprintf(dj->call_id, sizeof dj->call_id, "%s", call_id);
	if (u) {
		svc_keep_update(&dj->update, u);
		dj->has_update = true;
	}
	dj->durable = durable;
	dj->arg = arg;
	svc_post(svc, &dj->job);
}

/* ---- at start-up ------------------------------------------------------------------------- */

int call_service_recover(struct call_service *svc, bool include_queued)
{
	char(*ids)[CP_UUID_LEN + 1] = NULL;
	size_t n = 0;
	int ended = 0;
	struct writer w = svc_writer(svc);
	if (STORE(svc->st, call_active_ids, &ids, &n) != STORE_OK)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct call c = {0};
		for (int attempt = 0; attempt < 4; attempt++) {
			if (STORE(svc->st, call_get, NULL, ids[i], &c) != STORE_OK ||
			    call_status_is_terminal(c.status) ||
			    (c.status == CALL_QUEUED && !include_queued))
				break;
			struct call_update u = {.from_mask = CALL_BIT(c.status),
						.to = call_end_status(c.status),
						.ended_at = cp_now_ms(),
						.end_reason = "node_restart"};
			if (svc_transition(&w, ids[i], &u, NULL, NULL) == STORE_OK) {
				ended++;
				break;
			}
		}
		call_clear(&c);
	}
	free(ids);
	if (ended)
		log_json(LOG_WARN, "recovered", json_pack("{s:i}", "calls_ended", ended));
	return ended;
}

int call_service_left_dialogs(struct call_service *svc, struct left_dialog **out, size_t *n)
{
	struct dialog_row *rows = NULL;
	size_t count = 0;
	*out = NULL;
	*n = 0;
	if (STORE(svc->st, dialog_list, &rows, &count) != STORE_OK)
		return -1;
	if (!count)
		return 0;
	struct left_dialog *left = calloc(count, sizeof *left);
	if (!left) {
		dialog_rows_free(rows, count);
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		snprintf(left[i].call_id, sizeof left[i].call_id, "%s", rows[i].call_id);
		left[i].state = rows[i].state; /* moved: the array owns it now */
		rows[i].state = NULL;
	}
	dialog_rows_free(rows, count);
	*out = left;
	*n = count;
	return 0;
}

int call_service_left_dialogs_done(struct call_service *svc, struct left_dialog *left, size_t n)
{
	struct writer w = svc_writer(svc);
	int answered = 0;
	for (size_t i = 0; i < n; i++) {
		struct left_dialog *d = &left[i];
		if (d->request) {
			/* the request is one of ours, the status a number: no escaping needed */
			char extra[64], status[16] = "null";
			if (d->status > 0) {
				snprintf(status, sizeof status, "%d", d->status);
				answered++;
			}
			snprintf(extra, sizeof extra, "\"request\":\"%s\",\"sip_status\":%s",
				 d->request, status);
			uint32_t any = CALL_BIT(CALL_STATUS_COUNT) - 1;
			if (STORE(w.st, call_event, d->call_id, "call.restart_hangup", extra, any,
				  NULL) == STORE_OK)
				svc_event_written(&w);
		}
		if (STORE(w.st, dialog_clear, d->call_id) != STORE_OK)
			log_msg(LOG_ERROR, "call_dialog_lost",
				"call %s: the dialog state could not be"
				" forgotten",
				d->call_id);
		free(d->state);
	}
	free(left);
	return answered;
}
