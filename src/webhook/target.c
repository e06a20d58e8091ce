/*
 * target.c - where a webhook may point: http or https, and (unless the server runs with
 * `serve --webhook-allow-private`) only at public addresses.
 *
 * A webhook URL is chosen by a tenant, and the server POSTs to it from inside its own network:
 * without a rule a tenant could make callplane probe the services beside it (a database on
 * loopback, a cloud's metadata service on 169.254.169.254). Two checks enforce the rule:
 *   - at creation, webhook_target_check() resolves the URL's host and refuses it if any
 *     address it resolves to is private (so the mistake is reported to whoever made it);
 *   - at delivery, the worker checks the address libcurl is about to connect to
 *     (webhook_addr_private() on the socket address, outbox.c), because a name may resolve
 *     elsewhere by then (DNS rebinding, or a record changed since the creation).
 *
 * webhook_addr_private() is the one definition of "private": a pure function of the socket
 * address, so both checks agree and a unit test can cover every range and its edges.
 *
 *   IPv4  0.0.0.0/8 (this network, unspecified), 10.0.0.0/8, 100.64.0.0/10 (CGNAT),
 *         127.0.0.0/8, 169.254.0.0/16 (link-local, cloud metadata), 172.16.0.0/12,
 *         192.168.0.0/16, 224.0.0.0/4 (multicast), 240.0.0.0/4 (reserved, broadcast)
 *   IPv6  ::/96 (unspecified, loopback, IPv4-compatible), fc00::/7 (unique local),
 *         fe80::/10 (link-local), fec0::/10 (site-local), ff00::/8 (multicast); and an IPv4
 *         address carried in ::ffff:0:0/96 (IPv4-mapped) or 64:ff9b::/96 (NAT64) is judged as
 *         that IPv4 address
 *   other families: private (nothing but IP is a webhook target)
 */
#include "webhook.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#define BAD_URL "url must be an http:// or https:// URL of at most %d bytes"

/* a: an IPv4 address in host order */
static bool v4_private(uint32_t a)
{
	unsigned b0 = a >> 24, b1 = (a >> 16) & 0xff;
	return b0 == 0 || b0 == 10 || b0 == 127 || (b0 == 100 && (b1 & 0xc0) == 64) ||
	       (b0 == 169 && b1 == 254) || (b0 == 172 && (b1 & 0xf0) == 16) ||
	       (b0 == 192 && b1 == 168) || b0 >= 224;
}

static uint32_t v4_at(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool v6_private(const uint8_t *b)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
	static const uint8_t zero[12] = {0};
	if (!memcmp(b, mapped, 12) || !memcmp(b, nat64, 12))
		return v4_private(v4_at(b + 12));
	if (!memcmp(b, zero, 12))
		return true;
	return (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0x80) == 0x80) || b[0] == 0xff;
}

bool webhook_addr_private(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in in;
		memcpy(&in, sa, sizeof in);
		return v4_private(ntohl(in.sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 in6;
		memcpy(&in6, sa, sizeof in6);
		return v6_private(in6.sin6_addr.s6_addr);
	}
	return true;
}

void webhook_addr_text(const struct sockaddr *sa, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in in;
		memcpy(&in, sa, sizeof in);
		inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 in6;
		memcpy(&in6, sa, sizeof in6);
		inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
	}
	snprintf(buf, size, "%s", host);
}

/* Refuses host unless every address it resolves to is public. */
static enum cp_err host_public(const char *host, struct cp_error *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || !res) {
		if (res)
			freeaddrinfo(res);
		return cp_fail(err, CP_ERR_WEBHOOK_TARGET,
			       "url host %.80s does not resolve (%s); a webhook must resolve to a "
			       "public address",
			       host, rc ? gai_strerror(rc) : "no address");
	}
	enum cp_err e = CP_OK;
	for (struct addrinfo *ai = res; ai && e == CP_OK; ai = ai->ai_next) {
		if (!webhook_addr_private(ai->ai_addr))
			continue;
		char addr[INET6_ADDRSTRLEN];
		webhook_addr_text(ai->ai_addr, addr, sizeof addr);
		e = cp_fail(
			err, CP_ERR_WEBHOOK_TARGET,
			"url host %.80s resolves to %s, a private address; a webhook must resolve "
			"to a public address (serve --webhook-allow-private allows private ones)",
			host, addr);
	}
	freeaddrinfo(res);
	return e;
}

enum cp_err webhook_target_check(const char *url, bool allow_private, struct cp_error *err)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	enum cp_err e = CP_OK;
	if (!u)
		return cp_fail(err, CP_ERR_INTERNAL, "out of memory");
	/* parsed as libcurl will when it sends, so the host checked is the host connected to */
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") && strcmp(scheme, "https")) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
		e = cp_fail(err, CP_ERR_INVALID, BAD_URL, WEBHOOK_URL_MAX);
	} else if (!allow_private) {
		/* an IPv6 literal comes back in brackets, which getaddrinfo() does not take */
		size_t n = strlen(host);
		if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
			memmove(host, host + 1, n - 2);
			host[n - 2] = '\0';
		}
		e = host_public(host, err);
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return e;
}
