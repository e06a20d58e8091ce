/*
 * test_media.c - RTP addresses (sip/media.c): parsing --rtp-addrs, the capacity the ports give,
 * and how calls are given an address and port: in turn over the addresses, never one port twice,
 * a full address skipped, the descriptor cap, and the SDP carrying the address really bound.
 *
 * The socket tests bind real UDP ports on 127.0.0.1 and 127.0.0.2 (Linux routes all of 127/8 to
 * loopback) in a small range no other test uses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "sip/sip_internal.h"

#define LO 39700
#define HI 39703 /* two even ports: 39700, 39702 */

/* ---- parsing ---------------------------------------------------------------------------- */

static void test_parse_valid(void **state)
{
	(void)state;
	struct sip_config cfg;
	char err[160];
	sip_config_defaults(&cfg);
	assert_int_equal(cfg.n_rtp_addrs, 0);
	assert_int_equal(sip_config_set_rtp_addrs(&cfg, "127.0.0.1,127.0.0.2", err, sizeof err), 0);
	assert_int_equal(cfg.n_rtp_addrs, 2);
	assert_string_equal(cfg.rtp_addrs[0], "127.0.0.1");
	assert_string_equal(cfg.rtp_addrs[1], "127.0.0.2");
	/* blanks around entries; IPv6 in canonical form; families mixed */
	assert_int_equal(sip_config_set_rtp_addrs(&cfg, " 10.0.0.1 ,2001:DB8:0::0:1,\t::1 ", err,
						  sizeof err),
			 0);
	assert_int_equal(cfg.n_rtp_addrs, 3);
	assert_string_equal(cfg.rtp_addrs[0], "10.0.0.1");
	assert_string_equal(cfg.rtp_addrs[1], "2001:db8::1");
	assert_string_equal(cfg.rtp_addrs[2], "::1");
	/* as many as fit */
	char list[SIP_RTP_ADDRS_MAX * 16] = "";
	size_t off = 0;
	for (int i = 0; i < SIP_RTP_ADDRS_MAX; i++)
		off += (size_t)snprintf(list + off, sizeof list - off, "%s10.1.0.%d", i ? "," : "",
					i + 1);
	assert_int_equal(sip_config_set_rtp_addrs(&cfg, list, err, sizeof err), 0);
	assert_int_equal(cfg.n_rtp_addrs, SIP_RTP_ADDRS_MAX);
	assert_string_equal(cfg.rtp_addrs[SIP_RTP_ADDRS_MAX - 1], "10.1.0.64");
}

static void check_rejected(const char *list, const char *why)
{
	struct sip_config cfg;
	char err[160] = "";
	sip_config_defaults(&cfg);
	assert_int_equal(sip_config_set_rtp_addrs(&cfg, "127.0.0.9", err, sizeof err), 0);
	if (sip_config_set_rtp_addrs(&cfg, list, err, sizeof err) != -1)
		fail_msg("'%s' accepted", list);
	if (!strstr(err, why))
		fail_msg("'%s': error '%s' does not say '%s'", list, err, why);
	/* a rejected list changes nothing */
	assert_int_equal(cfg.n_rtp_addrs, 1);
	assert_string_equal(cfg.rtp_addrs[0], "127.0.0.9");
}

