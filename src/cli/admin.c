/*
 * admin.c - tenant, agent and key commands.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>

#include "cli.h"
#include "args.h"
#include "auth/auth.h"
#include "model/call.h"
#include "admin/admin.h"
#include "core/util.h"
#include "render/rows.h"
#include "store/store.h"

static int mkdir_parents(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", path);
	char *slash = strrchr(buf, '/');
	if (!slash || slash == buf)
		return 0;
	*slash = '\0';
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) && errno != EEXIST)
				return -1;
			*p = '/';
		}
	}
	return mkdir(buf, 0755) && errno != EEXIST ? -1 : 0;
}

struct store *cli_open_store(const char *path, const struct store_options *opt)
{
	static const struct store_options admin = {.sync_full = true};
	struct stat sb;
	if (!opt && stat(path, &sb) && errno == ENOENT) {
		/* a mistyped --db would otherwise be a new, empty database that looks valid */
		fprintf(stderr,
			"error: no database at %s (`callplane init --db %s` creates one, "
			"as `callplane serve` does)\n",
			path, path);
		return NULL;
	}
	if (mkdir_parents(path)) {
		fprintf(stderr, "error: cannot create the directory of %s: %s\n", path,
			strerror(errno));
		return NULL;
	}
	struct store *st = store_open(path, opt ? opt : &admin);
	if (!st)
		fprintf(stderr, "error: cannot open database %s\n", path);
	return st;
}

int cli_print(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(v);
	if (!s)
		return 1;
	printf("%s\n", s);
	free(s);
	return 0;
}

static int fail(const char *msg, const char *arg)
{
	fprintf(stderr, "error: %s%s\n", msg, arg ? arg : "");
	return 1;
}

/* A malformed option value is a usage error (exit 2, docs/API.md), as args_parse() makes a
 * missing one; fail() is for what the database says (no such tenant, a number taken). */
static int bad_value(const char *msg, const char *arg)
{
	fail(msg, arg);
	return 2;
}

static int usage(const char *u)
{
	fprintf(stderr, "%s", u);
	return 2;
}

/* ---- tenant ----------------------------------------------------------------------------- */

static const char tenant_usage[] =
	"usage: callplane tenant create --name NAME [--sip-uris none|any|HOST[,HOST...]]\n"
	"                              [--allow-prefixes +P[,+P...]] [--deny-prefixes +P[,+P...]]\n"
	"                              [--db PATH]\n"
	"       callplane tenant update ID [--sip-uris none|any|HOST[,HOST...]]\n"
	"                              [--allow-prefixes +P[,+P...] | --no-allow-prefixes]\n"
	"                              [--deny-prefixes +P[,+P...] | --no-deny-prefixes] [--db "
	"PATH]\n"
	"       callplane tenant list [--db PATH]\n"
	"What the tenant's keys may dial: raw sip: URIs (--sip-uris, default none: to no host;\n"
	"any: to every host; or to these hosts only), and E.164 numbers (all, unless\n"
	"--allow-prefixes names the only prefixes allowed; never one of --deny-prefixes).\n";

/* A value the shared rules (admin/admin.h) refuse: a usage error (exit 2) naming the option
 * the field is given by, and showing value when it is not NULL. */
static int refused(const struct admin_bad *b, const char *value)
{
	char opt[64];
	size_t i = 0;
	for (; b->field[i] && i + 1 < sizeof opt; i++)
		opt[i] = b->field[i] == '_' ? '-' : b->field[i];
	opt[i] = '\0';
	fprintf(stderr, "error: --%s %s%s%s\n", opt, b->rule, value ? ": " : "",
		value ? value : "");
	return 2;
}

/* The value of field among pairs {field, value, ..., NULL}: what refused() shows. */
static const char *value_of(const char *field, const char *const *pairs)
{
	for (; pairs[0]; pairs += 2)
		if (!strcmp(pairs[0], field))
			return pairs[1] ? pairs[1] : "";
	return NULL;
}

