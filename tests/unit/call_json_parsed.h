/*
 * call_json_parsed.h - for the unit tests that compare a call's JSON as a value: the server
 * writes it only as text (call_to_json_text, src/model/call_json.c), so this parses it.
 */
#ifndef CP_TEST_CALL_JSON_PARSED_H
#define CP_TEST_CALL_JSON_PARSED_H

#include <stdlib.h>
#include <jansson.h>

#include "model/call.h"

/* The canonical JSON of c, parsed; NULL if out of memory. The caller decrefs it. */
static inline json_t *call_to_json(const struct call *c)
{
	char *text = call_to_json_text(c, NULL);
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	return j;
}

#endif
