/*
 * admin.c - tenants, agents and keys: checked, then stored. See admin.h.
 *
 * The checks come first and touch nothing; the writes follow only when every check passed.
 * An update of several agent fields is several store writes: each is a single-row UPDATE of
 * a row just read, so after the checks only a store failure (disk, database gone) can stop
 * one midway, and that is reported as such (500), never as bad input.
 *
 * Lookups within a scope use the store's scoped reads (agent_get with a scope); the few the
 * store has no scoped read for (a tenant by id, a key by id) are filtered from its listings,
 * which are small (the admin paths are not hot).
 */
#include "admin.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model/call.h"
#include "call/dial.h"
#include "core/util.h"

_Static_assert(offsetof(struct tenant, id) == 0, "row_with_id() reads a tenant's id first");
_Static_assert(offsetof(struct api_key, id) == 0, "row_with_id() reads a key's id first");

#define RULE_NAME "must be 1..128 characters"
#define RULE_SIP_URIS "must be none, any or HOST[,HOST...] (at most 255 bytes)"
#define RULE_PREFIXES "must be +DIGITS[,+DIGITS...] (at most 255 bytes)"
#define RULE_NUMBER "must be an E.164 number (+ and 2..15 digits)"
#define RULE_MAX_DURATION "must be an integer in 1..86400"
#define RULE_STREAM_URL                                                            \
	"must be an absolute ws:// or wss:// URL with a host, at most 1024 bytes," \
	" without spaces or control characters"
#define RULE_GOODBYE "must be 1..1000 characters of UTF-8"
#define RULE_RATE_LIMIT "must be an integer in 1..1000000"
#define RULE_TENANT_ID "must be a tenant id"

const char admin_clear[] = "";

/* Whether a text field is given with a value (neither absent nor cleared). */
static bool valued(const char *s)
{
	return s && s != admin_clear;
}

static bool refuse(struct admin_bad *bad, const char *field, const char *rule)
{
	bad->field = field;
	bad->rule = rule;
	return false;
}

static enum cp_err invalid(struct cp_error *err, const struct admin_bad *bad)
{
	return cp_fail(err, CP_ERR_INVALID, "%s %s", bad->field, bad->rule);
}

static bool name_valid(const char *s)
{
	return *s && strlen(s) <= STORE_NAME_MAX;
}

/* An id as the store keys them: 1..CP_UUID_LEN bytes (an unknown one is a 404, not a 400). */
static bool id_valid(const char *s)
{
	return *s && strlen(s) <= CP_UUID_LEN;
}

/* The row of a listing (n rows of size bytes, each starting with its id, as struct tenant and
 * struct api_key do) whose id is id, or NULL. */
static const void *row_with_id(const void *rows, size_t n, size_t size, const char *id)
{
	for (size_t i = 0; i < n; i++) {
		const char *row = (const char *)rows + i * size;
		if (!strcmp(row, id))
			return row;
	}
	return NULL;
}

/* ---- checks ----------------------------------------------------------------------------- */

bool admin_tenant_check(const struct admin_tenant_req *req, bool create, struct admin_bad *bad)
{
	if (create && !req->name)
		return refuse(bad, "name", "is required");
	if (req->name && !name_valid(req->name))
		return refuse(bad, "name", RULE_NAME);
	if (req->sip_uris && !dial_hosts_valid(req->sip_uris))
		return refuse(bad, "sip_uris", RULE_SIP_URIS);
	if (valued(req->allow_prefixes) &&
	    (!*req->allow_prefixes || !dial_prefixes_valid(req->allow_prefixes)))
		return refuse(bad, "allow_prefixes", RULE_PREFIXES);
	if (valued(req->deny_prefixes) &&
	    (!*req->deny_prefixes || !dial_prefixes_valid(req->deny_prefixes)))
		return refuse(bad, "deny_prefixes", RULE_PREFIXES);
	return true;
}

