/*
 * transition.c - the only way a call changes state: svc_transition(), one conditional
 * store update (status must be in the step's sources) followed by one log line; and the
 * writer it goes through, which decides when the outbox event it wrote is announced and when
 * the end it recorded is counted (service_internal.h).
 */
#include "service_internal.h"
#include "core/log.h"

#include <stdio.h>

struct writer svc_writer(struct call_service *svc)
{
	return (struct writer){.svc = svc, .st = svc->st};
}

void svc_event_written(struct writer *w)
{
	if (w->batched)
		w->event_pending = true;
	else if (w->svc->on_event)
		w->svc->on_event(w->svc->on_event_arg);
}

/* The outbox event a step emits: none for an update that keeps the status (a late sip_status). */
static const char *event_of(const struct call_update *u)
{
	if (u->from_mask == CALL_BIT(u->to))
		return NULL;
	if (u->to == CALL_RINGING)
		return "call.ringing";
	if (u->to == CALL_IN_PROGRESS)
		return "call.answered";
	return call_status_is_terminal(u->to) ? "call.ended" : NULL;
}

/* The call was ended through w: counted now if that is durable, else once its job is. */
static void ended_through(struct writer *w, const struct call_update *u,
			  enum metrics_dialect dialect)
{
	struct ended e = {
		.set = true, .status = u->to, .reason = u->end_reason, .dialect = dialect};
	if (w->batched && w->job)
		w->job->ended = e;
	else
		metrics_call_ended(call_status_name(e.status), e.reason, e.dialect);
}

enum store_result svc_transition_logged(struct writer *w, const char *id,
					const struct call_update *step, const struct cause *why,
					struct call *out)
{
	const char *req_id = why->req_id;
	enum call_status prev = CALL_QUEUED;
	struct call_update with_event = *step;
	const struct call_update *u = &with_event;
	with_event.event = event_of(step);
	/* The state machine is enforced here, for every caller: a step may only leave states
	 * from which call_state.c allows its target (an update that keeps the status, e.g. a
	 * late sip_status, is the one exception). An illegal step matches no row: CONFLICT. */
	if (step->from_mask != CALL_BIT(step->to))
		with_event.from_mask &= call_sources_of(step->to);
	enum store_result rc = STORE(w->st, call_update, id, u, out, &prev);
	if (rc == STORE_OK && u->event)
		svc_event_written(w);
	if (rc == STORE_OK && call_status_is_terminal(u->to) && prev != u->to)
		ended_through(w, u, why->dialect);
	if (rc == STORE_OK && log_enabled(LOG_INFO)) {
		/* hand-formatted: one line per transition is on the end-call hot path. Every value
		 * is an id, a status name, a validated reason ([A-Za-z0-9_.:-]) or a number. */
		char f[512];
		int n = snprintf(f, sizeof f, "\"call_id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\"",
				 id, call_status_name(prev), call_status_name(u->to));
		if (req_id && *req_id)
			n += snprintf(f + n, sizeof f - (size_t)n, ",\"req_id\":\"%.32s\"", req_id);
		if (u->end_reason)
			n += snprintf(f + n, sizeof f - (size_t)n, ",\"end_reason\":\"%.64s\"",
				      u->end_reason);
		if (u->sip_status)
			n += snprintf(f + n, sizeof f - (size_t)n, ",\"sip_status\":%d",
				      u->sip_status);
		if (why->wire_us)
			snprintf(f + n, sizeof f - (size_t)n, ",\"api_to_wire_us\":%lld",
				 (long long)why->wire_us);
		log_fields(LOG_INFO, prev == u->to ? "call_updated" : "call_transition", f);
	}
	return rc;
}

enum store_result svc_transition(struct writer *w, const char *id, const struct call_update *step,
				 const char *req_id, struct call *out)
{
	struct cause why = {.req_id = req_id, .dialect = METRICS_NO_DIALECT};
	return svc_transition_logged(w, id, step, &why, out);
}

enum store_result call_service_event(struct call_service *svc, const char *call_id,
				     const struct call_update *u, struct call *out)
{
	struct writer w = svc_writer(svc);
	return svc_transition(&w, call_id, u, NULL, out);
}

void svc_keep_update(struct kept_update *k, const struct call_update *u)
{
	k->u = *u;
	if (u->end_reason) {
		snprintf(k->end_reason, sizeof k->end_reason, "%s", u->end_reason);
		k->u.end_reason = k->end_reason;
	}
	if (u->provider_call_id) {
		snprintf(k->provider_call_id, sizeof k->provider_call_id, "%s",
			 u->provider_call_id);
		k->u.provider_call_id = k->provider_call_id;
	}
}
