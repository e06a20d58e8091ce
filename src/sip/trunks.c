/*
 * trunks.c - trunks: what one may hold (the rules the admin CLI and the loader share), and the
 * engine's table of them.
 *
 * Every text of a trunk ends up in a SIP message as it is (a Request-URI, a From, a Route, an
 * extra header), so what may be stored is decided here once, strictly: no character that
 * could end a header, open a parameter the engine did not mean, or quote its way out of a
 * name-addr. Headers the engine writes itself cannot be added: a second Via, From or Contact
 * would break the dialog, and the caller's identity has its own option (--caller-id-header).
 *
 * The table: the stored trunks, as the last load handed them over (sip_engine_set_trunks()),
 * sorted by id for a binary search per dialled call, and the default trunk made of --trunk and
 * --trunk-auth (id ""), which any tenant's agent without a trunk of its own dials through.
 * Only the engine thread reads or replaces it.
 */
#include "sip_internal.h"
#include "core/log.h"

#include <sofia-sip/msg_header.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool sip_trunk_user_valid(const char *user)
{
	size_t len = strlen(user);
	if (len == 0 || len > TRUNK_TEXT_MAX)
		return false;
	for (; *user; user++)
		if (!isalnum((unsigned char)*user) && !strchr("-_.!~*'()&=+$,;?/%", *user))
			return false;
	return true;
}

bool sip_trunk_proxy_valid(const char *uri)
{
	size_t len = strlen(uri);
	if (len <= 4 || len > TRUNK_URI_MAX || strncasecmp(uri, "sip:", 4))
		return false;
	for (; *uri; uri++)
		if ((unsigned char)*uri <= ' ' || *uri == 0x7f || strchr("<>\"", *uri))
			return false;
	return true;
}

/* Headers the engine writes, or that would change who the call is from or where it goes. */
/* as written: the names as a table */
/* clang-format off */
static const char *const reserved[] = {
	"Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type", "Content-Length",
	"Content-Encoding", "Max-Forwards", "Route", "Record-Route", "Authorization",
	"Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate", "P-Asserted-Identity",
	"P-Preferred-Identity", "Remote-Party-ID", "Allow", "Require", "Proxy-Require",
	"Supported", "User-Agent", "Reason", "Expires", "Session-Expires", "Min-SE",
	"X-Callplane-End-Reason",
};
/* clang-format on */

bool sip_srtp_parse(const char *text, enum sip_srtp *out)
{
	static const char *const names[] = {"off", "optional", "required"};
	for (int i = 0; i < 3; i++) {
		if (!strcmp(text, names[i])) {
			*out = (enum sip_srtp)i;
			return true;
		}
	}
	return false;
}

/* Writes the reason into why (when given); returns false. */
static bool refuse(char *why, size_t size, const char *reason)
{
	if (why)
		snprintf(why, size, "%s", reason);
	return false;
}

bool sip_trunk_header_valid(const char *line, char *why, size_t why_size)
{
	const char *colon = strchr(line, ':');
	size_t name_len = colon ? (size_t)(colon - line) : 0;
	if (strlen(line) > 512)
		return refuse(why, why_size, "a header line is at most 512 bytes");
	if (name_len == 0 || name_len > 64)
		return refuse(why, why_size, "a header is \"Name: value\", the name 1..64 bytes");
	for (size_t i = 0; i < name_len; i++)
		if (!isalnum((unsigned char)line[i]) && !strchr("-.!%*_+`'~", line[i]))
			return refuse(why, why_size,
				      "a header name is a token (letters, digits,"
				      " -.!%*_+`'~)");
	if (name_len == 1)
		return refuse(why, why_size,
			      "a one-letter header name is a compact form of a"
			      " header the engine writes");
	for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
		if (strlen(reserved[i]) == name_len && !strncasecmp(line, reserved[i], name_len))
			return refuse(why, why_size, "the engine writes this header itself");
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (!*v)
		return refuse(why, why_size, "a header needs a value");
	for (; *v; v++)
		if (((unsigned char)*v < ' ' && *v != '\t') || *v == 0x7f)
			return refuse(why, why_size,
				      "a header value is printable text on one line");
	return true;
}

bool sip_trunk_cidrs_parse(const char *list, struct cidr *out, int *n, char *why, size_t why_size)
{
	*n = 0;
	while (*list) {
		const char *comma = strchr(list, ',');
		size_t len = comma ? (size_t)(comma - list) : strlen(list);
		char one[CIDR_TEXT_MAX + 1];
		if (len == 0 || len >= sizeof one)
			return refuse(why, why_size, "each entry is IP or IP/BITS");
		memcpy(one, list, len);
		one[len] = '\0';
		if (*n >= SIP_TRUNK_CIDRS_MAX) {
			if (why)
				snprintf(why, why_size, "at most %d ranges", SIP_TRUNK_CIDRS_MAX);
			return false;
		}
		if (!cidr_parse(one, &out[*n])) {
			if (why)
				snprintf(why, why_size, "'%s' is not IP or IP/BITS", one);
			return false;
		}
		(*n)++;
		list += len + (comma ? 1 : 0);
		if (comma && !*list)
			return refuse(why, why_size, "each entry is IP or IP/BITS");
	}
	return true;
}