static void test_parse_rejects(void **state)
{
	(void)state;
	check_rejected("", "empty");
	check_rejected(",", "empty");
	check_rejected("127.0.0.1,", "empty");
	check_rejected("127.0.0.1, ,127.0.0.2", "empty");
	check_rejected("localhost", "not an IPv4 or IPv6 address");
	check_rejected("127.0.0.1:4000", "not an IPv4 or IPv6 address");
	check_rejected("[::1]", "not an IPv4 or IPv6 address");
	check_rejected("127.0.0.256", "not an IPv4 or IPv6 address");
	check_rejected("127.1", "not an IPv4 or IPv6 address");
	check_rejected("fe80::1%eth0", "not an IPv4 or IPv6 address");
	check_rejected("127.0.0.1;127.0.0.2", "not an IPv4 or IPv6 address");
	check_rejected("0.0.0.0", "wildcard");
	check_rejected("::", "wildcard");
	check_rejected("224.0.0.1", "not a unicast address");
	check_rejected("255.255.255.255", "not a unicast address");
	check_rejected("ff02::1", "not a unicast address");
	check_rejected("::ffff:127.0.0.1", "as IPv4");
	check_rejected("fe80::1", "link-local");
	check_rejected("127.0.0.1,127.0.0.2,127.0.0.1", "127.0.0.1 is listed twice");
	check_rejected("::1,0:0::1", "::1 is listed twice");
	char list[(SIP_RTP_ADDRS_MAX + 1) * 16] = "";
	size_t off = 0;
	for (int i = 0; i <= SIP_RTP_ADDRS_MAX; i++)
		off += (size_t)snprintf(list + off, sizeof list - off, "%s10.1.0.%d", i ? "," : "",
					i + 1);
	check_rejected(list, "more than");
	char longer[200];
	memset(longer, '1', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	check_rejected(longer, "not an IPv4 or IPv6 address");
}

static void test_capacity(void **state)
{
	(void)state;
	struct sip_config cfg;
	char err[160];
	sip_config_defaults(&cfg);
	assert_int_equal(sip_config_rtp_capacity(&cfg), (32766 - 16384) / 2 + 1); /* 8192 */
	cfg.rtp_port_min = 10000;
	cfg.rtp_port_max = 65000;
	assert_int_equal(sip_config_rtp_capacity(&cfg), 27501);
	assert_int_equal(sip_config_set_rtp_addrs(&cfg, "127.0.0.1,127.0.0.2", err, sizeof err), 0);
	assert_int_equal(sip_config_rtp_capacity(&cfg), 55002);
	cfg.rtp_port_min = LO;
	cfg.rtp_port_max = HI;
	assert_int_equal(sip_config_rtp_capacity(&cfg), 4);
}

/* ---- ports and addresses ---------------------------------------------------------------- */

static struct sip_engine *engine(const char *addrs, long max_sockets)
{
	struct sip_engine *eng = calloc(1, sizeof *eng);
	assert_non_null(eng);
	sip_config_defaults(&eng->cfg);
	snprintf(eng->cfg.advertise, sizeof eng->cfg.advertise, "127.0.0.1");
	eng->cfg.rtp_port_min = LO;
	eng->cfg.rtp_port_max = HI;
	eng->cfg.max_rtp_sockets = max_sockets;
	char err[160];
	if (addrs)
		assert_int_equal(sip_config_set_rtp_addrs(&eng->cfg, addrs, err, sizeof err), 0);
	return eng;
}

static struct leg *open_leg(struct sip_engine *eng, int want_rc)
{
	struct leg *l = leg_create(eng, CALL_OUTBOUND);
	assert_non_null(l);
	assert_int_equal(media_port_create(eng, l), want_rc);
	return l;
}

/* The SDP's c= line, and that the socket behind it is bound where it says. */
static void check_leg(struct sip_engine *eng, struct leg *l, const char *addr, int port)
{
	assert_true(l->rtp_fd >= 0);
	assert_string_equal(eng->media[l->rtp_addr].text, addr);
	assert_int_equal(l->rtp_port, port);
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	assert_int_equal(getsockname(l->rtp_fd, (struct sockaddr *)&a, &al), 0);
	char text[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
	assert_string_equal(text, addr);
	assert_int_equal(ntohs(a.sin_port), port);
	char sdp[600], want[80];
	media_sdp(eng, l, 0, sdp, sizeof sdp);
	snprintf(want, sizeof want, "\r\nc=IN IP4 %s\r\n", addr);
	assert_non_null(strstr(sdp, want));
	snprintf(want, sizeof want, "o=callplane %d 1 IN IP4 %s\r\n", port, addr);
	assert_non_null(strstr(sdp, want));
	snprintf(want, sizeof want, "\r\nm=audio %d RTP/AVP 0 101\r\n", port);
	assert_non_null(strstr(sdp, want));
}

static void test_round_robin_until_full(void **state)
{
	(void)state;
	struct sip_engine *eng = engine("127.0.0.1,127.0.0.2", 0);
	assert_int_equal(media_create(eng), 0);
	assert_int_equal(eng->n_media, 2);
	struct leg *l[5];
	for (int i = 0; i < 4; i++)
		l[i] = open_leg(eng, 0);
	check_leg(eng, l[0], "127.0.0.1", LO);
	check_leg(eng, l[1], "127.0.0.2", LO);
	check_leg(eng, l[2], "127.0.0.1", LO + 2);
	check_leg(eng, l[3], "127.0.0.2", LO + 2);
	assert_int_equal(eng->rtp_open, 4);
	/* every port of both addresses is ours: the next call has none */
	l[4] = open_leg(eng, -1);
	assert_int_equal(l[4]->rtp_fd, -1);
	leg_unref(l[4]);
	/* a freed port goes to the next call, on its address, whatever the turn says */
	media_port_destroy(l[2]);
	assert_int_equal(l[2]->rtp_fd, -1);
	assert_int_equal(eng->rtp_open, 3);
	assert_int_equal(eng->media[0].in_use, 1);
	l[4] = open_leg(eng, 0);
	check_leg(eng, l[4], "127.0.0.1", LO + 2);
	for (int i = 0; i < 5; i++)
		leg_unref(l[i]);
	assert_int_equal(eng->rtp_open, 0);
	assert_int_equal(eng->media[0].in_use, 0);
	assert_int_equal(eng->media[1].in_use, 0);
	free(eng);
}

static void test_port_taken_by_another_is_skipped(void **state)
{
	(void)state;
	struct sip_engine *eng = engine("127.0.0.1,127.0.0.2", 0);
	assert_int_equal(media_create(eng), 0);
	int other = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(LO)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(bind(other, (struct sockaddr *)&a, sizeof a), 0);
	struct leg *l[4];
	for (int i = 0; i < 3; i++)
		l[i] = open_leg(eng, 0);
	check_leg(eng, l[0], "127.0.0.1", LO + 2);
	check_leg(eng, l[1], "127.0.0.2", LO);
	check_leg(eng, l[2], "127.0.0.2", LO + 2); /* 127.0.0.1 has nothing left */
	l[3] = open_leg(eng, -1);
	for (int i = 0; i < 4; i++)
		leg_unref(l[i]);
	close(other);
	free(eng);
}

static void test_descriptor_cap(void **state)
{
	(void)state;
	struct sip_engine *eng = engine("127.0.0.1,127.0.0.2", 1);
	assert_int_equal(media_create(eng), 0);
	struct leg *a = open_leg(eng, 0);
	struct leg *b = open_leg(eng, -1);
	media_port_destroy(a);
	struct leg *c = open_leg(eng, 0);
	check_leg(eng, c, "127.0.0.2", LO);
	leg_unref(a);
	leg_unref(b);
	leg_unref(c);
	free(eng);
}

static void test_default_is_the_advertise_address(void **state)
{
	(void)state;
	struct sip_engine *eng = engine(NULL, 0);
	assert_int_equal(media_create(eng), 0);
	assert_int_equal(eng->n_media, 1);
	struct leg *l = open_leg(eng, 0);
	check_leg(eng, l, "127.0.0.1", LO);
	leg_unref(l);
	free(eng);
}

/* What media_parse_sdp() reads from sdp: codec, telephone-event and the IPv4 port. */
static void check_stream(const char *sdp, int pt, int te, int port)
{
	struct sdp_remote r;
	media_parse_sdp(sdp, strlen(sdp), &r);
	assert_int_equal(r.payload_type, pt);
	assert_int_equal(r.te_payload_type, te);
	assert_int_equal(r.addr_len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((const struct sockaddr_in *)&r.addr)->sin_port), port);
}

/* The far end's SDP: codec, telephone-event and address are read once; the answer follows the
 * offer (its telephone-event type, or none when it offers none). */
static void test_answer_follows_the_offer(void **state)
{
	(void)state;
	struct sip_engine *eng = engine(NULL, 0);
	assert_int_equal(media_create(eng), 0);
	struct leg *l = open_leg(eng, 0);
	struct sdp_remote r;
	char sdp[600], want[80];

	static const char no_te[] = "v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\ns=-\r\n"
				    "c=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0\r\n"
				    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n";
	media_parse_sdp(no_te, sizeof no_te - 1, &r);
	assert_int_equal(r.payload_type, 8);
	assert_int_equal(r.te_payload_type, SDP_TE_NONE);
	assert_int_equal(r.addr_len, sizeof(struct sockaddr_in));
	const struct sockaddr_in *a = (const struct sockaddr_in *)&r.addr;
	assert_int_equal(ntohs(a->sin_port), 4000);
	assert_int_equal(ntohl(a->sin_addr.s_addr), 0x7f000009);
	media_use_remote(l, &r);
	media_sdp(eng, l, l->payload_type, sdp, sizeof sdp);
	snprintf(want, sizeof want, "\r\nm=audio %d RTP/AVP 8\r\n", LO);
	assert_non_null(strstr(sdp, want));
	assert_null(strstr(sdp, "telephone-event"));

	static const char te96[] = "v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\ns=-\r\n"
				   "c=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0 96\r\n"
				   "a=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n";
	media_parse_sdp(te96, sizeof te96 - 1, &r);
	assert_int_equal(r.payload_type, 0);
	assert_int_equal(r.te_payload_type, 96);
	assert_int_equal(r.addr_len, 0); /* 0.0.0.0: no address to send to */
	media_use_remote(l, &r);
	assert_int_equal(l->remote_rtp_len, sizeof(struct sockaddr_in)); /* the earlier one */
	media_sdp(eng, l, l->payload_type, sdp, sizeof sdp);
	snprintf(want, sizeof want, "\r\nm=audio %d RTP/AVP 0 96\r\n", LO);
	assert_non_null(strstr(sdp, want));
	assert_non_null(strstr(sdp, "\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n"));

	static const char g729[] = "v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\ns=-\r\n"
				   "c=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 4004 RTP/AVP 18\r\n"
				   "a=rtpmap:18 G729/8000\r\n";
	media_parse_sdp(g729, sizeof g729 - 1, &r);
	assert_int_equal(r.payload_type, -1);

	/* telephone-event comes from the stream answered, not from one before it without
	 * G.711 (found by fuzz/fuzz_sdp.c: the answer named a type its stream did not have) */
	static const char two[] =
		"v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\ns=-\r\n"
		"c=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 4006 RTP/AVP 111 101\r\n"
		"a=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n"
		"m=audio 4008 RTP/AVP 8\r\n";
	check_stream(two, 8, SDP_TE_NONE, 4008);

	/* G.711 under a dynamic number, telephone-event under a static one: we would answer
	 * them under other numbers than the offer's, so they do not count */
	static const char dyn[] =
		"v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\ns=-\r\n"
		"c=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 4010 RTP/AVP 97\r\n"
		"a=rtpmap:97 PCMU/8000\r\n"
		"m=audio 4012 RTP/AVP 0 13\r\na=rtpmap:13 telephone-event/8000\r\n";
	check_stream(dyn, 0, SDP_TE_NONE, 4012);

	leg_unref(l);
	free(eng);
}

/* The codec media_parse_sdp() reads from sdp, in a child that has 2 s: a parse that never
 * ends is a failure of its own instead of a test that hangs and takes all memory. */
static int parse_in_child(const char *sdp, size_t len)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sdp_remote r;
		alarm(2);
		media_parse_sdp(sdp, len, &r);
		_exit(r.payload_type + 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status))
		fail_msg("the SDP parser never returned:\n%s", sdp);
	return WEXITSTATUS(status) - 1;
}

