/*
 * trunk.c - a tenant's carriers: the checks `callplane trunk create` and POST /v1/trunks share,
 * and the store calls behind both. See admin.h.
 *
 * A trunk is checked whole before it is stored: every text it holds goes onto the wire as it
 * is (sip/trunks.c says what may). The password is never a value here: only the name of an
 * environment variable of the server's, or the path of a file the server reads, when it loads
 * the trunk. A refusal names the field through the caller's namer, so the CLI says
 * "--password-env" where the API says "password_env", with the same rule.
 */
#include "admin.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/netaddr.h"
#include "core/util.h"
#include "sip/sip.h"

_Static_assert(ADMIN_TRUNK_HEADERS_MAX == SIP_TRUNK_HEADERS_MAX, "admin.h tells the API the cap");

/* s for a message: control characters (which could end the line) as \xNN, cut to fit. */
static const char *shown(const char *s, char *buf, size_t size)
{
	size_t k = 0;
	for (; *s && k + 5 < size; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < ' ' || ch == 0x7f)
			k += (size_t)snprintf(buf + k, size - k, "\\x%02x", ch);
		else
			buf[k++] = (char)ch;
	}
	buf[k] = '\0';
	return buf;
}

/* The host: "HOST", "HOST:PORT", "[V6]", "[V6]:PORT" or a bare IPv6 address, into t. */
static bool parse_host(const char *arg, struct trunk *t)
{
	char host[TRUNK_HOST_MAX + 1];
	const char *port = NULL;
	size_t len;
	if (arg[0] == '[') {
		const char *close = strchr(arg, ']');
		if (!close || (close[1] && close[1] != ':'))
			return false;
		len = (size_t)(close - arg - 1);
		if (len >= sizeof host)
			return false;
		memcpy(host, arg + 1, len);
		host[len] = '\0';
		if (!strchr(host, ':'))
			return false; /* brackets are for IPv6 */
		port = close[1] ? close + 2 : NULL;
	} else {
		const char *colon = strchr(arg, ':');
		bool v6 = colon && strchr(colon + 1, ':');
		len = v6 || !colon ? strlen(arg) : (size_t)(colon - arg);
		if (len >= sizeof host)
			return false;
		memcpy(host, arg, len);
		host[len] = '\0';
		port = v6 || !colon ? NULL : colon + 1;
	}
	long long p = 0;
	if (!netaddr_host_valid(host) || (port && !cp_parse_int(port, 1, 65535, &p)))
		return false;
	snprintf(t->host, sizeof t->host, "%s", host);
	t->port = (int)p;
	return true;
}

/* An environment variable's name: [A-Za-z_][A-Za-z0-9_]*. */
static bool env_name_valid(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > TRUNK_TEXT_MAX || isdigit((unsigned char)s[0]))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* The extra headers, checked, joined by CRLF into t->headers. */
static bool take_headers(const struct admin_trunk_req *req, admin_namer name, struct trunk *t,
			 char *why, size_t size)
{
	size_t used = 0;
	if (req->n_headers > SIP_TRUNK_HEADERS_MAX) {
		snprintf(why, size, "%s: at most %d lines", name("headers"), SIP_TRUNK_HEADERS_MAX);
		return false;
	}
	for (size_t i = 0; i < req->n_headers; i++) {
		char rule[128], text[600];
		const char *h = req->headers[i];
		if (!sip_trunk_header_valid(h, rule, sizeof rule)) {
			snprintf(why, size, "%s '%s': %s", name("headers"),
				 shown(h, text, sizeof text), rule);
			return false;
		}
		int w = snprintf(t->headers + used, sizeof t->headers - used, "%s%s",
				 i ? "\r\n" : "", h);
		if (w < 0 || (size_t)w >= sizeof t->headers - used) {
			snprintf(why, size, "the %s lines are at most %d bytes together",
				 name("headers"), TRUNK_HEADERS_MAX);
			return false;
		}
		used += (size_t)w;
	}
	return true;
}

