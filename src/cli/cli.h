/*
 * cli.h - the command line: `callplane serve`, `callplane drain` (drain.c) and the admin
 * commands (tenant, agent, key, trunk, webhook).
 * Admin commands open the same database as a running server (SQLite WAL allows it), print JSON
 * on stdout, and report errors on stderr with a non-zero exit (2 = usage, 1 = failure).
 */
#ifndef CP_CLI_H
#define CP_CLI_H

#include <stdbool.h>
#include <jansson.h>

#include "store/store.h"

#define CLI_DEFAULT_DB "./var/callplane.db"

int cli_serve(int argc, char **argv);
int cli_init(int argc, char **argv);
int cli_tenant(int argc, char **argv);
int cli_agent(int argc, char **argv);
int cli_key(int argc, char **argv);
int cli_webhook(int argc, char **argv);
int cli_calls(int argc, char **argv);
int cli_trunk(int argc, char **argv);
int cli_drain(int argc, char **argv);

/* Opens the database at path, or prints an error and returns NULL. opt NULL: an admin
 * command's, which needs the database to exist; otherwise (serve, init) the database and its
 * directory are created when missing. */
struct store *cli_open_store(const char *path, const struct store_options *opt);
/* Prints a JSON value on stdout (and frees it); returns 0. */
int cli_print(json_t *v);

#endif
