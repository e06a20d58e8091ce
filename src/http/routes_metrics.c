/*
 * routes_metrics.c - GET /metrics: every metric (src/metrics/) in Prometheus's text format.
 *
 * The route is public to API keys: a scraper is not a tenant. Without --metrics-token it is
 * open, like /healthz, for the usual set-up where Prometheus scrapes a port that only the
 * monitoring network reaches; the numbers say how busy the node is and how calls end, not
 * whose calls they are. With a token, a request must present it as "Authorization: Bearer
 * TOKEN" (Prometheus's `authorization` scrape setting), else 401 with a WWW-Authenticate
 * challenge, in the canonical error shape. docs/OPERATIONS.md recommends the token wherever
 * the API's port is reachable by more than the monitoring system.
 */
#include "routes.h"
#include "metrics/metrics.h"

#include <stdlib.h>

static void metrics_get(struct http_request *r)
{
	const char *token = ((struct app *)http_app(r))->metrics_token;
	if (token &&
	    !auth_token_matches(auth_secret_from_headers(http_header(r, "Authorization"), NULL),
				token)) {
		http_add_header(r, "WWW-Authenticate", "Bearer realm=\"metrics\"");
		http_reply_fail(r, CP_ERR_UNAUTHORIZED,
				"/metrics needs Authorization: Bearer "
				"with the server's --metrics-token");
		return;
	}
	size_t len = 0;
	char *text = metrics_render(&len);
	http_reply_typed(r, 200, METRICS_CONTENT_TYPE, text, len);
}

const struct route metrics_routes[] = {
	{"GET", "/metrics", metrics_get, &canonical_dialect, ROUTE_PUBLIC},
	{0},
};
