/*
 * router.c - route matching and percent-decoding of the path and the query.
 *
 * MHD is told to unescape nothing (http_no_unescape): the router splits the raw path on '/'
 * first and decodes each segment after, so an escaped "%2F" stays inside its segment instead of
 * making a new one. A pattern is a path of literal segments and ":name" captures of one
 * non-empty segment; the route tables are searched in order and the first match of path and
 * method wins. A path that matches some route under another method is told apart (405 rather
 * than 404, with the methods that do match for the Allow header RFC 9110 asks of a 405); a
 * path no route serves may still belong to a dialect (http_dialect.path_prefix), whose error
 * shape then answers it. Query values are decoded in place, once, before the handler runs; "+"
 * is a space there but not in the path. A decoded NUL is refused everywhere: C strings end at
 * it.
 */
#include "http_internal.h"

#include <stdio.h>
#include <string.h>

#define MAX_SEGMENTS 12

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool http_percent_decode(char *s, bool plus_is_space)
{
	char *w = s;
	for (const char *p = s; *p; p++) {
		if (*p == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return false;
			*w++ = (char)(hi * 16 + lo);
			p += 2;
		} else {
			*w++ = plus_is_space && *p == '+' ? ' ' : *p;
		}
	}
	*w = '\0';
	return true;
}

size_t http_no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s); /* we decode path segments ourselves, after splitting on '/' */
}

static enum MHD_Result decode_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				  const char *value)
{
	bool *ok = cls;
	(void)kind;
	/* MHD owns these buffers for the request's lifetime and we are their only user; with
	 * http_no_unescape they arrive raw, so this is where values are decoded, once. Names are
	 * not decoded (MHD matches them by their stored length): an escaped name is refused. */
	if (strchr(key, '%') || (value && !http_percent_decode((char *)value, true)))
		*ok = false;
	return MHD_YES;
}

bool http_query_decode(struct http_request *r)
{
	bool ok = true;
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, decode_arg, &ok);
	return ok;
}

/* Splits a raw path into decoded segments (in a scratch copy). Returns count or -1. */
static int split_path(const char *path, char *scratch, size_t size, char **seg)
{
	snprintf(scratch, size, "%s", path);
	if (scratch[0] != '/')
		return -1;
	int n = 0;
	char *p = scratch + 1;
	if (!*p)
		return 0;
	for (;;) {
		if (n == MAX_SEGMENTS)
			return -1;
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		if (!http_percent_decode(p, false))
			return -1;
		seg[n++] = p;
		if (!slash)
			break;
		p = slash + 1;
	}
	return n;
}

/* Matches pattern against the segments; captures into caps. */
static bool match(const char *pattern, char **seg, int n, char **caps, int *n_caps)
{
	char pat[256];
	snprintf(pat, sizeof pat, "%s", pattern);
	int i = 0;
	*n_caps = 0;
	char *save = NULL;
	for (char *t = strtok_r(pat + 1, "/", &save); t; t = strtok_r(NULL, "/", &save), i++) {
		if (i >= n)
			return false;
		if (t[0] == ':') {
			if (!seg[i][0] || *n_caps >= HTTP_MAX_PARAMS)
				return false;
			caps[(*n_caps)++] = seg[i];
		} else if (strcmp(t, seg[i])) {
			return false;
		}
	}
	return i == n;
}

/* Whether path is prefix or lies under it ("/agents" owns "/agents" and "/agents/..."). */
static bool path_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);
	return !strncmp(path, prefix, n) && (path[n] == '\0' || path[n] == '/');
}

/* Adds method to the comma-separated list allow (of size bytes) unless it is there. */
static void allow_add(char *allow, size_t size, const char *method)
{
	size_t n = strlen(method);
	for (const char *p = allow; (p = strstr(p, method)); p += n)
		if ((p == allow || p[-1] == ' ') && (p[n] == ',' || !p[n]))
			return;
	size_t len = strlen(allow);
	snprintf(allow + len, size - len, "%s%s", len ? ", " : "", method);
}

/* The dialect that owns a path no route serves, or NULL. */
static const struct http_dialect *path_owner(const struct http_server *srv, const char *path)
{
	for (size_t t = 0; t < srv->n_tables; t++)
		for (const struct route *rt = srv->tables[t]; rt->pattern; rt++)
			if (rt->dialect && rt->dialect->path_prefix &&
			    path_under(path, rt->dialect->path_prefix))
				return rt->dialect;
	return NULL;
}

static const struct route *route_of(struct http_request *r, bool *path_known)
{
	char scratch[2048];
	char *seg[MAX_SEGMENTS];
	*path_known = false;
	if (strlen(r->path) >= sizeof scratch)
		return NULL;
	int n = split_path(r->path, scratch, sizeof scratch, seg);
	if (n < 0)
		return NULL;
	for (size_t t = 0; t < r->srv->n_tables; t++) {
		for (const struct route *rt = r->srv->tables[t]; rt->pattern; rt++) {
			char *caps[HTTP_MAX_PARAMS];
			int n_caps;
			if (!match(rt->pattern, seg, n, caps, &n_caps))
				continue;
			*path_known = true;
			if (strcmp(rt->method, r->method)) {
				allow_add(r->allow, sizeof r->allow, rt->method);
				continue;
			}
			for (int i = 0; i < n_caps; i++)
				r->params[i] = strdup(caps[i]);
			return rt;
		}
	}
	return NULL;
}

const struct route *http_route_find(struct http_request *r, bool *path_known)
{
	const struct route *rt = route_of(r, path_known);
	if (!rt)
		r->path_dialect = path_owner(r->srv, r->path);
	return rt;
}