/* The inbound CIDRs: checked, kept canonical ("10.0.0.0/8,2001:db8::/32"). */
static bool take_cidrs(const char *list, admin_namer name, struct trunk *t, char *why, size_t size)
{
	struct cidr c[SIP_TRUNK_CIDRS_MAX];
	int n;
	char rule[96];
	bool ok = sip_trunk_cidrs_parse(list, c, &n, rule, sizeof rule);
	if (!ok || n == 0) {
		snprintf(why, size, "%s must be CIDR[,CIDR...]: %s", name("inbound_cidrs"),
			 ok ? "no range given" : rule);
		return false;
	}
	size_t used = 0;
	for (int i = 0; i < n; i++) {
		char one[CIDR_TEXT_MAX + 1];
		cidr_format(&c[i], one, sizeof one);
		used += (size_t)snprintf(t->inbound_cidrs + used, sizeof t->inbound_cidrs - used,
					 "%s%s", i ? "," : "", one);
	}
	return true;
}

/* The credentials: a user goes with exactly one place to read its password from. */
static bool take_credentials(const struct admin_trunk_req *req, admin_namer name, struct trunk *t,
			     char *why, size_t size)
{
	if (req->user && !sip_trunk_user_valid(req->user)) {
		snprintf(why, size,
			 "%s must be 1..128 of letters, digits and -_.!~*'()&=+$,;?/%%,"
			 " got '%s'",
			 name("user"), req->user);
		return false;
	}
	if (req->user && !req->password_env == !req->password_file) {
		snprintf(why, size, "%s needs its password: %s VAR or %s FILE (one of them)",
			 name("user"), name("password_env"), name("password_file"));
		return false;
	}
	if (!req->user && (req->password_env || req->password_file)) {
		snprintf(why, size, "%s and %s go with %s", name("password_env"),
			 name("password_file"), name("user"));
		return false;
	}
	if (req->do_register && !req->user) {
		snprintf(why, size, "%s needs %s (the registered user)", name("register"),
			 name("user"));
		return false;
	}
	if (req->password_env && !env_name_valid(req->password_env)) {
		snprintf(why, size,
			 "%s must be an environment variable's name ([A-Za-z_][A-Za-z0-9_]*),"
			 " got '%s'",
			 name("password_env"), req->password_env);
		return false;
	}
	if (req->password_file &&
	    (req->password_file[0] != '/' || strlen(req->password_file) > TRUNK_PATH_MAX)) {
		snprintf(why, size, "%s must be an absolute path of at most %d bytes",
			 name("password_file"), TRUNK_PATH_MAX);
		return false;
	}
	snprintf(t->user, sizeof t->user, "%s", req->user ? req->user : "");
	snprintf(t->password_env, sizeof t->password_env, "%s",
		 req->password_env ? req->password_env : "");
	snprintf(t->password_file, sizeof t->password_file, "%s",
		 req->password_file ? req->password_file : "");
	t->do_register = req->do_register;
	return true;
}

