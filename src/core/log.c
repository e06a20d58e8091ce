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

bool log_enabled(enum log_level level)
{
	return level >= min_level;
}

static void write_all(const char *text, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(STDERR_FILENO, text + off, len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
}

void log_json_string(char *buf, size_t size, size_t *off, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = *off;
	if (o + 1 < size)
		buf[o++] = '"';
	for (; s && *s && o + 7 < size; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			memcpy(buf + o, "\\u00", 4);
			buf[o + 4] = hex[ch >> 4];
			buf[o + 5] = hex[ch & 15];
			o += 6;
		} else {
			buf[o++] =
				(char)ch; /* UTF-8 passes through; invalid bytes are the caller's */
		}
	}
	if (o + 1 < size)
		buf[o++] = '"';
	buf[o < size ? o : size - 1] = '\0';
	*off = o;
}

void log_fields(enum log_level level, const char *event, const char *fields)
{
	if (level < min_level)
		return;
	char ts[CP_RFC3339_LEN + 1];
	char line[2048];
	cp_rfc3339(cp_now_ms(), ts);
	int n = snprintf(line, sizeof line,
			 "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"%s\",%s}\n", ts,
			 level_names[level], event, fields);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line) { /* cut: keep the line valid JSON */
		log_msg(LOG_WARN, event, "log line too long (%d bytes) dropped", n);
		return;
	}
	write_all(line, (size_t)n);
}

void log_json(enum log_level level, const char *event, json_t *fields)
{
	if (level < min_level) {
		json_decref(fields);
		return;
	}
	char ts[CP_RFC3339_LEN + 1];
	cp_rfc3339(cp_now_ms(), ts);
	json_t *line =
		json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "event", event);
	if (fields)
		json_object_update(line, fields);
	json_decref(fields);
	char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(line);
	if (!text)
		return;
	size_t len = strlen(text);
	text[len] = '\n'; /* replaces the NUL: we write len+1 bytes and never use it as a string */
	write_all(text, len + 1);
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
