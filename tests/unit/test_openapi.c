/*
 * test_openapi.c - the route tables `serve` serves against docs/openapi.json as embedded.
 *
 * Every route of serve_route_tables must be an operation of the document, with the same method,
 * the same path (":name" captures as "{name}" templates, names included), the same dialect
 * (x-callplane-dialect) and the same authentication (a public route has "security": [], or a
 * web call's token alone: it is in the query, for the handler to check); and
 * every operation of the document must be such a route. So a route added, removed or changed
 * without its entry in the document (or the reverse) fails here, before the contract test
 * (tests/blackbox/test_openapi.py) checks what the routes answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "cli/serve.h"
#include "http/routes.h"

#define MAX_OPS 64

struct op {
	char method[8];
	char path[256]; /* in the document's form: "/v1/calls/{id}/end" */
	char dialect[32];
	bool public;
	bool seen;
};

static const char *const methods[] = {"get", "put", "post", "delete", "patch", "head", "options"};

/* Whether a security requirement asks for no API key: none at all, or a web call's token alone
 * (in the query, checked by the route's handler: the route is public to the server). */
static bool keyless(json_t *sec)
{
	if (!json_is_array(sec))
		return false;
	if (json_array_size(sec) == 0)
		return true;
	json_t *req = json_array_get(sec, 0);
	return json_array_size(sec) == 1 && json_object_size(req) == 1 &&
	       json_object_get(req, "webCallToken");
}

/* The operations of the document, in *ops (at most MAX_OPS); their count. */
static size_t document_ops(json_t *doc, struct op *ops)
{
	size_t n = 0;
	const char *path;
	json_t *item;
	json_t *global_security = json_object_get(doc, "security");
	json_object_foreach(json_object_get(doc, "paths"), path, item)
	{
		for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
			json_t *op = json_object_get(item, methods[m]);
			if (!op)
				continue;
			assert_true(n < MAX_OPS);
			struct op *o = &ops[n++];
			memset(o, 0, sizeof *o);
			for (size_t i = 0; methods[m][i]; i++)
				o->method[i] = (char)toupper((unsigned char)methods[m][i]);
			snprintf(o->path, sizeof o->path, "%s", path);
			const char *d =
				json_string_value(json_object_get(op, "x-callplane-dialect"));
			snprintf(o->dialect, sizeof o->dialect, "%s", d ? d : "(none)");
			json_t *sec = json_object_get(op, "security");
			if (!sec)
				sec = global_security;
			o->public = keyless(sec);
		}
	}
	return n;
}

/* A route pattern in the document's form: ":name" segments as "{name}". */
static void document_path(const char *pattern, char *out, size_t size)
{
	size_t o = 0;
	for (const char *p = pattern; *p && o + 2 < size; p++) {
		if (*p == ':' && p > pattern && p[-1] == '/') {
			out[o++] = '{';
			while (p[1] && p[1] != '/' && o + 2 < size)
				out[o++] = *++p;
			out[o++] = '}';
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

static json_t *load_document(void)
{
	json_error_t je;
	json_t *doc = json_loadb((const char *)openapi_json, openapi_json_len, 0, &je);
	if (!doc)
		fail_msg("the embedded docs/openapi.json does not parse: %s (line %d)", je.text,
			 je.line);
	return doc;
}

static void test_document_is_openapi_3_1(void **state)
{
	(void)state;
	json_t *doc = load_document();
	assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
	assert_int_equal(openapi_json[openapi_json_len], '\0');
	json_decref(doc);
}

static void test_the_path_form(void **state)
{
	(void)state;
	char out[256];
	document_path("/v1/calls/:id/end", out, sizeof out);
	assert_string_equal(out, "/v1/calls/{id}/end");
	document_path("/agents/calls/:call_id", out, sizeof out);
	assert_string_equal(out, "/agents/calls/{call_id}");
	document_path("/healthz", out, sizeof out);
	assert_string_equal(out, "/healthz");
}

/* Every route served is an operation of the document, and every operation a route served. */
static void test_routes_and_document_agree(void **state)
{
	(void)state;
	json_t *doc = load_document();
	struct op ops[MAX_OPS];
	size_t n_ops = document_ops(doc, ops), n_routes = 0;
	int problems = 0;
	for (size_t t = 0; t < serve_n_route_tables; t++) {
		for (const struct route *rt = serve_route_tables[t]; rt->pattern; rt++) {
			char path[256];
			document_path(rt->pattern, path, sizeof path);
			bool public = rt->flags & ROUTE_PUBLIC;
			n_routes++;
			struct op *o = NULL;
			for (size_t i = 0; i < n_ops && !o; i++)
				if (!strcmp(ops[i].method, rt->method) &&
				    !strcmp(ops[i].path, path))
					o = &ops[i];
			if (!o) {
				print_error("route %s %s is not in docs/openapi.json\n", rt->method,
					    path);
				problems++;
				continue;
			}
			o->seen = true;
			if (strcmp(o->dialect, rt->dialect->name)) {
				print_error("%s %s: dialect %s, the document says %s\n", rt->method,
					    path, rt->dialect->name, o->dialect);
				problems++;
			}
			if (o->public != public) {
				print_error("%s %s: %s, the document says %s\n", rt->method, path,
					    public ? "public" : "authenticated",
					    o->public ? "public" : "authenticated");
				problems++;
			}
		}
	}
	for (size_t i = 0; i < n_ops; i++) {
		if (!ops[i].seen) {
			print_error("docs/openapi.json has %s %s, which no route serves\n",
				    ops[i].method, ops[i].path);
			problems++;
		}
	}
	json_decref(doc);
	assert_int_equal(problems, 0);
	assert_int_equal(n_routes, n_ops);
	assert_true(n_routes >= 23);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_document_is_openapi_3_1),
		cmocka_unit_test(test_the_path_form),
		cmocka_unit_test(test_routes_and_document_agree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
