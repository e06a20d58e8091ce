/*
 * range.c - the Range header (see range.h).
 *
 * Numbers are parsed by hand, digit by digit with an overflow check: strtoull() would take
 * signs, leading spaces and "0x", none of which the grammar allows.
 */
#include "range.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* Digits at *p (at least one) into *out; advances *p. false on none or on overflow. */
static bool digits(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	while (*s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
	}
	if (s == *p)
		return false;
	*p = s;
	*out = v;
	return true;
}

enum http_range http_range_parse(const char *header, uint64_t size, uint64_t *off, uint64_t *len)
{
	/* the unit is case-insensitive (RFC 9110 section 14.1); spaces around the one range
	 * are optional whitespace */
	if (!header || strncasecmp(header, "bytes=", 6))
		return HTTP_RANGE_NONE;
	const char *p = header + 6;
	while (*p == ' ' || *p == '\t')
		p++;
	uint64_t first = 0, last = 0; /* set on every path that reads them; gcc -O2 cannot tell */
	bool suffix = *p == '-';
	if (suffix) {
		p++;
		if (!digits(&p, &last))
			return HTTP_RANGE_NONE;
	} else {
		if (!digits(&p, &first) || *p++ != '-')
			return HTTP_RANGE_NONE;
		if (!digits(&p, &last))
			last = UINT64_MAX;
		else if (last < first)
			return HTTP_RANGE_NONE; /* invalid: the header is ignored (14.1.1) */
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p)
		return HTTP_RANGE_NONE; /* several ranges, or trailing text: served whole */
	if (suffix) {
		if (last == 0 || size == 0)
			return HTTP_RANGE_UNSATISFIABLE;
		*len = last < size ? last : size;
		*off = size - *len;
		return HTTP_RANGE_PARTIAL;
	}
	if (first >= size)
		return HTTP_RANGE_UNSATISFIABLE;
	*off = first;
	*len = (last >= size - 1 ? size - 1 : last) - first + 1;
	return HTTP_RANGE_PARTIAL;
}
