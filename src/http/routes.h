/*
 * routes.h - the route tables the server is assembled from, and what handlers share.
 *
 * canonical_routes: docs/API.md; metrics_routes: docs/OPERATIONS.md. Vendor dialects add one
 * table each (docs/dialects.md).
 */
#ifndef CP_ROUTES_H
#define CP_ROUTES_H

#include "call/call_service.h"
#include "http/http.h"

struct event_hub;
struct webhook_worker;

/* What every handler reaches through http_app(). */
struct app {
	struct call_service *calls;
	struct store *store;
	struct event_hub *events;     /* live event streams (event_hub.c) */
	struct webhook_worker *hooks; /* webhook delivery (webhook/outbox.c) */
	int webhooks_per_tenant;      /* the cap POST /v1/webhooks enforces */
	bool webhook_allow_private;   /* POST /v1/webhooks may name private addresses */
	const char *metrics_token;    /* what GET /metrics requires as a Bearer token; NULL: none */
};

extern const struct http_dialect canonical_dialect;
extern const struct route canonical_routes[];
extern const struct route webhook_routes[];   /* routes_webhooks.c */
extern const struct route event_routes[];     /* routes_events.c */
extern const struct route openapi_routes[];   /* routes_openapi.c */
extern const struct route web_routes[];       /* routes_web.c */
extern const struct route metrics_routes[];   /* routes_metrics.c */
extern const struct route dashboard_routes[]; /* routes_dashboard.c */
extern const struct route admin_routes[];     /* routes_admin.c */

/* docs/openapi.json as it was at build time (build/gen/openapi_json.c, written by
 * scripts/embed.sh): openapi_json_len bytes, then a NUL. */
extern const unsigned char openapi_json[];
extern const size_t openapi_json_len;
/* src/http/web_call.html, the web call's page, as it was at build time (build/gen/
 * web_call_html.c, the same way). */
extern const unsigned char web_call_html[];
extern const size_t web_call_html_len;
/* src/http/dashboard.html, .js and .css, the dashboard (routes_dashboard.c), the same way. */
extern const unsigned char dashboard_html[], dashboard_js[], dashboard_css[];
extern const size_t dashboard_html_len, dashboard_js_len, dashboard_css_len;

/* The scope a request acts in: the key's, or for an operator key with a tenant_id (from the
 * query or the body) that tenant's, as if a tenant key of it asked. A tenant_id from a tenant
 * key is refused (403) rather than ignored, so a client never believes it reached across.
 * False after replying. */
bool request_scope(struct http_request *r, const char *tenant_id, struct scope *out);

/* JSON body helpers shared by the dialects. */
bool json_only_fields(json_t *obj, const char *const *allowed, struct cp_error *err);
bool json_opt_string(json_t *obj, const char *name, const char **out, struct cp_error *err);
/* A member that must be an integer in min..max if present (*out is left as it is when not). */
bool json_opt_int(json_t *obj, const char *name, long long min, long long max, int *out,
		  struct cp_error *err);
/* A member that, if present, is true or false (*out 1 or 0); absent: *out stays. */
bool json_opt_bool(json_t *obj, const char *name, int *out, struct cp_error *err);
/* "record": true or false, if present (*out is left as it is when not). */
bool json_opt_record(json_t *obj, enum call_record_choice *out, struct cp_error *err);
/* "metadata": a JSON object, if present, as compact text (*text malloc'd; NULL when absent). */
bool json_opt_metadata(json_t *obj, char **text, struct cp_error *err);

#endif
