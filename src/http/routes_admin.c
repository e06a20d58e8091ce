/*
 * routes_admin.c - the admin API: /v1/tenants, /v1/agents, /v1/keys, /v1/trunks (docs/API.md,
 * "Admin API"). Each handler parses, asks src/admin/ (the rules `callplane tenant|agent|key|
 * trunk` share) in the key's scope, and renders.
 *
 * Who may do what:
 *   - an operator key: everything; on /v1/agents and /v1/keys a tenant_id (query or body)
 *     picks the tenant, as on /v1/calls (request_scope()).
 *   - a tenant key: its own tenant's agents and keys; reads its own tenant (another tenant's
 *     id is a 404, as another tenant's call is); a tenant_id is refused (403).
 *     Trunks likewise: a tenant key manages its tenant's, an operator's any.
 *   - a number-scoped key: reads its own agents (the agents with its number; any other is a
 *     404), nothing else (403): it sees one number's calls, so it manages nothing shared.
 */
#include "routes.h"
#include "admin/admin.h"
#include "render/rows.h"

#include <stdlib.h>
#include <string.h>

static struct store *store_of(struct http_request *r)
{
	return ((struct app *)http_app(r))->store;
}

/* Replies 403 and returns false unless the key is an operator's. */
static bool operator_only(struct http_request *r, const char *what)
{
	if (http_principal(r)->scope.all)
		return true;
	http_reply_fail(r, CP_ERR_FORBIDDEN, "%s needs an operator key", what);
	return false;
}

/* Replies 403 and returns false for a number-scoped key. */
static bool not_number_scoped(struct http_request *r, const char *what)
{
	if (!http_principal(r)->scope.number[0])
		return true;
	http_reply_fail(r, CP_ERR_FORBIDDEN, "%s needs a tenant-scoped or an operator key", what);
	return false;
}

/* A member that, if present, is a string, or null to clear (*out admin_clear); absent: NULL. */
static bool json_opt_clearable(json_t *obj, const char *name, const char **out,
			       struct cp_error *err)
{
	if (json_is_null(json_object_get(obj, name))) {
		*out = admin_clear;
		return true;
	}
	if (json_opt_string(obj, name, out, err))
		return true;
	cp_fail(err, CP_ERR_INVALID, "%s must be a string or null", name);
	return false;
}

/* The request's JSON object with only the allowed members, or NULL after replying 400. */
static json_t *body_of(struct http_request *r, const char *const *fields)
{
	struct cp_error err = {0};
	json_t *body = NULL;
	if (!http_json_body(r, false, &body, &err) || !json_only_fields(body, fields, &err)) {
		http_reply_error(r, &err);
		json_decref(body);
		return NULL;
	}
	return body;
}

/* ---- /v1/tenants ------------------------------------------------------------------------ */

static void tenant_reply(struct http_request *r, unsigned status, enum cp_err rc,
			 const struct tenant *t, const struct cp_error *err)
{
	if (rc != CP_OK)
		http_reply_error(r, err);
	else
		http_reply_json(r, status, tenant_to_json(t));
}

static void tenants_list(struct http_request *r)
{
	struct cp_error err = {0};
	struct tenant *list = NULL;
	size_t n = 0;
	if (!operator_only(r, "listing tenants"))
		return;
	if (admin_tenant_list(store_of(r), &list, &n, &err) != CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200, json_pack("{s:o}", "data", tenants_to_json(list, n)));
	free(list);
}

/* The tenant fields of body into *req (allow and deny null: cleared); false with err set. */
static bool tenant_fields(json_t *body, struct admin_tenant_req *req, struct cp_error *err)
{
	return json_opt_string(body, "name", &req->name, err) &&
	       json_opt_string(body, "sip_uris", &req->sip_uris, err) &&
	       json_opt_clearable(body, "allow_prefixes", &req->allow_prefixes, err) &&
	       json_opt_clearable(body, "deny_prefixes", &req->deny_prefixes, err);
}

static const char *const tenant_members[] = {"name", "sip_uris", "allow_prefixes", "deny_prefixes",
					     NULL};

static void tenants_create(struct http_request *r)
{
	struct cp_error err = {0};
	struct admin_tenant_req req = {0};
	struct tenant t;
	if (!operator_only(r, "creating tenants"))
		return;
	json_t *body = body_of(r, tenant_members);
	if (!body)
		return;
	enum cp_err rc = tenant_fields(body, &req, &err)
				 ? admin_tenant_create(store_of(r), &req, &t, &err)
				 : err.code;
	tenant_reply(r, 201, rc, &t, &err);
	json_decref(body);
}

