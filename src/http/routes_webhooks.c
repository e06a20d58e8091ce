/*
 * routes_webhooks.c - /v1/webhooks: register, list, read, change and delete webhooks; list and
 * replay their deliveries. A tenant key acts in its tenant; an operator key in every tenant, or
 * in one it names with tenant_id (the query; the body on create, where naming one is required,
 * as a webhook belongs to a tenant). A number-scoped key is refused (403): a webhook receives
 * every call of its tenant or agent, which a number-scoped key could not otherwise see.
 *
 * Each handler parses, calls the webhook registry (webhook/registry.c, the rules the CLI
 * shares; a NULL tenant there is every tenant) in the request's tenant, and renders.
 */
#include "routes.h"
#include "render/rows.h"
#include "webhook/webhook.h"
#include "webhook/webhook_registry.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct store *store_of(struct http_request *r)
{
	return ((struct app *)http_app(r))->store;
}

/* The tenant a request acts in into *tenant: a tenant key's own; for an operator key tenant_id,
 * or NULL (every tenant) when it names none. sc holds the string *tenant points to. False after
 * replying: 403 for a number-scoped key or a tenant key naming a tenant (request_scope()). */
static bool tenant_of(struct http_request *r, const char *tenant_id, struct scope *sc,
		      const char **tenant)
{
	if (http_principal(r)->scope.number[0]) {
		http_reply_fail(r, CP_ERR_FORBIDDEN, "webhooks need a tenant-scoped key");
		return false;
	}
	if (!request_scope(r, tenant_id, sc))
		return false;
	*tenant = sc->all ? NULL : sc->tenant_id;
	return true;
}

/* The request's body into *req: its JSON object (*body, the caller's to release) with only
 * a webhook's members, each of its type; agent_id null (allow_null, a change) as "", every
 * agent. A creation (!allow_null) may name its tenant_id too; the caller reads it. */
static bool request_of(struct http_request *r, bool allow_null, json_t **body,
		       struct webhook_request *req, struct cp_error *err)
{
	static const char *const change_fields[] = {"url",    "agent_id", "secret",
						    "format", "signing",  NULL};
	static const char *const create_fields[] = {"url",     "agent_id",  "secret", "format",
						    "signing", "tenant_id", NULL};
	const char *const *fields = allow_null ? change_fields : create_fields;
	if (!http_json_body(r, false, body, err) || !json_only_fields(*body, fields, err) ||
	    !json_opt_string(*body, "url", &req->url, err) ||
	    !json_opt_string(*body, "secret", &req->secret, err) ||
	    !json_opt_string(*body, "format", &req->format, err) ||
	    !json_opt_string(*body, "signing", &req->signing, err))
		return false;
	if (allow_null && json_is_null(json_object_get(*body, "agent_id"))) {
		req->agent_id = "";
		return true;
	}
	if (json_opt_string(*body, "agent_id", &req->agent_id, err))
		return true;
	if (allow_null)
		cp_fail(err, CP_ERR_INVALID, "agent_id must be a string or null");
	return false;
}

static void create(struct http_request *r)
{
	struct cp_error err = {0};
	json_t *body = NULL;
	struct webhook_request req = {0};
	struct webhook w;
	struct scope sc;
	const struct app *app = http_app(r);
	const char *named = NULL, *tenant;
	if (!tenant_of(r, NULL, &sc, &tenant)) /* a number-scoped key: before reading the body */
		return;
	if (!request_of(r, false, &body, &req, &err) ||
	    !json_opt_string(body, "tenant_id", &named, &err)) {
		http_reply_error(r, &err);
	} else if (!tenant_of(r, named, &sc, &tenant)) {
		/* replied */
	} else if (!tenant) {
		http_reply_fail(r, CP_ERR_INVALID,
				"tenant_id is required with an operator key:"
				" a webhook belongs to a tenant");
	} else if (webhook_register(store_of(r), tenant, &req, app->webhooks_per_tenant,
				    app->webhook_allow_private, &w, &err) != CP_OK) {
		http_reply_error(r, &err);
	} else {
		http_reply_json(r, 201, webhook_to_json(&w, true));
	}
	json_decref(body);
}

static void list(struct http_request *r)
{
	struct cp_error err = {0};
	struct webhook *hooks = NULL;
	size_t n = 0;
	struct scope sc;
	const char *tenant;
	if (!tenant_of(r, http_query(r, "tenant_id"), &sc, &tenant))
		return;
	if (webhook_registry_list(store_of(r), tenant, &hooks, &n, &err) != CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200, json_pack("{s:o}", "data", webhooks_to_json(hooks, n)));
	free(hooks);
}

