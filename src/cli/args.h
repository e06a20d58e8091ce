/*
 * args.h - the tiny option parser every subcommand uses: "--name VALUE", "--name=VALUE",
 * "--help", and positional arguments. Errors are printed to stderr with the command's usage.
 */
#ifndef CP_ARGS_H
#define CP_ARGS_H

#include <stdbool.h>

struct opt {
	const char *name;            /* without the leading "--" */
	const char **value;          /* receives the value (points into argv) */
	bool required;
};

enum args_result { ARGS_OK, ARGS_HELP, ARGS_ERROR };

/* Parses argv (after the command words). Positionals go to pos[0..*n_pos) (at most max_pos). */
enum args_result args_parse(int argc, char **argv, struct opt *opts, const char **pos,
			    int max_pos, int *n_pos, const char *usage);

#endif
