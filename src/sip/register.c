/*
 * register.c - keeping trunks registered (REGISTER, RFC 3261 10), and saying how it goes.
 *
 * One registration per stored trunk with --register: a nua handle of its own (its magic NULL:
 * it has no leg; events find it by handle), REGISTER of the trunk's address of record
 * (sip:USER@DOMAIN) with our Contact (sip:USER@ADVERTISE:PORT, the Request-URI of the INVITEs
 * the registrar forwards) and Expires 3600, sent to the trunk's host (through its outbound
 * proxy when it has one). The registrar may grant less. nua refreshes the registration
 * itself before it expires (sofia's nua_dialog_usage_set_refresh(): between a quarter and
 * three quarters of the granted time, or 30 to 60 s before the end when 90 s < granted < 5
 * min) and answers the registrar's later challenges from the credentials it holds.
 *
 * Challenges: a 401 (the registrar's) and a 407 (a proxy's on the way) are each answered once
 * per attempt with the trunk's credentials; the same challenge again means they are wrong
 * (nua forgets them), and the attempt has failed.
 *
 * Failure and back-off: an attempt that fails (wrong credentials, any final answer >= 300, a
 * refresh refused, no answer, no connection: a 503 nta made itself, whose reason says so)
 * destroys the handle and tries again with a new one after a back-off: RETRY_FIRST_S, doubled
 * per failure up to RETRY_MAX_S, each wait drawn within +-20 % so that many trunks failing
 * together (a registrar restarting) do not come back in step. A wrong password costs a REGISTER pair per back-off, never a tight loop; a success
 * resets it. The waits are kept as deadlines on the registrations, served by one engine
 * timer ticking every second while any registration waits.
 *
 * Status: each step is posted to the call service (call_service_post_trunk_status: a
 * trunk_status row, which `trunk list` shows, and a trunk.registration event when a
 * registration is gained, lost or regained) and logged (sip_registration): registering,
 * registered (with when the registrar forgets it), failed (with the answer and why),
 * unregistered (the trunk was deleted or changed, or the server stops).
 *
 * Reload (register_reconcile, before the trunk table is replaced): a trunk deleted, or whose
 * registration settings changed, is unregistered (an un-REGISTER; its handle is destroyed at
 * the answer) and, if it is still there, registered again; a trunk added with --register
 * starts registering. Shutdown: nua_shutdown() sends the un-REGISTERs of live registrations
 * itself, and each answer reports its registration unregistered; register_stop() reports what
 * is left (a registration waiting to retry, an un-REGISTER nobody answered) and frees it all.
 *
 * Layering: engine.c calls this file (nua_r_register, nua_r_unregister, reloads, stop); it
 * calls trunks.c below it (credentials), the call service, and render/rows.c for the event's
 * data (the status as `trunk list` shows it), never a file above.
 */
#include "sip_internal.h"
#include "core/log.h"
#include "render/rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGISTER_EXPIRES "3600"
#define RETRY_FIRST_S 10
#define RETRY_MAX_S 600

/* One trunk's registration. */
struct registration {
	struct registration *next;
	struct sip_trunk trunk; /* what it registers, as loaded */
	nua_handle_t *nh;       /* NULL while it waits to try again */
	unsigned answered;      /* challenges answered in this attempt: 1 a 401's,
					      * 2 a 407's */
	bool up;                /* the registrar holds our contact */
	bool leaving;           /* unregistering: dropped at the answer */
	bool counted_up;        /* counted in metrics_trunks_registered() */
	bool nat_said;          /* sip_nat_detected logged (nat_check) */
	int backoff_s;          /* the wait after the next failure */
	int64_t retry_at_us;    /* 0 = not waiting */
};

