/*
 * trunk.c - `callplane trunk ...`: a tenant's carriers (create, list, delete).
 *
 * A trunk is checked here, whole, before it is stored: every text it holds goes onto the wire
 * as it is (sip/trunks.c says what may), and a bad value is a usage error (exit 2) naming the
 * option. The password is never an argument (it would sit in the shell's history and in ps):
 * --password-env names an environment variable of the server's, --password-file a file the
 * server reads; the server reads either when it loads the trunk. The database holds only the
 * name or the path.
 *
 * A running server sees a trunk created or deleted here within about a second (it polls the
 * store's trunk generation), and `trunk list` shows the registration status it last reported.
 */
#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "cli.h"
#include "args.h"
#include "core/netaddr.h"
#include "core/util.h"
#include "render/rows.h"
#include "sip/sip.h"
#include "store/store.h"

static const char trunk_usage[] =
	"usage: callplane trunk create --tenant ID --host HOST[:PORT] [--transport udp|tcp|tls]\n"
	"                              [--user USER (--password-env VAR | --password-file FILE)]\n"
	"                              [--register] [--outbound-proxy sip:HOST[:PORT]]\n"
	"                              [--from-user USER] [--from-domain HOST]\n"
	"                              [--caller-id-header pai|rpid|none]\n"
	"                              [--srtp off|optional|required]\n"
	"                              [--inbound-cidr CIDR[,CIDR...]] [--header 'Name: value']...\n"
	"                              [--db PATH]\n"
	"       callplane trunk list [--tenant ID] [--db PATH]\n"
	"       callplane trunk delete ID [--tenant ID] [--db PATH]\n"
	"A number an agent of the trunk dials goes to sip:NUMBER@HOST[:PORT] (through the\n"
	"outbound proxy, when given), and a digest challenge is answered with USER and the\n"
	"password the server reads from the environment variable VAR or the file FILE\n"
	"(never stored). --register keeps USER registered with HOST; calls to it arrive\n"
	"there. INVITEs are accepted from the --inbound-cidr ranges and from the far end of\n"
	"the registration, for the tenant's agents. --caller-id-header adds the caller's\n"
	"number as P-Asserted-Identity or Remote-Party-ID (default none). Each --header is\n"
	"added to the trunk's INVITEs (at most 16). --srtp: SRTP with SDES keys on the\n"
	"trunk's calls: optional offers it and falls back to RTP, required refuses plain RTP\n"
	"(default off).\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "error: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s", trunk_usage);
	return 2;
}

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

/* --host: "HOST", "HOST:PORT", "[V6]", "[V6]:PORT" or a bare IPv6 address, into t. */
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
			return false;         /* brackets are for IPv6 */
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

/* The extra headers, checked, joined by CRLF into t->headers; 0, or 2 (told) on a bad one. */
static int take_headers(const char *const *h, struct trunk *t)
{
	size_t used = 0;
	for (int i = 0; h[i] && h[i] != args_end; i++) {
		char why[128], text[600];
		if (!sip_trunk_header_valid(h[i], why, sizeof why)) {
			fprintf(stderr, "error: --header '%s': %s\n%s", shown(h[i], text, sizeof text),
				why, trunk_usage);
			return 2;
		}
		int w = snprintf(t->headers + used, sizeof t->headers - used, "%s%s",
				 i ? "\r\n" : "", h[i]);
		if (w < 0 || (size_t)w >= sizeof t->headers - used)
			return usage_error("the --header lines are at most %s bytes together", "2048");
		used += (size_t)w;
	}
	return 0;
}

/* --inbound-cidr: checked, stored canonical ("10.0.0.0/8,2001:db8::/32"). 0 or 2 (told). */
static int take_cidrs(const char *list, struct trunk *t)
{
	struct cidr c[SIP_TRUNK_CIDRS_MAX];
	int n;
	char why[96];
	bool ok = sip_trunk_cidrs_parse(list, c, &n, why, sizeof why);
	if (!ok || n == 0) {
		fprintf(stderr, "error: --inbound-cidr must be CIDR[,CIDR...]: %s\n%s",
			ok ? "no range given" : why, trunk_usage);
		return 2;
	}
	size_t used = 0;
	for (int i = 0; i < n; i++) {
		char one[CIDR_TEXT_MAX + 1];
		cidr_format(&c[i], one, sizeof one);
		used += (size_t)snprintf(t->inbound_cidrs + used, sizeof t->inbound_cidrs - used,
					 "%s%s", i ? "," : "", one);
	}
	return 0;
}