bool admin_agent_check(const struct admin_agent_req *req, bool create, struct admin_bad *bad)
{
	if (create) {
		if (!req->tenant_id || !id_valid(req->tenant_id))
			return refuse(bad, "tenant_id", RULE_TENANT_ID);
		if (!req->name)
			return refuse(bad, "name", "is required");
		if (!name_valid(req->name))
			return refuse(bad, "name", RULE_NAME);
		if (req->number && !cp_is_e164(req->number))
			return refuse(bad, "number", RULE_NUMBER);
		if (req->max_duration_s < 0 || req->max_duration_s > ADMIN_MAX_DURATION_MAX)
			return refuse(bad, "max_duration_s", RULE_MAX_DURATION);
	}
	if (valued(req->stream_url) && !call_stream_url_valid(req->stream_url))
		return refuse(bad, "stream_url", RULE_STREAM_URL);
	if (valued(req->goodbye_text) && !call_goodbye_text_valid(req->goodbye_text))
		return refuse(bad, "goodbye_text", RULE_GOODBYE);
	if (valued(req->max_duration_goodbye) &&
	    !call_goodbye_text_valid(req->max_duration_goodbye))
		return refuse(bad, "max_duration_goodbye", RULE_GOODBYE);
	if (valued(req->trunk_id) && !id_valid(req->trunk_id))
		return refuse(bad, "trunk_id", "must be a trunk id");
	if (req->record < -1 || req->record > 1)
		return refuse(bad, "record", "must be true or false");
	return true;
}

bool admin_key_check(const struct admin_key_req *req, struct admin_bad *bad)
{
	if (req->is_operator && (req->tenant_id || req->number || req->sip_uris))
		return refuse(bad,
			      req->tenant_id ? "tenant_id"
			      : req->number  ? "number"
					     : "sip_uris",
			      "is not for an operator key");
	if (!req->is_operator && (!req->tenant_id || !id_valid(req->tenant_id)))
		return refuse(bad, "tenant_id", RULE_TENANT_ID);
	if (req->number && !cp_is_e164(req->number))
		return refuse(bad, "number", RULE_NUMBER);
	if (req->rate_limit < 0 || req->rate_limit > ADMIN_RATE_LIMIT_MAX)
		return refuse(bad, "rate_limit", RULE_RATE_LIMIT);
	if (req->sip_uris && !dial_hosts_valid(req->sip_uris))
		return refuse(bad, "sip_uris", RULE_SIP_URIS);
	return true;
}

/* Whether host (len bytes) is one of the comma-separated hosts of list. */
static bool host_listed(const char *host, size_t len, const char *list)
{
	while (*list) {
		size_t n = strcspn(list, ",");
		if (n == len && !strncasecmp(host, list, len))
			return true;
		list += n + (list[n] == ',');
	}
	return false;
}

bool admin_sip_uris_within(const char *inner, const char *outer)
{
	/* a key's sip_uris only narrows its tenant's policy: "" and "any" leave it whole */
	if (!*outer || !strcasecmp(outer, "any"))
		return true;
	if (!strcasecmp(inner, "none"))
		return true;
	if (!*inner || !strcasecmp(inner, "any") || !strcasecmp(outer, "none"))
		return false;
	while (*inner) {
		size_t n = strcspn(inner, ",");
		if (!host_listed(inner, n, outer))
			return false;
		inner += n + (inner[n] == ',');
	}
	return true;
}

/* ---- tenants ---------------------------------------------------------------------------- */

enum cp_err admin_tenant_get(struct store *st, const char *id, struct tenant *out,
			     struct cp_error *err)
{
	struct tenant *list = NULL;
	size_t n = 0;
	enum store_result r = STORE(st, tenant_list, &list, &n);
	if (r != STORE_OK)
		return store_fail(err, r, "tenant");
	const struct tenant *t = row_with_id(list, n, sizeof *list, id);
	if (t)
		*out = *t;
	free(list);
	return t ? CP_OK : cp_fail(err, CP_ERR_NOT_FOUND, "tenant not found");
}