bool admin_trunk_check(const struct admin_trunk_req *req, admin_namer name, struct trunk *t,
		       char *why, size_t size)
{
	char text[600];
	if (!req->host || !parse_host(req->host, t)) {
		snprintf(why, size,
			 "%s must be HOST[:PORT] (a host name or an IP address, IPv6 in"
			 " brackets when a port follows), got '%s'",
			 name("host"), req->host ? shown(req->host, text, sizeof text) : "");
		return false;
	}
	const char *tr = req->transport ? req->transport : "udp";
	if (strcmp(tr, "udp") && strcmp(tr, "tcp") && strcmp(tr, "tls")) {
		snprintf(why, size, "%s must be udp, tcp or tls, got '%s'", name("transport"),
			 shown(tr, text, sizeof text));
		return false;
	}
	snprintf(t->transport, sizeof t->transport, "%s", tr);
	if (!take_credentials(req, name, t, why, size))
		return false;
	if (req->outbound_proxy && !sip_trunk_proxy_valid(req->outbound_proxy)) {
		snprintf(why, size,
			 "%s must be sip:HOST[:PORT][;params] (at most 256 bytes, no"
			 " spaces), got '%s'",
			 name("outbound_proxy"), shown(req->outbound_proxy, text, sizeof text));
		return false;
	}
	snprintf(t->outbound_proxy, sizeof t->outbound_proxy, "%s",
		 req->outbound_proxy ? req->outbound_proxy : "");
	if (req->from_user && !sip_trunk_user_valid(req->from_user)) {
		snprintf(why, size,
			 "%s must be 1..128 of letters, digits and -_.!~*'()&=+$,;?/%%,"
			 " got '%s'",
			 name("from_user"), shown(req->from_user, text, sizeof text));
		return false;
	}
	snprintf(t->from_user, sizeof t->from_user, "%s", req->from_user ? req->from_user : "");
	if (req->from_domain && !netaddr_host_valid(req->from_domain)) {
		snprintf(why, size, "%s must be a host name or an IP address, got '%s'",
			 name("from_domain"), shown(req->from_domain, text, sizeof text));
		return false;
	}
	snprintf(t->from_domain, sizeof t->from_domain, "%s",
		 req->from_domain ? req->from_domain : "");
	const char *cid = req->caller_id_header ? req->caller_id_header : "none";
	if (strcmp(cid, "pai") && strcmp(cid, "rpid") && strcmp(cid, "none")) {
		snprintf(why, size, "%s must be pai, rpid or none, got '%s'",
			 name("caller_id_header"), shown(cid, text, sizeof text));
		return false;
	}
	snprintf(t->caller_id_header, sizeof t->caller_id_header, "%s", cid);
	enum sip_srtp srtp;
	const char *sr = req->srtp ? req->srtp : "off";
	if (!sip_srtp_parse(sr, &srtp)) {
		snprintf(why, size, "%s must be off, optional or required, got '%s'", name("srtp"),
			 shown(sr, text, sizeof text));
		return false;
	}
	snprintf(t->srtp, sizeof t->srtp, "%s", sr);
	if (req->inbound_cidrs && !take_cidrs(req->inbound_cidrs, name, t, why, size))
		return false;
	return take_headers(req, name, t, why, size);
}

static const char *api_name(const char *field)
{
	return field;
}

enum cp_err admin_trunk_create(struct store *st, const struct admin_trunk_req *req,
			       struct trunk *out, struct cp_error *err)
{
	char why[sizeof err->message];
	memset(out, 0, sizeof *out);
	if (!req->tenant_id || !*req->tenant_id || strlen(req->tenant_id) > CP_UUID_LEN)
		return cp_fail(err, CP_ERR_INVALID, "tenant_id must be a tenant id");
	if (!admin_trunk_check(req, api_name, out, why, sizeof why))
		return cp_fail(err, CP_ERR_INVALID, "%s", why);
	if (cp_uuid4(out->id))
		return cp_fail(err, CP_ERR_INTERNAL, "could not make an id");
	snprintf(out->tenant_id, sizeof out->tenant_id, "%s", req->tenant_id);
	out->created_at = cp_now_ms();
	enum store_result r = STORE(st, trunk_create, out);
	if (r == STORE_NOT_FOUND)
		return cp_fail(err, CP_ERR_NOT_FOUND, "tenant not found");
	return r == STORE_OK ? CP_OK : store_fail(err, r, "trunk");
}

enum cp_err admin_trunk_get(struct store *st, const char *tenant_id, const char *id,
			    struct trunk *out, struct cp_error *err)
{
	enum store_result r = STORE(st, trunk_get, tenant_id, id, out);
	if (r == STORE_NOT_FOUND)
		return cp_fail(err, CP_ERR_NOT_FOUND, "trunk not found");
	return r == STORE_OK ? CP_OK : store_fail(err, r, "trunk");
}

enum cp_err admin_trunk_list(struct store *st, const char *tenant_id, struct trunk **list,
			     size_t *n, struct cp_error *err)
{
	enum store_result r = STORE(st, trunk_list, tenant_id, list, n);
	return r == STORE_OK ? CP_OK : store_fail(err, r, "trunks");
}

enum cp_err admin_trunk_delete(struct store *st, const char *tenant_id, const char *id,
			       struct cp_error *err)
{
	enum store_result r = STORE(st, trunk_delete, tenant_id, id);
	if (r == STORE_NOT_FOUND)
		return cp_fail(err, CP_ERR_NOT_FOUND, "trunk not found");
	if (r == STORE_CONFLICT)
		return cp_fail(err, CP_ERR_CONFLICT,
			       "the trunk is used by agents: move them first");
	return r == STORE_OK ? CP_OK : store_fail(err, r, "trunk");
}
