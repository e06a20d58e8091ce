/*
 * netaddr.h - IP address ranges (CIDR) and the host names SIP may carry: parsing, canonical
 * text, and whether an address falls in a range.
 *
 * A range is kept as bytes in network order, its family and its prefix length, with the
 * bits below the prefix cleared, so that its text is canonical ("10.1.2.3/8" reads back as
 * "10.0.0.0/8") and matching is a masked byte compare. An IPv4 address that arrives as an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d, from a dual-stack socket) matches IPv4 ranges.
 */
#ifndef CP_NETADDR_H
#define CP_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define CIDR_TEXT_MAX 50 /* "ffff:...:ffff/128" */

struct cidr {
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* 4 bytes used for AF_INET */
	int bits;               /* prefix length */
};

/* Parses "IP" (one address: /32 or /128) or "IP/BITS" into *out; false if it is neither. */
bool cidr_parse(const char *text, struct cidr *out);
/* The canonical text of c into buf (at least CIDR_TEXT_MAX + 1 bytes). */
void cidr_format(const struct cidr *c, char *buf, size_t size);
/* Whether the address sa (AF_INET or AF_INET6; IPv4-mapped IPv6 counts as IPv4) is in c. */
bool cidr_contains(const struct cidr *c, const struct sockaddr *sa);
/* Whether two addresses are the same IP (ports aside; IPv4-mapped IPv6 as IPv4). */
bool netaddr_same_ip(const struct sockaddr *a, const struct sockaddr *b);
/* The IP of sa as text ("" for another family). */
void netaddr_ip_text(const struct sockaddr *sa, char *buf, size_t size);
/* A host a SIP URI may name: an IPv4 address, an IPv6 address (without brackets), or a DNS
 * name (labels of letters, digits and hyphens, not starting or ending with a hyphen, at most
 * 253 bytes). */
bool netaddr_host_valid(const char *host);

#endif