enum cp_err admin_tenant_list(struct store *st, struct tenant **list, size_t *n,
			      struct cp_error *err)
{
	enum store_result r = STORE(st, tenant_list, list, n);
	return r == STORE_OK ? CP_OK : store_fail(err, r, "tenants");
}

enum cp_err admin_tenant_create(struct store *st, const struct admin_tenant_req *req,
				struct tenant *out, struct cp_error *err)
{
	struct admin_bad bad;
	if (!admin_tenant_check(req, true, &bad))
		return invalid(err, &bad);
	memset(out, 0, sizeof *out);
	out->created_at = cp_now_ms();
	snprintf(out->name, sizeof out->name, "%s", req->name);
	snprintf(out->dial.sip_uris, sizeof out->dial.sip_uris, "%s",
		 req->sip_uris ? req->sip_uris : "none");
	snprintf(out->dial.allow_prefixes, sizeof out->dial.allow_prefixes, "%s",
		 req->allow_prefixes ? req->allow_prefixes : "");
	snprintf(out->dial.deny_prefixes, sizeof out->dial.deny_prefixes, "%s",
		 req->deny_prefixes ? req->deny_prefixes : "");
	if (cp_uuid4(out->id))
		return cp_fail(err, CP_ERR_INTERNAL, "could not make an id");
	enum store_result r = STORE(st, tenant_create, out);
	return r == STORE_OK ? CP_OK : store_fail(err, r, "tenant");
}

enum cp_err admin_tenant_update(struct store *st, const char *id,
				const struct admin_tenant_req *req, struct tenant *out,
				struct cp_error *err)
{
	struct admin_bad bad;
	if (!admin_tenant_check(req, false, &bad))
		return invalid(err, &bad);
	if (!req->name && !req->sip_uris && !req->allow_prefixes && !req->deny_prefixes)
		return cp_fail(err, CP_ERR_INVALID,
			       "nothing to change: give name, sip_uris,"
			       " allow_prefixes or deny_prefixes");
	enum cp_err rc = admin_tenant_get(st, id, out, err);
	if (rc != CP_OK)
		return rc;
	enum store_result r = STORE_OK;
	if (req->sip_uris || req->allow_prefixes || req->deny_prefixes)
		r = STORE(st, tenant_set_dial, id, req->sip_uris, req->allow_prefixes,
			  req->deny_prefixes);
	if (r == STORE_OK && req->name)
		r = STORE(st, tenant_set_name, id, req->name);
	if (r != STORE_OK)
		return store_fail(err, r, "tenant");
	return admin_tenant_get(st, id, out, err);
}

/* ---- agents ----------------------------------------------------------------------------- */

enum cp_err admin_agent_get(struct store *st, const struct scope *sc, const char *id,
			    struct agent *out, struct cp_error *err)
{
	static const struct scope every = {.all = true};
	if (!id_valid(id))
		return cp_fail(err, CP_ERR_NOT_FOUND, "agent not found");
	enum store_result r = STORE(st, agent_get, sc ? sc : &every, id, out);
	if (r == STORE_NOT_FOUND)
		return cp_fail(err, CP_ERR_NOT_FOUND, "agent not found");
	return r == STORE_OK ? CP_OK : store_fail(err, r, "agent");
}

enum cp_err admin_agent_list(struct store *st, const char *tenant_id, const char *number,
			     struct agent **list, size_t *n, struct cp_error *err)
{
	enum store_result r = STORE(st, agent_list, tenant_id, list, n);
	if (r != STORE_OK)
		return store_fail(err, r, "agents");
	if (number) {
		size_t kept = 0;
		for (size_t i = 0; i < *n; i++)
			if (!strcmp((*list)[i].number, number))
				(*list)[kept++] = (*list)[i];
		*n = kept;
	}
	return CP_OK;
}

/* Whether trunk_id is one of tenant_id's trunks: CP_OK, or CP_ERR_INVALID naming the field
 * (the trunk is a value of the request, not the resource addressed). */
