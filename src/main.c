/*
 * main.c - callplane: a self-hosted call-control server for voice AI agents.
 *
 * Dispatches the first word of the command line to a subcommand (src/cli/). The layers below
 * it, from the outside in: http/ (routes, dialects) -> call/ (call service, state machine) ->
 * store/ (SQLite) and the telephony engine. docs/ARCHITECTURE.md is the map.
 */
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "cli/cli.h"

static const char usage[] =
	"usage: callplane <command> [options]\n"
	"commands:\n"
	"  serve     run the server (HTTP API + SIP engine); creates the database\n"
	"  init      create the database (or bring it to the current schema)\n"
	"  drain     stop a running server gracefully (its pid file)\n"
	"  tenant    create | list tenants\n"
	"  agent     create | list | update agents\n"
	"  key       create | list | revoke API keys\n"
	"  trunk     create | list | delete trunks (carriers)\n"
	"  webhook   create | list | delete webhooks; deliveries | replay\n"
	"  calls     list | get | end | end-all | tail: a running server's calls, over its API\n"
	"Every command takes --help.\n";

int main(int argc, char **argv)
{
	json_object_seed(0); /* seed jansson's hash once, before any thread exists */
	if (argc < 2) {
		fprintf(stderr, "%s", usage);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		printf("%s", usage);
		return 0;
	}
	if (!strcmp(cmd, "serve"))
		return cli_serve(argc - 2, argv + 2);
	if (!strcmp(cmd, "init"))
		return cli_init(argc - 2, argv + 2);
	if (!strcmp(cmd, "drain"))
		return cli_drain(argc - 2, argv + 2);
	if (!strcmp(cmd, "tenant"))
		return cli_tenant(argc - 2, argv + 2);
	if (!strcmp(cmd, "agent"))
		return cli_agent(argc - 2, argv + 2);
	if (!strcmp(cmd, "key"))
		return cli_key(argc - 2, argv + 2);
	if (!strcmp(cmd, "calls"))
		return cli_calls(argc - 2, argv + 2);
	if (!strcmp(cmd, "trunk"))
		return cli_trunk(argc - 2, argv + 2);
	if (!strcmp(cmd, "webhook"))
		return cli_webhook(argc - 2, argv + 2);
	fprintf(stderr, "error: unknown command '%s'\n%s", cmd, usage);
	return 2;
}
