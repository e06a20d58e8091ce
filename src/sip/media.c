/*
 * media.c - the media side of a call as far as signalling needs it: a real RTP port for each
 * call, and the SDP that offers or answers it.
 *
 * Each call binds a pair of UDP sockets, RTP on an even port of the configured range and RTCP
 * on the odd one above, and keeps them for its lifetime (from the answer on, in the media
 * engine: bridge.c), so the port we put in SDP is really ours and never handed to two calls.
 * Codecs: G.711 (PCMU 0, PCMA 8) plus telephone-event; an offer without PCMU or PCMA (under
 * those static numbers: we send them so) is refused (488).
 *
 * Addresses: the socket is bound on the advertise address, or on one of --rtp-addrs. One
 * address has one port per even number of the range (27,768 for 10000-65535), so a node that
 * is to hold more calls is given several addresses, each with the whole range. Calls take the
 * addresses in turn (round-robin), each address with its own port cursor: media spreads over
 * the addresses (and the interfaces, firewall and NAT state behind them) from the first call
 * on, and each cursor moves N times slower, so a port freed by an ended call is reused later
 * and late RTP of the old call is less likely to reach a new one. Filling one address before
 * the next would give neither. An address whose every port is ours is skipped without a
 * syscall; a call fails (no_media_port, or 503 inbound) only when no address has a free port,
 * as with one address. The SDP's o= and c= lines carry the address the call's socket is bound
 * on, IP4 or IP6 to match, so families may be mixed (the far end must reach both, of course).
 * An --rtp-addrs address this host cannot bind stops the start: it would fail every call.
 * Behind a 1:1 NAT (--rtp-advertise) SDP carries the public address that stands for each
 * bound one instead (text), while the sockets bind the private one (bind_text).
 *
 * SRTP (docs/CARRIERS.md "SRTP"): an offer of a call whose mode is not off carries two a=crypto
 * lines (tags 1 and 2: _80 and _32, a fresh key each) in RTP/AVP (optional) or RTP/SAVP
 * (required); the answer's line decides (media_srtp_answered). Answering, the first usable
 * line of the offered stream is taken and answered under its tag with a fresh key of ours
 * (media_srtp_answer); RTP/SAVP without a usable line is not a stream we can take. The keys go
 * to the media engine with the session (bridge.c) and are never logged.
 *
 * Layering: this file is at the bottom of the SIP layer, beside bridge.c and post.c: it works
 * on the engine's address table and one leg's fields, and calls no other SIP file.
 */
#include "sip_internal.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sofia-sip/sdp.h>

/* ---- configuration ---------------------------------------------------------------------- */

/* Parses "IP[,IP...]" into out (canonical text), *count their number; -1 with the reason in
 * err on a bad list (wildcards, multicast, link-local and duplicates are refused: each is
 * written into SDP as it is), out and *count then unchanged. */
static int parse_addr_list(const char *list, char out[SIP_RTP_ADDRS_MAX][SIP_ADDR_TEXT_MAX],
			   int *count, char *err, size_t err_size)
{
	char addrs[SIP_RTP_ADDRS_MAX][SIP_ADDR_TEXT_MAX];
	int n = 0;
	const char *p = list;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		while (len && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len && isspace((unsigned char)p[len - 1]))
			len--;
		char item[64];
		struct in_addr a4;
		struct in6_addr a6;
		if (len == 0) {
			snprintf(err, err_size, "an empty address in '%s'", list);
			return -1;
		}
		if (n == SIP_RTP_ADDRS_MAX) {
			snprintf(err, err_size, "more than %d addresses", SIP_RTP_ADDRS_MAX);
			return -1;
		}
		snprintf(item, sizeof item, "%.*s", (int)len, p);
		if (len < sizeof item && inet_pton(AF_INET, item, &a4) == 1) {
			uint32_t h = ntohl(a4.s_addr);
			if (h == INADDR_ANY) {
				snprintf(err, err_size,
					 "%s is a wildcard; SDP needs the address itself", item);
				return -1;
			}
			if (IN_MULTICAST(h) || h == INADDR_BROADCAST) {
				snprintf(err, err_size, "%s is not a unicast address", item);
				return -1;
			}
			inet_ntop(AF_INET, &a4, addrs[n], sizeof addrs[n]);
		} else if (len < sizeof item && inet_pton(AF_INET6, item, &a6) == 1) {
			if (IN6_IS_ADDR_UNSPECIFIED(&a6)) {
				snprintf(err, err_size,
					 "%s is a wildcard; SDP needs the address itself", item);
				return -1;
			}
			if (IN6_IS_ADDR_MULTICAST(&a6)) {
				snprintf(err, err_size, "%s is not a unicast address", item);
				return -1;
			}
			if (IN6_IS_ADDR_V4MAPPED(&a6)) {
				snprintf(err, err_size, "%s: write an IPv4 address as IPv4", item);
				return -1;
			}
			if (IN6_IS_ADDR_LINKLOCAL(&a6)) {
				snprintf(err, err_size,
					 "%s: link-local addresses are not supported", item);
				return -1;
			}
			inet_ntop(AF_INET6, &a6, addrs[n], sizeof addrs[n]);
		} else {
			snprintf(err, err_size, "'%.*s%s' is not an IPv4 or IPv6 address",
				 len > 48 ? 48 : (int)len, p, len > 48 ? "..." : "");
			return -1;
		}
		for (int i = 0; i < n; i++) {
			if (!strcmp(addrs[i], addrs[n])) {
				snprintf(err, err_size, "%s is listed twice", addrs[n]);
				return -1;
			}
		}
		n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	memcpy(out, addrs, (size_t)n * sizeof addrs[0]);
	*count = n;
	return 0;
}