int cli_tenant(int argc, char **argv)
{
	const char *name = NULL, *db = CLI_DEFAULT_DB, *sip = NULL, *allow = NULL, *deny = NULL,
		   *no_allow = NULL, *no_deny = NULL;
	const char *pos[1] = {NULL};
	int n_pos;
	if (argc < 1)
		return usage(tenant_usage);
	if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
		printf("%s", tenant_usage);
		return 0;
	}
	bool create = !strcmp(argv[0], "create"), update = !strcmp(argv[0], "update");
	if (!create && !update && strcmp(argv[0], "list"))
		return args_unknown_command("tenant", argv[0], tenant_usage);
	struct opt create_opts[] = {{"name", &name, OPT_REQUIRED},
				    {"sip-uris", &sip, OPT_OPTIONAL},
				    {"allow-prefixes", &allow, OPT_OPTIONAL},
				    {"deny-prefixes", &deny, OPT_OPTIONAL},
				    {"db", &db, OPT_OPTIONAL},
				    {0}};
	struct opt update_opts[] = {{"sip-uris", &sip, OPT_OPTIONAL},
				    {"allow-prefixes", &allow, OPT_OPTIONAL},
				    {"no-allow-prefixes", &no_allow, OPT_FLAG},
				    {"deny-prefixes", &deny, OPT_OPTIONAL},
				    {"no-deny-prefixes", &no_deny, OPT_FLAG},
				    {"db", &db, OPT_OPTIONAL},
				    {0}};
	struct opt list_opts[] = {{"db", &db, OPT_OPTIONAL}, {0}};
	enum args_result ar = args_parse(argc - 1, argv + 1,
					 create   ? create_opts
					 : update ? update_opts
						  : list_opts,
					 pos, update, &n_pos, tenant_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	if (update && (n_pos != 1 || (allow && no_allow) || (deny && no_deny) ||
		       !(sip || allow || deny || no_allow || no_deny))) {
		fprintf(stderr,
			"error: tenant update needs the tenant id and at least one change "
			"(each at most once)\n%s",
			tenant_usage);
		return 2;
	}
	struct admin_tenant_req req = {.name = name,
				       .sip_uris = sip,
				       .allow_prefixes = no_allow ? admin_clear : allow,
				       .deny_prefixes = no_deny ? admin_clear : deny};
	struct admin_bad bad;
	if (!admin_tenant_check(&req, create, &bad))
		return refused(&bad,
			       value_of(bad.field,
					(const char *const[]){"sip_uris", sip, "allow_prefixes",
							      allow, "deny_prefixes", deny, NULL}));
	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	struct cp_error err = {0};
	struct tenant t;
	if (create) {
		if (admin_tenant_create(st, &req, &t, &err) == CP_OK)
			rc = cli_print(json_pack("{s:s}", "id", t.id));
		else
			fail("could not create the tenant", NULL);
	} else if (update) {
		enum cp_err r = admin_tenant_update(st, pos[0], &req, &t, &err);
		if (r == CP_OK)
			rc = cli_print(json_pack("{s:s}", "id", pos[0]));
		else
			fail(r == CP_ERR_NOT_FOUND ? "no such tenant: " : "could not update ",
			     pos[0]);
	} else {
		struct tenant *list = NULL;
		size_t n = 0;
		if (admin_tenant_list(st, &list, &n, &err) == CP_OK)
			rc = cli_print(json_pack("{s:o}", "data", tenants_to_json(list, n)));
		else
			fail("could not list tenants", NULL);
		free(list);
	}
	store_close(st);
	return rc;
}

/* ---- init ------------------------------------------------------------------------------- */

static const char init_usage[] =
	"usage: callplane init [--db PATH]\n"
	"Creates the database (and its directory) or brings an existing one\n"
	"to the current schema. Prints {\"db\": PATH, \"created\": true|false}.\n";

