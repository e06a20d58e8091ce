/*
 * fuzz_rtp.c - libFuzzer target: what a far end (or anyone who finds the port) can send to a
 * call's RTP and RTCP sockets (media/rtp.c: rtp_input, rtcp_input), fed to one session the way
 * the media thread feeds it, packet after packet, with the clock moving.
 *
 * The input is a run of records: [flags][len hi][len lo][len bytes]. flags bit 0: the packet
 * comes from a second address (a third party, or the far end after a NAT rebinding); bit 1:
 * it goes to the RTCP socket; bits 2-7: milliseconds that pass before it (x 16). Whatever the
 * packets, nothing is read or written out of bounds and the jitter buffer never hands out a
 * frame longer than it takes.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "media/media_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR); /* a log line per input would be most of the time spent */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct media_engine me;
	struct session s;
	memset(&s, 0, sizeof s);
	s.me = &me;
	s.rtp_fd = s.rtcp_fd = -1;
	s.pt = 0;
	s.te_pt = 101;
	s.marks_tail = &s.marks;
	if (telev_alloc(&s.telev_rx, FRAME_MS))
		return 0;
	jitter_init(&s.jb, 60);

	struct sa a, b;
	sa_set_str(&a, "192.0.2.1", 40000);
	sa_set_str(&b, "198.51.100.7", 50000);
	int64_t now = 1000000;
	uint8_t pkt[RTP_PACKET_MAX];
	while (size >= 3) {
		uint8_t flags = data[0];
		size_t len = (size_t)data[1] << 8 | data[2];
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		if (len > sizeof pkt)
			len = sizeof pkt;
		memcpy(pkt, data, len);
		data += len;
		size -= len;
		now += (flags >> 2) * 16;
		if (flags & 2)
			rtcp_input(&s, pkt, len);
		else
			rtp_input(&s, pkt, len, (flags & 1) ? &b : &a, now, now * 1000);
		rtp_drain(&s, now);
	}
	mem_deref(s.telev_rx);
	return 0;
}