/* --password-file as an absolute path (the server may run elsewhere in the tree). */
static int take_password_file(const char *path, struct trunk *t)
{
	char cwd[PATH_MAX];
	int w;
	if (!*path)
		return usage_error("--password-file must be a path%s", "");
	if (path[0] == '/')
		w = snprintf(t->password_file, sizeof t->password_file, "%s", path);
	else if (getcwd(cwd, sizeof cwd))
		w = snprintf(t->password_file, sizeof t->password_file, "%s/%s", cwd, path);
	else
		return usage_error("cannot make --password-file absolute: %s", path);
	if (w < 0 || (size_t)w >= sizeof t->password_file)
		return usage_error("--password-file must be at most %s bytes", "1024");
	return 0;
}

struct create_args {
	const char *tenant, *host, *transport, *user, *pw_env, *pw_file, *reg, *proxy, *from_user,
		*from_domain, *caller_id, *cidrs, *srtp;
	const char *headers[SIP_TRUNK_HEADERS_MAX + 1];   /* OPT_MULTI, ends with args_end */
};

/* Checks every option into *t; 0, or 2 after telling what is wrong. */
static int trunk_from_args(const struct create_args *a, struct trunk *t)
{
	char text[600];
	if (!parse_host(a->host, t))
		return usage_error("--host must be HOST[:PORT] (a host name or an IP address, IPv6"
				   " in brackets when a port follows), got '%s'",
				   shown(a->host, text, sizeof text));
	const char *tr = a->transport ? a->transport : "udp";
	if (strcmp(tr, "udp") && strcmp(tr, "tcp") && strcmp(tr, "tls"))
		return usage_error("--transport must be udp, tcp or tls, got '%s'", tr);
	snprintf(t->transport, sizeof t->transport, "%s", tr);
	if (a->user && !sip_trunk_user_valid(a->user))
		return usage_error("--user must be 1..128 of letters, digits and -_.!~*'()&=+$,;?/%%,"
				   " got '%s'", a->user);
	if (a->user && !a->pw_env == !a->pw_file)
		return usage_error("--user needs its password: --password-env VAR or"
				   " --password-file FILE (one of them)%s", "");
	if (!a->user && (a->pw_env || a->pw_file))
		return usage_error("--password-env and --password-file go with --user%s", "");
	if (a->reg && !a->user)
		return usage_error("--register needs --user (the registered user)%s", "");
	if (a->pw_env && !env_name_valid(a->pw_env))
		return usage_error("--password-env must be an environment variable's name"
				   " ([A-Za-z_][A-Za-z0-9_]*), got '%s'", a->pw_env);
	if (a->pw_file && take_password_file(a->pw_file, t))
		return 2;
	snprintf(t->user, sizeof t->user, "%s", a->user ? a->user : "");
	snprintf(t->password_env, sizeof t->password_env, "%s", a->pw_env ? a->pw_env : "");
	t->do_register = a->reg != NULL;
	if (a->proxy && !sip_trunk_proxy_valid(a->proxy))
		return usage_error("--outbound-proxy must be sip:HOST[:PORT][;params] (at most 256"
				   " bytes, no spaces), got '%s'", shown(a->proxy, text, sizeof text));
	snprintf(t->outbound_proxy, sizeof t->outbound_proxy, "%s", a->proxy ? a->proxy : "");
	if (a->from_user && !sip_trunk_user_valid(a->from_user))
		return usage_error("--from-user must be 1..128 of letters, digits and"
				   " -_.!~*'()&=+$,;?/%%, got '%s'", a->from_user);
	snprintf(t->from_user, sizeof t->from_user, "%s", a->from_user ? a->from_user : "");
	if (a->from_domain && !netaddr_host_valid(a->from_domain))
		return usage_error("--from-domain must be a host name or an IP address, got '%s'",
				   a->from_domain);
	snprintf(t->from_domain, sizeof t->from_domain, "%s", a->from_domain ? a->from_domain : "");
	const char *cid = a->caller_id ? a->caller_id : "none";
	if (strcmp(cid, "pai") && strcmp(cid, "rpid") && strcmp(cid, "none"))
		return usage_error("--caller-id-header must be pai, rpid or none, got '%s'", cid);
	snprintf(t->caller_id_header, sizeof t->caller_id_header, "%s", cid);
	enum sip_srtp srtp;
	const char *sr = a->srtp ? a->srtp : "off";
	if (!sip_srtp_parse(sr, &srtp))
		return usage_error("--srtp must be off, optional or required, got '%s'",
				   shown(sr, text, sizeof text));
	snprintf(t->srtp, sizeof t->srtp, "%s", sr);
	if (a->cidrs && take_cidrs(a->cidrs, t))
		return 2;
	return take_headers(a->headers, t);
}

