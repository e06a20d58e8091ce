/*
 * create.c - a new outbound call: the request checked (addresses, caller ID, dial policy,
 * metadata, stream URL) before anything is stored or sent, then stored queued and dialled.
 * svc_store_and_start() and the helpers that give a call what its agent says are shared with
 * web calls (web_call.c) and inbound calls (inbound.c).
 */
#include "service_internal.h"
#include "call/dial.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int svc_set_stream_url(struct call *c, const char *url)
{
	c->stream_url = url && *url ? strdup(url) : NULL;
	return url && *url && !c->stream_url ? -1 : 0;
}

int svc_set_max_duration_goodbye(struct call *c, const struct agent *agent)
{
	if (!c->max_duration_s || !agent->max_duration_goodbye[0])
		return 0;
	c->max_duration_goodbye = strdup(agent->max_duration_goodbye);
	return c->max_duration_goodbye ? 0 : -1;
}

bool svc_metadata_valid(const char *text)
{
	if (!text)
		return true;
	if (strlen(text) > CALL_METADATA_MAX)
		return false;
	json_t *m = json_loads(text, 0, NULL);
	bool ok = m && json_is_object(m);
	json_decref(m);
	return ok;
}

void svc_log_created(const struct call *c, const char *req_id)
{
	json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "call_id", c->id, "agent_id", c->agent_id,
			      "direction", call_direction_name(c->direction), "status",
			      call_status_name(c->status));
	if (c->provider_call_id[0])
		json_object_set_new(f, "provider_call_id", json_string(c->provider_call_id));
	if (req_id && *req_id)
		json_object_set_new(f, "req_id", json_string(req_id));
	log_json(LOG_INFO, "call_created", f);
}

/* A caller ID is a number the tenant owns: its own agent's, or another agent's of the same
 * tenant; a number-scoped key may send only its own number. Anything else (another tenant's
 * agent, a number nobody here holds) is refused with one message, so the refusal does not
 * tell whether the number exists elsewhere. */
static enum cp_err from_check(struct call_service *svc, const struct scope *sc,
			      const struct agent *agent, const char *from, struct cp_error *err)
{
	if (!strcmp(from, agent->number))
		return CP_OK;
	struct agent owner;
	enum store_result rc = STORE_NOT_FOUND;
	if (!sc->number[0])
		rc = STORE(svc->st, agent_by_number, from, &owner);
	if (rc == STORE_OK && !strcmp(owner.tenant_id, agent->tenant_id))
		return CP_OK;
	if (rc != STORE_OK && rc != STORE_NOT_FOUND)
		return store_fail(err, rc, "agent");
	if (sc->number[0])
		return cp_fail(err, CP_ERR_FROM_NOT_ALLOWED, "from must be this key's number, %s",
			       sc->number);
	return cp_fail(err, CP_ERR_FROM_NOT_ALLOWED,
		       "from must be the number of one of the tenant's agents");
}

enum cp_err svc_store_and_start(struct call_service *svc, struct call *c, const struct agent *agent,
				const char *metadata, const char *stream_url, const char *req_id,
				svc_start_fn *start, void *arg, const char *unstarted,
				struct call *out, struct cp_error *err)
{
	c->metadata = strdup(metadata ? metadata : "{}");
	if (!c->metadata || svc_set_stream_url(c, stream_url) ||
	    svc_set_max_duration_goodbye(c, agent)) {
		call_clear(c);
		return cp_fail(err, CP_ERR_INTERNAL, "out of memory");
	}
	enum store_result rc = STORE(svc->st, call_insert, c);
	if (rc != STORE_OK) {
		call_clear(c);
		return store_fail(err, rc, "agent %s", agent->id);
	}
	metrics_call_created(false);
	svc_log_created(c, req_id);
	if (start(svc, c, arg) != 0) {
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
					.to = CALL_FAILED,
					.ended_at = cp_now_ms(),
					.end_reason = "failed"};
		struct writer w = svc_writer(svc);
		if (svc_transition(&w, c->id, &u, req_id, c) != STORE_OK) {
			call_clear(c); /* stored queued, never started: say so rather than 201 */
			return cp_fail(err, CP_ERR_INTERNAL, "%s", unstarted);
		}
	}
	call_move(out, c);
	return CP_OK;
}

