/*
 * registry.c - managing webhooks and their deliveries: the rules the API and the CLI share,
 * so neither touches the store for them.
 *
 * A webhook belongs to a tenant and optionally narrows to one agent. Its URL must be http or
 * https and, unless the server allows private targets, resolve to public addresses only
 * (target.c: checked last, as it may wait on DNS). Its signing is callplane
 * (Callplane-Signature) or standard (Standard Webhooks); its secret is generated (192 random
 * bits: hex for callplane, base64 for standard, both after "whsec_") when not given, and for
 * standard must be what Standard Webhooks verifiers read: "whsec_" + base64 of 24..64 bytes.
 * A change (webhook_change) is checked by the same rules; a changed signing, or a given secret,
 * replaces the secret (a key of one scheme is not one of the other), and the new secret is
 * answered once, as at creation. Pending deliveries are sent as the webhook is when each is
 * attempted: a changed URL or format applies to them too.
 * Store results become errors through store_fail(), one mapping for every caller.
 * The store counts and inserts in one statement, so the cap holds under concurrent creation.
 */
#include "webhook.h"
#include "webhook_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Checks the members req gives (url: required when need_url) as the webhook's, signed by
 * `signing`, into *out (agent_id, when given). CP_OK or the error. The target check comes last:
 * it may wait on DNS. */
static enum cp_err check_request(struct store *st, const char *tenant_id,
				 const struct webhook_request *req, bool need_url,
				 const char *signing, bool allow_private, struct webhook *out,
				 struct cp_error *err)
{
	const char *url = req->url;
	if ((need_url || url) &&
	    (!url || (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) ||
	     strlen(url) > WEBHOOK_URL_MAX || strpbrk(url, " \t\r\n")))
		return cp_fail(err, CP_ERR_INVALID,
			       "url must be an http:// or https:// URL of at most %d bytes",
			       WEBHOOK_URL_MAX);
	if (req->format && !webhook_format_valid(req->format))
		return cp_fail(err, CP_ERR_INVALID,
			       "format must be canonical, talkover or pilotstatus");
	if (!webhook_signing_valid(signing))
		return cp_fail(err, CP_ERR_INVALID, "signing must be callplane or standard");
	if (req->secret && (strlen(req->secret) < 16 || strlen(req->secret) > WEBHOOK_SECRET_MAX))
		return cp_fail(err, CP_ERR_INVALID, "secret must be 16..%d characters",
			       WEBHOOK_SECRET_MAX);
	unsigned char key[WEBHOOK_STANDARD_KEY_MAX];
	size_t key_len;
	if (req->secret && !strcmp(signing, "standard") &&
	    webhook_standard_key(req->secret, key, &key_len))
		return cp_fail(err, CP_ERR_INVALID,
			       "a standard signing's secret must be whsec_ "
			       "followed by the base64 of %d..%d bytes",
			       WEBHOOK_STANDARD_KEY_MIN, WEBHOOK_STANDARD_KEY_MAX);
	if (req->agent_id && *req->agent_id) {
		struct agent a;
		struct scope sc = {0};
		snprintf(sc.tenant_id, sizeof sc.tenant_id, "%s", tenant_id);
		enum store_result rc = STORE(st, agent_get, &sc, req->agent_id, &a);
		if (rc != STORE_OK)
			return store_fail(err, rc, "agent %s", req->agent_id);
		snprintf(out->agent_id, sizeof out->agent_id, "%s", a.id);
	}
	return url ? webhook_target_check(url, allow_private, err) : CP_OK;
}

/* req's secret into out->secret, or a new one for the signing: 192 random bits. */
static enum cp_err take_secret(const struct webhook_request *req, bool standard,
			       struct webhook *out, struct cp_error *err)
{
	if (req->secret) {
		snprintf(out->secret, sizeof out->secret, "%s", req->secret);
	} else if (standard) {
		if (webhook_standard_secret(out->secret, sizeof out->secret))
			return cp_fail(err, CP_ERR_INTERNAL, "no randomness");
	} else {
		unsigned char raw[24];
		char hex[49];
		if (cp_random(raw, sizeof raw))
			return cp_fail(err, CP_ERR_INTERNAL, "no randomness");
		cp_hex(raw, sizeof raw, hex);
		snprintf(out->secret, sizeof out->secret, "whsec_%s", hex);
	}
	return CP_OK;
}