static int trunk_create(int argc, char **argv)
{
	struct create_args a = {.headers = {[SIP_TRUNK_HEADERS_MAX] = args_end}};
	const char *db = CLI_DEFAULT_DB;
	const char *pos[1];
	int n_pos;
	struct opt opts[] = {
		{"tenant", &a.tenant, OPT_REQUIRED}, {"host", &a.host, OPT_REQUIRED},
		{"transport", &a.transport, OPT_OPTIONAL}, {"user", &a.user, OPT_OPTIONAL},
		{"password-env", &a.pw_env, OPT_OPTIONAL},
		{"password-file", &a.pw_file, OPT_OPTIONAL}, {"register", &a.reg, OPT_FLAG},
		{"outbound-proxy", &a.proxy, OPT_OPTIONAL}, {"from-user", &a.from_user, OPT_OPTIONAL},
		{"from-domain", &a.from_domain, OPT_OPTIONAL},
		{"caller-id-header", &a.caller_id, OPT_OPTIONAL},
		{"inbound-cidr", &a.cidrs, OPT_OPTIONAL}, {"srtp", &a.srtp, OPT_OPTIONAL},
		{"header", a.headers, OPT_MULTI}, {"db", &db, OPT_OPTIONAL}, {0}};
	enum args_result ar = args_parse(argc, argv, opts, pos, 0, &n_pos, trunk_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	struct trunk t = {0};
	int bad = trunk_from_args(&a, &t);
	if (bad)
		return bad;
	if (cp_uuid4(t.id))
		return 1;
	snprintf(t.tenant_id, sizeof t.tenant_id, "%s", a.tenant);
	t.created_at = cp_now_ms();
	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	enum store_result r = STORE(st, trunk_create, &t);
	if (r == STORE_OK)
		rc = cli_print(json_pack("{s:s}", "id", t.id));
	else if (r == STORE_NOT_FOUND)
		fprintf(stderr, "error: no such tenant: %s\n", a.tenant);
	else
		cli_store_error(r, "trunk");
	store_close(st);
	return rc;
}

int cli_trunk(int argc, char **argv)
{
	const char *tenant = NULL, *db = CLI_DEFAULT_DB;
	const char *pos[1] = {NULL};
	int n_pos;
	if (argc < 1) {
		fprintf(stderr, "%s", trunk_usage);
		return 2;
	}
	const char *sub = argv[0];
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		printf("%s", trunk_usage);
		return 0;
	}
	if (!strcmp(sub, "create"))
		return trunk_create(argc - 1, argv + 1);
	bool del = !strcmp(sub, "delete");
	if (!del && strcmp(sub, "list")) {
		fprintf(stderr, "%s", trunk_usage);
		return 2;
	}
	struct opt opts[] = {{"tenant", &tenant, OPT_OPTIONAL}, {"db", &db, OPT_OPTIONAL}, {0}};
	enum args_result ar = args_parse(argc - 1, argv + 1, opts, pos, del ? 1 : 0, &n_pos,
					 trunk_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	if (del && n_pos != 1)
		return usage_error("trunk delete needs the trunk id%s", "");
	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	if (del) {
		enum store_result r = STORE(st, trunk_delete, tenant, pos[0]);
		if (r == STORE_OK)
			rc = cli_print(json_pack("{s:s, s:b}", "id", pos[0], "deleted", 1));
		else if (r == STORE_CONFLICT)
			fprintf(stderr, "error: trunk %s is used by agents: move them first (agent"
				" update ID --trunk OTHER or --no-trunk)\n", pos[0]);
		else if (r == STORE_NOT_FOUND)
			fprintf(stderr, "error: no such trunk: %s\n", pos[0]);
		else
			cli_store_error(r, "trunk");
	} else {
		struct trunk *list = NULL;
		size_t n = 0;
		enum store_result r = STORE(st, trunk_list, tenant, &list, &n);
		if (r == STORE_OK)
			rc = cli_print(json_pack("{s:o}", "data", trunks_to_json(list, n)));
		else
			cli_store_error(r, "trunks");
		free(list);
	}
	store_close(st);
	return rc;
}
