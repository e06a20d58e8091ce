/*
 * routes_openapi.c - GET /openapi.json: the OpenAPI 3.1 description of every route served.
 *
 * docs/openapi.json is the source of truth for the API; the build embeds it in the binary
 * (openapi_json, routes.h), so a server always describes the routes it was built with and
 * needs no file beside it. Public, like /healthz: the document holds nothing secret, and a
 * client reads it before it has a key.
 */
#include "routes.h"

#include <stdlib.h>
#include <string.h>

static void openapi(struct http_request *r)
{
	/* the reply takes a malloc'd copy; NULL makes it a 500 */
	char *text = malloc(openapi_json_len);
	if (text)
		memcpy(text, openapi_json, openapi_json_len);
	http_reply_json_text(r, 200, text, openapi_json_len);
}

const struct route openapi_routes[] = {
	{"GET", "/openapi.json", openapi, &canonical_dialect, ROUTE_PUBLIC},
	{0},
};