int sip_config_set_rtp_addrs(struct sip_config *cfg, const char *list, char *err, size_t err_size)
{
	return parse_addr_list(list, cfg->rtp_addrs, &cfg->n_rtp_addrs, err, err_size);
}

int sip_config_set_rtp_advertise(struct sip_config *cfg, const char *list, char *err,
				 size_t err_size)
{
	return parse_addr_list(list, cfg->rtp_advertise, &cfg->n_rtp_advertise, err, err_size);
}

long sip_config_rtp_capacity(const struct sip_config *cfg)
{
	int lo = cfg->rtp_port_min & ~1, hi = cfg->rtp_port_max;
	long span = hi >= lo ? (hi - lo) / 2 + 1 : 0;
	return span * (cfg->n_rtp_addrs > 0 ? cfg->n_rtp_addrs : 1);
}

/* ---- sockets ---------------------------------------------------------------------------- */

/* The socket address of port on m, into ss; returns its length. */
static socklen_t media_sockaddr(const struct media_addr *m, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (m->family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		a->sin6_addr = m->v6;
		return sizeof *a;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	a->sin_addr = m->v4;
	return sizeof *a;
}

/* Fills m's bound address from text: IPv6 if it has a colon; an IPv4 text that does not parse
 * (a host name, the wildcard) binds the wildcard, as the SIP socket does. */
static void media_bind_addr(struct media_addr *m, const char *text)
{
	snprintf(m->bind_text, sizeof m->bind_text, "%s", text);
	if (strchr(text, ':')) {
		m->family = AF_INET6;
		if (inet_pton(AF_INET6, text, &m->v6) != 1)
			m->v6 = in6addr_any;
	} else {
		m->family = AF_INET;
		if (inet_pton(AF_INET, text, &m->v4) != 1)
			m->v4.s_addr = htonl(INADDR_ANY);
	}
}

int media_create(struct sip_engine *eng)
{
	const struct sip_config *cfg = &eng->cfg;
	int lo = cfg->rtp_port_min & ~1;
	if (cfg->n_rtp_addrs == 0) {
		/* the advertise address, as before --rtp-addrs; with --rtp-advertise (1:1 NAT: the
		 * advertise address is not this host's) the SIP listen address instead */
		struct media_addr *m = &eng->media[0];
		_Static_assert(sizeof m->text == sizeof cfg->advertise, "media_addr.text");
		if (cfg->n_rtp_advertise) {
			media_bind_addr(m, cfg->host);
			snprintf(m->text, sizeof m->text, "%s", cfg->rtp_advertise[0]);
		} else {
			media_bind_addr(m, cfg->advertise);
			memcpy(m->text, cfg->advertise, sizeof m->text);
		}
		m->next_port = lo;
		eng->n_media = 1;
		return 0;
	}
	for (int i = 0; i < cfg->n_rtp_addrs; i++) {
		struct media_addr *m = &eng->media[i];
		_Static_assert(sizeof m->text >= sizeof cfg->rtp_addrs[i], "media_addr.text");
		/* sip_config_set_rtp_addrs() took numeric addresses only */
		media_bind_addr(m, cfg->rtp_addrs[i]);
		snprintf(m->text, sizeof m->text, "%s",
			 i < cfg->n_rtp_advertise ? cfg->rtp_advertise[i] : cfg->rtp_addrs[i]);
		m->next_port = lo;
		/* an address that is not this host's would fail every call: say so now */
		struct sockaddr_storage ss;
		socklen_t sl = media_sockaddr(m, 0, &ss);
		int fd = socket(m->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) != 0) {
			log_msg(LOG_ERROR, "rtp", "cannot bind RTP sockets on %s (--rtp-addrs): %s",
				m->bind_text, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	}
	eng->n_media = cfg->n_rtp_addrs;
	return 0;
}

enum bind_result { BIND_OK, BIND_FULL, BIND_FAILED, BIND_NO_SOCKET };

/* Binds a socket pair on the next free even port of m and the odd one above it (RTP and
 * RTCP, RFC 3550 11), from its cursor on. A bind that fails leaves a socket unbound, so one
 * pair of sockets serves every try. */
static enum bind_result bind_free_port(struct media_addr *m, int lo, int hi, int span,
				       struct leg *l)
{
	int fd = socket(m->family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int fd2 = fd >= 0 ? socket(m->family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) : -1;
	if (fd < 0 || fd2 < 0) {
		log_msg(LOG_ERROR, "rtp", "socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return BIND_NO_SOCKET;
	}
	enum bind_result r = BIND_FULL;
	for (int tries = 0; tries < span; tries++) {
		int port = m->next_port;
		m->next_port += 2;
		if (m->next_port > hi)
			m->next_port = lo;
		struct sockaddr_storage ss;
		socklen_t sl = media_sockaddr(m, port, &ss);
		if (bind(fd, (struct sockaddr *)&ss, sl) == 0) {
			sl = media_sockaddr(m, port + 1, &ss);
			if (bind(fd2, (struct sockaddr *)&ss, sl) == 0) {
				l->rtp_fd = fd;
				l->rtcp_fd = fd2;
				l->rtp_port = port;
				return BIND_OK;
			}
			/* the RTP socket is bound now: start over with a fresh one */
			int err = errno;
			close(fd);
			fd = socket(m->family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (fd < 0) {
				close(fd2);
				return BIND_NO_SOCKET;
			}
			errno = err;
		}
		if (errno != EADDRINUSE) {
			log_msg(LOG_ERROR, "rtp", "bind %s port %d: %s", m->bind_text, port,
				strerror(errno));
			r = BIND_FAILED;
			break;
		}
	}
	close(fd);
	close(fd2);
	return r;
}

int media_port_create(struct sip_engine *eng, struct leg *l)
{
	int lo = eng->cfg.rtp_port_min & ~1, hi = eng->cfg.rtp_port_max;
	int span = (hi - lo) / 2 + 1;
	if (eng->cfg.max_rtp_sockets > 0 &&
	    atomic_load(&eng->rtp_open) >= eng->cfg.max_rtp_sockets) {
		log_msg(LOG_ERROR, "rtp",
			"%ld calls hold RTP sockets: the descriptor limit allows no more",
			atomic_load(&eng->rtp_open));
		return -1;
	}
	for (int i = 0; i < eng->n_media; i++) {
		int ai = (eng->media_turn + i) % eng->n_media;
		struct media_addr *m = &eng->media[ai];
		if (atomic_load(&m->in_use) >= span)
			continue; /* every port of it is ours */
		enum bind_result r = bind_free_port(m, lo, hi, span, l);
		if (r == BIND_OK) {
			l->rtp_addr = ai;
			atomic_fetch_add(&m->in_use, 1);
			atomic_fetch_add(&eng->rtp_open, 1);
			eng->media_turn = (ai + 1) % eng->n_media;
			return 0;
		}
		if (r == BIND_NO_SOCKET)
			return -1;
		/* full, or this address failed: another may still take the call */
	}
	if (eng->n_media == 1)
		log_msg(LOG_ERROR, "rtp", "no free RTP port in %d-%d", lo, hi);
	else
		log_msg(LOG_ERROR, "rtp", "no free RTP port in %d-%d on any of the %d --rtp-addrs",
			lo, hi, eng->n_media);
	return -1;
}

void media_port_destroyed(struct sip_engine *eng, int addr_index)
{
	atomic_fetch_sub(&eng->media[addr_index].in_use, 1);
	atomic_fetch_sub(&eng->rtp_open, 1);
}

void media_port_destroy(struct leg *l)
{
	if (l->rtp_fd >= 0) {
		close(l->rtp_fd);
		if (l->rtcp_fd >= 0)
			close(l->rtcp_fd);
		media_port_destroyed(l->eng, l->rtp_addr);
	}
	l->rtp_fd = l->rtcp_fd = -1;
}

void media_sdp(struct sip_engine *eng, const struct leg *l, int payload_type, char *buf,
	       size_t size)
{
	const struct media_addr *m = &eng->media[l->rtp_addr];
	const char *ip = m->family == AF_INET6 ? "IP6" : "IP4";
	char fmts[16];
	char maps[128];
	/* an answer names telephone-event by the offer's payload type (RFC 3264 6.1), and
	 * leaves it out when the offer has none (an answer lists only formats offered) */
	int te = l->te_payload_type >= 96 && l->te_payload_type <= 127 ? l->te_payload_type : 101;
	char te_lines[96] = "";
	/* SRTP: an offer lists both suites under tags 1 and 2, each with its own key; an
	 * answer names the line it took, with our key */
	char crypto[2 * 100] = "";
	const char *proto = "RTP/AVP";
	if (payload_type < 0 && l->srtp_mode != SIP_SRTP_OFF) {
		static const enum media_srtp_suite offered[2] = {MEDIA_SRTP_AES128_SHA1_80,
								 MEDIA_SRTP_AES128_SHA1_32};
		size_t n = 0;
		for (unsigned i = 0; i < 2; i++) {
			struct sdes_crypto c = {.tag = i + 1, .suite = offered[i]};
			memcpy(c.key, l->srtp_offer_keys[i], sizeof c.key);
			int w = sdes_print(&c, crypto + n, sizeof crypto - n);
			explicit_bzero(&c, sizeof c);
			n += w > 0 ? (size_t)w : 0;
		}
		if (l->srtp_mode == SIP_SRTP_REQUIRED)
			proto = "RTP/SAVP";
	} else if (payload_type >= 0 && l->srtp.suite != MEDIA_SRTP_NONE) {
		struct sdes_crypto c = {.tag = l->srtp_tag, .suite = l->srtp.suite};
		memcpy(c.key, l->srtp.tx_key, sizeof c.key);
		(void)sdes_print(&c, crypto, sizeof crypto);
		explicit_bzero(&c, sizeof c);
		if (l->srtp_savp)
			proto = "RTP/SAVP";
	}
	if (l->te_payload_type != SDP_TE_NONE)
		snprintf(te_lines, sizeof te_lines,
			 "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-15\r\n", te, te);
	if (payload_type == 0 || payload_type == 8) {
		if (l->te_payload_type == SDP_TE_NONE)
			snprintf(fmts, sizeof fmts, "%d", payload_type);
		else
			snprintf(fmts, sizeof fmts, "%d %d", payload_type, te);
		snprintf(maps, sizeof maps, "a=rtpmap:%d %s/8000\r\n", payload_type,
			 payload_type == 0 ? "PCMU" : "PCMA");
	} else {
		snprintf(fmts, sizeof fmts, "0 8 %d", te);
		snprintf(maps, sizeof maps, "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n");
	}
	snprintf(buf, size,
		 "v=0\r\n"
		 "o=callplane %d 1 IN %s %s\r\n"
		 "s=callplane\r\n"
		 "c=IN %s %s\r\n"
		 "t=0 0\r\n"
		 "m=audio %d %s %s\r\n"
		 "%s"
		 "%s"
		 "%s"
		 "a=ptime:20\r\n"
		 "a=sendrecv\r\n",
		 l->rtp_port, ip, m->text, ip, m->text, l->rtp_port, proto, fmts, maps, te_lines,
		 crypto);
	explicit_bzero(crypto, sizeof crypto);
}

/* ---- the far end's SDP ------------------------------------------------------------------ */

#define SDP_TOKEN "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!#$%&'*+.^_`{|}~"

/* How many characters from p on (before end) are in set. */
static size_t span(const char *p, const char *end, const char *set)
{
	size_t n = 0;
	while (p + n < end && p[n] && strchr(set, p[n]))
		n++;
	return n;
}

/* Whether [p, end), the rest of an m= line, is media SP port ["/" integer] SP proto *(SP fmt)
 * (RFC 4566 5.14; one or more spaces where it has one, no format at all allowed). */
static bool media_line_ok(const char *p, const char *end)
{
	static const char *const parts[] = {SDP_TOKEN, " ", "0123456789"};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		size_t n = span(p, end, parts[i]);
		if (!n)
			return false;
		p += n;
	}
	if (p < end && *p == '/') {
		size_t n = span(++p, end, "0123456789");
		if (!n)
			return false;
		p += n;
	}
	size_t sp = span(p, end, " "), proto = sp ? span(p + sp, end, SDP_TOKEN "/") : 0;
	if (!proto)
		return false;
	for (p += sp + proto; p < end;) {
		sp = span(p, end, " ");
		if (!sp)
			return false;
		p += sp;
		p += span(p, end, SDP_TOKEN); /* a format, or nothing after trailing spaces */
		if (p < end && *p != ' ')
			return false;
	}
	return true;
}

/* Whether sofia-sip's SDP parser can be given sdp: every m= line as RFC 4566 writes it, up to
 * the first NUL (where that parser's copy of the text ends). sofia-sip 1.12.11 (Debian's) loops for ever, allocating at each turn,
 * on an m= line of a protocol other than RTP whose format list has a character outside its
 * token set ("m=audio 1 udp /", or a tab after a space): one small INVITE would take the SIP
 * thread and then all memory. It is fixed upstream in 1.13.7 (freeswitch/sofia-sip pull
 * request 107, "fix parse m-line"); this check keeps us safe on the older library. Lines are
 * split as that parser splits them: at any CR or LF, leading spaces and tabs skipped. */
static bool sdp_parser_safe(const char *sdp, size_t len)
{
	const char *end = sdp + strnlen(sdp, len);
	for (const char *p = sdp; p < end;) {
		const char *eol = p;
		while (eol < end && *eol != '\r' && *eol != '\n')
			eol++;
		p += span(p, eol, " \t");
		if (eol - p >= 2 && p[0] == 'm' && p[1] == '=' &&
		    !media_line_ok(p + 2 + span(p + 2, eol, " \t"), eol))
			return false;
		p = eol < end ? eol + 1 : end;
	}
	return true;
}

void media_parse_sdp(const char *sdp, size_t len, struct sdp_remote *out)
{
	memset(out, 0, sizeof *out);
	out->payload_type = -1;
	out->te_payload_type = -1;
	if (!sdp_parser_safe(sdp, len))
		return; /* as an SDP that does not parse */
	su_home_t home[1] = {SU_HOME_INIT(home)};
	sdp_parser_t *p = sdp_parse(home, sdp, (issize_t)len, 0);
	sdp_session_t *s = p ? sdp_session(p) : NULL;
	for (sdp_media_t *m = s ? s->sdp_media : NULL; m; m = m->m_next) {
		if (m->m_type != sdp_media_audio || m->m_port == 0)
			continue;
		/* The answer names the stream's formats by the stream's own numbers (RFC 3264
		 * 6.1), and we send G.711 as 0 and 8: PCMU or PCMA count only under those static
		 * numbers, telephone-event only under a dynamic one (it has no static number),
		 * and both from this one stream. */
		int pt = -1, te = -1;
		for (sdp_rtpmap_t *rm = m->m_rtpmaps; rm; rm = rm->rm_next) {
			const char *enc = rm->rm_encoding ? rm->rm_encoding : "";
			bool pcmu =
				rm->rm_pt == 0 && !strcasecmp(enc, "PCMU") && rm->rm_rate == 8000;
			bool pcma =
				rm->rm_pt == 8 && !strcasecmp(enc, "PCMA") && rm->rm_rate == 8000;
			if (pt < 0 && (pcmu || pcma))
				pt = pcmu ? 0 : 8;
			if (te < 0 && rm->rm_pt >= 96 && !strcasecmp(enc, "telephone-event") &&
			    rm->rm_rate == 8000)
				te = (int)rm->rm_pt;
		}
		if (pt < 0)
			continue;
		/* SRTP: RTP/SAVP needs a key we can use; RTP/AVP may carry one (best effort,
		 * RFC 4568 practice); any other secure profile (SAVPF, DTLS) is not ours */
		const char *proto = m->m_proto_name ? m->m_proto_name : "";
		bool savp = !strcasecmp(proto, "RTP/SAVP");
		if (!savp && strstr(proto, "SAVP"))
			continue;
		out->has_crypto = false;
		for (sdp_attribute_t *a = m->m_attributes; a && !out->has_crypto; a = a->a_next)
			if (a->a_name && !strcasecmp(a->a_name, "crypto") && a->a_value)
				out->has_crypto = sdes_parse(a->a_value, strlen(a->a_value),
							     &out->crypto) == SDES_OK;
		if (savp && !out->has_crypto)
			continue;
		out->savp = savp;
		out->payload_type = pt;
		out->te_payload_type = te < 0 ? SDP_TE_NONE : te;
		sdp_connection_t *c = m->m_connections ? m->m_connections : s->sdp_connection;
		if (c && c->c_address && m->m_port <= 65535) {
			struct sockaddr_in *a4 = (struct sockaddr_in *)&out->addr;
			struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->addr;
			if (c->c_addrtype == sdp_addr_ip4 &&
			    inet_pton(AF_INET, c->c_address, &a4->sin_addr) == 1 &&
			    a4->sin_addr.s_addr != htonl(INADDR_ANY)) {
				a4->sin_family = AF_INET;
				a4->sin_port = htons((uint16_t)m->m_port);
				out->addr_len = sizeof *a4;
			} else if (c->c_addrtype == sdp_addr_ip6 &&
				   inet_pton(AF_INET6, c->c_address, &a6->sin6_addr) == 1) {
				a6->sin6_family = AF_INET6;
				a6->sin6_port = htons((uint16_t)m->m_port);
				out->addr_len = sizeof *a6;
			}
		}
		break;
	}
	if (p)
		sdp_parser_free(p);
	su_home_deinit(home);
}

/* ---- SRTP (SDES) ----------------------------------------------------------------------- */

int media_srtp_offer(struct leg *l)
{
	if (l->srtp_mode == SIP_SRTP_OFF)
		return 0;
	return cp_random(l->srtp_offer_keys, sizeof l->srtp_offer_keys);
}

bool media_srtp_answered(struct leg *l, const struct sdp_remote *r)
{
	if (l->srtp_mode == SIP_SRTP_OFF)
		return true; /* a key we did not ask for is not used */
	static const enum media_srtp_suite by_tag[2] = {MEDIA_SRTP_AES128_SHA1_80,
							MEDIA_SRTP_AES128_SHA1_32};
	if (r->has_crypto && r->crypto.tag >= 1 && r->crypto.tag <= 2 &&
	    by_tag[r->crypto.tag - 1] == r->crypto.suite) {
		l->srtp.suite = r->crypto.suite;
		memcpy(l->srtp.tx_key, l->srtp_offer_keys[r->crypto.tag - 1], MEDIA_SRTP_KEY_LEN);
		memcpy(l->srtp.rx_key, r->crypto.key, MEDIA_SRTP_KEY_LEN);
		l->srtp_tag = r->crypto.tag;
		l->srtp_savp = r->savp;
		return true;
	}
	explicit_bzero(&l->srtp, sizeof l->srtp);
	if (l->srtp_mode == SIP_SRTP_REQUIRED) {
		l->srtp_refused = true;
		return false;
	}
	return true;
}

bool media_srtp_answer(struct leg *l, const struct sdp_remote *r)
{
	if (!r->has_crypto)
		return l->srtp_mode != SIP_SRTP_REQUIRED && l->srtp.suite == MEDIA_SRTP_NONE;
	/* a re-offer of the suite we have keeps our key: only the far end's may change */
	if (l->srtp.suite != r->crypto.suite && cp_random(l->srtp.tx_key, sizeof l->srtp.tx_key))
		return false;
	l->srtp.suite = r->crypto.suite;
	memcpy(l->srtp.rx_key, r->crypto.key, MEDIA_SRTP_KEY_LEN);
	l->srtp_tag = r->crypto.tag;
	l->srtp_savp = r->savp;
	return true;
}

void media_use_remote(struct leg *l, const struct sdp_remote *r)
{
	l->payload_type = r->payload_type;
	l->te_payload_type = r->te_payload_type;
	if (r->addr_len) {
		l->remote_rtp = r->addr;
		l->remote_rtp_len = r->addr_len;
	}
}
