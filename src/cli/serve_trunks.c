/*
 * serve_trunks.c - the stored trunks as the SIP engine uses them (struct sip_trunk): loaded by
 * serve before the engine starts, and again whenever the store's trunk generation moves
 * (serve's main thread polls it every second), so `trunk create` and `trunk delete` take effect
 * on a running server without a restart.
 *
 * Loading is where a trunk meets this host: its password is read from the server's own
 * environment (--password-env) or from a file (--password-file) at each load, never from the
 * store, and its host and outbound proxy are resolved (getaddrinfo) into the addresses whose
 * INVITEs count as arriving on its registration. A name that does not resolve leaves a trunk
 * without such addresses (its CIDRs still admit); a password that cannot be read leaves it
 * without credentials, with the problem logged and kept on the trunk for its registration
 * status. A stored trunk that breaks the rules of sip/trunks.c (written by hand) is skipped,
 * logged. Both run on serve's main thread, where blocking on DNS or a file delays nothing but
 * the next poll.
 */
#include "serve_trunks.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* host, in brackets when it is an IPv6 address, into buf. */
static void uri_host(const char *host, char *buf, size_t size)
{
	snprintf(buf, size, strchr(host, ':') ? "[%s]" : "%s", host);
}

/* The password of t into out (problem set when it cannot be read). */
static void read_password(const struct trunk *t, struct sip_trunk *out)
{
	if (t->password_env[0]) {
		const char *v = getenv(t->password_env);
		if (!v || !*v)
			snprintf(out->problem, sizeof out->problem,
				 "the environment variable %s is not set", t->password_env);
		else if (strlen(v) > SIP_PASSWORD_MAX)
			snprintf(out->problem, sizeof out->problem,
				 "the password in %s is longer than %d bytes", t->password_env,
				 SIP_PASSWORD_MAX);
		else
			snprintf(out->password, sizeof out->password, "%s", v);
		return;
	}
	if (!t->password_file[0])
		return;
	int fd = open(t->password_file, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, out->password, sizeof out->password) : -1;
	int err = errno;
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		snprintf(out->problem, sizeof out->problem, "cannot read the password file: %s",
			 strerror(err));
		n = 0;
	} else if ((size_t)n == sizeof out->password) {
		snprintf(out->problem, sizeof out->problem,
			 "the password file holds more than %d"
			 " bytes",
			 SIP_PASSWORD_MAX);
		n = 0;
	}
	out->password[n] = '\0';
	/* one line: its end is not part of the password */
	out->password[strcspn(out->password, "\r\n")] = '\0';
	if (!out->problem[0] && !out->password[0])
		snprintf(out->problem, sizeof out->problem, "the password file is empty");
}

/* Adds the addresses host resolves to (any port) to out->addrs. */
static void resolve(const char *host, struct sip_trunk *out)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc) {
		log_json(LOG_WARN, "trunk_unresolved",
			 json_pack("{s:s, s:s, s:s}", "trunk_id", out->id, "host", host, "error",
				   gai_strerror(rc)));
		return;
	}
	for (struct addrinfo *ai = res; ai && out->n_addrs < SIP_TRUNK_ADDRS_MAX;
	     ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof out->addrs[0])
			continue;
		memcpy(&out->addrs[out->n_addrs++], ai->ai_addr, ai->ai_addrlen);
	}
	freeaddrinfo(res);
}

/* The host of a proxy URI "sip:[user@]HOST[:PORT][;params]" into buf ("" if none). */
static void proxy_host(const char *uri, char *buf, size_t size)
{
	const char *h = uri + 4, *at = strchr(h, '@');
	if (at)
		h = at + 1;
	size_t len = h[0] == '[' ? strcspn(++h, "]") : strcspn(h, ":;>?");
	snprintf(buf, size, "%.*s", (int)len, h);
}

