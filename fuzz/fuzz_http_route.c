/*
 * fuzz_http_route.c - libFuzzer target: route matching and percent-decoding (http/router.c) on
 * any method and raw path, over the route tables `serve` serves (serve_route_tables), at the
 * speed of a pure function; fuzz_http.c drives the same code through the whole server.
 *
 * The input is "METHOD PATH\nVALUE": the method up to the first space, the path (as MHD hands
 * it over: raw, without the query) up to the first newline, and the rest as a query value.
 * Whatever they are: nothing is read or written out of bounds or leaked; a route found has the
 * request's method, as many segments as the path and one non-empty capture per ":name" of its
 * pattern; decoding never lengthens a string, and leaves one without '%' as it was (but for
 * '+' as a space in a query).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/serve.h"
#include "core/log.h"
#include "http/http_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct http_server srv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	srv.tables = serve_route_tables;
	srv.n_tables = serve_n_route_tables;
	return 0;
}

/* The segments of a path or pattern after its leading '/' ("" has none). */
static int segments(const char *p)
{
	if (!*p || !p[1])
		return 0;
	int n = 1;
	for (p++; *p; p++)
		n += *p == '/';
	return n;
}

static void check_decode(const char *in, bool plus_is_space)
{
	char *s = strdup(in);
	if (!s)
		return;
	if (http_percent_decode(s, plus_is_space)) {
		if (strlen(s) > strlen(in))
			abort();
		if (!strchr(in, '%')) {
			for (size_t i = 0; in[i]; i++)
				if (s[i] != (plus_is_space && in[i] == '+' ? ' ' : in[i]))
					abort();
		}
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* MHD's strings end at the first NUL, as these do */
	char *path = strchr(text, ' ');
	char *value = NULL;
	if (path) {
		*path++ = '\0';
		value = strchr(path, '\n');
		if (value)
			*value++ = '\0';
	} else {
		path = text + strlen(text);
	}

	struct http_request r;
	memset(&r, 0, sizeof r);
	r.srv = &srv;
	r.method = text;
	r.path = path;
	bool known = false;
	const struct route *rt = http_route_find(&r, &known);
	if (rt) {
		if (!known || strcmp(rt->method, text) || segments(rt->pattern) != segments(path))
			abort();
		int caps = 0;
		for (const char *p = rt->pattern; *p; p++)
			caps += p[0] == ':' && p[-1] == '/';
		for (int i = 0; i < HTTP_MAX_PARAMS; i++)
			if ((i < caps) != (r.params[i] != NULL) || (r.params[i] && !r.params[i][0]))
				abort();
	}
	for (int i = 0; i < HTTP_MAX_PARAMS; i++)
		free(r.params[i]);

	check_decode(path, false);
	if (value)
		check_decode(value, true);
	free(text);
	return 0;
}