enum cp_err webhook_register(struct store *st, const char *tenant_id,
			     const struct webhook_request *req, int max_per_tenant,
			     bool allow_private, struct webhook *out, struct cp_error *err)
{
	memset(out, 0, sizeof *out);
	const char *format = req->format ? req->format : "canonical";
	const char *signing = req->signing ? req->signing : "callplane";
	enum cp_err e = check_request(st, tenant_id, req, true, signing, allow_private, out, err);
	if (e == CP_OK)
		e = take_secret(req, !strcmp(signing, "standard"), out, err);
	if (e != CP_OK)
		return e;
	if (cp_uuid4(out->id))
		return cp_fail(err, CP_ERR_INTERNAL, "no randomness");
	snprintf(out->tenant_id, sizeof out->tenant_id, "%s", tenant_id);
	snprintf(out->url, sizeof out->url, "%s", req->url);
	snprintf(out->format, sizeof out->format, "%s", format);
	snprintf(out->signing, sizeof out->signing, "%s", signing);
	out->created_at = cp_now_ms();
	enum store_result rc = STORE(st, webhook_create, out, max_per_tenant);
	if (rc == STORE_CONFLICT)
		return cp_fail(err, CP_ERR_LIMIT,
			       "the tenant has %d webhooks, the most it may have; delete one first",
			       max_per_tenant);
	return store_fail(err, rc, "tenant %s", tenant_id);
}

enum cp_err webhook_registry_get(struct store *st, const char *tenant_id, const char *id,
				 struct webhook *out, struct cp_error *err)
{
	struct webhook *list = NULL;
	size_t n = 0;
	enum cp_err e = webhook_registry_list(st, tenant_id, &list, &n, err);
	for (size_t i = 0; e == CP_OK && i < n; i++) {
		if (!strcmp(list[i].id, id)) {
			*out = list[i];
			free(list);
			return CP_OK;
		}
	}
	free(list);
	return e != CP_OK ? e : cp_fail(err, CP_ERR_NOT_FOUND, "webhook not found");
}

enum cp_err webhook_change(struct store *st, const char *tenant_id, const char *id,
			   const struct webhook_request *req, bool allow_private,
			   struct webhook *out, bool *new_secret, struct cp_error *err)
{
	*new_secret = false;
	if (!req->url && !req->format && !req->signing && !req->agent_id && !req->secret)
		return cp_fail(err, CP_ERR_INVALID,
			       "nothing to change: give url, format, signing,"
			       " agent_id or secret");
	enum cp_err e = webhook_registry_get(st, tenant_id, id, out, err);
	if (e != CP_OK)
		return e;
	const char *signing = req->signing      ? req->signing
			      : out->signing[0] ? out->signing
						: "callplane";
	struct webhook next = *out;
	next.agent_id[0] = '\0';
	e = check_request(st, out->tenant_id, req, false, signing, allow_private, &next, err);
	if (e != CP_OK)
		return e;
	if (!req->agent_id)
		snprintf(next.agent_id, sizeof next.agent_id, "%s", out->agent_id);
	/* a secret of one signing scheme is not a key of the other: a new signing, a new secret */
	bool rotate = req->secret || strcmp(signing, out->signing[0] ? out->signing : "callplane");
	next.secret[0] = '\0';
	if (rotate && (e = take_secret(req, !strcmp(signing, "standard"), &next, err)) != CP_OK)
		return e;
	if (req->url)
		snprintf(next.url, sizeof next.url, "%s", req->url);
	if (req->format)
		snprintf(next.format, sizeof next.format, "%s", req->format);
	snprintf(next.signing, sizeof next.signing, "%s", signing);
	e = store_fail(err, STORE(st, webhook_update, &next), "webhook");
	if (e != CP_OK)
		return e;
	*out = next;
	*new_secret = rotate;
	return CP_OK;
}

enum cp_err webhook_registry_list(struct store *st, const char *tenant_id, struct webhook **list,
				  size_t *n, struct cp_error *err)
{
	*list = NULL;
	*n = 0;
	return store_fail(err, STORE(st, webhook_list, tenant_id, list, n), "webhooks");
}

enum cp_err webhook_unregister(struct store *st, const char *tenant_id, const char *id,
			       struct cp_error *err)
{
	return store_fail(err, STORE(st, webhook_delete, tenant_id, id), "webhook");
}

bool webhook_delivery_status_valid(const char *status)
{
	return !strcmp(status, "pending") || !strcmp(status, "failed") ||
	       !strcmp(status, "delivered");
}

enum cp_err webhook_delivery_list(struct store *st, const char *tenant_id, const char *status,
				  int limit, struct delivery_row **rows, size_t *n,
				  struct cp_error *err)
{
	*rows = NULL;
	*n = 0;
	return store_fail(err, STORE(st, delivery_list, tenant_id, status, limit, rows, n),
			  "deliveries");
}

enum cp_err webhook_delivery_replay(struct store *st, const char *tenant_id, int64_t id, int *count,
				    struct cp_error *err)
{
	*count = 0;
	enum cp_err e = store_fail(
		err, STORE(st, delivery_replay, tenant_id, id, cp_now_ms(), count), "deliveries");
	if (e == CP_OK && id && *count == 0)
		return cp_fail(err, CP_ERR_NOT_FOUND, "no failed delivery with that id");
	return e;
}
