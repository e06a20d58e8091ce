/*
 * args.h - the option parser every subcommand uses, on getopt_long: "--name VALUE",
 * "--name=VALUE", flags ("--name", no value), "--help"/"-h", "--" and positional arguments.
 * An abbreviated, repeated (but for OPT_MULTI) or value-less option is an error. Errors are
 * printed to stderr with the command's usage.
 */
#ifndef CP_ARGS_H
#define CP_ARGS_H

#include <stdbool.h>

enum opt_kind {
	OPT_OPTIONAL, /* --name VALUE, may be left out */
	OPT_REQUIRED, /* --name VALUE, must be given */
	OPT_FLAG,     /* --name alone: *value becomes "1" when given */
	OPT_MULTI,    /* --name VALUE, repeated: value is an array (below) */
};

/* The end of an OPT_MULTI option's array: the array's last slot holds it, the others start
 * NULL and take the values in the order given; one more than fit is an error. */
extern const char args_end[];

struct opt {
	const char *name;   /* without the leading "--" */
	const char **value; /* receives the value (points into argv) */
	enum opt_kind kind;
};

enum args_result { ARGS_OK, ARGS_HELP, ARGS_ERROR };

/* Parses argv (after the command words; reordered in place as getopt_long does). Positionals
 * go to pos[0..*n_pos) (at most max_pos). Values point into argv. */
enum args_result args_parse(int argc, char **argv, struct opt *opts, const char **pos, int max_pos,
			    int *n_pos, const char *usage);

/* A command group's answer to a word it has no subcommand for: "error: unknown GROUP command
 * 'WORD'" and the usage on stderr; to an option where the subcommand belongs, the usage alone
 * (no subcommand was given). Returns 2 (a usage error). */
int args_unknown_command(const char *group, const char *word, const char *usage);

#endif
