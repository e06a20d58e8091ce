/*
 * log.h - structured logs: one JSON object per line on stderr.
 *
 * Every line carries "ts" (RFC 3339), "level" and "event"; callers add fields such as
 * "req_id", "call_id", "from", "to". A line is written with a single write(2) so lines from
 * different threads never interleave.
 */
#ifndef CP_LOG_H
#define CP_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level min);
bool log_enabled(enum log_level level);
/* Writes one line whose fields are already JSON: `fields` is the inside of an object without
 * braces ("\"a\":1,\"b\":\"x\""). For hot paths, where building a json_t costs more than
 * the work being logged. */
void log_fields(enum log_level level, const char *event, const char *fields);
/* Appends s as a JSON string (quotes included) to buf at *off, never past size. */
void log_json_string(char *buf, size_t size, size_t *off, const char *s);
/* Writes one line. Takes ownership of fields (may be NULL). */
void log_json(enum log_level level, const char *event, json_t *fields);
/* Convenience: a line with a single "message" field (printf-style). */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