static enum cp_err trunk_of_tenant(struct store *st, const char *tenant_id, const char *trunk_id,
				   struct cp_error *err)
{
	struct trunk t;
	enum store_result r = STORE(st, trunk_get, tenant_id, trunk_id, &t);
	if (r == STORE_NOT_FOUND)
		return cp_fail(err, CP_ERR_INVALID, "trunk_id must be one of the tenant's trunks");
	return r == STORE_OK ? CP_OK : store_fail(err, r, "trunk");
}

enum cp_err admin_agent_create(struct store *st, const struct admin_agent_req *req,
			       struct agent *out, struct cp_error *err)
{
	struct admin_bad bad;
	if (!admin_agent_check(req, true, &bad))
		return invalid(err, &bad);
	enum store_result r = STORE(st, tenant_exists, req->tenant_id);
	if (r == STORE_NOT_FOUND)
		return cp_fail(err, CP_ERR_NOT_FOUND, "tenant not found");
	if (r != STORE_OK)
		return store_fail(err, r, "tenant");
	if (valued(req->trunk_id) &&
	    trunk_of_tenant(st, req->tenant_id, req->trunk_id, err) != CP_OK)
		return err->code;
	memset(out, 0, sizeof *out);
	if (cp_uuid4(out->id))
		return cp_fail(err, CP_ERR_INTERNAL, "could not make an id");
	snprintf(out->tenant_id, sizeof out->tenant_id, "%s", req->tenant_id);
	snprintf(out->name, sizeof out->name, "%s", req->name);
	snprintf(out->number, sizeof out->number, "%s", req->number ? req->number : "");
	out->max_duration_s = req->max_duration_s;
	snprintf(out->stream_url, sizeof out->stream_url, "%s",
		 req->stream_url ? req->stream_url : "");
	out->record = req->record == 1;
	snprintf(out->goodbye_text, sizeof out->goodbye_text, "%s",
		 req->goodbye_text ? req->goodbye_text : "");
	snprintf(out->max_duration_goodbye, sizeof out->max_duration_goodbye, "%s",
		 req->max_duration_goodbye ? req->max_duration_goodbye : "");
	snprintf(out->trunk_id, sizeof out->trunk_id, "%s", req->trunk_id ? req->trunk_id : "");
	out->created_at = cp_now_ms();
	r = STORE(st, agent_create, out);
	if (r == STORE_CONFLICT)
		return cp_fail(err, CP_ERR_CONFLICT, "another agent already has the number %s",
			       req->number);
	return r == STORE_OK ? CP_OK : store_fail(err, r, "agent");
}

enum cp_err admin_agent_update(struct store *st, const struct scope *sc, const char *id,
			       const struct admin_agent_req *req, struct agent *out,
			       struct cp_error *err)
{
	struct admin_bad bad;
	if (!admin_agent_check(req, false, &bad))
		return invalid(err, &bad);
	if (!req->stream_url && req->record < 0 && !req->goodbye_text &&
	    !req->max_duration_goodbye && !req->trunk_id)
		return cp_fail(err, CP_ERR_INVALID,
			       "nothing to change: give stream_url, record,"
			       " goodbye_text, max_duration_goodbye or trunk_id");
	enum cp_err rc = admin_agent_get(st, sc, id, out, err);
	if (rc != CP_OK)
		return rc;
	if (valued(req->trunk_id) &&
	    trunk_of_tenant(st, out->tenant_id, req->trunk_id, err) != CP_OK)
		return err->code;
	enum store_result r = STORE_OK;
	if (req->stream_url)
		r = STORE(st, agent_set_stream_url, id, req->stream_url);
	if (r == STORE_OK && req->record >= 0)
		r = STORE(st, agent_set_record, id, req->record == 1);
	if (r == STORE_OK && (req->goodbye_text || req->max_duration_goodbye))
		r = STORE(st, agent_set_goodbye, id, req->goodbye_text, req->max_duration_goodbye);
	if (r == STORE_OK && req->trunk_id)
		r = STORE(st, agent_set_trunk, id, req->trunk_id);
	if (r != STORE_OK)
		return store_fail(err, r, "agent");
	return admin_agent_get(st, sc, id, out, err);
}

