/*
 * webhook_registry.h - webhook creation shared by the API (/v1/webhooks) and the CLI.
 *
 * A tenant may hold at most a number of webhooks (`serve --webhooks-per-tenant`, the CLI's
 * `webhook create --webhooks-per-tenant`; WEBHOOKS_PER_TENANT_DEFAULT): every event of a call
 * is written with one delivery per matching webhook in the transaction of the call's step, so
 * the cap bounds that fan-out as well as what one tenant can queue.
 */
#ifndef CP_WEBHOOK_REGISTRY_H
#define CP_WEBHOOK_REGISTRY_H

#include "core/error.h"
#include "store/store.h"

struct webhook_request {
	const char *url;
	const char *agent_id;        /* NULL: every agent of the tenant */
	const char *secret;          /* NULL: generated */
	const char *format;          /* NULL: canonical */
};

#define WEBHOOKS_PER_TENANT_DEFAULT 20
#define WEBHOOKS_PER_TENANT_MAX 10000

/* Registers req for the tenant, which may hold at most max_per_tenant webhooks: CP_OK with
 * *out filled (its secret included); CP_ERR_INVALID for a bad URL, format or secret;
 * CP_ERR_NOT_FOUND for an unknown tenant or agent; CP_ERR_LIMIT at the cap. */
enum cp_err webhook_register(struct store *st, const char *tenant_id,
			     const struct webhook_request *req, int max_per_tenant,
			     struct webhook *out, struct cp_error *err);

#endif
