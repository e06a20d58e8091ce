/*
 * test_webhook_target.c - webhook/target.c: which addresses count as private (every range of
 * the file's table at its first and last address, and the public neighbours on each side), and
 * webhook_target_check() on URLs whose host needs no DNS (literals, and localhost from
 * /etc/hosts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/log.h"
#include "webhook/webhook.h"

struct row {
	const char *addr;
	bool private;
};

static const struct row table[] = {
	/* 0.0.0.0/8: this network, the unspecified address */
	{"0.0.0.0", true},
	{"0.255.255.255", true},
	{"1.0.0.0", false},
	/* 10.0.0.0/8 */
	{"9.255.255.255", false},
	{"10.0.0.0", true},
	{"10.255.255.255", true},
	{"11.0.0.0", false},
	/* 100.64.0.0/10: carrier-grade NAT */
	{"100.63.255.255", false},
	{"100.64.0.0", true},
	{"100.127.255.255", true},
	{"100.128.0.0", false},
	/* 127.0.0.0/8 */
	{"126.255.255.255", false},
	{"127.0.0.0", true},
	{"127.0.0.1", true},
	{"127.255.255.255", true},
	{"128.0.0.0", false},
	/* 169.254.0.0/16: link-local, the cloud metadata service */
	{"169.253.255.255", false},
	{"169.254.0.0", true},
	{"169.254.169.254", true},
	{"169.254.255.255", true},
	{"169.255.0.0", false},
	/* 172.16.0.0/12 */
	{"172.15.255.255", false},
	{"172.16.0.0", true},
	{"172.31.255.255", true},
	{"172.32.0.0", false},
	/* 192.168.0.0/16 */
	{"192.167.255.255", false},
	{"192.168.0.0", true},
	{"192.168.255.255", true},
	{"192.169.0.0", false},
	/* 224.0.0.0/4 multicast, 240.0.0.0/4 reserved with the broadcast address */
	{"223.255.255.255", false},
	{"224.0.0.0", true},
	{"239.255.255.255", true},
	{"240.0.0.0", true},
	{"255.255.255.255", true},
	/* public, for contrast */
	{"8.8.8.8", false},
	{"93.184.216.34", false},
	{"203.0.113.7", false},

	/* ::/96: unspecified, loopback, IPv4-compatible */
	{"::", true},
	{"::1", true},
	{"::2", true},
	{"::ffff:ffff", true},
	{"::1:0:0", false},
	/* IPv4-mapped: judged as the IPv4 address */
	{"::ffff:127.0.0.1", true},
	{"::ffff:10.1.2.3", true},
	{"::ffff:169.254.169.254", true},
	{"::ffff:0.0.0.0", true},
	{"::ffff:100.64.0.1", true},
	{"::ffff:8.8.8.8", false},
	{"::fffe:127.0.0.1", false},
	/* NAT64 64:ff9b::/96: judged as the IPv4 address */
	{"64:ff9b::127.0.0.1", true},
	{"64:ff9b::192.168.1.1", true},
	{"64:ff9b::8.8.8.8", false},
	{"64:ff9b:1::127.0.0.1", false},
	/* fc00::/7 unique local */
	{"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
	{"fc00::", true},
	{"fd12:3456::1", true},
	{"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	{"fe00::", false},
	/* fe80::/10 link-local, fec0::/10 site-local */
	{"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
	{"fe80::", true},
	{"fe80::1", true},
	{"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	{"fec0::", true},
	{"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	/* ff00::/8 multicast */
	{"ff00::", true},
	{"ff02::1", true},
	{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	/* public, for contrast */
	{"2001:4860:4860::8888", false},
	{"2606:4700::1111", false},
	{"2001:db8::1", false},
};

/* addr as the socket address libcurl or getaddrinfo() would give */
static void sockaddr_of(const char *addr, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(443);
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(443);
}

static void test_table(void **state)
{
	(void)state;
	int wrong = 0;
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		struct sockaddr_storage ss;
		sockaddr_of(table[i].addr, &ss);
		bool got = webhook_addr_private((struct sockaddr *)&ss);
		if (got != table[i].private) {
			fprintf(stderr, "%s: private %d, expected %d\n", table[i].addr, got,
				table[i].private);
			wrong++;
		}
	}
	assert_int_equal(wrong, 0);
}

static void test_other_family_is_private(void **state)
{
	(void)state;
	struct sockaddr_un un = {.sun_family = AF_UNIX, .sun_path = "/tmp/x"};
	assert_true(webhook_addr_private((struct sockaddr *)&un));
}

static void test_addr_text(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	char buf[64];
	sockaddr_of("169.254.169.254", &ss);
	webhook_addr_text((struct sockaddr *)&ss, buf, sizeof buf);
	assert_string_equal(buf, "169.254.169.254");
	sockaddr_of("::ffff:127.0.0.1", &ss);
	webhook_addr_text((struct sockaddr *)&ss, buf, sizeof buf);
	assert_string_equal(buf, "::ffff:127.0.0.1");
}

static void refused(const char *url, const char *message)
{
	struct cp_error err = {0};
	assert_int_equal(webhook_target_check(url, false, &err), CP_ERR_WEBHOOK_TARGET);
	assert_int_equal(err.code, CP_ERR_WEBHOOK_TARGET);
	assert_string_equal(err.message, message);
	/* the switch lets it through */
	memset(&err, 0, sizeof err);
	assert_int_equal(webhook_target_check(url, true, &err), CP_OK);
}

#define PRIVATE_TAIL                                                       \
	", a private address; a webhook must resolve to a public address " \
	"(serve --webhook-allow-private allows private ones)"

static void test_check_refuses_private_literals_and_localhost(void **state)
{
	(void)state;
	refused("http://127.0.0.1:8080/hook",
		"url host 127.0.0.1 resolves to 127.0.0.1" PRIVATE_TAIL);
	refused("https://10.1.2.3/x", "url host 10.1.2.3 resolves to 10.1.2.3" PRIVATE_TAIL);
	refused("http://[::1]:9/", "url host ::1 resolves to ::1" PRIVATE_TAIL);
	refused("http://169.254.169.254/latest/meta-data/",
		"url host 169.254.169.254 resolves to 169.254.169.254" PRIVATE_TAIL);
	refused("http://[::ffff:127.0.0.1]/",
		"url host ::ffff:127.0.0.1 resolves to ::ffff:127.0.0.1" PRIVATE_TAIL);
	refused("http://localhost:1/", "url host localhost resolves to 127.0.0.1" PRIVATE_TAIL);
	/* numeric forms libcurl reads as 127.0.0.1 */
	refused("http://2130706433/", "url host 127.0.0.1 resolves to 127.0.0.1" PRIVATE_TAIL);
	refused("http://0x7f.1/", "url host 127.0.0.1 resolves to 127.0.0.1" PRIVATE_TAIL);
	refused("HTTP://0.0.0.0/", "url host 0.0.0.0 resolves to 0.0.0.0" PRIVATE_TAIL);
}

static void test_check_accepts_public_literals(void **state)
{
	(void)state;
	struct cp_error err = {0};
	assert_int_equal(webhook_target_check("https://93.184.216.34/hook", false, &err), CP_OK);
	assert_int_equal(webhook_target_check("http://[2606:4700::1111]:8443/h?x=1", false, &err),
			 CP_OK);
}

static void test_check_refuses_other_schemes(void **state)
{
	(void)state;
	static const char *const bad[] = {"ftp://93.184.216.34/x",
					  "file:///etc/passwd",
					  "gopher://93.184.216.34/",
					  "93.184.216.34/hook",
					  "http://",
					  "http://:80/",
					  "ws://93.184.216.34/"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		for (int allow = 0; allow < 2; allow++) {
			struct cp_error err = {0};
			assert_int_equal(webhook_target_check(bad[i], allow, &err), CP_ERR_INVALID);
			assert_string_equal(err.message,
					    "url must be an http:// or https:// URL of at "
					    "most 1024 bytes");
		}
	}
}

int main(void)
{
	log_set_level(LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_other_family_is_private),
		cmocka_unit_test(test_addr_text),
		cmocka_unit_test(test_check_refuses_private_literals_and_localhost),
		cmocka_unit_test(test_check_accepts_public_literals),
		cmocka_unit_test(test_check_refuses_other_schemes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
