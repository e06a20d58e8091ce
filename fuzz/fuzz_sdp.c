/*
 * fuzz_sdp.c - libFuzzer target: any bytes as the SDP body of a far end's INVITE, re-INVITE or
 * 200 (sip/media.c): media_parse_sdp() reads it (as the engine hands it over: exactly the
 * body's bytes, no terminator), then media_sdp() answers it, once from an IPv4 and once from
 * an IPv6 RTP address.
 *
 * Whatever the bytes: nothing is read or written out of bounds; the codec read is PCMU (0),
 * PCMA (8) or none, and the far end's address is one of the families it says; an answer is
 * never truncated, parses, and offers only what one audio stream of the offer has, under the
 * same payload type numbers and names (RFC 3264 6.1: each format of the answer is one of the
 * offer's); and our own answer read back gives the same codec, telephone-event and address,
 * and, when the offer had a usable a=crypto line, the same profile, that line's tag and suite,
 * and our key (SDES, RFC 4568).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "sip/sip_internal.h"

#include <sofia-sip/sdp.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RTP_PORT 40000

static struct sip_engine *eng;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	eng = calloc(1, sizeof *eng); /* the leg table makes it large */
	if (!eng)
		abort();
	static const char *const addrs[] = {"192.0.2.10", "2001:db8::10"};
	for (int i = 0; i < 2; i++) {
		struct media_addr *m = &eng->media[i];
		snprintf(m->text, sizeof m->text, "%s", addrs[i]);
		m->family = i ? AF_INET6 : AF_INET;
		inet_pton(m->family, m->text, i ? (void *)&m->v6 : (void *)&m->v4);
	}
	eng->n_media = 2;
	return 0;
}

/* Whether stream m of the offer has format pt under the same name and rate as rm. */
static bool offered_in(const sdp_media_t *m, const sdp_rtpmap_t *rm)
{
	for (const sdp_rtpmap_t *o = m->m_rtpmaps; o; o = o->rm_next)
		if (o->rm_pt == rm->rm_pt && o->rm_encoding && rm->rm_encoding &&
		    !strcasecmp(o->rm_encoding, rm->rm_encoding) && o->rm_rate == rm->rm_rate)
			return true;
	return false;
}

/* Whether every format of the answer's one stream is in one and the same audio stream of the
 * offer that was not refused (port 0). */
static bool answer_within_offer(const sdp_session_t *offer, const sdp_media_t *ans)
{
	for (const sdp_media_t *m = offer ? offer->sdp_media : NULL; m; m = m->m_next) {
		if (m->m_type != sdp_media_audio || m->m_port == 0)
			continue;
		bool all = true;
		for (const sdp_rtpmap_t *rm = ans->m_rtpmaps; rm && all; rm = rm->rm_next)
			all = offered_in(m, rm);
		if (all)
			return true;
	}
	return false;
}

static void check_remote(const struct sdp_remote *r)
{
	if (r->payload_type != -1 && r->payload_type != 0 && r->payload_type != 8)
		abort();
	if (r->payload_type >= 0 && r->te_payload_type != SDP_TE_NONE &&
	    (r->te_payload_type < 0 || r->te_payload_type > 127))
		abort();
	if (r->addr_len == sizeof(struct sockaddr_in) && r->addr.ss_family != AF_INET)
		abort();
	if (r->addr_len == sizeof(struct sockaddr_in6) && r->addr.ss_family != AF_INET6)
		abort();
	if (r->addr_len && r->addr_len != sizeof(struct sockaddr_in) &&
	    r->addr_len != sizeof(struct sockaddr_in6))
		abort();
}

/* Answers r from address ai of the engine and checks the answer against the offer. */
static void answer(const sdp_session_t *offer, const struct sdp_remote *r, int ai)
{
	struct leg l;
	memset(&l, 0, sizeof l);
	l.eng = eng;
	l.rtp_port = RTP_PORT;
	l.rtp_addr = ai;
	l.payload_type = l.te_payload_type = -1;
	media_use_remote(&l, r);
	if (!media_srtp_answer(&l, r))
		abort(); /* no mode asks for SRTP: any offer will do */
	if ((l.srtp.suite != MEDIA_SRTP_NONE) != r->has_crypto)
		abort();
	char sdp[600];
	media_sdp(eng, &l, l.payload_type, sdp, sizeof sdp);
	size_t len = strlen(sdp);
	if (len + 1 >= sizeof sdp || memcmp(sdp + len - 2, "\r\n", 2))
		abort(); /* truncated */

	su_home_t home[1] = {SU_HOME_INIT(home)};
	sdp_parser_t *p = sdp_parse(home, sdp, (issize_t)len, sdp_f_strict);
	sdp_session_t *s = p ? sdp_session(p) : NULL;
	if (!s || !s->sdp_media || s->sdp_media->m_next || s->sdp_media->m_port != RTP_PORT)
		abort(); /* one audio stream, on our port */
	if (!answer_within_offer(offer, s->sdp_media))
		abort(); /* RFC 3264 6.1 */
	sdp_parser_free(p);
	su_home_deinit(home);

	/* read back as the far end would */
	struct sdp_remote back;
	media_parse_sdp(sdp, len, &back);
	int te = r->te_payload_type;
	if (back.payload_type != r->payload_type || back.te_payload_type != te)
		abort();
	if (back.addr_len == 0 || back.addr.ss_family != eng->media[ai].family)
		abort();
	if (back.has_crypto != r->has_crypto || back.savp != r->savp)
		abort();
	if (r->has_crypto &&
	    (back.crypto.tag != r->crypto.tag || back.crypto.suite != r->crypto.suite ||
	     memcmp(back.crypto.key, l.srtp.tx_key, sizeof back.crypto.key)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the body as nua hands it over: exactly size bytes, no terminator */
	char *body = malloc(size ? size : 1);
	if (!body)
		return 0;
	memcpy(body, data, size);
	struct sdp_remote r;
	media_parse_sdp(body, size, &r);
	check_remote(&r);
	if (r.payload_type >= 0) {
		su_home_t home[1] = {SU_HOME_INIT(home)};
		sdp_parser_t *p = sdp_parse(home, body, (issize_t)size, 0);
		const sdp_session_t *offer = p ? sdp_session(p) : NULL;
		answer(offer, &r, 0);
		answer(offer, &r, 1);
		sdp_parser_free(p);
		su_home_deinit(home);
	}
	free(body);
	return 0;
}
