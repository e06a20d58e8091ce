/*
 * webhook.c - `callplane webhook ...`: register, list, delete webhooks; list and replay
 * deliveries. The same rules as /v1/webhooks (webhook/registry.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "cli.h"
#include "args.h"
#include "render/rows.h"
#include "store/store.h"
#include "webhook/webhook_registry.h"

static const char webhook_usage[] =
	"usage: callplane webhook create --tenant ID --url URL [--agent ID] [--secret S]\n"
	"                               [--format canonical|talkover|pilotstatus]\n"
	"                               [--signing callplane|standard] [--db PATH]\n"
	"                               [--webhooks-per-tenant N] [--webhook-allow-private]\n"
	"       callplane webhook list [--tenant ID] [--db PATH]\n"
	"       callplane webhook delete ID [--db PATH]\n"
	"       callplane webhook deliveries [--tenant ID] [--status pending|failed|delivered]\n"
	"                                    [--limit N] [--db PATH]\n"
	"       callplane webhook replay (ID | --all-failed) [--tenant ID] [--db PATH]\n"
	"A secret is generated when --secret is not given; it signs every delivery\n"
	"(Callplane-Signature: t=UNIX,v1=HEX(HMAC-SHA256(secret, t + \".\" + body))), or with\n"
	"--signing standard as Standard Webhooks do (webhook-id, webhook-timestamp,\n"
	"webhook-signature; a secret whsec_ + base64 of 24..64 bytes).\n"
	"A tenant holds at most --webhooks-per-tenant webhooks (default 20, as serve's).\n"
	"The URL's host must resolve to public addresses only, unless --webhook-allow-private\n"
	"(as serve's: the server refuses to deliver to private addresses without it).\n";

int cli_webhook(int argc, char **argv)
{
	const char *tenant = NULL, *url = NULL, *agent = NULL, *secret = NULL, *format = NULL,
		   *status = NULL, *limit = NULL, *all = NULL, *cap = NULL, *db = CLI_DEFAULT_DB,
		   *allow_private = NULL, *signing = NULL;
	const char *pos[1] = {NULL};
	int n_pos = 0;
	if (argc < 1) {
		fprintf(stderr, "%s", webhook_usage);
		return 2;
	}
	const char *sub = argv[0];
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		printf("%s", webhook_usage);
		return 0;
	}
	struct opt create_opts[] = {{"tenant", &tenant, OPT_REQUIRED},
				    {"url", &url, OPT_REQUIRED},
				    {"agent", &agent, OPT_OPTIONAL},
				    {"secret", &secret, OPT_OPTIONAL},
				    {"format", &format, OPT_OPTIONAL},
				    {"signing", &signing, OPT_OPTIONAL},
				    {"db", &db, OPT_OPTIONAL},
				    {"webhooks-per-tenant", &cap, OPT_OPTIONAL},
				    {"webhook-allow-private", &allow_private, OPT_FLAG},
				    {0}};
	struct opt list_opts[] = {
		{"tenant", &tenant, OPT_OPTIONAL}, {"db", &db, OPT_OPTIONAL}, {0}};
	struct opt delete_opts[] = {{"db", &db, OPT_OPTIONAL}, {0}};
	struct opt deliveries_opts[] = {{"tenant", &tenant, OPT_OPTIONAL},
					{"status", &status, OPT_OPTIONAL},
					{"limit", &limit, OPT_OPTIONAL},
					{"db", &db, OPT_OPTIONAL},
					{0}};
	struct opt replay_opts[] = {{"tenant", &tenant, OPT_OPTIONAL},
				    {"db", &db, OPT_OPTIONAL},
				    {"all-failed", &all, OPT_FLAG},
				    {0}};
	struct opt *opts;
	int max_pos = 0;
	bool is_replay = false;
	if (!strcmp(sub, "create"))
		opts = create_opts;
	else if (!strcmp(sub, "list"))
		opts = list_opts;
	else if (!strcmp(sub, "delete"))
		opts = delete_opts, max_pos = 1;
	else if (!strcmp(sub, "deliveries"))
		opts = deliveries_opts;
	else if (!strcmp(sub, "replay"))
		opts = replay_opts, max_pos = 1, is_replay = true;
	else
		return args_unknown_command("webhook", sub, webhook_usage);
	enum args_result ar =
		args_parse(argc - 1, argv + 1, opts, pos, max_pos, &n_pos, webhook_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	if ((opts == delete_opts && n_pos != 1) || (is_replay && (n_pos == 1) == (all != NULL))) {
		fprintf(stderr, "error: give %s\n%s",
			is_replay ? "a delivery id or --all-failed" : "the webhook id",
			webhook_usage);
		return 2;
	}
	if (status && !webhook_delivery_status_valid(status)) {
		fprintf(stderr, "error: --status must be pending, failed or delivered\n");
		return 2;
	}
	long long n = 100, id = 0, per_tenant = WEBHOOKS_PER_TENANT_DEFAULT;
	if (cap && !cp_parse_int(cap, 1, WEBHOOKS_PER_TENANT_MAX, &per_tenant)) {
		fprintf(stderr, "error: --webhooks-per-tenant must be 1..%d\n",
			WEBHOOKS_PER_TENANT_MAX);
		return 2;
	}
	if (limit && !cp_parse_int(limit, 1, 100000, &n)) {
		fprintf(stderr, "error: --limit must be 1..100000\n");
		return 2;
	}
	if (is_replay && n_pos == 1 && !cp_parse_int(pos[0], 1, INT64_MAX, &id)) {
		fprintf(stderr, "error: a delivery id is a positive integer\n");
		return 2;
	}

	struct store *st = cli_open_store(db, NULL);
	if (!st)
		return 1;
	int rc = 1;
	if (opts == create_opts) {
		struct webhook_request req = {.url = url,
					      .agent_id = agent,
					      .secret = secret,
					      .format = format,
					      .signing = signing};
		struct webhook w;
		struct cp_error err = {0};
		enum cp_err ce = webhook_register(st, tenant, &req, (int)per_tenant,
						  allow_private != NULL, &w, &err);
		if (ce == CP_OK) {
			rc = cli_print(json_pack("{s:s, s:s}", "id", w.id, "secret", w.secret));
		} else {
			fprintf(stderr, "error: %s\n", err.message);
			rc = ce == CP_ERR_INVALID ? 2 : 1; /* a malformed value: a usage error */
		}
	} else if (opts == list_opts) {
		struct webhook *hooks = NULL;
		size_t count = 0;
		struct cp_error err = {0};
		if (webhook_registry_list(st, tenant, &hooks, &count, &err) == CP_OK)
			rc = cli_print(json_pack("{s:o}", "data", webhooks_to_json(hooks, count)));
		else
			fprintf(stderr, "error: %s\n", err.message);
		free(hooks);
	} else if (opts == deliveries_opts) {
		struct delivery_row *rows = NULL;
		size_t count = 0;
		struct cp_error err = {0};
		if (webhook_delivery_list(st, tenant, status, (int)n, &rows, &count, &err) == CP_OK)
			rc = cli_print(json_pack("{s:o}", "data", deliveries_to_json(rows, count)));
		else
			fprintf(stderr, "error: %s\n", err.message);
		delivery_rows_free(rows, count);
	} else if (opts == delete_opts) {
		struct cp_error err = {0};
		enum cp_err e = webhook_unregister(st, NULL, pos[0], &err);
		if (e == CP_OK)
			rc = cli_print(json_pack("{s:s, s:b}", "id", pos[0], "deleted", 1));
		else if (e == CP_ERR_NOT_FOUND)
			fprintf(stderr, "error: no such webhook: %s\n", pos[0]);
		else
			fprintf(stderr, "error: %s\n", err.message);
	} else {
		int count = 0;
		struct cp_error err = {0};
		enum cp_err e = webhook_delivery_replay(st, tenant, id, &count, &err);
		if (e == CP_OK)
			rc = cli_print(json_pack("{s:i}", "replayed", count));
		else if (e == CP_ERR_NOT_FOUND)
			fprintf(stderr, "error: no failed delivery %lld\n", id);
		else
			fprintf(stderr, "error: %s\n", err.message);
	}
	store_close(st);
	return rc;
}
