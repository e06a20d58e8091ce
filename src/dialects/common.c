/*
 * common.c - rendering helpers the dialects share.
 */
#include "dialects.h"

#include <string.h>

json_t *dialect_time_seconds(int64_t ms)
{
	if (!ms)
		return json_null();
	char buf[CP_RFC3339_LEN + 1];
	cp_rfc3339(ms, buf);
	memcpy(buf + 19, "Z", 2); /* "YYYY-MM-DDTHH:MM:SS" + "Z" */
	return json_string(buf);
}

enum cp_err dialect_auth_bearer(struct http_request *r, struct principal *who, struct cp_error *err)
{
	return http_auth_key(r, true, false, who, err);
}