static void get(struct http_request *r)
{
	struct cp_error err = {0};
	struct webhook w;
	struct scope sc;
	const char *tenant; /* an operator key: the webhook of whichever tenant holds it */
	if (!tenant_of(r, NULL, &sc, &tenant))
		return;
	if (webhook_registry_get(store_of(r), tenant, http_param(r, 0), &w, &err) != CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200, webhook_to_json(&w, false));
}

/* PATCH: url, format, signing, secret, agent_id (null: every agent). The answer carries the
 * secret only when it changed. */
static void patch(struct http_request *r)
{
	struct cp_error err = {0};
	json_t *body = NULL;
	struct webhook_request req = {0};
	struct webhook w;
	bool new_secret;
	const struct app *app = http_app(r);
	struct scope sc;
	const char *tenant; /* an operator key: the webhook of whichever tenant holds it */
	if (!tenant_of(r, NULL, &sc, &tenant))
		return;
	if (!request_of(r, true, &body, &req, &err) ||
	    webhook_change(store_of(r), tenant, http_param(r, 0), &req, app->webhook_allow_private,
			   &w, &new_secret, &err) != CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200, webhook_to_json(&w, new_secret));
	json_decref(body);
}

static void delete (struct http_request *r)
{
	struct cp_error err = {0};
	struct scope sc;
	const char *tenant; /* an operator key: the webhook of whichever tenant holds it */
	if (!tenant_of(r, NULL, &sc, &tenant))
		return;
	if (webhook_unregister(store_of(r), tenant, http_param(r, 0), &err) != CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200,
				json_pack("{s:s, s:b}", "id", http_param(r, 0), "deleted", 1));
}

static void deliveries(struct http_request *r)
{
	struct cp_error err = {0};
	struct scope sc;
	const char *tenant;
	if (!tenant_of(r, http_query(r, "tenant_id"), &sc, &tenant))
		return;
	const char *status = http_query(r, "status");
	const char *limit = http_query(r, "limit");
	long long n = 100;
	if (status && !webhook_delivery_status_valid(status)) {
		http_reply_fail(r, CP_ERR_INVALID, "status must be pending, failed or delivered");
		return;
	}
	if (limit && !cp_parse_int(limit, 1, 1000, &n)) {
		http_reply_fail(r, CP_ERR_INVALID, "limit must be an integer in 1..1000");
		return;
	}
	struct delivery_row *rows = NULL;
	size_t count = 0;
	if (webhook_delivery_list(store_of(r), tenant, status, (int)n, &rows, &count, &err) !=
	    CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200,
				json_pack("{s:o}", "data", deliveries_to_json(rows, count)));
	delivery_rows_free(rows, count);
}

static void replay(struct http_request *r, long long id)
{
	struct cp_error err = {0};
	int count = 0;
	struct scope sc;
	const char *tenant;
	if (!tenant_of(r, http_query(r, "tenant_id"), &sc, &tenant))
		return;
	if (webhook_delivery_replay(store_of(r), tenant, id, &count, &err) != CP_OK) {
		http_reply_error(r, &err);
		return;
	}
	struct webhook_worker *hooks = ((struct app *)http_app(r))->hooks;
	if (count && hooks)
		webhook_worker_wake(hooks); /* due now: do not wait for the idle poll */
	http_reply_json(r, 200, json_pack("{s:i}", "replayed", count));
}

static void replay_one(struct http_request *r)
{
	long long id;
	if (!cp_parse_int(http_param(r, 0), 1, INT64_MAX, &id)) {
		http_reply_fail(r, CP_ERR_NOT_FOUND, "no failed delivery with that id");
		return;
	}
	replay(r, id);
}

static void replay_failed(struct http_request *r)
{
	replay(r, 0);
}

const struct route webhook_routes[] = {
	{"POST", "/v1/webhooks", create, &canonical_dialect, 0},
	{"GET", "/v1/webhooks", list, &canonical_dialect, 0},
	{"GET", "/v1/webhooks/deliveries", deliveries, &canonical_dialect, 0},
	{"POST", "/v1/webhooks/deliveries/replay", replay_failed, &canonical_dialect, 0},
	{"POST", "/v1/webhooks/deliveries/:id/replay", replay_one, &canonical_dialect, 0},
	{"GET", "/v1/webhooks/:id", get, &canonical_dialect, 0},
	{"PATCH", "/v1/webhooks/:id", patch, &canonical_dialect, 0},
	{"DELETE", "/v1/webhooks/:id", delete, &canonical_dialect, 0},
	{0},
};
