/*
 * media.c - the media side of a call as far as signalling needs it: a real RTP port for each
 * call, and the SDP that offers or answers it.
 *
 * Each call binds one UDP socket on an even port from the configured range and keeps it for
 * its lifetime, so the port we put in SDP is really ours and never handed to two calls. No
 * media flows yet; the socket is where an RTP stack will read. Codecs: G.711 (PCMU 0, PCMA 8)
 * plus telephone-event; an offer without PCMU or PCMA is refused (488).
 */
#include "sip_internal.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sofia-sip/sdp.h>

int media_open(struct sip_engine *eng, struct leg *l)
{
	int lo = eng->cfg.rtp_port_min & ~1, hi = eng->cfg.rtp_port_max;
	int span = (hi - lo) / 2 + 1;
	bool v6 = strchr(eng->cfg.advertise, ':') != NULL;
	for (int tries = 0; tries < span; tries++) {
		int port = eng->rtp_next;
		eng->rtp_next += 2;
		if (eng->rtp_next > hi)
			eng->rtp_next = lo;
		int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			log_msg(LOG_ERROR, "rtp", "socket: %s", strerror(errno));
			return -1;
		}
		int rc;
		if (v6) {
			struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
			inet_pton(AF_INET6, eng->cfg.advertise, &a.sin6_addr);
			rc = bind(fd, (struct sockaddr *)&a, sizeof a);
		} else {
			struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
			if (inet_pton(AF_INET, eng->cfg.advertise, &a.sin_addr) != 1)
				a.sin_addr.s_addr = htonl(INADDR_ANY);
			rc = bind(fd, (struct sockaddr *)&a, sizeof a);
		}
		if (rc == 0) {
			l->rtp_fd = fd;
			l->rtp_port = port;
			return 0;
		}
		close(fd);
		if (errno != EADDRINUSE) {
			log_msg(LOG_ERROR, "rtp", "bind port %d: %s", port, strerror(errno));
			return -1;
		}
	}
	log_msg(LOG_ERROR, "rtp", "no free RTP port in %d-%d", lo, hi);
	return -1;
}

void media_close(struct leg *l)
{
	if (l->rtp_fd >= 0)
		close(l->rtp_fd);
	l->rtp_fd = -1;
}

void media_sdp(struct sip_engine *eng, const struct leg *l, int payload_type, char *buf,
	       size_t size)
{
	bool v6 = strchr(eng->cfg.advertise, ':') != NULL;
	const char *ip = v6 ? "IP6" : "IP4";
	char fmts[16];
	char maps[128];
	if (payload_type == 0 || payload_type == 8) {
		snprintf(fmts, sizeof fmts, "%d 101", payload_type);
		snprintf(maps, sizeof maps, "a=rtpmap:%d %s/8000\r\n", payload_type,
			 payload_type == 0 ? "PCMU" : "PCMA");
	} else {
		snprintf(fmts, sizeof fmts, "0 8 101");
		snprintf(maps, sizeof maps, "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n");
	}
	snprintf(buf, size,
		 "v=0\r\n"
		 "o=callplane %d 1 IN %s %s\r\n"
		 "s=callplane\r\n"
		 "c=IN %s %s\r\n"
		 "t=0 0\r\n"
		 "m=audio %d RTP/AVP %s\r\n"
		 "%s"
		 "a=rtpmap:101 telephone-event/8000\r\n"
		 "a=fmtp:101 0-15\r\n"
		 "a=ptime:20\r\n"
		 "a=sendrecv\r\n",
		 l->rtp_port, ip, eng->cfg.advertise, ip, eng->cfg.advertise, l->rtp_port, fmts,
		 maps);
}

int media_pick_codec(const char *sdp, size_t len)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	int pick = -1;
	sdp_parser_t *p = sdp_parse(home, sdp, (issize_t)len, 0);
	sdp_session_t *s = p ? sdp_session(p) : NULL;
	for (sdp_media_t *m = s ? s->sdp_media : NULL; m && pick < 0; m = m->m_next) {
		if (m->m_type != sdp_media_audio || m->m_port == 0)
			continue;
		for (sdp_rtpmap_t *rm = m->m_rtpmaps; rm; rm = rm->rm_next) {
			if (rm->rm_pt == 0 || (rm->rm_encoding && !strcasecmp(rm->rm_encoding, "PCMU"))) {
				pick = 0;
				break;
			}
			if (rm->rm_pt == 8 || (rm->rm_encoding && !strcasecmp(rm->rm_encoding, "PCMA"))) {
				pick = 8;
				break;
			}
		}
	}
	if (p)
		sdp_parser_free(p);
	su_home_deinit(home);
	return pick;
}
