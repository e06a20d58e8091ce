/*
 * registry.c - managing webhooks and their deliveries: the rules the API and the CLI share.
 *
 * A webhook belongs to a tenant and optionally narrows to one agent. Its URL must be http or
 * https; its secret (for Callplane-Signature) is generated (192 random bits) when not given.
 * Listing never shows secrets (only creation returns one). Deleting a webhook drops its
 * pending deliveries. A failed delivery can be replayed: it becomes pending and due now, and
 * the delivery worker sends it again with the same event id.
 *
 * A tenant_id of NULL means every tenant: the admin CLI's view. The API always passes the
 * tenant of the caller's key, so a key never sees or touches another tenant's webhooks.
 * Every store failure is CP_ERR_INTERNAL "store error".
 */
#include "webhook.h"
#include "webhook_registry.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum cp_err webhook_register(struct store *st, const char *tenant_id,
			     const struct webhook_request *req, struct webhook *out,
			     struct cp_error *err)
{
	memset(out, 0, sizeof *out);
	const char *url = req->url;
	if (!url || (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) ||
	    strlen(url) > WEBHOOK_URL_MAX || strpbrk(url, " \t\r\n"))
		return cp_fail(err, CP_ERR_INVALID, "url must be an http:// or https:// URL of at most %d bytes",
			       WEBHOOK_URL_MAX);
	const char *format = req->format ? req->format : "canonical";
	if (!webhook_format_valid(format))
		return cp_fail(err, CP_ERR_INVALID, "format must be canonical, talkover or pilotstatus");
	if (req->secret && (strlen(req->secret) < 16 || strlen(req->secret) > WEBHOOK_SECRET_MAX))
		return cp_fail(err, CP_ERR_INVALID, "secret must be 16..%d characters", WEBHOOK_SECRET_MAX);
	if (req->agent_id) {
		struct agent a;
		struct scope sc = {0};
		snprintf(sc.tenant_id, sizeof sc.tenant_id, "%s", tenant_id);
		int rc = STORE(st, agent_get, &sc, req->agent_id, &a);
		if (rc == STORE_NOT_FOUND)
			return cp_fail(err, CP_ERR_NOT_FOUND, "agent %s not found", req->agent_id);
		if (rc != STORE_OK)
			return cp_fail(err, CP_ERR_INTERNAL, "store error");
		snprintf(out->agent_id, sizeof out->agent_id, "%s", a.id);
	}
	if (req->secret) {
		snprintf(out->secret, sizeof out->secret, "%s", req->secret);
	} else {
		unsigned char raw[24];
		char hex[49];
		if (cp_random(raw, sizeof raw))
			return cp_fail(err, CP_ERR_INTERNAL, "no randomness");
		cp_hex(raw, sizeof raw, hex);
		snprintf(out->secret, sizeof out->secret, "whsec_%s", hex);
	}
	if (cp_uuid4(out->id))
		return cp_fail(err, CP_ERR_INTERNAL, "no randomness");
	snprintf(out->tenant_id, sizeof out->tenant_id, "%s", tenant_id);
	snprintf(out->url, sizeof out->url, "%s", url);
	snprintf(out->format, sizeof out->format, "%s", format);
	out->created_at = cp_now_ms();
	int rc = STORE(st, webhook_create, out);
	if (rc == STORE_NOT_FOUND)
		return cp_fail(err, CP_ERR_NOT_FOUND, "tenant %s not found", tenant_id);
	if (rc != STORE_OK)
		return cp_fail(err, CP_ERR_INTERNAL, "store error");
	return CP_OK;
}

enum cp_err webhook_registry_list(struct store *st, const char *tenant_id, json_t **data,
				  struct cp_error *err)
{
	*data = NULL;
	if (STORE(st, webhook_list, tenant_id, data) != STORE_OK)
		return cp_fail(err, CP_ERR_INTERNAL, "store error");
	return CP_OK;
}

enum cp_err webhook_unregister(struct store *st, const char *tenant_id, const char *id,
			       struct cp_error *err)
{
	int rc = STORE(st, webhook_delete, tenant_id, id);
	if (rc == STORE_NOT_FOUND)
		return cp_fail(err, CP_ERR_NOT_FOUND, "webhook not found");
	if (rc != STORE_OK)
		return cp_fail(err, CP_ERR_INTERNAL, "store error");
	return CP_OK;
}

bool webhook_delivery_status_valid(const char *status)
{
	return !strcmp(status, "pending") || !strcmp(status, "failed") ||
	       !strcmp(status, "delivered");
}

enum cp_err webhook_delivery_list(struct store *st, const char *tenant_id, const char *status,
				  int limit, json_t **data, struct cp_error *err)
{
	*data = NULL;
	if (STORE(st, delivery_list, tenant_id, status, limit, data) != STORE_OK)
		return cp_fail(err, CP_ERR_INTERNAL, "store error");
	return CP_OK;
}

enum cp_err webhook_delivery_replay(struct store *st, const char *tenant_id, int64_t id,
				    int *count, struct cp_error *err)
{
	*count = 0;
	if (STORE(st, delivery_replay, tenant_id, id, cp_now_ms(), count) != STORE_OK)
		return cp_fail(err, CP_ERR_INTERNAL, "store error");
	if (id && *count == 0)
		return cp_fail(err, CP_ERR_NOT_FOUND, "no failed delivery with that id");
	return CP_OK;
}

json_t *webhook_to_json(const struct webhook *w, bool with_secret)
{
	char ts[CP_RFC3339_LEN + 1];
	cp_rfc3339(w->created_at, ts);
	json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s}", "id", w->id, "tenant_id",
			      w->tenant_id, "agent_id",
			      w->agent_id[0] ? json_string(w->agent_id) : json_null(), "url", w->url,
			      "format", w->format, "created_at", ts);
	if (with_secret)
		json_object_set_new(o, "secret", json_string(w->secret));
	return o;
}
