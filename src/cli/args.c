/*
 * args.c - option parsing for the subcommands, on getopt_long(3). See args.h.
 *
 * getopt_long does the scanning (GNU permutation, so options and positionals mix; "--" ends
 * the options; "--name=VALUE" and "--name VALUE"). Three things it allows are refused here,
 * because each hides a mistake in a service file or a script:
 *   - an abbreviation ("--htt" for "--http"): an option is spelled out in full;
 *   - an option given twice: which one wins would be a guess (an OPT_MULTI option is the one
 *     meant to repeat: each value is kept);
 *   - a value that is itself an option ("--db --http x" would take "--http" as the database
 *     path): the option before it has no value.
 * Messages are ours (opterr = 0), one line each, followed by the command's usage.
 */
#include "args.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char args_end[] = "";

static enum args_result usage_error(const char *usage, const char *fmt, const char *what)
{
	fprintf(stderr, "error: ");
	fprintf(stderr, fmt, what);
	fprintf(stderr, "\n%s", usage);
	return ARGS_ERROR;
}

/* The argv element that named the option getopt_long just returned: the one before optind,
 * or the one before that when the value came as the next element. */
static const char *typed_option(char **argv, const char *value)
{
	if (value && value == argv[optind - 1])
		return argv[optind - 2];
	return argv[optind - 1];
}

/* Whether typed ("--name" or "--name=VALUE") spells name out in full. */
static bool spelled_out(const char *typed, const char *name)
{
	size_t len = strlen(name);
	return !strncmp(typed, "--", 2) && !strncmp(typed + 2, name, len) &&
	       (typed[2 + len] == '\0' || typed[2 + len] == '=');
}

enum args_result args_parse(int argc, char **argv, struct opt *opts, const char **pos, int max_pos,
			    int *n_pos, const char *usage)
{
	*n_pos = 0;
	size_t n = 0;
	while (opts && opts[n].name)
		n++;
	/* getopt_long wants argv[0] to be the program; ours starts at the first argument */
	char **args = calloc((size_t)argc + 2, sizeof *args);
	struct option *lo = calloc(n + 2, sizeof *lo);
	bool *seen = calloc(n + 1, sizeof *seen);
	enum args_result r = ARGS_ERROR;
	if (!args || !lo || !seen) {
		fprintf(stderr, "error: out of memory\n");
		goto out;
	}
	args[0] = "callplane";
	memcpy(args + 1, argv, (size_t)argc * sizeof *args);
	for (size_t i = 0; i < n; i++)
		lo[i] = (struct option){opts[i].name,
					opts[i].kind == OPT_FLAG ? no_argument : required_argument,
					NULL, (int)(256 + i)};
	lo[n] = (struct option){"help", no_argument, NULL, 'h'};

	optind = 0; /* 0, not 1: glibc starts a fresh scan */
	opterr = 0;
	for (;;) {
		int li = -1;
		int c = getopt_long(argc + 1, args, ":h", lo, &li);
		if (c == -1)
			break;
		if (c == 'h') {
			printf("%s", usage);
			r = ARGS_HELP;
			goto out;
		}
		if (c == '?') {
			/* optopt is the option's val when a flag was given "=VALUE", else 0 or the
			 * unknown short option; the element is the one before optind */
			r = usage_error(usage,
					optopt >= 256 ? "option '%s' takes no value"
						      : "unknown option '%s'",
					args[optind - 1]);
			goto out;
		}
		if (c == ':') {
			r = usage_error(usage, "option '%s' needs a value", args[optind - 1]);
			goto out;
		}
		size_t i = (size_t)(c - 256);
		const char *typed = typed_option(args, optarg);
		if (!spelled_out(typed, opts[i].name)) {
			r = usage_error(usage, "unknown option '%s' (options are not abbreviated)",
					typed);
			goto out;
		}
		if (seen[i] && opts[i].kind != OPT_MULTI) {
			r = usage_error(usage, "option '--%s' given twice", opts[i].name);
			goto out;
		}
		seen[i] = true;
		if (opts[i].kind == OPT_FLAG) {
			*opts[i].value = "1";
			continue;
		}
		if (optarg == args[optind - 1] && !strncmp(optarg, "--", 2)) {
			r = usage_error(usage, "option '%s' needs a value", typed);
			goto out;
		}
		const char **slot = opts[i].value;
		while (opts[i].kind == OPT_MULTI && *slot && *slot != args_end)
			slot++;
		if (*slot == args_end) {
			r = usage_error(usage, "option '--%s' given too many times", opts[i].name);
			goto out;
		}
		*slot = optarg;
	}
	for (int i = optind; i < argc + 1; i++) {
		if (*n_pos >= max_pos) {
			r = usage_error(usage, "unexpected argument '%s'", args[i]);
			goto out;
		}
		pos[(*n_pos)++] = args[i];
	}
	for (size_t i = 0; i < n; i++)
		if (opts[i].kind == OPT_REQUIRED && !*opts[i].value) {
			r = usage_error(usage, "missing required option --%s", opts[i].name);
			goto out;
		}
	r = ARGS_OK;
out:
	free(seen);
	free(lo);
	free(args);
	return r;
}

int args_unknown_command(const char *group, const char *word, const char *usage)
{
	if (word[0] == '-')
		fprintf(stderr, "%s", usage);
	else
		fprintf(stderr, "error: unknown %s command '%s'\n%s", group, word, usage);
	return 2;
}
