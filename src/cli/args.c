/*
 * args.c - option parsing for the subcommands. See args.h.
 */
#include "args.h"

#include <stdio.h>
#include <string.h>

static enum args_result usage_error(const char *usage, const char *fmt, const char *what)
{
	fprintf(stderr, "error: ");
	fprintf(stderr, fmt, what);
	fprintf(stderr, "\n%s", usage);
	return ARGS_ERROR;
}

enum args_result args_parse(int argc, char **argv, struct opt *opts, const char **pos,
			    int max_pos, int *n_pos, const char *usage)
{
	*n_pos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			printf("%s", usage);
			return ARGS_HELP;
		}
		if (strncmp(a, "--", 2)) {
			if (*n_pos >= max_pos)
				return usage_error(usage, "unexpected argument '%s'", a);
			pos[(*n_pos)++] = a;
			continue;
		}
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		struct opt *o = NULL;
		for (struct opt *p = opts; p && p->name; p++)
			if (strlen(p->name) == len && !strncmp(p->name, name, len))
				o = p;
		if (!o)
			return usage_error(usage, "unknown option '%s'", a);
		if (o->kind == OPT_FLAG) {
			if (eq)
				return usage_error(usage, "option '%s' takes no value", a);
			*o->value = "1";
		} else if (eq) {
			*o->value = eq + 1;
		} else {
			if (i + 1 >= argc)
				return usage_error(usage, "option '%s' needs a value", a);
			*o->value = argv[++i];
		}
	}
	for (struct opt *p = opts; p && p->name; p++)
		if (p->kind == OPT_REQUIRED && !*p->value)
			return usage_error(usage, "missing required option --%s", p->name);
	return ARGS_OK;
}