/* sofia-sip 1.12.11 parses an m= line of a protocol other than RTP in a loop that never ends
 * (allocating at every turn) when its format list has a character outside its token set: such
 * an SDP is refused before it reaches the parser, like one that does not parse, and RFC 4566
 * m= lines of any protocol still pass (found by fuzz/fuzz_sdp.c). */
static void test_sdp_that_would_hang_the_parser(void **state)
{
	(void)state;
	static const char *const hang[] = {
		"m=audio 4002 udp \t\r\n",
		"m=audio 4002 X /\r\n",
		"m=audio 4002 X 0 :\r\n",
		"m=audio 4002 RTP/AVP 0\r\nm=image 4004 udptl t38 \t\r\n",
	};
	char sdp[300];
	for (size_t i = 0; i < sizeof hang / sizeof hang[0]; i++) {
		size_t n = (size_t)snprintf(sdp, sizeof sdp,
					    "v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\n"
					    "s=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\n%s",
					    hang[i]);
		assert_int_equal(parse_in_child(sdp, n), -1);
	}
	static const char t38[] = "v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\ns=-\r\n"
				  "c=IN IP4 127.0.0.9\r\nt=0 0\r\nm=image 4004 udptl t38\r\n"
				  "m=audio 4006/2  RTP/AVP  8 \r\n";
	check_stream(t38, 8, SDP_TE_NONE, 4006);
}

static void test_address_not_of_this_host(void **state)
{
	(void)state;
	struct sip_engine *eng = engine("127.0.0.1,192.0.2.7", 0); /* TEST-NET-1 */
	assert_int_equal(media_create(eng), -1);
	free(eng);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_round_robin_until_full),
		cmocka_unit_test(test_port_taken_by_another_is_skipped),
		cmocka_unit_test(test_descriptor_cap),
		cmocka_unit_test(test_default_is_the_advertise_address),
		cmocka_unit_test(test_answer_follows_the_offer),
		cmocka_unit_test(test_sdp_that_would_hang_the_parser),
		cmocka_unit_test(test_address_not_of_this_host),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
