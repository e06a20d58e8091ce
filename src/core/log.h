/*
 * log.h - structured logs: one JSON object per line on stderr.
 *
 * Every line carries "ts" (RFC 3339), "level" and "event"; callers add fields such as
 * "req_id", "call_id", "from", "to". A line is written with a single write(2) so lines from
 * different threads never interleave.
 */
#ifndef CP_LOG_H
#define CP_LOG_H

#include <jansson.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level min);
/* Writes one line. Takes ownership of fields (may be NULL). */
void log_json(enum log_level level, const char *event, json_t *fields);
/* Convenience: a line with a single "message" field (printf-style). */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
