/*
 * web_call.c - web calls (docs/API.md, "Web calls"): a call stored queued that waits for its
 * browser, and the access tokens (web_token.h) the browser opens its page and joins with.
 * A token outlives nothing: each check also reads that its call still waits for a browser.
 */
#include "service_internal.h"
#include "core/log.h"

#include <stdio.h>

/* The monotonic clock of web tokens, in ms. */
static int64_t token_now_ms(void)
{
	return cp_mono_us() / 1000;
}

/* svc_start_fn of a web call: it waits for its browser for *(int *)join_ms. */
static int start_waiting(struct call_service *svc, const struct call *c, void *join_ms)
{
	return svc->tel.ops->web_open(svc->tel.engine, c, *(int *)join_ms);
}

enum cp_err call_web_create(struct call_service *svc, const struct scope *sc,
			    const struct web_call_request *req, const char *req_id,
			    struct call *out, struct web_call_access *access, struct cp_error *err)
{
	struct agent agent;
	if (!req->agent_id || !*req->agent_id)
		return cp_fail(err, CP_ERR_INVALID, "agent_id is required");
	if (!svc_metadata_valid(req->metadata))
		return cp_fail(err, CP_ERR_INVALID,
			       "metadata must be a JSON object of at most %d bytes",
			       CALL_METADATA_MAX);
	if (req->token_ttl_s < 0 || req->token_ttl_s > WEB_TOKEN_TTL_MAX_S)
		return cp_fail(err, CP_ERR_INVALID, "token_ttl_s must be an integer in 1..%d",
			       WEB_TOKEN_TTL_MAX_S);
	enum store_result rc = STORE(svc->st, agent_get, sc, req->agent_id, &agent);
	if (rc != STORE_OK)
		return store_fail(err, rc, "agent %s", req->agent_id);
	if (!svc->tel.ops || !svc->tel.ops->web_open)
		return cp_fail(err, CP_ERR_MEDIA_UNAVAILABLE,
			       "no media engine on this node (--sip none): web calls need one");

	int ttl_s = req->token_ttl_s ? req->token_ttl_s : WEB_TOKEN_TTL_DEFAULT_S;
	struct call c = {0};
	if (cp_uuid4(c.id) || web_token_issue(svc->tokens, c.id, token_now_ms(),
					      (int64_t)ttl_s * 1000, access->token))
		return cp_fail(err, CP_ERR_INTERNAL, "no randomness");
	snprintf(c.tenant_id, sizeof c.tenant_id, "%s", agent.tenant_id);
	snprintf(c.agent_id, sizeof c.agent_id, "%s", agent.id);
	c.direction = CALL_WEB;
	c.status = CALL_QUEUED;
	c.max_duration_s = agent.max_duration_s;
	c.record = req->record == CALL_RECORD_AGENT ? agent.record : req->record == CALL_RECORD_YES;
	c.created_at = cp_now_ms();
	access->expires_at = c.created_at + (int64_t)ttl_s * 1000;
	int join_ms = ttl_s * 1000;
	return svc_store_and_start(svc, &c, &agent, req->metadata, agent.stream_url, req_id,
				   start_waiting, &join_ms, "the web call could not be opened", out,
				   err);
}

/* The check of a token, and its use with take; every refusal is one 401. */
static enum cp_err web_token(struct call_service *svc, const char *token, const char *call_id,
			     bool take, char out_call_id[CP_UUID_LEN + 1], struct cp_error *err)
{
	char id[CP_UUID_LEN + 1] = "";
	enum web_token_result r = web_token_check(svc->tokens, token, call_id, token_now_ms(), id);
	const char *why = web_token_result_name(r);
	if (r == WEB_TOKEN_OK) {
		/* a token outlives nothing: the call must still wait for its browser */
		struct call c = {0};
		if (STORE(svc->st, call_get, NULL, id, &c) != STORE_OK || c.status != CALL_QUEUED)
			why = "the call is not waiting for its browser";
		else if (take && web_token_take(svc->tokens, token, call_id, token_now_ms(), id) !=
					 WEB_TOKEN_OK)
			why = "used"; /* another take came first */
		else
			why = NULL;
		call_clear(&c);
	}
	if (why) {
		json_t *f = json_pack("{s:s, s:s}", "why", why, "use", take ? "join" : "page");
		if (call_id && cp_is_uuid(call_id))
			json_object_set_new(f, "call_id", json_string(call_id));
		log_json(LOG_INFO, "web_token_refused", f);
		return cp_fail(
			err, CP_ERR_UNAUTHORIZED,
			"this call link is not valid: it expired, was used already, or its call"
			" has ended");
	}
	if (out_call_id)
		snprintf(out_call_id, CP_UUID_LEN + 1, "%s", id);
	return CP_OK;
}

enum cp_err call_web_check(struct call_service *svc, const char *token, const char *call_id,
			   struct cp_error *err)
{
	return web_token(svc, token, call_id, false, NULL, err);
}

enum cp_err call_web_take(struct call_service *svc, const char *token, const char *call_id,
			  char out_call_id[CP_UUID_LEN + 1], struct cp_error *err)
{
	return web_token(svc, token, call_id, true, out_call_id, err);
}

void call_web_join(struct call_service *svc, const char *call_id, const struct web_socket *ws)
{
	if (svc->tel.ops && svc->tel.ops->web_join)
		svc->tel.ops->web_join(svc->tel.engine, call_id, ws);
	else
		ws->release(ws->ctx);
}