static void tenants_get(struct http_request *r)
{
	struct cp_error err = {0};
	struct tenant t;
	const struct scope *sc = &http_principal(r)->scope;
	const char *id = http_param(r, 0);
	enum cp_err rc;
	if (!sc->all && strcmp(id, sc->tenant_id))
		rc = cp_fail(&err, CP_ERR_NOT_FOUND, "tenant not found");
	else
		rc = admin_tenant_get(store_of(r), id, &t, &err);
	tenant_reply(r, 200, rc, &t, &err);
}

static void tenants_patch(struct http_request *r)
{
	struct cp_error err = {0};
	struct admin_tenant_req req = {0};
	struct tenant t;
	if (!operator_only(r, "changing tenants"))
		return;
	json_t *body = body_of(r, tenant_members);
	if (!body)
		return;
	enum cp_err rc =
		tenant_fields(body, &req, &err)
			? admin_tenant_update(store_of(r), http_param(r, 0), &req, &t, &err)
			: err.code;
	tenant_reply(r, 200, rc, &t, &err);
	json_decref(body);
}

/* ---- /v1/agents ------------------------------------------------------------------------- */

static void agent_reply(struct http_request *r, unsigned status, enum cp_err rc,
			const struct agent *a, const struct cp_error *err)
{
	if (rc != CP_OK)
		http_reply_error(r, err);
	else
		http_reply_json(r, status, agent_to_json(a));
}

static void agents_list(struct http_request *r)
{
	struct cp_error err = {0};
	struct scope sc;
	struct agent *list = NULL;
	size_t n = 0;
	if (!request_scope(r, http_query(r, "tenant_id"), &sc))
		return;
	if (admin_agent_list(store_of(r), sc.all ? NULL : sc.tenant_id,
			     sc.number[0] ? sc.number : NULL, &list, &n, &err) != CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200, json_pack("{s:o}", "data", agents_to_json(list, n)));
	free(list);
}

/* The fields agent update changes, from body into *req; false with err set. */
static bool agent_update_fields(json_t *body, struct admin_agent_req *req, struct cp_error *err)
{
	req->record = -1;
	return json_opt_clearable(body, "stream_url", &req->stream_url, err) &&
	       json_opt_bool(body, "record", &req->record, err) &&
	       json_opt_clearable(body, "goodbye_text", &req->goodbye_text, err) &&
	       json_opt_clearable(body, "max_duration_goodbye", &req->max_duration_goodbye, err) &&
	       json_opt_clearable(body, "trunk_id", &req->trunk_id, err);
}

static void agents_create(struct http_request *r)
{
	static const char *const fields[] = {
		"tenant_id",  "name",   "number",       "max_duration_s",
		"stream_url", "record", "goodbye_text", "max_duration_goodbye",
		"trunk_id",   NULL};
	struct cp_error err = {0};
	struct admin_agent_req req = {0};
	struct agent a;
	struct scope sc;
	const char *tenant = NULL;
	if (!not_number_scoped(r, "creating agents"))
		return;
	json_t *body = body_of(r, fields);
	if (!body)
		return;
	enum cp_err rc = err.code;
	if (!json_opt_string(body, "tenant_id", &tenant, &err)) {
		rc = err.code;
	} else if (!request_scope(r, tenant, &sc)) {
		json_decref(body);
		return;
	} else if (agent_update_fields(body, &req, &err) &&
		   json_opt_string(body, "name", &req.name, &err) &&
		   json_opt_string(body, "number", &req.number, &err) &&
		   json_opt_int(body, "max_duration_s", 1, ADMIN_MAX_DURATION_MAX,
				&req.max_duration_s, &err)) {
		/* null clears on update; on create it is the default, as absent */
		req.tenant_id = sc.all ? NULL : sc.tenant_id;
		req.record = req.record == 1;
		rc = admin_agent_create(store_of(r), &req, &a, &err);
	} else {
		rc = err.code;
	}
	agent_reply(r, 201, rc, &a, &err);
	json_decref(body);
}

static void agents_get(struct http_request *r)
{
	struct cp_error err = {0};
	struct agent a;
	enum cp_err rc =
		admin_agent_get(store_of(r), &http_principal(r)->scope, http_param(r, 0), &a, &err);
	agent_reply(r, 200, rc, &a, &err);
}

static void agents_patch(struct http_request *r)
{
	static const char *const fields[] = {"stream_url",           "record",   "goodbye_text",
					     "max_duration_goodbye", "trunk_id", NULL};
	struct cp_error err = {0};
	struct admin_agent_req req = {0};
	struct agent a;
	if (!not_number_scoped(r, "changing agents"))
		return;
	json_t *body = body_of(r, fields);
	if (!body)
		return;
	enum cp_err rc = agent_update_fields(body, &req, &err)
				 ? admin_agent_update(store_of(r), &http_principal(r)->scope,
						      http_param(r, 0), &req, &a, &err)
				 : err.code;
	agent_reply(r, 200, rc, &a, &err);
	json_decref(body);
}