/* Posts and logs r's status. */
static void report(struct sip_engine *eng, struct registration *r, const char *status,
		   int sip_status, const char *reason, int expires_s)
{
	struct trunk_status s = {0};
	memcpy(s.trunk_id, r->trunk.id, sizeof s.trunk_id);
	memcpy(s.tenant_id, r->trunk.tenant_id, sizeof s.tenant_id);
	snprintf(s.status, sizeof s.status, "%s", status);
	s.sip_status = sip_status;
	snprintf(s.reason, sizeof s.reason, "%s", reason ? reason : "");
	s.updated_at = cp_now_ms();
	s.expires_at = expires_s > 0 ? s.updated_at + (int64_t)expires_s * 1000 : 0;
	/* the event's data, should this status make one: the status as trunk list shows it */
	json_t *o = trunk_status_to_json(&s, true);
	char *data = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (data)
		call_service_post_trunk_status(eng->svc, &s, data);
	else
		log_msg(LOG_ERROR, "trunk_status_lost", "out of memory for trunk %s", r->trunk.id);
	free(data);
	json_t *f = json_pack("{s:s, s:s, s:s}", "trunk_id", r->trunk.id, "status", status,
			      "registrar", r->trunk.target);
	if (sip_status)
		json_object_set_new(f, "sip_status", json_integer(sip_status));
	if (reason && *reason)
		json_object_set_new(f, "reason", json_string(reason));
	if (expires_s > 0)
		json_object_set_new(f, "expires_s", json_integer(expires_s));
	log_json(strcmp(status, "failed") ? LOG_INFO : LOG_WARN, "sip_registration", f);
	metrics_trunk_registration(status);
	bool up = !strcmp(status, "registered");
	if (up != r->counted_up) {
		metrics_trunks_registered(up ? 1 : -1);
		r->counted_up = up;
	}
}

static void failed(struct sip_engine *eng, struct registration *r, int sip_status,
		   const char *reason);

/* Starts an attempt: a new handle and its REGISTER. */
static void attempt(struct sip_engine *eng, struct registration *r)
{
	const struct sip_trunk *t = &r->trunk;
	char aor[TRUNK_TEXT_MAX + TRUNK_HOST_MAX + 16], contact[TRUNK_TEXT_MAX + 200],
		registrar[sizeof t->target + 8];
	bool v6 = strchr(eng->cfg.advertise, ':') != NULL;
	snprintf(aor, sizeof aor, "<sip:%s@%s>", t->user, t->aor_domain);
	/* over TLS, the contact is our TLS listener: calls to it come over TLS too */
	snprintf(contact, sizeof contact, v6 ? "<sip:%s@[%s]:%d%s>" : "<sip:%s@%s:%d%s>", t->user,
		 eng->cfg.advertise, t->tls ? eng->cfg.tls_port : eng->cfg.port,
		 t->tls   ? ";transport=tls"
		 : t->tcp ? ";transport=tcp"
			  : "");
	snprintf(registrar, sizeof registrar, "sip:%s", t->target);
	r->retry_at_us = 0;
	r->answered = 0;
	r->up = false;
	if (t->tls && !eng->cfg.tls_port) {
		failed(eng, r, 0, "the trunk is over TLS and serve has no --sip-tls");
		return;
	}
	r->nh = nua_handle(eng->nua, NULL, SIPTAG_TO_STR(aor), SIPTAG_FROM_STR(aor), TAG_END());
	if (!r->nh) {
		failed(eng, r, 0, "out of memory");
		return;
	}
	/* no RFC 5626 outbound machinery (NAT probing, keep-alive OPTIONS to ourselves): the
	 * Contact is ours as given */
	nua_set_hparams(r->nh, NUTAG_OUTBOUND(NULL),
			TAG_IF(t->outbound_proxy[0], NUTAG_PROXY(t->outbound_proxy)), TAG_END());
	nua_register(r->nh, NUTAG_REGISTRAR((url_string_t *)registrar), SIPTAG_CONTACT_STR(contact),
		     SIPTAG_EXPIRES_STR(REGISTER_EXPIRES), TAG_END());
	report(eng, r, "registering", 0, t->problem[0] ? t->problem : NULL, 0);
}

static void tick(struct sip_engine *eng, su_timer_t *t, struct leg *unused);

/* Keeps the tick running while a registration waits to try again. */
static void arm_tick(struct sip_engine *eng)
{
	if (!eng->reg_timer)
		eng->reg_timer = su_timer_create(su_root_task(eng->root), 1000);
	if (eng->reg_timer && !eng->reg_timer_armed) {
		eng->reg_timer_armed = true;
		su_timer_set(eng->reg_timer, tick, NULL);
	}
}

/* The attempt failed: its handle goes, the next attempt waits for the back-off. */
static void failed(struct sip_engine *eng, struct registration *r, int sip_status,
		   const char *reason)
{
	if (r->nh) {
		nua_handle_destroy(r->nh);
		r->nh = NULL;
	}
	r->up = false;
	report(eng, r, "failed", sip_status, reason, 0);
	/* +-20 %: a draw in [0.8, 1.2] of the back-off */
	uint32_t rnd = 0;
	if (cp_random(&rnd, sizeof rnd))
		rnd = 1u << 31;
	int64_t wait_us = (int64_t)r->backoff_s * 1000000 * (800 + (int64_t)(rnd % 401)) / 1000;
	r->retry_at_us = cp_mono_us() + wait_us;
	r->backoff_s = r->backoff_s * 2 > RETRY_MAX_S ? RETRY_MAX_S : r->backoff_s * 2;
	arm_tick(eng);
}