/* ---- keys ------------------------------------------------------------------------------- */

/* What `by` may mint: CP_OK, or CP_ERR_FORBIDDEN saying why. */
static enum cp_err may_mint(const struct principal *by, const struct admin_key_req *req,
			    struct cp_error *err)
{
	if (!by || by->scope.all)
		return CP_OK;
	if (by->scope.number[0])
		return cp_fail(err, CP_ERR_FORBIDDEN, "a number-scoped key cannot create keys");
	if (req->is_operator)
		return cp_fail(err, CP_ERR_FORBIDDEN, "only an operator key creates operator keys");
	if (strcmp(req->tenant_id, by->scope.tenant_id))
		return cp_fail(err, CP_ERR_FORBIDDEN,
			       "a tenant key creates keys of its own tenant");
	if (!admin_sip_uris_within(req->sip_uris ? req->sip_uris : "", by->key.sip_uris))
		return cp_fail(err, CP_ERR_FORBIDDEN,
			       "sip_uris must not widen the creating key's"
			       " sip_uris (%s)",
			       by->key.sip_uris);
	return CP_OK;
}

enum cp_err admin_key_create(struct store *st, const struct principal *by,
			     const struct admin_key_req *req, struct api_key *out,
			     char secret[AUTH_SECRET_LEN + 1], struct cp_error *err)
{
	struct admin_bad bad;
	if (!admin_key_check(req, &bad))
		return invalid(err, &bad);
	if (may_mint(by, req, err) != CP_OK)
		return err->code;
	enum store_result r =
		req->is_operator ? STORE_OK : STORE(st, tenant_exists, req->tenant_id);
	if (r == STORE_NOT_FOUND)
		return cp_fail(err, CP_ERR_NOT_FOUND, "tenant not found");
	if (r != STORE_OK)
		return store_fail(err, r, "tenant");
	if (auth_key_mint(req->is_operator ? NULL : req->tenant_id, req->number, out, secret))
		return cp_fail(err, CP_ERR_INTERNAL, "could not mint a key");
	out->rate_limit = (unsigned)req->rate_limit;
	snprintf(out->sip_uris, sizeof out->sip_uris, "%s", req->sip_uris ? req->sip_uris : "");
	r = STORE(st, key_create, out);
	return r == STORE_OK ? CP_OK : store_fail(err, r, "key");
}

enum cp_err admin_key_list(struct store *st, const char *tenant_id, struct api_key **list,
			   size_t *n, struct cp_error *err)
{
	enum store_result r = STORE(st, key_list, tenant_id, list, n);
	return r == STORE_OK ? CP_OK : store_fail(err, r, "keys");
}

/* Key id of tenant_id (NULL: any) into *out, or CP_ERR_NOT_FOUND. */
static enum cp_err key_get(struct store *st, const char *tenant_id, const char *id,
			   struct api_key *out, struct cp_error *err)
{
	struct api_key *list = NULL;
	size_t n = 0;
	enum cp_err rc = admin_key_list(st, tenant_id, &list, &n, err);
	if (rc != CP_OK)
		return rc;
	const struct api_key *k = row_with_id(list, n, sizeof *list, id);
	if (k)
		*out = *k;
	free(list);
	return k ? CP_OK : cp_fail(err, CP_ERR_NOT_FOUND, "key not found");
}

enum cp_err admin_key_revoke(struct store *st, const char *tenant_id, const char *id,
			     const char *self_id, struct api_key *out, struct cp_error *err)
{
	enum cp_err rc = key_get(st, tenant_id, id, out, err);
	if (rc != CP_OK)
		return rc;
	if (self_id && !strcmp(self_id, id))
		return cp_fail(err, CP_ERR_CONFLICT,
			       "a key cannot revoke itself; revoke it with"
			       " another key or `callplane key revoke`");
	enum store_result r = STORE(st, key_revoke, id, cp_now_ms());
	if (r != STORE_OK)
		return store_fail(err, r, "key");
	return key_get(st, tenant_id, id, out, err);
}
