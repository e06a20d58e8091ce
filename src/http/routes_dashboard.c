/*
 * routes_dashboard.c - the dashboard (docs/OPERATIONS.md, "Dashboard"): GET /dashboard serves
 * its page, GET /dashboard/app.js its script and GET /dashboard/app.css its style sheet, the
 * three files of src/http/dashboard.* as they were at build time (build/gen/, scripts/embed.sh).
 *
 * The three are public and hold nothing secret: the person at the page pastes an API key, which
 * the script keeps in the tab's sessionStorage and sends as Authorization: Bearer to the API
 * routes of this server, never in a URL. Everything the page shows comes from those routes, so
 * the dashboard sees exactly what its key may see.
 *
 * The Content-Security-Policy lets the page run its own script and style sheet from this origin
 * and talk to this origin only: no inline script or style, nothing from elsewhere, no frames,
 * no forms that leave. With nosniff a browser takes each file for the type it is served as.
 */
#include "routes.h"

#include <stdlib.h>
#include <string.h>

static const char csp[] =
	"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/* Replies with a copy of the embedded file (the reply owns its body) and the headers every
 * file of the dashboard carries; content_type is a literal. */
static void serve_file(struct http_request *r, const unsigned char *data, size_t len,
		       const char *content_type)
{
	http_add_header(r, "Content-Security-Policy", csp);
	http_add_header(r, "X-Content-Type-Options", "nosniff");
	http_add_header(r, "Referrer-Policy", "no-referrer");
	/* a new binary may bring a new script: a browser asks again rather than run an old one */
	http_add_header(r, "Cache-Control", "no-cache");
	char *body = malloc(len);
	if (body)
		memcpy(body, data, len);
	http_reply_typed(r, 200, content_type, body, len);
}

static void page(struct http_request *r)
{
	serve_file(r, dashboard_html, dashboard_html_len, "text/html; charset=utf-8");
}

static void script(struct http_request *r)
{
	serve_file(r, dashboard_js, dashboard_js_len, "application/javascript; charset=utf-8");
}

static void style(struct http_request *r)
{
	serve_file(r, dashboard_css, dashboard_css_len, "text/css; charset=utf-8");
}

const struct route dashboard_routes[] = {
	{"GET", "/dashboard", page, &canonical_dialect, ROUTE_PUBLIC},
	{"GET", "/dashboard/app.js", script, &canonical_dialect, ROUTE_PUBLIC},
	{"GET", "/dashboard/app.css", style, &canonical_dialect, ROUTE_PUBLIC},
	{0},
};