/* The tick: every registration whose back-off is over tries again. */
static void tick(struct sip_engine *eng, su_timer_t *t, struct leg *unused)
{
	(void)t;
	(void)unused;
	eng->reg_timer_armed = false;
	int64_t now = cp_mono_us();
	bool waiting = false;
	for (struct registration *r = eng->regs; r; r = r->next) {
		if (!r->retry_at_us || r->leaving)
			continue;
		if (r->retry_at_us <= now && !eng->stopping)
			attempt(eng, r);
		else
			waiting = true;
	}
	if (waiting)
		arm_tick(eng);
}

static struct registration *by_handle(struct sip_engine *eng, nua_handle_t *nh)
{
	for (struct registration *r = eng->regs; r; r = r->next)
		if (r->nh == nh)
			return r;
	return NULL;
}

bool register_owns(struct sip_engine *eng, nua_handle_t *nh)
{
	return nh && by_handle(eng, nh) != NULL;
}

/* Takes r out of the list and frees it (its handle already gone). */
static void forget(struct sip_engine *eng, struct registration *r)
{
	for (struct registration **p = &eng->regs; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			break;
		}
	}
	free(r);
}

/* Whether host (a URL's, IPv6 in brackets) is our advertise address. */
static bool ours(const struct sip_engine *eng, const char *host)
{
	size_t len = strlen(eng->cfg.advertise);
	if (host[0] == '[')
		return strlen(host) == len + 2 && !strncmp(host + 1, eng->cfg.advertise, len);
	return !strcmp(host, eng->cfg.advertise);
}

/* How long the registrar keeps our contact, from its 2xx: the Contact that is ours (its
 * expires parameter), else the Expires header, else what we asked. */
static int granted_expires(struct sip_engine *eng, const struct registration *r, sip_t const *sip)
{
	for (sip_contact_t const *m = sip ? sip->sip_contact : NULL; m; m = m->m_next) {
		if (!m->m_url->url_user || strcmp(m->m_url->url_user, r->trunk.user) ||
		    !m->m_url->url_host || !ours(eng, m->m_url->url_host) || !m->m_expires)
			continue;
		return atoi(m->m_expires);
	}
	if (sip && sip->sip_expires)
		return (int)sip->sip_expires->ex_delta;
	return atoi(REGISTER_EXPIRES);
}

/* RFC 3581: the registrar writes where our REGISTER came from into its Via (received, rport).
 * When that is not the address and port our Contact names, we sit behind a NAT the
 * configuration does not know of, and calls routed to that Contact will not reach us: said
 * once per registration, with the address to give --sip-advertise. The Contact stays as
 * configured (a NAT that maps ports per destination would make any other guess wrong). */
static void nat_check(struct sip_engine *eng, struct registration *r, sip_t const *sip)
{
	sip_via_t const *v = sip ? sip->sip_via : NULL;
	if (r->nat_said || !v || !v->v_host)
		return;
	char port[16];
	snprintf(port, sizeof port, "%d", eng->cfg.port);
	/* received only when the address differs from the Via's, rport with a value only when
	 * we asked for it (we do) */
	const char *received = v->v_received && v->v_received[0] ? v->v_received : v->v_host;
	const char *rport = v->v_rport && v->v_rport[0] ? v->v_rport : port;
	if (ours(eng, received) && !strcmp(rport, port))
		return;
	r->nat_said = true;
	log_json(LOG_WARN, "sip_nat_detected",
		 json_pack("{s:s, s:s, s:s, s:i, s:s}", "trunk_id", r->trunk.id, "received",
			   received, "rport", rport, "contact_port", eng->cfg.port, "hint",
			   "the registrar sees us at another address than Contact names: behind a "
			   "1:1 NAT give --sip-advertise (and --rtp-advertise) that address"));
}