bool trunk_credentials(const char *user, const char *password, sip_t const *sip, char *cred,
		       size_t size)
{
	const char *realm = NULL;
	const char *scheme = "Digest";
	if (sip->sip_www_authenticate) {
		realm = msg_params_find(sip->sip_www_authenticate->au_params, "realm=");
		scheme = sip->sip_www_authenticate->au_scheme;
	} else if (sip->sip_proxy_authenticate) {
		realm = msg_params_find(sip->sip_proxy_authenticate->au_params, "realm=");
		scheme = sip->sip_proxy_authenticate->au_scheme;
	}
	if (!realm || !scheme)
		return false;
	int n = snprintf(cred, size, "%s:%s:%s:%s", scheme, realm, user, password);
	return n >= 0 && (size_t)n < size;
}

/* ---- the engine's table ----------------------------------------------------------------- */

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct sip_trunk *)a)->id, ((const struct sip_trunk *)b)->id);
}

int trunks_create(struct sip_engine *eng)
{
	const struct sip_config *cfg = &eng->cfg;
	struct sip_trunk *d = &eng->default_trunk;
	memset(d, 0, sizeof *d);
	if (cfg->trunk[0]) {
		/* "sip:HOST[:PORT]" as given: the Request-URI is sip:NUMBER@HOST[:PORT] */
		const char *h = strncmp(cfg->trunk, "sip:", 4) ? cfg->trunk : cfg->trunk + 4;
		snprintf(d->target, sizeof d->target, "%s", h);
		d->tls = strstr(d->target, ";transport=tls") != NULL;
		snprintf(d->user, sizeof d->user, "%s", cfg->trunk_user);
		snprintf(d->password, sizeof d->password, "%s", cfg->trunk_password);
		d->srtp = cfg->trunk_srtp;
		eng->has_default_trunk = true;
	}
	struct sip_trunk *v = NULL;
	size_t n = cfg->n_trunks;
	if (n && !(v = malloc(n * sizeof *v)))
		return -1;
	if (n)
		memcpy(v, cfg->trunks, n * sizeof *v);
	trunks_replace(eng, v, n);
	return 0;
}

void trunks_replace(struct sip_engine *eng, struct sip_trunk *v, size_t n)
{
	free(eng->trunks);
	if (n)
		qsort(v, n, sizeof *v, by_id);
	else
		free(v);
	eng->trunks = n ? v : NULL;
	eng->n_trunks = n;
	eng->cfg.trunks = NULL; /* the array it was copied from is the caller's */
	eng->cfg.n_trunks = 0;
}

void trunks_destroy(struct sip_engine *eng)
{
	free(eng->trunks);
	eng->trunks = NULL;
	eng->n_trunks = 0;
}

const struct sip_trunk *trunk_find(const struct sip_engine *eng, const char *id)
{
	if (!id[0])
		return eng->has_default_trunk ? &eng->default_trunk : NULL;
	size_t lo = 0, hi = eng->n_trunks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(id, eng->trunks[mid].id);
		if (c == 0)
			return &eng->trunks[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Whether t admits an INVITE from sa: one of its --inbound-cidr ranges holds it, or it
 * registers and sa is where its host or outbound proxy resolved. */
static bool admits(const struct sip_trunk *t, const struct sockaddr *sa)
{
	for (int i = 0; i < t->n_cidrs; i++)
		if (cidr_contains(&t->cidrs[i], sa))
			return true;
	for (int i = 0; t->do_register && i < t->n_addrs; i++)
		if (netaddr_same_ip((const struct sockaddr *)&t->addrs[i], sa))
			return true;
	return false;
}

enum sip_srtp trunks_inbound_srtp(const struct sip_engine *eng, const struct sockaddr *sa)
{
	enum sip_srtp srtp = SIP_SRTP_OFF;
	for (size_t i = 0; sa && i < eng->n_trunks; i++)
		if (eng->trunks[i].srtp > srtp && admits(&eng->trunks[i], sa))
			srtp = eng->trunks[i].srtp;
	return srtp;
}

int trunks_admit(const struct sip_engine *eng, const struct sockaddr *sa, bool any,
		 const char *ruri_user, char **tenants, bool *by_to)
{
	int n = 0;
	size_t len = 0, cap = 0;
	*tenants = NULL;
	*by_to = false;
	for (size_t i = 0; i < eng->n_trunks; i++) {
		const struct sip_trunk *t = &eng->trunks[i];
		if (!any && (!sa || !admits(t, sa)))
			continue;
		n++;
		if (t->do_register && ruri_user && !strcmp(ruri_user, t->user))
			*by_to = true;
		if (any || (*tenants && strstr(*tenants, t->tenant_id)))
			continue; /* ids are UUIDs: one found is the one */
		if (len + CP_UUID_LEN + 2 > cap) {
			cap = cap ? 2 * cap : 8 * (CP_UUID_LEN + 1);
			char *p = realloc(*tenants, cap);
			if (!p) {
				free(*tenants);
				*tenants = NULL;
				return -1;
			}
			*tenants = p;
		}
		len += (size_t)snprintf(*tenants + len, cap - len, "%s%s", len ? "," : "",
					t->tenant_id);
	}
	return n;
}
