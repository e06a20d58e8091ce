/*
 * webhook_registry.h - webhook creation shared by the API (/v1/webhooks) and the CLI.
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

enum cp_err webhook_register(struct store *st, const char *tenant_id,
			     const struct webhook_request *req, struct webhook *out,
			     struct cp_error *err);

#endif