/* ---- /v1/keys --------------------------------------------------------------------------- */

static void keys_list(struct http_request *r)
{
	struct cp_error err = {0};
	struct scope sc;
	struct api_key *list = NULL;
	size_t n = 0;
	if (!not_number_scoped(r, "managing keys") ||
	    !request_scope(r, http_query(r, "tenant_id"), &sc))
		return;
	if (admin_key_list(store_of(r), sc.all ? NULL : sc.tenant_id, &list, &n, &err) != CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200, json_pack("{s:o}", "data", api_keys_to_json(list, n)));
	free(list);
}

static void keys_create(struct http_request *r)
{
	static const char *const fields[] = {"tenant_id", "number",     "sip_uris",
					     "operator",  "rate_limit", NULL};
	struct cp_error err = {0};
	struct admin_key_req req = {0};
	struct api_key k;
	char secret[AUTH_SECRET_LEN + 1];
	struct scope sc;
	const char *tenant = NULL;
	int op = 0, rate = 0;
	if (!not_number_scoped(r, "managing keys"))
		return;
	json_t *body = body_of(r, fields);
	if (!body)
		return;
	if (!json_opt_string(body, "tenant_id", &tenant, &err)) {
		http_reply_error(r, &err);
	} else if (request_scope(r, tenant, &sc)) {
		if (!json_opt_string(body, "number", &req.number, &err) ||
		    !json_opt_string(body, "sip_uris", &req.sip_uris, &err) ||
		    !json_opt_bool(body, "operator", &op, &err) ||
		    !json_opt_int(body, "rate_limit", 1, ADMIN_RATE_LIMIT_MAX, &rate, &err)) {
			http_reply_error(r, &err);
		} else {
			/* a tenant key asking for an operator key names no tenant: refused as
			 * such (403), not as an operator key with a tenant (400) */
			bool own = !http_principal(r)->scope.all;
			req.tenant_id = sc.all || (op && own) ? NULL : sc.tenant_id;
			req.is_operator = op;
			req.rate_limit = rate;
			if (admin_key_create(store_of(r), http_principal(r), &req, &k, secret,
					     &err) != CP_OK) {
				http_reply_error(r, &err);
			} else {
				json_t *out = api_key_to_json(&k);
				json_object_set_new(out, "key", json_string(secret));
				http_reply_json(r, 201, out);
			}
		}
	}
	json_decref(body);
}

static void keys_revoke(struct http_request *r)
{
	struct cp_error err = {0};
	struct api_key k;
	const struct principal *p = http_principal(r);
	if (!not_number_scoped(r, "managing keys"))
		return;
	if (admin_key_revoke(store_of(r), p->scope.all ? NULL : p->scope.tenant_id,
			     http_param(r, 0), p->key.id, &k, &err) != CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200, api_key_to_json(&k));
}

/* ---- /v1/trunks ------------------------------------------------------------------------- */

/* The tenant a trunk route acts in (NULL: every tenant, an operator key without tenant_id), or
 * false after replying: trunks are a tenant's carriers, beyond one number's reach. */
static bool trunk_scope(struct http_request *r, const char *tenant_id, const char **out)
{
	struct scope sc;
	if (!not_number_scoped(r, "managing trunks") || !request_scope(r, tenant_id, &sc))
		return false;
	*out = tenant_id ? tenant_id : sc.all ? NULL : http_principal(r)->scope.tenant_id;
	return true;
}

static void trunks_list(struct http_request *r)
{
	struct cp_error err = {0};
	struct trunk *list = NULL;
	size_t n = 0;
	const char *tenant;
	if (!trunk_scope(r, http_query(r, "tenant_id"), &tenant))
		return;
	if (admin_trunk_list(store_of(r), tenant, &list, &n, &err) != CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200, json_pack("{s:o}", "data", trunks_to_json(list, n)));
	free(list);
}

/* "headers": an array of at most SIP_TRUNK_HEADERS_MAX strings, into lines[]. */
static bool trunk_headers(json_t *body, const char **lines, size_t max, size_t *n,
			  struct cp_error *err)
{
	json_t *v = json_object_get(body, "headers"), *h;
	size_t i;
	*n = 0;
	if (!v)
		return true;
	if (!json_is_array(v) || json_array_size(v) > max) {
		cp_fail(err, CP_ERR_INVALID, "headers must be an array of at most %zu strings",
			max);
		return false;
	}
	json_array_foreach(v, i, h)
	{
		if (!json_is_string(h)) {
			cp_fail(err, CP_ERR_INVALID,
				"headers must be an array of at most %zu strings", max);
			return false;
		}
		lines[(*n)++] = json_string_value(h);
	}
	return true;
}