int cli_init(int argc, char **argv)
{
	const char *db = NULL;
	struct opt opts[] = {{"db", &db, OPT_OPTIONAL}, {0}};
	const char *pos[1];
	int n_pos;
	enum args_result ar = args_parse(argc, argv, opts, pos, 0, &n_pos, init_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	if (!db)
		db = CLI_DEFAULT_DB;
	struct stat sb;
	bool created = stat(db, &sb) != 0 && errno == ENOENT;
	static const struct store_options init = {.sync_full = true};
	struct store *st = cli_open_store(db, &init);
	if (!st)
		return 1;
	store_close(st);
	return cli_print(json_pack("{s:s, s:b}", "db", db, "created", created));
}

/* ---- agent ------------------------------------------------------------------------------ */

static const char agent_usage[] =
	"usage: callplane agent create --tenant ID --name NAME [--number E164]\n"
	"                              [--max-duration SECONDS] [--stream-url URL] [--record]\n"
	"                              [--goodbye-text TEXT] [--max-duration-goodbye TEXT]\n"
	"                              [--trunk ID] [--db PATH]\n"
	"       callplane agent list [--tenant ID] [--db PATH]\n"
	"       callplane agent update ID [--stream-url URL | --no-stream-url]\n"
	"                                 [--record | --no-record]\n"
	"                                 [--goodbye-text TEXT | --no-goodbye-text]\n"
	"                                 [--max-duration-goodbye TEXT | "
	"--no-max-duration-goodbye]\n"
	"                                 [--trunk ID | --no-trunk] [--db PATH]\n"
	"--stream-url is the agent's audio WebSocket (ws:// or wss://, at most 1024 bytes):\n"
	"its calls stream their audio there unless POST /v1/calls names another.\n"
	"--record records the agent's calls (a stereo WAV each) unless POST /v1/calls says\n"
	"\"record\": false. update changes what it is given, for calls created afterwards.\n"
	"--goodbye-text is what callplane says before the BYE when a vendor dialect's end route\n"
	"ends one of its calls; --max-duration-goodbye what it says when max duration ends one\n"
	"(each 1..1000 characters of UTF-8).\n"
	"--trunk is one of the tenant's trunks (callplane trunk): the agent's calls to numbers\n"
	"go through it; without one they go to serve's --trunk.\n";

/* The update's value of a text option: its text, admin_clear when its --no- flag clears it,
 * NULL when neither is given; -1 when both are. */
static int update_value(const char *set, const char *clear, const char **out)
{
	if (set && clear)
		return -1;
	*out = clear ? admin_clear : set;
	return 0;
}

/* An agent field the shared rules refuse, told with the option's value where one helps. */
static int agent_refused(const struct admin_bad *bad, const struct admin_agent_req *req)
{
	int rc = refused(bad,
			 value_of(bad->field, (const char *const[]){"stream_url", req->stream_url,
								    "number", req->number, NULL}));
	fprintf(stderr, "%s", agent_usage);
	return rc;
}

/* Prints {"id", then each member it changed: "stream_url", "goodbye_text",
 * "max_duration_goodbye" (the text, or null when cleared), "record", "trunk_id"}. */
static int agent_update(int argc, char **argv)
{
	const char *url = NULL, *clear = NULL, *rec = NULL, *no_rec = NULL, *bye = NULL,
		   *no_bye = NULL, *max_bye = NULL, *no_max_bye = NULL, *trunk = NULL,
		   *no_trunk = NULL, *db = CLI_DEFAULT_DB;
	const char *pos[1] = {NULL};
	int n_pos;
	struct opt opts[] = {{"stream-url", &url, OPT_OPTIONAL},
			     {"no-stream-url", &clear, OPT_FLAG},
			     {"record", &rec, OPT_FLAG},
			     {"no-record", &no_rec, OPT_FLAG},
			     {"goodbye-text", &bye, OPT_OPTIONAL},
			     {"no-goodbye-text", &no_bye, OPT_FLAG},
			     {"max-duration-goodbye", &max_bye, OPT_OPTIONAL},
			     {"no-max-duration-goodbye", &no_max_bye, OPT_FLAG},
			     {"trunk", &trunk, OPT_OPTIONAL},
			     {"no-trunk", &no_trunk, OPT_FLAG},
			     {"db", &db, OPT_OPTIONAL},
			     {0}};
	enum args_result ar = args_parse(argc, argv, opts, pos, 1, &n_pos, agent_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	struct admin_agent_req req = {.record = rec ? 1 : no_rec ? 0 : -1};
	if (n_pos != 1 || update_value(url, clear, &req.stream_url) || (rec && no_rec) ||
	    update_value(bye, no_bye, &req.goodbye_text) ||
	    update_value(max_bye, no_max_bye, &req.max_duration_goodbye) ||
	    update_value(trunk, no_trunk, &req.trunk_id) ||
	    (!req.stream_url && req.record < 0 && !req.goodbye_text && !req.max_duration_goodbye &&
	     !req.trunk_id)) {
		fprintf(stderr,
			"error: agent update needs the agent id and at least one change, each"
			" option at most once: --stream-url URL or --no-stream-url, --record or"
			" --no-record, --goodbye-text TEXT or --no-goodbye-text,"
			" --max-duration-goodbye TEXT or --no-max-duration-goodbye, --trunk ID or"
			" --no-trunk\n%s",
			agent_usage);
		return 2;
	}
	struct admin_bad bad;
	if (!admin_agent_check(&req, false, &bad))
		return agent_refused(&bad, &req);
	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	struct cp_error err = {0};
	struct agent a;
	enum cp_err r = admin_agent_update(st, NULL, pos[0], &req, &a, &err);
	if (r == CP_OK) {
		/* the members changed, as the agent now has them */
		static const char *const members[] = {"stream_url", "goodbye_text",
						      "max_duration_goodbye", "record", "trunk_id"};
		const bool changed[] = {req.stream_url, req.goodbye_text, req.max_duration_goodbye,
					req.record >= 0, req.trunk_id};
		json_t *now = agent_to_json(&a), *out = json_pack("{s:s}", "id", pos[0]);
		for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
			if (changed[i])
				json_object_set(out, members[i], json_object_get(now, members[i]));
		json_decref(now);
		rc = cli_print(out);
	} else if (r == CP_ERR_NOT_FOUND) {
		fail("no such agent: ", pos[0]);
	} else if (r == CP_ERR_INVALID) {
		fail("no such trunk in the agent's tenant: ", req.trunk_id);
	} else {
		fail("could not update the agent ", pos[0]);
	}
	store_close(st);
	return rc;
}

int cli_agent(int argc, char **argv)
{
	const char *tenant = NULL, *name = NULL, *number = NULL, *maxd = NULL, *url = NULL,
		   *rec = NULL, *bye = NULL, *max_bye = NULL, *trunk = NULL, *db = CLI_DEFAULT_DB;
	const char *pos[1];
	int n_pos;
	if (argc < 1)
		return usage(agent_usage);
	if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
		printf("%s", agent_usage);
		return 0;
	}
	if (!strcmp(argv[0], "update"))
		return agent_update(argc - 1, argv + 1);
	bool create = !strcmp(argv[0], "create");
	if (!create && strcmp(argv[0], "list"))
		return args_unknown_command("agent", argv[0], agent_usage);
	struct opt create_opts[] = {{"tenant", &tenant, OPT_REQUIRED},
				    {"name", &name, OPT_REQUIRED},
				    {"number", &number, OPT_OPTIONAL},
				    {"max-duration", &maxd, OPT_OPTIONAL},
				    {"stream-url", &url, OPT_OPTIONAL},
				    {"record", &rec, OPT_FLAG},
				    {"goodbye-text", &bye, OPT_OPTIONAL},
				    {"max-duration-goodbye", &max_bye, OPT_OPTIONAL},
				    {"trunk", &trunk, OPT_OPTIONAL},
				    {"db", &db, OPT_OPTIONAL},
				    {0}};
	struct opt list_opts[] = {
		{"tenant", &tenant, OPT_OPTIONAL}, {"db", &db, OPT_OPTIONAL}, {0}};
	enum args_result ar = args_parse(argc - 1, argv + 1, create ? create_opts : list_opts, pos,
					 0, &n_pos, agent_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;

	long long v = 0;
	struct admin_agent_req req = {.tenant_id = tenant,
				      .name = name,
				      .number = number,
				      .stream_url = url,
				      .record = rec != NULL,
				      .goodbye_text = bye,
				      .max_duration_goodbye = max_bye,
				      .trunk_id = trunk};
	struct admin_bad bad;
	if (create) {
		if (maxd && !cp_parse_int(maxd, 1, ADMIN_MAX_DURATION_MAX, &v))
			return bad_value("--max-duration must be an integer in 1..86400: ", maxd);
		req.max_duration_s = (int)v;
		if (!admin_agent_check(&req, true, &bad))
			return agent_refused(&bad, &req);
	}
	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	struct cp_error err = {0};
	if (create) {
		struct agent a;
		enum cp_err r = admin_agent_create(st, &req, &a, &err);
		if (r == CP_OK)
			rc = cli_print(json_pack("{s:s}", "id", a.id));
		else if (r == CP_ERR_NOT_FOUND)
			fail("no such tenant: ", tenant);
		else if (r == CP_ERR_INVALID)
			fail("no such trunk in the tenant: ", trunk);
		else
			fail(r == CP_ERR_CONFLICT ? "another agent already has the number "
						  : "could not create the agent",
			     r == CP_ERR_CONFLICT ? number : NULL);
	} else {
		struct agent *list = NULL;
		size_t n = 0;
		if (admin_agent_list(st, tenant, NULL, &list, &n, &err) == CP_OK)
			rc = cli_print(json_pack("{s:o}", "data", agents_to_json(list, n)));
		else
			fail("could not list agents", NULL);
		free(list);
	}
	store_close(st);
	return rc;
}

/* ---- key -------------------------------------------------------------------------------- */

static const char key_usage[] =
	"usage: callplane key create --tenant ID [--number E164] [--rate-limit PER_SECOND]\n"
	"                           [--sip-uris none|any|HOST[,HOST...]] [--db PATH]\n"
	"       callplane key create --operator [--rate-limit PER_SECOND] [--db PATH]\n"
	"       callplane key list [--tenant ID] [--db PATH]\n"
	"       callplane key revoke ID [--db PATH]\n"
	"A key created with --number is number-scoped: it sees only calls of the agents with\n"
	"that number. --rate-limit sets the key's requests per second (burst the same);\n"
	"without it the server's --rate-limit applies. --sip-uris narrows what raw sip: URIs\n"
	"the key may dial below its tenant's (tenant create --sip-uris); it never widens it.\n"
	"The secret is printed once and stored only as a hash. An --operator key is bound to\n"
	"no tenant: it sees and ends every tenant's calls (docs/API.md, \"Operator keys\").\n";

int cli_key(int argc, char **argv)
{
	const char *tenant = NULL, *number = NULL, *rate = NULL, *op = NULL, *sip = NULL;
	const char *db = CLI_DEFAULT_DB;
	const char *pos[1] = {NULL};
	int n_pos;
	if (argc < 1)
		return usage(key_usage);
	if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
		printf("%s", key_usage);
		return 0;
	}
	const char *sub = argv[0];
	struct opt create_opts[] = {{"tenant", &tenant, OPT_OPTIONAL},
				    {"number", &number, OPT_OPTIONAL},
				    {"operator", &op, OPT_FLAG},
				    {"rate-limit", &rate, OPT_OPTIONAL},
				    {"sip-uris", &sip, OPT_OPTIONAL},
				    {"db", &db, OPT_OPTIONAL},
				    {0}};
	struct opt list_opts[] = {
		{"tenant", &tenant, OPT_OPTIONAL}, {"db", &db, OPT_OPTIONAL}, {0}};
	struct opt revoke_opts[] = {{"db", &db, OPT_OPTIONAL}, {0}};
	struct opt *opts;
	int max_pos = 0;
	if (!strcmp(sub, "create"))
		opts = create_opts;
	else if (!strcmp(sub, "list"))
		opts = list_opts;
	else if (!strcmp(sub, "revoke"))
		opts = revoke_opts, max_pos = 1;
	else
		return args_unknown_command("key", sub, key_usage);
	enum args_result ar = args_parse(argc - 1, argv + 1, opts, pos, max_pos, &n_pos, key_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	if (max_pos && n_pos != 1) {
		fprintf(stderr, "error: key revoke needs the key id\n%s", key_usage);
		return 2;
	}
	if (opts == create_opts && !op == !tenant) {
		fprintf(stderr, "error: key create needs --tenant ID or --operator (not both)\n%s",
			key_usage);
		return 2;
	}
	if (op && (number || sip)) {
		fprintf(stderr, "error: an --operator key has no --number or --sip-uris\n%s",
			key_usage);
		return 2;
	}
	long long rate_v = 0;
	struct admin_key_req req = {
		.tenant_id = tenant, .number = number, .sip_uris = sip, .is_operator = op != NULL};
	struct admin_bad bad;
	if (opts == create_opts) {
		if (number && !cp_is_e164(number))
			return bad_value("--number must be an E.164 number (+ and 2..15 digits): ",
					 number);
		if (rate && !cp_parse_int(rate, 1, ADMIN_RATE_LIMIT_MAX, &rate_v))
			return bad_value("--rate-limit must be an integer in 1..1000000: ", rate);
		req.rate_limit = rate_v;
		if (!admin_key_check(&req, &bad))
			return refused(&bad, value_of(bad.field, (const char *const[]){
									 "sip_uris", sip, "number",
									 number, NULL}));
	}

	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	struct cp_error err = {0};
	struct api_key k;
	if (opts == create_opts) {
		char secret[AUTH_SECRET_LEN + 1];
		enum cp_err r = admin_key_create(st, NULL, &req, &k, secret, &err);
		if (r == CP_OK)
			rc = cli_print(json_pack("{s:s, s:s}", "id", k.id, "key", secret));
		else
			fail(r == CP_ERR_NOT_FOUND ? "no such tenant: "
						   : "could not create the key",
			     r == CP_ERR_NOT_FOUND ? tenant : NULL);
	} else if (opts == list_opts) {
		struct api_key *list = NULL;
		size_t n = 0;
		if (admin_key_list(st, tenant, &list, &n, &err) == CP_OK)
			rc = cli_print(json_pack("{s:o}", "data", api_keys_to_json(list, n)));
		else
			fail("could not list keys", NULL);
		free(list);
	} else {
		enum cp_err r = admin_key_revoke(st, NULL, pos[0], NULL, &k, &err);
		if (r == CP_OK)
			rc = cli_print(json_pack("{s:s, s:b}", "id", pos[0], "revoked", 1));
		else
			fail(r == CP_ERR_NOT_FOUND ? "no such key: " : "could not revoke ", pos[0]);
	}
	store_close(st);
	return rc;
}
