/*
 * access.c - the per-source INVITE rate, and the INVITEs refused.
 *
 * Rate: a token bucket per source address (cfg.inbound_rate new INVITEs a second, bursts of
 * twice as many), in a direct-mapped table of ACCESS_SLOTS entries indexed by a hash of the
 * address. A source whose slot another holds takes it with a full bucket: the table's memory
 * is fixed whatever the number of sources, and a flood of many sources can only make the
 * limit more lenient for the ones it displaces, never refuse a source that kept to its rate.
 *
 * Refusals (a stranger, a source over its rate) are counted, here and in the metrics, and
 * logged, the log lines themselves limited (LOG_BURST, refilled LOG_PER_S a second, for all
 * sources together): each line carries the running counts, so a flood costs a counter per
 * INVITE and no more than a few lines a second. The totals are logged when the engine stops.
 *
 * Only the engine thread uses any of it.
 */
#include "sip_internal.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

#define ACCESS_SLOTS 4096
#define LOG_PER_S 5.0
#define LOG_BURST 20.0

struct access_slot {
	unsigned char addr[16]; /* IPv4 in the first 4 bytes */
	int family;             /* 0 = free */
	double tokens;
	int64_t at_us; /* when tokens was last refilled */
};

struct access {
	struct access_slot slots[ACCESS_SLOTS];
	double log_tokens;
	int64_t log_at_us;
	long refused_source, refused_rate;
};

int access_create(struct sip_engine *eng)
{
	eng->access = calloc(1, sizeof *eng->access);
	if (!eng->access)
		return -1;
	eng->access->log_tokens = LOG_BURST;
	eng->access->log_at_us = cp_mono_us();
	return 0;
}

void access_destroy(struct sip_engine *eng)
{
	if (eng->access && (eng->access->refused_source || eng->access->refused_rate))
		log_json(LOG_INFO, "sip_inbound_refused_total",
			 json_pack("{s:I, s:I}", "refused_source",
				   (json_int_t)eng->access->refused_source, "refused_rate",
				   (json_int_t)eng->access->refused_rate));
	free(eng->access);
	eng->access = NULL;
}

/* The address of sa as (family, 16 bytes) with IPv4-mapped IPv6 as IPv4; false for other
 * families. */
static bool key_of(const struct sockaddr *sa, int *family, unsigned char key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		*family = AF_INET;
		return true;
	}
	if (sa->sa_family != AF_INET6)
		return false;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a)) {
		memcpy(key, a->s6_addr + 12, 4);
		*family = AF_INET;
	} else {
		memcpy(key, a->s6_addr, 16);
		*family = AF_INET6;
	}
	return true;
}

bool access_rate_ok(struct sip_engine *eng, const struct sockaddr *sa)
{
	int rate = eng->cfg.inbound_rate, family;
	unsigned char key[16];
	if (rate <= 0 || !sa || !key_of(sa, &family, key))
		return true;
	unsigned h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	struct access_slot *s = &eng->access->slots[h % ACCESS_SLOTS];
	int64_t now = cp_mono_us();
	if (s->family != family || memcmp(s->addr, key, 16)) {
		s->family = family;
		memcpy(s->addr, key, 16);
		s->tokens = 2.0 * rate;
		s->at_us = now;
	}
	s->tokens += (double)(now - s->at_us) * rate / 1e6;
	if (s->tokens > 2.0 * rate)
		s->tokens = 2.0 * rate;
	s->at_us = now;
	if (s->tokens < 1.0)
		return false;
	s->tokens -= 1.0;
	return true;
}

void access_refused(struct sip_engine *eng, const struct sockaddr *sa, bool rate, sip_t const *sip)
{
	struct access *a = eng->access;
	if (rate)
		a->refused_rate++;
	else
		a->refused_source++;
	metrics_sip_inbound_refused(rate);
	int64_t now = cp_mono_us();
	a->log_tokens += (double)(now - a->log_at_us) * LOG_PER_S / 1e6;
	if (a->log_tokens > LOG_BURST)
		a->log_tokens = LOG_BURST;
	a->log_at_us = now;
	if (a->log_tokens < 1.0)
		return;
	a->log_tokens -= 1.0;
	char ip[SIP_ADDR_TEXT_MAX] = "";
	if (sa)
		netaddr_ip_text(sa, ip, sizeof ip);
	const char *user = sip && sip->sip_request ? sip->sip_request->rq_url->url_user : NULL;
	log_json(LOG_WARN, "sip_inbound_refused",
		 json_pack("{s:s, s:s, s:s, s:I, s:I}", "source", ip, "why",
			   rate ? "rate" : "source", "user", user ? user : "", "refused_source",
			   (json_int_t)a->refused_source, "refused_rate",
			   (json_int_t)a->refused_rate));
}
