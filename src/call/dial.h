/*
 * dial.h - what a key may dial: its tenant's dial policy (struct dial_policy, store.h),
 * narrowed by the key's own sip: policy. Pure functions; see dial.c for the rules.
 */
#ifndef CP_DIAL_H
#define CP_DIAL_H

#include <stdbool.h>

#include "core/error.h"
#include "store/store.h"

/* "none", "any", or HOST[,HOST...] (each a host name or IPv4 literal of [A-Za-z0-9.-], or an
 * IPv6 literal in brackets; not "any" or "none"), at most DIAL_HOSTS_MAX bytes. */
bool dial_hosts_valid(const char *s);
/* "" (no list) or +DIGITS[,+DIGITS...] (each 1..15 digits), at most DIAL_PREFIXES_MAX bytes. */
bool dial_prefixes_valid(const char *s);

/* CP_OK when `to` (a valid call address: E.164 or a sip:/sips: URI) may be dialled under the
 * tenant's policy and the key's sip: policy (key_sip_uris: "" = the tenant's alone); else
 * CP_ERR_DESTINATION with err saying why. */
enum cp_err dial_check(const struct dial_policy *tenant, const char *key_sip_uris, const char *to,
		       struct cp_error *err);

#endif
