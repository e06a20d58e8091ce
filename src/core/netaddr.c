/*
 * netaddr.c - IP ranges and SIP host names. See netaddr.h.
 */
#include "netaddr.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Clears the bits of c's address below its prefix. */
static void mask(struct cidr *c)
{
	int len = c->family == AF_INET ? 4 : 16;
	for (int i = 0; i < len; i++) {
		int keep = c->bits - 8 * i;
		if (keep <= 0)
			c->addr[i] = 0;
		else if (keep < 8)
			c->addr[i] &= (unsigned char)(0xff << (8 - keep));
	}
}

bool cidr_parse(const char *text, struct cidr *out)
{
	char ip[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t len = slash ? (size_t)(slash - text) : strlen(text);
	if (len == 0 || len >= sizeof ip)
		return false;
	memcpy(ip, text, len);
	ip[len] = '\0';
	struct cidr c = {0};
	if (inet_pton(AF_INET, ip, c.addr) == 1)
		c.family = AF_INET;
	else if (inet_pton(AF_INET6, ip, c.addr) == 1)
		c.family = AF_INET6;
	else
		return false;
	int max = c.family == AF_INET ? 32 : 128;
	long long bits = max;
	if (slash && !cp_parse_int(slash + 1, 0, max, &bits))
		return false;
	c.bits = (int)bits;
	mask(&c);
	*out = c;
	return true;
}

void cidr_format(const struct cidr *c, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];
	if (!inet_ntop(c->family, c->addr, ip, sizeof ip))
		ip[0] = '\0';
	snprintf(buf, size, "%s/%d", ip, c->bits);
}

/* The address of sa as (family, bytes): IPv4-mapped IPv6 as IPv4; false for other families. */
static bool ip_bytes(const struct sockaddr *sa, int *family, const unsigned char **bytes)
{
	if (sa->sa_family == AF_INET) {
		*family = AF_INET;
		*bytes = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
		return true;
	}
	if (sa->sa_family != AF_INET6)
		return false;
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		*family = AF_INET;
		*bytes = a6->s6_addr + 12;
	} else {
		*family = AF_INET6;
		*bytes = a6->s6_addr;
	}
	return true;
}

bool cidr_contains(const struct cidr *c, const struct sockaddr *sa)
{
	int family;
	const unsigned char *b;
	if (!ip_bytes(sa, &family, &b) || family != c->family)
		return false;
	int whole = c->bits / 8, rest = c->bits % 8;
	if (memcmp(b, c->addr, (size_t)whole))
		return false;
	return !rest || ((b[whole] ^ c->addr[whole]) & (0xff << (8 - rest)) & 0xff) == 0;
}

bool netaddr_same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
	int fa, fb;
	const unsigned char *ba, *bb;
	if (!ip_bytes(a, &fa, &ba) || !ip_bytes(b, &fb, &bb) || fa != fb)
		return false;
	return !memcmp(ba, bb, fa == AF_INET ? 4 : 16);
}

void netaddr_ip_text(const struct sockaddr *sa, char *buf, size_t size)
{
	int family;
	const unsigned char *b;
	if (size)
		buf[0] = '\0';
	if (ip_bytes(sa, &family, &b))
		inet_ntop(family, b, buf, (socklen_t)size);
}

bool netaddr_host_valid(const char *host)
{
	unsigned char a[16];
	size_t len = strlen(host);
	if (len == 0 || len > 253)
		return false;
	if (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1)
		return true;
	/* labels of [A-Za-z0-9-], 1..63 each, no hyphen at either end */
	size_t label = 0;
	for (size_t i = 0; i <= len; i++) {
		char ch = host[i];
		if (ch == '.' || ch == '\0') {
			if (label == 0 || label > 63 || host[i - 1] == '-')
				return false;
			label = 0;
		} else if (isalnum((unsigned char)ch) || (ch == '-' && label > 0)) {
			label++;
		} else {
			return false;
		}
	}
	return true;
}
