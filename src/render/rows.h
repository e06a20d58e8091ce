/*
 * rows.h - the public JSON of the store's rows that are not calls: tenants, agents, API keys,
 * trunks (with their registration status), webhooks and deliveries, as the API
 * (/v1/webhooks, trunk events) and the admin CLI print them.
 *
 * The store hands back typed rows (store.h); how a client reads them is decided here, once
 * per row type, for every caller: times as RFC 3339 UTC with milliseconds, and a value the
 * row does not have (no number, no limit, not revoked yet) as null. A call's JSON is
 * model/call_json.c.
 */
#ifndef CP_RENDER_ROWS_H
#define CP_RENDER_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "store/store.h"

/* Each returns a new object (NULL if out of memory). */
json_t *tenant_to_json(const struct tenant *t);
json_t *agent_to_json(const struct agent *a);
json_t *api_key_to_json(const struct api_key *k); /* never the hash */
json_t *webhook_to_json(const struct webhook *w, bool with_secret);
json_t *delivery_to_json(const struct delivery_row *d);
/* Never a password (the store has none); "registration" null until the server reports one. */
json_t *trunk_to_json(const struct trunk *t);
/* {"status","sip_status","reason","expires_at","updated_at"}, after "trunk_id" and
 * "tenant_id" with with_trunk (the data of a trunk.registration event). */
json_t *trunk_status_to_json(const struct trunk_status *s, bool with_trunk);

/* A listing: an array of n rows, each rendered as above (webhooks without secrets). */
json_t *tenants_to_json(const struct tenant *t, size_t n);
json_t *agents_to_json(const struct agent *a, size_t n);
json_t *api_keys_to_json(const struct api_key *k, size_t n);
json_t *webhooks_to_json(const struct webhook *w, size_t n);
json_t *deliveries_to_json(const struct delivery_row *d, size_t n);
json_t *trunks_to_json(const struct trunk *t, size_t n);

#endif
