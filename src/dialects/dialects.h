/*
 * dialects.h - the four seed vendors' end-call APIs, each a thin translator over the canonical
 * call service: parse the vendor's request, call call_end_with()/call_redact(), render the
 * vendor's response and errors. No dialect holds business rules; docs/dialects.md records every
 * mapping and every decision where a vendor's document is silent.
 */
#ifndef CP_DIALECTS_H
#define CP_DIALECTS_H

#include "http/routes.h"

extern const struct route talkover_routes[];    /* ../shared/seeds/000_92cc4313d5b7ee9a.txt */
extern const struct route voxworks_routes[];    /* ../shared/seeds/002_7fcb9646d8d398d3.txt */
extern const struct route pilotstatus_routes[]; /* ../shared/seeds/003_a696019407c9f1cd.txt */
extern const struct route cartesia_routes[];    /* ../shared/seeds/004_a9de7b6b9ff15082.txt */

/* Authorization: Bearer only (no x-api-key), for dialects whose documents say so. */
enum cp_err dialect_auth_bearer(struct http_request *r, struct principal *who,
				struct cp_error *err);

/* RFC 3339 UTC without fractional seconds ("2024-01-15T11:35:42Z"), as some vendors print. */
json_t *dialect_time_seconds(int64_t ms);

#endif