/* svc_start_fn of a phone call: dialled by the engine, if there is one (else it stays
 * queued). */
static int start_dialling(struct call_service *svc, const struct call *c, void *arg)
{
	(void)arg;
	return svc->tel.ops ? svc->tel.ops->dial(svc->tel.engine, c) : 0;
}

enum cp_err call_create(struct call_service *svc, const struct scope *sc,
			const struct call_request *req, const char *req_id, struct call *out,
			struct cp_error *err)
{
	struct agent agent;
	enum cp_err e;
	/* first: another server takes it, whatever the request says */
	if (atomic_load(&svc->draining))
		return cp_fail(err, CP_ERR_UNAVAILABLE,
			       "this server is draining: it takes no new calls");
	if (!req->agent_id || !*req->agent_id)
		return cp_fail(err, CP_ERR_INVALID, "agent_id is required");
	if (!req->to || !call_address_valid(req->to))
		return cp_fail(err, CP_ERR_INVALID,
			       "to must be a sip: URI or an E.164 number of at most %d bytes",
			       CALL_ADDR_MAX);
	if (req->from && !cp_is_e164(req->from))
		return cp_fail(
			err, CP_ERR_INVALID,
			"from must be an E.164 number: the number of one of the tenant's agents");
	if (req->max_duration_s < 0 || req->max_duration_s > 86400)
		return cp_fail(err, CP_ERR_INVALID,
			       "max_duration_s must be an integer in 1..86400");
	if (!svc_metadata_valid(req->metadata))
		return cp_fail(err, CP_ERR_INVALID,
			       "metadata must be a JSON object of at most %d bytes",
			       CALL_METADATA_MAX);
	/* the message never repeats the URL: its query string may carry a secret */
	if (req->stream_url && !call_stream_url_valid(req->stream_url))
		return cp_fail(err, CP_ERR_INVALID,
			       "stream_url must be an absolute ws:// or wss:// URL with a host, at"
			       " most %d bytes, without spaces or control characters",
			       CALL_STREAM_URL_MAX);

	enum store_result rc = STORE(svc->st, agent_get, sc, req->agent_id, &agent);
	if (rc != STORE_OK)
		return store_fail(err, rc, "agent %s", req->agent_id);
	const char *from = req->from ? req->from : agent.number;
	if (!*from)
		return cp_fail(err, CP_ERR_INVALID, "from is required: the agent has no number");
	if ((e = from_check(svc, sc, &agent, from, err)) != CP_OK)
		return e;
	/* before anything is stored or sent: a refused destination makes no call */
	struct dial_policy policy;
	if ((rc = STORE(svc->st, tenant_dial, agent.tenant_id, &policy)) != STORE_OK)
		return store_fail(err, rc, "tenant %s", agent.tenant_id);
	if ((e = dial_check(&policy, sc->sip_uris, req->to, err)) != CP_OK)
		return e;

	struct call c = {0};
	if (cp_uuid4(c.id))
		return cp_fail(err, CP_ERR_INTERNAL, "no randomness");
	snprintf(c.tenant_id, sizeof c.tenant_id, "%s", agent.tenant_id);
	snprintf(c.agent_id, sizeof c.agent_id, "%s", agent.id);
	c.direction = CALL_OUTBOUND;
	c.status = CALL_QUEUED;
	snprintf(c.from, sizeof c.from, "%s", from);
	snprintf(c.to, sizeof c.to, "%s", req->to);
	c.max_duration_s = req->max_duration_s ? req->max_duration_s : agent.max_duration_s;
	/* the request's choice wins over the agent's */
	c.record = req->record == CALL_RECORD_AGENT ? agent.record : req->record == CALL_RECORD_YES;
	memcpy(c.trunk_id, agent.trunk_id, sizeof c.trunk_id);
	c.created_at = cp_now_ms();
	if (svc->tel.ops)
		svc->tel.ops->new_call_id(svc->tel.engine, c.provider_call_id,
					  sizeof c.provider_call_id);
	/* the request's URL wins over the agent's */
	return svc_store_and_start(svc, &c, &agent, req->metadata,
				   req->stream_url ? req->stream_url : agent.stream_url, req_id,
				   start_dialling, NULL, "the call could not be dialled", out, err);
}
