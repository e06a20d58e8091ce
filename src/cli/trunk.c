/*
 * trunk.c - `callplane trunk ...`: a tenant's carriers (create, list, delete).
 *
 * A trunk is checked whole before it is stored, by admin/trunk.c (the rules POST /v1/trunks
 * shares): a bad value is a usage error (exit 2) naming the option. The password is never an
 * argument (it would sit in the shell's history and in ps):
 * --password-env names an environment variable of the server's, --password-file a file the
 * server reads; the server reads either when it loads the trunk. The database holds only the
 * name or the path.
 *
 * A running server sees a trunk created or deleted here within about a second (it polls the
 * store's trunk generation), and `trunk list` shows the registration status it last reported.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "cli.h"
#include "args.h"
#include "admin/admin.h"
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
	"                              [--inbound-cidr CIDR[,CIDR...]] [--header 'Name: "
	"value']...\n"
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

/* --password-file as an absolute path (the server may run elsewhere in the tree), into buf. */
static int absolute_path(const char *path, char *buf, size_t size)
{
	char cwd[PATH_MAX];
	int w;
	if (!*path)
		return usage_error("--password-file must be a path%s", "");
	if (path[0] == '/')
		w = snprintf(buf, size, "%s", path);
	else if (getcwd(cwd, sizeof cwd))
		w = snprintf(buf, size, "%s/%s", cwd, path);
	else
		return usage_error("cannot make --password-file absolute: %s", path);
	if (w < 0 || (size_t)w >= size)
		return usage_error("--password-file must be at most %s bytes", "1024");
	return 0;
}

/* A field of admin_trunk_check() as the option that gives it. */
static const char *option_of(const char *field)
{
	/* as written: the pairs as a table */
	/* clang-format off */
	static const char *const names[][2] = {
		{"host", "--host"}, {"transport", "--transport"}, {"user", "--user"},
		{"password_env", "--password-env"}, {"password_file", "--password-file"},
		{"register", "--register"}, {"outbound_proxy", "--outbound-proxy"},
		{"from_user", "--from-user"}, {"from_domain", "--from-domain"},
		{"caller_id_header", "--caller-id-header"}, {"inbound_cidrs", "--inbound-cidr"},
		{"srtp", "--srtp"}, {"headers", "--header"}};
	/* clang-format on */
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(names[i][0], field))
			return names[i][1];
	return field;
}

struct create_args {
	const char *tenant, *host, *transport, *user, *pw_env, *pw_file, *reg, *proxy, *from_user,
		*from_domain, *caller_id, *cidrs, *srtp;
	const char *headers[SIP_TRUNK_HEADERS_MAX + 1]; /* OPT_MULTI, ends with args_end */
};

static int trunk_create(int argc, char **argv)
{
	struct create_args a = {.headers = {[SIP_TRUNK_HEADERS_MAX] = args_end}};
	const char *db = CLI_DEFAULT_DB;
	const char *pos[1];
	int n_pos;
	struct opt opts[] = {{"tenant", &a.tenant, OPT_REQUIRED},
			     {"host", &a.host, OPT_REQUIRED},
			     {"transport", &a.transport, OPT_OPTIONAL},
			     {"user", &a.user, OPT_OPTIONAL},
			     {"password-env", &a.pw_env, OPT_OPTIONAL},
			     {"password-file", &a.pw_file, OPT_OPTIONAL},
			     {"register", &a.reg, OPT_FLAG},
			     {"outbound-proxy", &a.proxy, OPT_OPTIONAL},
			     {"from-user", &a.from_user, OPT_OPTIONAL},
			     {"from-domain", &a.from_domain, OPT_OPTIONAL},
			     {"caller-id-header", &a.caller_id, OPT_OPTIONAL},
			     {"inbound-cidr", &a.cidrs, OPT_OPTIONAL},
			     {"srtp", &a.srtp, OPT_OPTIONAL},
			     {"header", a.headers, OPT_MULTI},
			     {"db", &db, OPT_OPTIONAL},
			     {0}};
	enum args_result ar = args_parse(argc, argv, opts, pos, 0, &n_pos, trunk_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	char pw_file[TRUNK_PATH_MAX + 1];
	if (a.pw_file && absolute_path(a.pw_file, pw_file, sizeof pw_file))
		return 2;
	size_t n_headers = 0;
	while (a.headers[n_headers] && a.headers[n_headers] != args_end)
		n_headers++;
	struct admin_trunk_req req = {.tenant_id = a.tenant,
				      .host = a.host,
				      .transport = a.transport,
				      .user = a.user,
				      .password_env = a.pw_env,
				      .password_file = a.pw_file ? pw_file : NULL,
				      .do_register = a.reg != NULL,
				      .outbound_proxy = a.proxy,
				      .from_user = a.from_user,
				      .from_domain = a.from_domain,
				      .caller_id_header = a.caller_id,
				      .inbound_cidrs = a.cidrs,
				      .srtp = a.srtp,
				      .headers = a.headers,
				      .n_headers = n_headers};
	struct trunk t = {0};
	char why[1024];
	if (!admin_trunk_check(&req, option_of, &t, why, sizeof why)) {
		fprintf(stderr, "error: %s\n%s", why, trunk_usage);
		return 2;
	}
	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	struct cp_error err = {0};
	enum cp_err r = admin_trunk_create(st, &req, &t, &err);
	if (r == CP_OK)
		rc = cli_print(json_pack("{s:s}", "id", t.id));
	else if (r == CP_ERR_NOT_FOUND)
		fprintf(stderr, "error: no such tenant: %s\n", a.tenant);
	else
		fprintf(stderr, "error: %s\n", err.message);
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
	if (!del && strcmp(sub, "list"))
		return args_unknown_command("trunk", sub, trunk_usage);
	struct opt opts[] = {{"tenant", &tenant, OPT_OPTIONAL}, {"db", &db, OPT_OPTIONAL}, {0}};
	enum args_result ar =
		args_parse(argc - 1, argv + 1, opts, pos, del ? 1 : 0, &n_pos, trunk_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	if (del && n_pos != 1)
		return usage_error("trunk delete needs the trunk id%s", "");
	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	struct cp_error err = {0};
	if (del) {
		enum cp_err r = admin_trunk_delete(st, tenant, pos[0], &err);
		if (r == CP_OK)
			rc = cli_print(json_pack("{s:s, s:b}", "id", pos[0], "deleted", 1));
		else if (r == CP_ERR_CONFLICT)
			fprintf(stderr,
				"error: trunk %s is used by agents: move them first (agent"
				" update ID --trunk OTHER or --no-trunk)\n",
				pos[0]);
		else if (r == CP_ERR_NOT_FOUND)
			fprintf(stderr, "error: no such trunk: %s\n", pos[0]);
		else
			fprintf(stderr, "error: %s\n", err.message);
	} else {
		struct trunk *list = NULL;
		size_t n = 0;
		if (admin_trunk_list(st, tenant, &list, &n, &err) == CP_OK)
			rc = cli_print(json_pack("{s:o}", "data", trunks_to_json(list, n)));
		else
			fprintf(stderr, "error: %s\n", err.message);
		free(list);
	}
	store_close(st);
	return rc;
}