static void trunks_create(struct http_request *r)
{
	static const char *const fields[] = {
		"tenant_id",        "host",          "transport",      "user",      "password_env",
		"password_file",    "register",      "outbound_proxy", "from_user", "from_domain",
		"caller_id_header", "inbound_cidrs", "srtp",           "headers",   NULL};
	struct cp_error err = {0};
	struct admin_trunk_req req = {0};
	const char *lines[ADMIN_TRUNK_HEADERS_MAX];
	struct trunk t;
	const char *tenant = NULL;
	int reg = 0;
	json_t *body = NULL;
	if (!http_json_body(r, false, &body, &err)) {
		http_reply_error(r, &err);
		return;
	}
	if (json_object_get(body, "password")) {
		/* a secret in a request body lands in proxies' logs and client histories */
		http_reply_fail(
			r, CP_ERR_INVALID,
			"password is never sent: name an environment"
			" variable (password_env) or a file (password_file) the server reads");
	} else if (!json_only_fields(body, fields, &err) ||
		   !json_opt_string(body, "tenant_id", &tenant, &err)) {
		http_reply_error(r, &err);
	} else if (trunk_scope(r, tenant, &req.tenant_id)) {
		if (!json_opt_string(body, "host", &req.host, &err) ||
		    !json_opt_string(body, "transport", &req.transport, &err) ||
		    !json_opt_string(body, "user", &req.user, &err) ||
		    !json_opt_string(body, "password_env", &req.password_env, &err) ||
		    !json_opt_string(body, "password_file", &req.password_file, &err) ||
		    !json_opt_bool(body, "register", &reg, &err) ||
		    !json_opt_string(body, "outbound_proxy", &req.outbound_proxy, &err) ||
		    !json_opt_string(body, "from_user", &req.from_user, &err) ||
		    !json_opt_string(body, "from_domain", &req.from_domain, &err) ||
		    !json_opt_string(body, "caller_id_header", &req.caller_id_header, &err) ||
		    !json_opt_string(body, "inbound_cidrs", &req.inbound_cidrs, &err) ||
		    !json_opt_string(body, "srtp", &req.srtp, &err) ||
		    !trunk_headers(body, lines, ADMIN_TRUNK_HEADERS_MAX, &req.n_headers, &err)) {
			http_reply_error(r, &err);
		} else {
			req.do_register = reg;
			req.headers = lines;
			if (admin_trunk_create(store_of(r), &req, &t, &err) != CP_OK)
				http_reply_error(r, &err);
			else
				http_reply_json(r, 201, trunk_to_json(&t));
		}
	}
	json_decref(body);
}

static void trunks_get(struct http_request *r)
{
	struct cp_error err = {0};
	struct trunk t;
	const char *tenant;
	if (!trunk_scope(r, NULL, &tenant))
		return;
	if (admin_trunk_get(store_of(r), tenant, http_param(r, 0), &t, &err) != CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200, trunk_to_json(&t));
}

static void trunks_delete(struct http_request *r)
{
	struct cp_error err = {0};
	const char *tenant;
	if (!trunk_scope(r, NULL, &tenant))
		return;
	if (admin_trunk_delete(store_of(r), tenant, http_param(r, 0), &err) != CP_OK)
		http_reply_error(r, &err);
	else
		http_reply_json(r, 200,
				json_pack("{s:s, s:b}", "id", http_param(r, 0), "deleted", 1));
}

const struct route admin_routes[] = {
	{"GET", "/v1/tenants", tenants_list, &canonical_dialect, 0},
	{"POST", "/v1/tenants", tenants_create, &canonical_dialect, 0},
	{"GET", "/v1/tenants/:id", tenants_get, &canonical_dialect, 0},
	{"PATCH", "/v1/tenants/:id", tenants_patch, &canonical_dialect, 0},
	{"GET", "/v1/agents", agents_list, &canonical_dialect, 0},
	{"POST", "/v1/agents", agents_create, &canonical_dialect, 0},
	{"GET", "/v1/agents/:id", agents_get, &canonical_dialect, 0},
	{"PATCH", "/v1/agents/:id", agents_patch, &canonical_dialect, 0},
	{"GET", "/v1/keys", keys_list, &canonical_dialect, 0},
	{"POST", "/v1/keys", keys_create, &canonical_dialect, 0},
	{"DELETE", "/v1/keys/:id", keys_revoke, &canonical_dialect, 0},
	{"GET", "/v1/trunks", trunks_list, &canonical_dialect, 0},
	{"POST", "/v1/trunks", trunks_create, &canonical_dialect, 0},
	{"GET", "/v1/trunks/:id", trunks_get, &canonical_dialect, 0},
	{"DELETE", "/v1/trunks/:id", trunks_delete, &canonical_dialect, 0},
	{0},
};
