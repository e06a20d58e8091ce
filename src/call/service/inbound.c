/*
 * inbound.c - a new inbound call: the engine hands over an INVITE that reached an agent's
 * number, the worker stores the call (queued) in its group commit, and the engine is told
 * once that is durable.
 */
#include "service_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct inbound_job {
	struct job job;
	char call_id[CP_UUID_LEN + 1];
	char number[STORE_NUMBER_MAX + 1];
	char from[CALL_ADDR_MAX + 1], to[CALL_ADDR_MAX + 1];
	char provider_call_id[CALL_PROVIDER_ID_MAX + 1];
	char *tenants; /* heap, NULL = any tenant */
	inbound_created_fn created;
	void *arg;
	enum cp_err err;
	struct call call; /* the stored call */
};

/* Stores the inbound call; inbound_finish() tells the engine. */
static void inbound_apply(struct writer *w, struct job *j)
{
	struct inbound_job *ij = (struct inbound_job *)j;
	struct agent agent;
	struct call *c = &ij->call;
	call_clear(c); /* an earlier try of a batch that did not commit */
	enum store_result rc = STORE(w->st, agent_by_number, ij->number, &agent);
	if (rc != STORE_OK) {
		ij->err = store_fail(NULL, rc, "agent %s", ij->number);
		return;
	}
	if (ij->tenants && !strstr(ij->tenants, agent.tenant_id)) {
		/* the trunks that admitted the INVITE are other tenants': as if unknown */
		ij->err = CP_ERR_NOT_FOUND;
		return;
	}
	if (ij->call_id[0])
		snprintf(c->id, sizeof c->id, "%s", ij->call_id);
	else if (cp_uuid4(c->id)) {
		ij->err = CP_ERR_INTERNAL;
		return;
	}
	snprintf(c->tenant_id, sizeof c->tenant_id, "%s", agent.tenant_id);
	snprintf(c->agent_id, sizeof c->agent_id, "%s", agent.id);
	c->direction = CALL_INBOUND;
	c->status = CALL_QUEUED;
	snprintf(c->from, sizeof c->from, "%s", ij->from);
	snprintf(c->to, sizeof c->to, "%s", ij->to);
	snprintf(c->provider_call_id, sizeof c->provider_call_id, "%s", ij->provider_call_id);
	c->max_duration_s = agent.max_duration_s;
	c->record = agent.record;
	c->created_at = cp_now_ms();
	c->metadata = strdup("{}");
	if (!c->metadata || svc_set_stream_url(c, agent.stream_url) ||
	    svc_set_max_duration_goodbye(c, &agent) || STORE(w->st, call_insert, c) != STORE_OK) {
		ij->err = CP_ERR_INTERNAL;
		return;
	}
	svc_log_created(c, NULL);
	ij->err = CP_OK;
}

static void inbound_finish(struct job *j)
{
	struct inbound_job *ij = (struct inbound_job *)j;
	if (ij->err == CP_OK)
		metrics_call_created(true);
	ij->created(ij->arg, ij->err, ij->err == CP_OK ? &ij->call : NULL);
	call_clear(&ij->call);
	free(ij->tenants);
	free(ij);
}

static const struct job_ops inbound_ops = {.apply = inbound_apply, .finish = inbound_finish};

void call_service_inbound(struct call_service *svc, const struct inbound_call *in,
			  inbound_created_fn created, void *arg)
{
	struct inbound_job *ij = calloc(1, sizeof *ij);
	if (!ij) {
		created(arg, CP_ERR_INTERNAL, NULL);
		return;
	}
	ij->job.ops = &inbound_ops;
	snprintf(ij->call_id, sizeof ij->call_id, "%s", in->call_id ? in->call_id : "");
	snprintf(ij->number, sizeof ij->number, "%s", in->number);
	snprintf(ij->from, sizeof ij->from, "%s", in->from);
	snprintf(ij->to, sizeof ij->to, "%s", in->to);
	snprintf(ij->provider_call_id, sizeof ij->provider_call_id, "%s", in->provider_call_id);
	if (in->tenants && !(ij->tenants = strdup(in->tenants))) {
		free(ij);
		created(arg, CP_ERR_INTERNAL, NULL);
		return;
	}
	ij->created = created;
	ij->arg = arg;
	svc_post(svc, &ij->job);
}
