/*
 * webhook_registry.h - managing webhooks and their deliveries, shared by the API
 * (/v1/webhooks) and the CLI (`callplane webhook`). See registry.c for the rules.
 *
 * Each call returns CP_OK, or an error with err filled. tenant_id NULL: every tenant (CLI).
 * Listings hand back the store's typed rows; render/rows.h turns them into JSON.
 *
 * A tenant may hold at most a number of webhooks (`serve --webhooks-per-tenant`, the CLI's
 * `webhook create --webhooks-per-tenant`; WEBHOOKS_PER_TENANT_DEFAULT): every event of a call
 * is written with one delivery per matching webhook in the transaction of the call's step, so
 * the cap bounds that fan-out as well as what one tenant can queue.
 */
#ifndef CP_WEBHOOK_REGISTRY_H
#define CP_WEBHOOK_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/store.h"

struct webhook_request {
	const char *url;
	const char *agent_id; /* NULL: every agent of the tenant */
	const char *secret;   /* NULL: generated */
	const char *format;   /* NULL: canonical */
	const char *signing;  /* NULL: callplane; standard: Standard Webhooks */
};

#define WEBHOOKS_PER_TENANT_DEFAULT 20
#define WEBHOOKS_PER_TENANT_MAX 10000

/* Registers req for the tenant, which may hold at most max_per_tenant webhooks: CP_OK with
 * *out filled (its secret included); CP_ERR_INVALID for a bad URL, format, signing or secret
 * (a standard signing's secret must be one webhook_standard_key() reads);
 * CP_ERR_NOT_FOUND for an unknown tenant or agent; CP_ERR_WEBHOOK_TARGET for a URL whose host
 * resolves to a private address (or does not resolve) unless allow_private
 * (`--webhook-allow-private`); CP_ERR_LIMIT at the cap. */
enum cp_err webhook_register(struct store *st, const char *tenant_id,
			     const struct webhook_request *req, int max_per_tenant,
			     bool allow_private, struct webhook *out, struct cp_error *err);
/* Webhook id of the tenant (NULL: any), without its secret; CP_ERR_NOT_FOUND when none. */
enum cp_err webhook_registry_get(struct store *st, const char *tenant_id, const char *id,
				 struct webhook *out, struct cp_error *err);
/* Changes what req gives of webhook id (url, format, signing, secret; agent_id "" widens it to
 * every agent), by webhook_register()'s rules: *out is the webhook afterwards, and
 * *new_secret whether its secret changed (a changed signing makes one when req gives none), in
 * which case out->secret holds it; else out->secret is "". CP_ERR_INVALID when req changes
 * nothing. */
enum cp_err webhook_change(struct store *st, const char *tenant_id, const char *id,
			   const struct webhook_request *req, bool allow_private,
			   struct webhook *out, bool *new_secret, struct cp_error *err);
/* The webhooks in *list (n of them; the caller frees *list), secrets included: render them
 * with webhooks_to_json(), which leaves the secrets out. */
enum cp_err webhook_registry_list(struct store *st, const char *tenant_id, struct webhook **list,
				  size_t *n, struct cp_error *err);
/* Deletes webhook id and its pending deliveries; CP_ERR_NOT_FOUND when the tenant has none
 * of that id. */
enum cp_err webhook_unregister(struct store *st, const char *tenant_id, const char *id,
			       struct cp_error *err);
/* Whether status names a delivery status a listing can filter on. */
bool webhook_delivery_status_valid(const char *status);
/* At most limit deliveries in *rows (n of them; free with delivery_rows_free); status NULL:
 * pending and failed, else a status webhook_delivery_status_valid() accepts. */
enum cp_err webhook_delivery_list(struct store *st, const char *tenant_id, const char *status,
				  int limit, struct delivery_row **rows, size_t *n,
				  struct cp_error *err);
/* Makes failed delivery id (id > 0), or every failed delivery (id 0), pending and due now;
 * *count how many. CP_ERR_NOT_FOUND when id names no failed delivery. The caller wakes the
 * delivery worker when *count > 0. */
enum cp_err webhook_delivery_replay(struct store *st, const char *tenant_id, int64_t id, int *count,
				    struct cp_error *err);

#endif
