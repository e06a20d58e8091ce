/*
 * range.h - the Range request header of RFC 9110 (section 14), for files served whole or in
 * part.
 *
 * One range is served: "bytes=FIRST-LAST", "bytes=FIRST-" or "bytes=-SUFFIX". What the RFC
 * lets a server ignore is ignored (the whole file is served): another unit, several ranges,
 * a header that does not parse. A well-formed range that selects nothing of the file is the
 * one refusal (416).
 */
#ifndef CP_HTTP_RANGE_H
#define CP_HTTP_RANGE_H

#include <stdint.h>

enum http_range {
	HTTP_RANGE_NONE,          /* serve the whole file (200) */
	HTTP_RANGE_PARTIAL,       /* serve *len bytes from *off (206) */
	HTTP_RANGE_UNSATISFIABLE, /* 416, Content-Range: bytes * / size */
};

/* Reads header (NULL: none) against a file of size bytes. */
enum http_range http_range_parse(const char *header, uint64_t size, uint64_t *off, uint64_t *len);

#endif
