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
#include "call/call.h"
#include "call/dial.h"
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
		fprintf(stderr, "error: no database at %s (`callplane init --db %s` creates one, "
			"as `callplane serve` does)\n", path, path);
		return NULL;
	}
	if (mkdir_parents(path)) {
		fprintf(stderr, "error: cannot create the directory of %s: %s\n", path, strerror(errno));
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

int cli_store_error(enum store_result r, const char *what)
{
	struct cp_error e;
	store_fail(&e, r, "%s", what);
	fprintf(stderr, "error: %s\n", e.message);
	return 1;
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
	"                              [--deny-prefixes +P[,+P...] | --no-deny-prefixes] [--db PATH]\n"
	"       callplane tenant list [--db PATH]\n"
	"What the tenant's keys may dial: raw sip: URIs (--sip-uris, default none: to no host;\n"
	"any: to every host; or to these hosts only), and E.164 numbers (all, unless\n"
	"--allow-prefixes names the only prefixes allowed; never one of --deny-prefixes).\n";

/* Checks the dial options given (NULL: not given): 0, or a usage error's exit code. */
static int dial_options(const char *sip, const char *allow, const char *deny)
{
	if (sip && !dial_hosts_valid(sip))
		return bad_value("--sip-uris must be none, any or HOST[,HOST...] (at most 255 bytes): ",
				 sip);
	if (allow && (!*allow || !dial_prefixes_valid(allow)))
		return bad_value("--allow-prefixes must be +DIGITS[,+DIGITS...] (at most 255 bytes): ",
				 allow);
	if (deny && (!*deny || !dial_prefixes_valid(deny)))
		return bad_value("--deny-prefixes must be +DIGITS[,+DIGITS...] (at most 255 bytes): ",
				 deny);
	return 0;
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
		return usage(tenant_usage);
	struct opt create_opts[] = {{"name", &name, OPT_REQUIRED}, {"sip-uris", &sip, OPT_OPTIONAL},
				    {"allow-prefixes", &allow, OPT_OPTIONAL},
				    {"deny-prefixes", &deny, OPT_OPTIONAL}, {"db", &db, OPT_OPTIONAL},
				    {0}};
	struct opt update_opts[] = {{"sip-uris", &sip, OPT_OPTIONAL},
				    {"allow-prefixes", &allow, OPT_OPTIONAL},
				    {"no-allow-prefixes", &no_allow, OPT_FLAG},
				    {"deny-prefixes", &deny, OPT_OPTIONAL},
				    {"no-deny-prefixes", &no_deny, OPT_FLAG}, {"db", &db, OPT_OPTIONAL},
				    {0}};
	struct opt list_opts[] = {{"db", &db, OPT_OPTIONAL}, {0}};
	enum args_result ar = args_parse(argc - 1, argv + 1,
					 create ? create_opts : update ? update_opts : list_opts, pos,
					 update, &n_pos, tenant_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	if (create && (!*name || strlen(name) > STORE_NAME_MAX))
		return bad_value("--name must be 1..128 characters", NULL);
	if (update && (n_pos != 1 || (allow && no_allow) || (deny && no_deny) ||
		       !(sip || allow || deny || no_allow || no_deny))) {
		fprintf(stderr, "error: tenant update needs the tenant id and at least one change "
			"(each at most once)\n%s", tenant_usage);
		return 2;
	}
	int bad = dial_options(sip, allow, deny);
	if (bad)
		return bad;
	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	enum store_result r;
	if (create) {
		struct tenant t = {.created_at = cp_now_ms()};
		snprintf(t.name, sizeof t.name, "%s", name);
		snprintf(t.dial.sip_uris, sizeof t.dial.sip_uris, "%s", sip ? sip : "none");
		snprintf(t.dial.allow_prefixes, sizeof t.dial.allow_prefixes, "%s", allow ? allow : "");
		snprintf(t.dial.deny_prefixes, sizeof t.dial.deny_prefixes, "%s", deny ? deny : "");
		if (cp_uuid4(t.id) == 0 && STORE(st, tenant_create, &t) == STORE_OK)
			rc = cli_print(json_pack("{s:s}", "id", t.id));
		else
			fail("could not create the tenant", NULL);
	} else if (update) {
		r = STORE(st, tenant_set_dial, pos[0], sip, no_allow ? "" : allow, no_deny ? "" : deny);
		if (r == STORE_OK)
			rc = cli_print(json_pack("{s:s}", "id", pos[0]));
		else
			fail(r == STORE_NOT_FOUND ? "no such tenant: " : "could not update ", pos[0]);
	} else {
		struct tenant *list = NULL;
		size_t n = 0;
		if (STORE(st, tenant_list, &list, &n) == STORE_OK)
			rc = cli_print(json_pack("{s:o}", "data", tenants_to_json(list, n)));
		else
			fail("could not list tenants", NULL);
		free(list);
	}
	store_close(st);
	return rc;
}

/* ---- init ------------------------------------------------------------------------------- */

static const char init_usage[] = "usage: callplane init [--db PATH]\n"
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
	"                                 [--max-duration-goodbye TEXT | --no-max-duration-goodbye]\n"
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

/* A bad --stream-url is a usage error (exit 2), told the way args_parse() tells one. */
static int stream_url_usage(const char *url)
{
	fprintf(stderr, "error: --stream-url must be an absolute ws:// or wss:// URL with a host,"
		" at most %d bytes, without spaces or control characters: '%s'\n%s",
		CALL_STREAM_URL_MAX, url, agent_usage);
	return 2;
}

/* A goodbye option's text, if given, must be what the API accepts; a bad one is a usage error
 * (exit 2). 0 when every given text is valid. */
static int goodbye_usage(const char *goodbye, const char *max_goodbye)
{
	const char *opt = goodbye && !call_goodbye_text_valid(goodbye) ? "--goodbye-text" :
			  max_goodbye && !call_goodbye_text_valid(max_goodbye) ?
			  "--max-duration-goodbye" : NULL;
	if (!opt)
		return 0;
	fprintf(stderr, "error: %s must be 1..%d characters of UTF-8\n%s", opt,
		CALL_GOODBYE_TEXT_MAX, agent_usage);
	return 2;
}

/* The update's value of a text option: its text, "" when its --no- flag clears it, NULL when
 * neither is given; -1 when both are. */
static int update_value(const char *set, const char *clear, const char **out)
{
	if (set && clear)
		return -1;
	*out = clear ? "" : set;
	return 0;
}

/* Whether agent_id may use trunk_id (one of the agent's tenant's trunks): 0, or 1 when it may
 * not, after saying why. */
static int trunk_check(struct store *st, const char *trunk_id, const char *agent_id)
{
	struct trunk t;
	struct agent a;
	enum store_result r = STORE(st, trunk_get, NULL, trunk_id, &t);
	if (r == STORE_NOT_FOUND)
		return fail("no such trunk: ", trunk_id);
	if (r != STORE_OK)
		return cli_store_error(r, "trunk");
	struct scope sc = {0};
	memcpy(sc.tenant_id, t.tenant_id, sizeof sc.tenant_id);
	r = STORE(st, agent_get, &sc, agent_id, &a);
	if (r == STORE_NOT_FOUND)
		return fail("no such agent in the trunk's tenant: ", agent_id);
	return r == STORE_OK ? 0 : cli_store_error(r, "agent");
}

/* Prints {"id", then each member it changed: "stream_url", "goodbye_text",
 * "max_duration_goodbye" (the text, or null when cleared), "record", "trunk_id"}. A trunk is
 * checked before anything changes. */
static int agent_update(int argc, char **argv)
{
	const char *url = NULL, *clear = NULL, *rec = NULL, *no_rec = NULL, *bye = NULL,
		   *no_bye = NULL, *max_bye = NULL, *no_max_bye = NULL, *trunk = NULL,
		   *no_trunk = NULL, *db = CLI_DEFAULT_DB;
	const char *pos[1] = {NULL};
	int n_pos;
	struct opt opts[] = {{"stream-url", &url, OPT_OPTIONAL}, {"no-stream-url", &clear, OPT_FLAG},
			     {"record", &rec, OPT_FLAG}, {"no-record", &no_rec, OPT_FLAG},
			     {"goodbye-text", &bye, OPT_OPTIONAL},
			     {"no-goodbye-text", &no_bye, OPT_FLAG},
			     {"max-duration-goodbye", &max_bye, OPT_OPTIONAL},
			     {"no-max-duration-goodbye", &no_max_bye, OPT_FLAG},
			     {"trunk", &trunk, OPT_OPTIONAL}, {"no-trunk", &no_trunk, OPT_FLAG},
			     {"db", &db, OPT_OPTIONAL}, {0}};
	enum args_result ar = args_parse(argc, argv, opts, pos, 1, &n_pos, agent_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	const char *new_url, *new_bye, *new_max_bye, *new_trunk;
	bool set_rec = rec || no_rec;
	if (n_pos != 1 || update_value(url, clear, &new_url) || (rec && no_rec) ||
	    update_value(bye, no_bye, &new_bye) || update_value(max_bye, no_max_bye, &new_max_bye) ||
	    update_value(trunk, no_trunk, &new_trunk) ||
	    (!new_url && !set_rec && !new_bye && !new_max_bye && !new_trunk)) {
		fprintf(stderr, "error: agent update needs the agent id and at least one change, each"
			" option at most once: --stream-url URL or --no-stream-url, --record or"
			" --no-record, --goodbye-text TEXT or --no-goodbye-text,"
			" --max-duration-goodbye TEXT or --no-max-duration-goodbye, --trunk ID or"
			" --no-trunk\n%s", agent_usage);
		return 2;
	}
	if (url && !call_stream_url_valid(url))
		return stream_url_usage(url);
	int bad = goodbye_usage(bye, max_bye);
	if (bad)
		return bad;
	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	enum store_result r = STORE_OK;
	if (new_trunk && *new_trunk && trunk_check(st, new_trunk, pos[0]))
		goto out;
	if (new_url)
		r = STORE(st, agent_set_stream_url, pos[0], url);
	if (r == STORE_OK && set_rec)
		r = STORE(st, agent_set_record, pos[0], rec != NULL);
	if (r == STORE_OK && (new_bye || new_max_bye))
		r = STORE(st, agent_set_goodbye, pos[0], new_bye, new_max_bye);
	if (r == STORE_OK && new_trunk)
		r = STORE(st, agent_set_trunk, pos[0], new_trunk);
	if (r == STORE_OK) {
		json_t *out = json_pack("{s:s}", "id", pos[0]);
		if (new_url)
			json_object_set_new(out, "stream_url", url ? json_string(url) : json_null());
		if (new_bye)
			json_object_set_new(out, "goodbye_text", *new_bye ? json_string(new_bye) :
					    json_null());
		if (new_max_bye)
			json_object_set_new(out, "max_duration_goodbye",
					    *new_max_bye ? json_string(new_max_bye) : json_null());
		if (set_rec)
			json_object_set_new(out, "record", json_boolean(rec != NULL));
		if (new_trunk)
			json_object_set_new(out, "trunk_id", *new_trunk ? json_string(new_trunk) :
					    json_null());
		rc = cli_print(out);
	} else {
		fail(r == STORE_NOT_FOUND ? "no such agent: " : "could not update the agent ", pos[0]);
	}
out:
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
		return usage(agent_usage);
	struct opt create_opts[] = {{"tenant", &tenant, OPT_REQUIRED}, {"name", &name, OPT_REQUIRED},
				    {"number", &number, OPT_OPTIONAL}, {"max-duration", &maxd, OPT_OPTIONAL},
				    {"stream-url", &url, OPT_OPTIONAL}, {"record", &rec, OPT_FLAG},
				    {"goodbye-text", &bye, OPT_OPTIONAL},
				    {"max-duration-goodbye", &max_bye, OPT_OPTIONAL},
				    {"trunk", &trunk, OPT_OPTIONAL}, {"db", &db, OPT_OPTIONAL}, {0}};
	struct opt list_opts[] = {{"tenant", &tenant, OPT_OPTIONAL}, {"db", &db, OPT_OPTIONAL}, {0}};
	enum args_result ar = args_parse(argc - 1, argv + 1, create ? create_opts : list_opts, pos,
					 0, &n_pos, agent_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;

	struct agent a = {0};
	long long v = 0;
	if (create) {
		if (url && !call_stream_url_valid(url))
			return stream_url_usage(url);
		int bad = goodbye_usage(bye, max_bye);
		if (bad)
			return bad;
		if (!*name || strlen(name) > STORE_NAME_MAX)
			return bad_value("--name must be 1..128 characters", NULL);
		if (number && !cp_is_e164(number))
			return bad_value("--number must be an E.164 number (+ and 2..15 digits): ", number);
		if (maxd && !cp_parse_int(maxd, 1, 86400, &v))
			return bad_value("--max-duration must be an integer in 1..86400: ", maxd);
	}
	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	if (create) {
		enum store_result r;
		if (cp_uuid4(a.id))
			goto out;
		snprintf(a.tenant_id, sizeof a.tenant_id, "%s", tenant);
		snprintf(a.name, sizeof a.name, "%s", name);
		snprintf(a.number, sizeof a.number, "%s", number ? number : "");
		a.max_duration_s = (int)v;
		snprintf(a.stream_url, sizeof a.stream_url, "%s", url ? url : "");
		a.record = rec != NULL;
		snprintf(a.goodbye_text, sizeof a.goodbye_text, "%s", bye ? bye : "");
		snprintf(a.max_duration_goodbye, sizeof a.max_duration_goodbye, "%s",
			 max_bye ? max_bye : "");
		snprintf(a.trunk_id, sizeof a.trunk_id, "%s", trunk ? trunk : "");
		a.created_at = cp_now_ms();
		struct trunk t;
		if ((r = STORE(st, tenant_exists, tenant)) == STORE_NOT_FOUND)
			fail("no such tenant: ", tenant);
		else if (r != STORE_OK)
			cli_store_error(r, "tenant");
		else if (trunk && (r = STORE(st, trunk_get, tenant, trunk, &t)) == STORE_NOT_FOUND)
			fail("no such trunk in the tenant: ", trunk);
		else if (r != STORE_OK)
			cli_store_error(r, "trunk");
		else if ((r = STORE(st, agent_create, &a)) == STORE_CONFLICT)
			fail("another agent already has the number ", number);
		else if (r != STORE_OK)
			fail("could not create the agent", NULL);
		else
			rc = cli_print(json_pack("{s:s}", "id", a.id));
	} else {
		struct agent *list = NULL;
		size_t n = 0;
		if (STORE(st, agent_list, tenant, &list, &n) == STORE_OK)
			rc = cli_print(json_pack("{s:o}", "data", agents_to_json(list, n)));
		else
			fail("could not list agents", NULL);
		free(list);
	}
out:
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
	struct opt create_opts[] = {{"tenant", &tenant, OPT_OPTIONAL}, {"number", &number, OPT_OPTIONAL},
				    {"operator", &op, OPT_FLAG}, {"rate-limit", &rate, OPT_OPTIONAL},
				    {"sip-uris", &sip, OPT_OPTIONAL},
				    {"db", &db, OPT_OPTIONAL}, {0}};
	struct opt list_opts[] = {{"tenant", &tenant, OPT_OPTIONAL}, {"db", &db, OPT_OPTIONAL}, {0}};
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
		return usage(key_usage);
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
	if (number && !cp_is_e164(number))
		return bad_value("--number must be an E.164 number (+ and 2..15 digits): ", number);
	long long rate_v = 0;
	if (rate && !cp_parse_int(rate, 1, 1000000, &rate_v))
		return bad_value("--rate-limit must be an integer in 1..1000000: ", rate);
	int bad = dial_options(sip, NULL, NULL);
	if (bad)
		return bad;

	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	enum store_result r;
	if (opts == create_opts) {
		struct api_key k;
		char secret[AUTH_SECRET_LEN + 1];
		/* an operator key has no tenant to check */
		if ((r = op ? STORE_OK : STORE(st, tenant_exists, tenant)) == STORE_NOT_FOUND)
			fail("no such tenant: ", tenant);
		else if (r != STORE_OK)
			cli_store_error(r, "tenant");
		else if (auth_key_mint(tenant, number, &k, secret) ||
			 (k.rate_limit = (unsigned)rate_v,
			  snprintf(k.sip_uris, sizeof k.sip_uris, "%s", sip ? sip : ""),
			  STORE(st, key_create, &k)) != STORE_OK)
			fail("could not create the key", NULL);
		else
			rc = cli_print(json_pack("{s:s, s:s}", "id", k.id, "key", secret));
	} else if (opts == list_opts) {
		struct api_key *list = NULL;
		size_t n = 0;
		if (STORE(st, key_list, tenant, &list, &n) == STORE_OK)
			rc = cli_print(json_pack("{s:o}", "data", api_keys_to_json(list, n)));
		else
			fail("could not list keys", NULL);
		free(list);
	} else {
		r = STORE(st, key_revoke, pos[0], cp_now_ms());
		if (r == STORE_OK)
			rc = cli_print(json_pack("{s:s, s:b}", "id", pos[0], "revoked", 1));
		else
			fail(r == STORE_NOT_FOUND ? "no such key: " : "could not revoke ", pos[0]);
	}
	store_close(st);
	return rc;
}