/* t as the engine uses it, into out; false (logged) if t breaks the rules of a trunk. */
static bool engine_trunk(const struct trunk *t, struct sip_trunk *out)
{
	char why[128] = "";
	memset(out, 0, sizeof *out);
	memcpy(out->id, t->id, sizeof out->id);
	memcpy(out->tenant_id, t->tenant_id, sizeof out->tenant_id);
	bool ok =
		netaddr_host_valid(t->host) && (!t->user[0] || sip_trunk_user_valid(t->user)) &&
		(!t->from_user[0] || sip_trunk_user_valid(t->from_user)) &&
		(!t->from_domain[0] || netaddr_host_valid(t->from_domain)) &&
		(!t->outbound_proxy[0] || sip_trunk_proxy_valid(t->outbound_proxy)) &&
		sip_trunk_cidrs_parse(t->inbound_cidrs, out->cidrs, &out->n_cidrs, why, sizeof why);
	for (const char *h = t->headers; ok && *h;) {
		size_t len = strcspn(h, "\r");
		char line[600];
		ok = len < sizeof line;
		if (ok) {
			memcpy(line, h, len);
			line[len] = '\0';
			ok = sip_trunk_header_valid(line, why, sizeof why);
		}
		h += len;
		h += !strncmp(h, "\r\n", 2) ? 2 : 0;
	}
	if (!ok) {
		log_json(LOG_ERROR, "trunk_skipped",
			 json_pack("{s:s, s:s}", "trunk_id", t->id, "why",
				   why[0] ? why : "a value breaks the rules of a trunk"));
		return false;
	}
	char host[TRUNK_HOST_MAX + 3], proxy[TRUNK_HOST_MAX + 1];
	uri_host(t->host, host, sizeof host);
	out->tcp = !strcmp(t->transport, "tcp");
	snprintf(out->target, sizeof out->target, "%s", host);
	if (t->port)
		snprintf(out->target + strlen(out->target),
			 sizeof out->target - strlen(out->target), ":%d", t->port);
	out->tls = !strcmp(t->transport, "tls");
	if (out->tcp || out->tls)
		strncat(out->target, out->tls ? ";transport=tls" : ";transport=tcp",
			sizeof out->target - strlen(out->target) - 1);
	memcpy(out->user, t->user, sizeof out->user);
	out->do_register = t->do_register;
	if (t->from_domain[0])
		uri_host(t->from_domain, out->from_domain, sizeof out->from_domain);
	snprintf(out->aor_domain, sizeof out->aor_domain, "%s",
		 out->from_domain[0] ? out->from_domain : host);
	memcpy(out->outbound_proxy, t->outbound_proxy, sizeof out->outbound_proxy);
	memcpy(out->from_user, t->from_user, sizeof out->from_user);
	out->caller_id = !strcmp(t->caller_id_header, "pai")    ? SIP_CALLER_ID_PAI
			 : !strcmp(t->caller_id_header, "rpid") ? SIP_CALLER_ID_RPID
								: SIP_CALLER_ID_NONE;
	if (!sip_srtp_parse(t->srtp, &out->srtp))
		out->srtp = SIP_SRTP_OFF; /* no column: a database before migration 11 */
	memcpy(out->headers, t->headers, sizeof out->headers);
	read_password(t, out);
	if (out->problem[0])
		log_json(LOG_ERROR, "trunk_password",
			 json_pack("{s:s, s:s}", "trunk_id", t->id, "problem", out->problem));
	resolve(t->host, out);
	if (t->outbound_proxy[0]) {
		proxy_host(t->outbound_proxy, proxy, sizeof proxy);
		if (proxy[0])
			resolve(proxy, out);
	}
	return true;
}

int serve_trunks_load(struct store *st, struct sip_trunk **out, size_t *n, int64_t *generation)
{
	struct trunk *rows = NULL;
	size_t n_rows = 0;
	*out = NULL;
	*n = 0;
	if (STORE(st, trunk_generation, generation) != STORE_OK ||
	    STORE(st, trunk_list, NULL, &rows, &n_rows) != STORE_OK) {
		log_msg(LOG_ERROR, "trunk_load", "cannot read the trunks");
		free(rows);
		return -1;
	}
	struct sip_trunk *v = n_rows ? calloc(n_rows, sizeof *v) : NULL;
	if (n_rows && !v) {
		free(rows);
		return -1;
	}
	size_t k = 0;
	for (size_t i = 0; i < n_rows; i++)
		k += engine_trunk(&rows[i], &v[k]);
	free(rows);
	*out = v;
	*n = k;
	return 0;
}
