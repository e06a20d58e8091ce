/*
 * dial.c - what a key may dial, decided before anything is stored or sent.
 *
 * A tenant's dial policy (`tenant create|update`, struct dial_policy):
 *   - sip_uris: which raw sip:/sips: URIs its keys may dial: "none" (the default for a new
 *     tenant: a raw URI reaches any host on the Internet, toll fraud included), "any", or a
 *     list of hosts, compared without regard to case with the URI's host (the part after the
 *     '@', before any port or parameter; an IPv6 literal with its brackets);
 *   - allow_prefixes / deny_prefixes: which E.164 numbers it may dial: with an allow list only
 *     numbers starting with one of its prefixes, and never one starting with a denied prefix
 *     (deny wins). E.164 numbers are otherwise allowed: they go through the trunk.
 * A key may have a sip: policy of its own (`key create --sip-uris`): it narrows the tenant's,
 * never widens it, as a URI must pass both.
 *
 * Under a host list, a URI that would be sent elsewhere than its host is refused: one with a
 * maddr parameter (RFC 3261 sends to maddr) or with headers ('?', which may carry a Route), and
 * one with more than one '@' (which host is meant is then a parser's guess).
 */
#include "dial.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PREFIX_DIGITS_MAX 15

/* One host of a list: a name or IPv4 literal, or an IPv6 literal in brackets. */
static bool host_valid(const char *h, size_t n)
{
	if (n == 0 || n > 253)
		return false;
	if (h[0] == '[') {
		if (n < 3 || h[n - 1] != ']')
			return false;
		for (size_t i = 1; i + 1 < n; i++)
			if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
				return false;
		return true;
	}
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-')
			return false;
	return true;
}

bool dial_hosts_valid(const char *s)
{
	if (!s || strlen(s) > DIAL_HOSTS_MAX)
		return false;
	if (!strcmp(s, "none") || !strcmp(s, "any"))
		return true;
	for (const char *p = s;;) {
		size_t n = strcspn(p, ",");
		/* a keyword in a list is a mistake, not a host */
		if (!host_valid(p, n) || (n == 3 && !strncasecmp(p, "any", 3)) ||
		    (n == 4 && !strncasecmp(p, "none", 4)))
			return false;
		if (!p[n])
			return true;
		p += n + 1;
	}
}

bool dial_prefixes_valid(const char *s)
{
	if (!s || strlen(s) > DIAL_PREFIXES_MAX)
		return false;
	if (!*s)
		return true;
	for (const char *p = s;;) {
		size_t n = strcspn(p, ",");
		if (n < 2 || n > 1 + PREFIX_DIGITS_MAX || p[0] != '+')
			return false;
		for (size_t i = 1; i < n; i++)
			if (!isdigit((unsigned char)p[i]))
				return false;
		if (!p[n])
			return true;
		p += n + 1;
	}
}

/* Whether list (comma-separated) has an entry e for which match(e, len, arg) holds. */
static bool list_has(const char *list, bool (*match)(const char *e, size_t n, const char *arg),
		     const char *arg)
{
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		if (match(p, n, arg))
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

static bool host_is(const char *e, size_t n, const char *host)
{
	return strlen(host) == n && !strncasecmp(e, host, n);
}

static bool prefix_of(const char *e, size_t n, const char *number)
{
	return !strncmp(e, number, n);
}

/* The host of a sip:/sips: URI into host (lower case kept as written); false when the URI
 * could be sent elsewhere than that host (maddr, headers, several '@'). */
static bool uri_host(const char *uri, char *host, size_t size)
{
	const char *rest = uri + (uri[3] == ':' ? 4 : 5);
	const char *at = strchr(rest, '@');
	if (at && strchr(at + 1, '@'))
		return false;
	if (strchr(uri, '?'))
		return false;
	const char *hp = at ? at + 1 : rest;
	size_t n = hp[0] == '[' ? strcspn(hp, "]") + 1 : strcspn(hp, ":;");
	if (n >= size || (hp[0] == '[' && hp[n - 1] != ']'))
		return false;
	for (const char *p = strchr(hp + n, ';'); p; p = strchr(p + 1, ';'))
		if (!strncasecmp(p + 1, "maddr=", 6))
			return false;
	memcpy(host, hp, n);
	host[n] = '\0';
	return true;
}

/* Whether a sip: policy ("none"/"" refuses, "any" allows, else a host list) lets uri
 * through; *why the refusal's reason (a static text). */
static bool sip_allowed(const char *policy, const char *uri, const char **why)
{
	char host[DIAL_HOSTS_MAX + 1];
	if (!strcmp(policy, "any"))
		return true;
	if (!*policy || !strcmp(policy, "none")) {
		*why = "sip: URIs are not allowed";
		return false;
	}
	if (!uri_host(uri, host, sizeof host)) {
		*why = "sip: URIs with a maddr parameter, headers or several '@' are not allowed "
		       "where only some hosts are";
		return false;
	}
	if (!list_has(policy, host_is, host)) {
		*why = "this sip: URI's host is not allowed";
		return false;
	}
	return true;
}

enum cp_err dial_check(const struct dial_policy *tenant, const char *key_sip_uris, const char *to,
		       struct cp_error *err)
{
	if (!strncasecmp(to, "sip:", 4) || !strncasecmp(to, "sips:", 5)) {
		const char *why = NULL;
		if (!sip_allowed(tenant->sip_uris, to, &why))
			return cp_fail(err, CP_ERR_DESTINATION, "%s for this tenant", why);
		if (*key_sip_uris && !sip_allowed(key_sip_uris, to, &why))
			return cp_fail(err, CP_ERR_DESTINATION, "%s for this key", why);
		return CP_OK;
	}
	if (list_has(tenant->deny_prefixes, prefix_of, to))
		return cp_fail(err, CP_ERR_DESTINATION,
			       "this number is not allowed for this tenant: its prefix is denied");
	if (*tenant->allow_prefixes && !list_has(tenant->allow_prefixes, prefix_of, to))
		return cp_fail(
			err, CP_ERR_DESTINATION,
			"this number is not allowed for this tenant: no allowed prefix starts it");
	return CP_OK;
}
