/*
 * end_all.c - the emergency stop (call_end_all): every active call of a scope, optionally of
 * one agent, ended through svc_end() without waiting for any goodbye, and one answer once
 * every hang-up is recorded.
 */
#include "service_internal.h"

#include <stdlib.h>

struct end_all {
	pthread_mutex_t mu;
	size_t pending, ended, not_active, failed;
	bool dispatched; /* every end issued */
	call_end_all_fn done;
	void *arg;
};

static void end_all_finish_if_done(struct end_all *ea)
{
	/* called with ea->mu held; releases it */
	bool finished = ea->dispatched && ea->pending == 0;
	pthread_mutex_unlock(&ea->mu);
	if (!finished)
		return;
	struct cp_error ok = {.code = CP_OK};
	ea->done(ea->arg, &ok, ea->ended, ea->not_active, ea->failed);
	pthread_mutex_destroy(&ea->mu);
	free(ea);
}

static void end_all_one(void *arg, const struct cp_error *err, const struct call *c, int goodbye_ms)
{
	struct end_all *ea = arg;
	(void)c;
	(void)goodbye_ms;
	pthread_mutex_lock(&ea->mu);
	if (err->code == CP_OK)
		ea->ended++;
	else if (err->code == CP_ERR_NOT_ACTIVE)
		ea->not_active++;
	else
		ea->failed++;
	ea->pending--;
	end_all_finish_if_done(ea);
}

void call_end_all(struct call_service *svc, const struct scope *sc, const char *agent_id,
		  const char *reason, const char *req_id, call_end_all_fn done, void *arg)
{
	struct cp_error e = {0};
	if (reason && !call_reason_valid(reason)) {
		cp_fail(&e, CP_ERR_INVALID, "reason must be 1..%d characters of [A-Za-z0-9_.:-]",
			CALL_REASON_MAX);
		done(arg, &e, 0, 0, 0);
		return;
	}
	struct end_all *ea = calloc(1, sizeof *ea);
	if (!ea) {
		cp_fail(&e, CP_ERR_INTERNAL, "out of memory");
		done(arg, &e, 0, 0, 0);
		return;
	}
	pthread_mutex_init(&ea->mu, NULL);
	ea->done = done;
	ea->arg = arg;

	/* Walk the active calls page by page (newest first). Ending a call removes it from the
	 * active set, so the cursor (before_seq) keeps the walk from revisiting anything. */
	struct call_filter f = {
		.status_mask = CALL_ACTIVE_MASK, .agent_id = agent_id, .limit = 200};
	for (;;) {
		struct call *calls = NULL;
		size_t n = 0;
		if (STORE(svc->st, call_list, sc, &f, &calls, &n) != STORE_OK) {
			pthread_mutex_lock(&ea->mu);
			ea->failed++;
			pthread_mutex_unlock(&ea->mu);
			break;
		}
		for (size_t i = 0; i < n; i++) {
			pthread_mutex_lock(&ea->mu);
			ea->pending++;
			pthread_mutex_unlock(&ea->mu);
			struct call_end_options opt = {.reason = reason};
			svc_end(svc, sc, calls[i].id, &opt, req_id, END_EMERGENCY, end_all_one, ea);
		}
		if (n)
			f.before_seq = calls[n - 1].seq;
		call_list_free(calls, n);
		if (n < (size_t)f.limit)
			break;
	}
	pthread_mutex_lock(&ea->mu);
	ea->dispatched = true;
	end_all_finish_if_done(ea);
}
