/*
 * log.c - JSON line logger. See log.h.
 */
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level min)
{
	min_level = min;
}

void log_json(enum log_level level, const char *event, json_t *fields)
{
	if (level < min_level) {
		json_decref(fields);
		return;
	}
	char ts[CP_RFC3339_LEN + 1];
	cp_rfc3339(cp_now_ms(), ts);
	json_t *line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level],
				 "event", event);
	if (fields)
		json_object_update(line, fields);
	json_decref(fields);
	char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(line);
	if (!text)
		return;
	size_t len = strlen(text);
	text[len] = '\n'; /* replaces the NUL: we write len+1 bytes and never use it as a string */
	ssize_t off = 0;
	while ((size_t)off < len + 1) {
		ssize_t n = write(STDERR_FILENO, text + off, len + 1 - (size_t)off);
		if (n <= 0)
			break;
		off += n;
	}
	free(text);
}

void log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
	if (level < min_level)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	log_json(level, event, json_pack("{s:s}", "message", buf));
}
