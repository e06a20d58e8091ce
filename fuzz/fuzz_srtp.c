/*
 * fuzz_srtp.c - libFuzzer target: what reaches a call with SRTP (media/srtp.c, then rtp.c):
 * packets to its RTP and RTCP sockets, some forged or garbage, some protected with the far
 * end's real key, fed to one session the way the media thread feeds it, with the clock moving.
 *
 * The input is a run of records: [flags][len hi][len lo][len bytes]. flags bit 0: the bytes
 * are a plain packet the far end protects (with its key, as libsrtp's sender does) before it
 * is sent, so it authenticates and what is inside reaches rtp.c's checks; clear: the bytes go
 * to the socket as they are (a forgery, a replay, plain RTP on an SRTP call). bit 1: the RTCP
 * socket; bits 2-7: milliseconds that pass before it (x 16). Whatever the packets, nothing is
 * read or written out of bounds, and a packet that does not authenticate never reaches the
 * jitter buffer.
 *
 * Each input gets new contexts (a replay window must not carry over from one input to the
 * next), while one more session's contexts live for the whole run. Debian's libsrtp2 is built
 * on NSS, and its NSS contexts start NSS with the first and shut it down with the last (a
 * dlopen and dlclose of its soft token each time): that cost ~2.9 ms an input and held the
 * target at ~300 inputs a second. A server with calls up is in the same case.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "media/media_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct media_engine me;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	if (sec_init())
		abort();
	static struct session resident;
	static const struct media_srtp key = {.suite = MEDIA_SRTP_AES128_SHA1_80};
	resident.me = &me;
	if (sec_open(&resident, &key))
		abort();
	return 0;
}

/* Whether libsrtp's sender can be handed pkt: a whole RTP header (its CSRCs and extension
 * included) or an RTCP header; the far end's libsrtp only ever protects such packets. */
static bool protectable(const uint8_t *pkt, size_t len, bool rtcp)
{
	if (rtcp)
		return len >= 8;
	if (len < RTP_HEADER_SIZE)
		return false;
	size_t hdr = RTP_HEADER_SIZE + 4 * (size_t)(pkt[0] & 0x0F);
	if ((pkt[0] & 0x10) && hdr + 4 <= len)
		hdr += 4 + 4 * ((size_t)pkt[hdr + 2] << 8 | pkt[hdr + 3]);
	else if (pkt[0] & 0x10)
		return false;
	return hdr <= len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session s, far;
	memset(&s, 0, sizeof s);
	memset(&far, 0, sizeof far);
	s.me = far.me = &me;
	s.rtp_fd = s.rtcp_fd = -1;
	s.pt = 0;
	s.te_pt = 101;
	s.marks_tail = &s.marks;
	struct media_srtp ours = {.suite = size && (data[0] & 1) ? MEDIA_SRTP_AES128_SHA1_32
								 : MEDIA_SRTP_AES128_SHA1_80};
	for (int i = 0; i < MEDIA_SRTP_KEY_LEN; i++) {
		ours.tx_key[i] = (uint8_t)(i + 1);
		ours.rx_key[i] = (uint8_t)(0xA0 + i);
	}
	struct media_srtp theirs = {.suite = ours.suite};
	memcpy(theirs.tx_key, ours.rx_key, sizeof theirs.tx_key);
	memcpy(theirs.rx_key, ours.tx_key, sizeof theirs.rx_key);
	if (telev_alloc(&s.telev_rx, FRAME_MS) || sec_open(&s, &ours) || sec_open(&far, &theirs))
		goto out;
	jitter_init(&s.jb, 60);

	struct sa a;
	sa_set_str(&a, "192.0.2.1", 40000);
	int64_t now = 1000000;
	_Alignas(8) uint8_t pkt[RTP_PACKET_MAX + SRTP_TRAILER_ROOM];
	while (size >= 3) {
		uint8_t flags = data[0];
		size_t len = (size_t)data[1] << 8 | data[2];
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		if (len > RTP_PACKET_MAX - 64)
			len = RTP_PACKET_MAX - 64; /* room for what protecting adds */
		memcpy(pkt, data, len);
		data += len;
		size -= len;
		now += (flags >> 2) * 16;
		bool rtcp = flags & 2;
		if ((flags & 1) && protectable(pkt, len, rtcp))
			(void)sec_protect(&far, pkt, &len, rtcp);
		uint64_t in = atomic_load(&me.stats.rtp_in);
		if (rtcp)
			rtcp_input(&s, pkt, len);
		else
			rtp_input(&s, pkt, len, &a, now, now * 1000);
		if (!(flags & 1) && atomic_load(&me.stats.rtp_in) != in)
			abort(); /* bytes without the far end's key got in */
		rtp_drain(&s, now);
	}
out:
	sec_close(&s);
	sec_close(&far);
	mem_deref(s.telev_rx);
	return 0;
}