void register_on_response(struct sip_engine *eng, nua_handle_t *nh, nua_event_t event, int status,
			  char const *phrase, sip_t const *sip)
{
	struct registration *r = by_handle(eng, nh);
	if (!r || status < 200)
		return; /* provisional, or a restart nua makes itself (cached credentials) */
	if (event == nua_r_unregister || r->leaving) {
		/* ours (reported when it began), or nua's at shutdown */
		if (!r->leaving)
			report(eng, r, "unregistered", status, NULL, 0);
		nua_handle_destroy(r->nh);
		r->nh = NULL;
		forget(eng, r);
		return;
	}
	if (status < 300) {
		nat_check(eng, r, sip);
		r->up = true;
		r->backoff_s = RETRY_FIRST_S;
		report(eng, r, "registered", status, NULL, granted_expires(eng, r, sip));
		return;
	}
	char cred[TRUNK_TEXT_MAX + SIP_PASSWORD_MAX + 300];
	unsigned bit = status == 401 ? 1 : status == 407 ? 2 : 0;
	bool again = bit && (r->answered & bit);
	if (bit && !again && r->trunk.user[0] && r->trunk.password[0] && sip &&
	    trunk_credentials(r->trunk.user, r->trunk.password, sip, cred, sizeof cred)) {
		r->answered |= bit;
		nua_authenticate(nh, NUTAG_AUTH(cred), TAG_END());
		return;
	}
	const char *why = phrase;
	if (sip_not_reached(status, sip))
		why = "the registrar could not be reached (no connection, a TLS certificate "
		      "refused, or a name that did not resolve)";
	else if (bit && r->trunk.problem[0])
		why = r->trunk.problem; /* challenged, and we have no password to give */
	else if (again)
		why = "the credentials were refused";
	failed(eng, r, status, why);
}

/* Whether a and b register the same way (else a change means registering again). */
static bool same_registration(const struct sip_trunk *a, const struct sip_trunk *b)
{
	return a->do_register == b->do_register && a->tcp == b->tcp && a->tls == b->tls &&
	       !strcmp(a->tenant_id, b->tenant_id) && !strcmp(a->target, b->target) &&
	       !strcmp(a->user, b->user) && !strcmp(a->password, b->password) &&
	       !strcmp(a->aor_domain, b->aor_domain) &&
	       !strcmp(a->outbound_proxy, b->outbound_proxy);
}

/* Ends r: an un-REGISTER if the registrar holds our contact (r goes at its answer), else at
 * once. */
static void leave(struct sip_engine *eng, struct registration *r)
{
	report(eng, r, "unregistered", 0, NULL, 0);
	if (r->nh && r->up) {
		r->leaving = true;
		r->retry_at_us = 0;
		nua_unregister(r->nh, TAG_END());
		return;
	}
	if (r->nh)
		nua_handle_destroy(r->nh);
	forget(eng, r);
}

static const struct sip_trunk *find_in(const struct sip_trunk *v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].id, id))
			return &v[i];
	return NULL;
}

void register_reconcile(struct sip_engine *eng, const struct sip_trunk *v, size_t n)
{
	struct registration *next;
	for (struct registration *r = eng->regs; r; r = next) {
		next = r->next;
		if (r->leaving)
			continue;
		const struct sip_trunk *t = find_in(v, n, r->trunk.id);
		if (t && same_registration(&r->trunk, t)) {
			r->trunk = *t; /* the rest may change freely */
			continue;
		}
		leave(eng, r);
	}
	for (size_t i = 0; i < n && !eng->stopping; i++) {
		if (!v[i].do_register || !v[i].user[0])
			continue;
		bool have = false;
		for (struct registration *r = eng->regs; r && !have; r = r->next)
			have = !r->leaving && !strcmp(r->trunk.id, v[i].id);
		if (have)
			continue;
		struct registration *r = calloc(1, sizeof *r);
		if (!r) {
			log_msg(LOG_ERROR, "sip_registration", "out of memory for trunk %s",
				v[i].id);
			continue;
		}
		r->trunk = v[i];
		r->backoff_s = RETRY_FIRST_S;
		r->next = eng->regs;
		eng->regs = r;
		attempt(eng, r);
	}
}

void register_stop(struct sip_engine *eng)
{
	while (eng->regs) {
		struct registration *r = eng->regs;
		if (!r->leaving)
			report(eng, r, "unregistered", 0, NULL, 0);
		eng->regs = r->next;
		if (r->nh)
			nua_handle_destroy(r->nh);
		free(r);
	}
	if (eng->reg_timer)
		su_timer_destroy(eng->reg_timer);
	eng->reg_timer = NULL;
	eng->reg_timer_armed = false;
}
