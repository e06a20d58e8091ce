/*
 * fuzz_config.c - libFuzzer target: any bytes as the file of `callplane serve --config FILE`,
 * settled by serve_settle() (cli/serve_config.c) exactly as serve does before it starts
 * anything. The bytes are the file's contents (a memfd, opened by its /proc path as the server
 * opens a path). Whatever they are, settling reads and writes only within its buffers, frees
 * what it allocates, and either refuses with a reason or yields settings inside the documented
 * ranges: ports, thread and rate limits, RTP range and addresses, log level; and what goes
 * into SIP headers and SDP as written (the trunk, the advertised address) has no space or
 * control character.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli/serve.h"
#include "core/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	fd = memfd_create("fuzz_config", MFD_CLOEXEC);
	if (fd < 0) {
		perror("memfd_create");
		exit(1);
	}
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	return 0;
}

/* A settled address: what inet_pton takes back. */
static bool numeric_address(const char *s)
{
	struct in6_addr a;
	return inet_pton(strchr(s, ':') ? AF_INET6 : AF_INET, s, &a) == 1;
}

/* A value that goes into SIP headers and SDP as it is: no space, no control character. */
static bool wire_token(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

static void check(const struct serve_config *c, const struct serve_settings *s)
{
	if (!c->db || !c->http || !c->sip || !c->sync || !c->log_level)
		abort(); /* every defaulted option has a value */
	if (s->http_port < 0 || s->http_port > 65535 || !s->http_host[0] ||
	    strlen(s->http_host) >= sizeof s->http_host)
		abort();
	if (s->http_threads > 256 || s->rate_limit > 1000000)
		abort();
	if (s->log_level < LOG_DEBUG || s->log_level > LOG_ERROR)
		abort();
	if (s->webhooks.retry_initial_ms < 1 || s->webhooks.timeout_ms < 100 ||
	    s->webhooks.max_age_ms < 1000)
		abort();
	if (!s->with_sip)
		return;
	const struct sip_config *sc = &s->sip;
	if (sc->port < 0 || sc->port > 65535 || !sc->host[0])
		abort();
	if (sc->rtp_port_min < 1024 || sc->rtp_port_max > 65535 ||
	    sc->rtp_port_min >= sc->rtp_port_max)
		abort();
	if (sc->ring_timeout_s < 1 || sc->hangup_wait_ms < 1 || sc->hangup_rate < 0 ||
	    sc->inbound_rate < 0 || sc->inbound_rate > 1000000)
		abort();
	if (sc->n_rtp_addrs < 0 || sc->n_rtp_addrs > SIP_RTP_ADDRS_MAX)
		abort();
	for (int i = 0; i < sc->n_rtp_addrs; i++)
		if (!numeric_address(sc->rtp_addrs[i]))
			abort();
	if (sc->trunk[0] && strncmp(sc->trunk, "sip:", 4))
		abort();
	if (!wire_token(sc->trunk) || !wire_token(sc->advertise))
		abort(); /* they are written into SIP headers and SDP */
	if (sip_config_rtp_capacity(sc) < 1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ftruncate(fd, 0) || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	struct serve_config c = {.config = path};
	struct serve_settings s;
	json_t *holder = NULL;
	char why[512] = "";
	if (serve_settle(&c, &holder, &s, why, sizeof why) == 0)
		check(&c, &s);
	else if (!why[0] || strlen(why) >= sizeof why)
		abort(); /* a refusal always says why */
	json_decref(holder);
	return 0;
}
