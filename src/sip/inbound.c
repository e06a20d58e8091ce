/*
 * inbound.c - calls to an agent's number: INVITE sip:NUMBER@callplane.
 *
 * Who may call: before anything else, an INVITE's source address must be within its rate
 * (access.c; else 503 with Retry-After) and admitted by a stored trunk (trunks.c: its
 * --inbound-cidr ranges, or the far end of its registration; else 403), unless the server
 * runs with --allow-any-inbound. Both refusals happen here, on the engine thread, with the
 * handle nua made and nothing else: no leg, no store, no call, no webhook. An admitted
 * INVITE may reach only the agents of the tenants whose trunks admitted it (the call service
 * answers another's number as unknown: 404). The dialled number is the Request-URI's user,
 * or the To user when the Request-URI is the contact one of those trunks registered (the
 * way many carriers deliver calls to a registration).
 *
 * The engine does not wait on the store: it hands the INVITE's facts to the call service's
 * worker, which looks the number up and stores the call; the answer comes back as a message
 * (inbound_on_created), and only then do we answer 200 with SDP, or 404 for an unknown number
 * (no call record), or 500. A caller who CANCELs meanwhile is handled by nua; the call, if
 * stored by then, is recorded canceled. The call is answered (in_progress) when the caller's
 * ACK of our 200 arrives, not when we send the 200 (engine.c). While the server drains
 * (call_service_accepting() is false) or stops, an INVITE is answered 503 with Retry-After
 * before anything is made for it.
 *
 * The leg exists from the INVITE on (state LEG_PENDING, in the table under the call id it is
 * stored with), holding an extra reference for the store's answer; that answer is posted
 * back to the engine thread (post.c) and handled here, so nothing above this file is called.
 */
#include "sip_internal.h"
#include "core/log.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/url.h>

/* A URI as text into buf ("" for none). */
static void url_text(const url_t *u, char *buf, size_t size)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	char *s = u ? url_as_string(home, u) : NULL;
	snprintf(buf, size, "%s", s ? s : "");
	su_home_deinit(home);
}

bool inbound_read_invite(sip_t const *sip, bool by_to, struct invite_facts *f)
{
	memset(f, 0, sizeof *f);
	if (sip->sip_call_id)
		snprintf(f->call_id, sizeof f->call_id, "%s", sip->sip_call_id->i_id);
	url_text(sip->sip_from ? sip->sip_from->a_url : NULL, f->from, sizeof f->from);
	url_text(sip->sip_request ? sip->sip_request->rq_url : NULL, f->to, sizeof f->to);
	/* the dialled number, "+15550001111" or "15550001111": the Request-URI user part, or
	 * the To user when the Request-URI is our registered contact */
	const url_t *u = by_to ? (sip->sip_to ? sip->sip_to->a_url : NULL)
			       : (sip->sip_request ? sip->sip_request->rq_url : NULL);
	const char *user = u ? u->url_user : NULL;
	if (!user || !*user)
		return false;
	snprintf(f->number, sizeof f->number, "%s%s", user[0] == '+' ? "" : "+", user);
	return cp_is_e164(f->number);
}

static void on_stored(void *arg, enum cp_err err, const struct call *c);

/* Refuses an INVITE that made no leg: answers it and frees the handle nua made for it. */
static void refuse(nua_handle_t *nh, int status, const char *phrase)
{
	leg_respond(nh, status, phrase, TAG_END());
	nua_handle_destroy(nh);
}

void inbound_on_invite(struct sip_engine *eng, nua_handle_t *nh, sip_t const *sip)
{
	struct invite_facts f;
	if (eng->stopping || !call_service_accepting(eng->svc)) {
		/* draining or stopping: the caller (a trunk, a proxy) tries another server */
		char retry[16];
		snprintf(retry, sizeof retry, "%d", CP_RETRY_AFTER_S);
		leg_respond(nh, SIP_503_SERVICE_UNAVAILABLE, SIPTAG_RETRY_AFTER_STR(retry),
			    TAG_END());
		nua_handle_destroy(nh);
		return;
	}
	/* who sent it: the rate of that source, then whether a trunk admits it (its tenants are
	 * the only ones whose agents it may reach), before anything is read or kept */
	msg_t *req = nua_current_request(eng->nua);
	su_addrinfo_t const *ai = req ? msg_addrinfo(req) : NULL;
	const struct sockaddr *src =
		ai && ai->ai_addr ? (const struct sockaddr *)ai->ai_addr : NULL;
	if (!access_rate_ok(eng, src)) {
		access_refused(eng, src, true, sip);
		leg_respond(nh, SIP_503_SERVICE_UNAVAILABLE, SIPTAG_RETRY_AFTER_STR("1"),
			    TAG_END());
		nua_handle_destroy(nh);
		return;
	}
	char *tenants = NULL;
	bool by_to = false;
	const char *ruri_user = sip->sip_request ? sip->sip_request->rq_url->url_user : NULL;
	int admitted =
		trunks_admit(eng, src, eng->cfg.allow_any_inbound, ruri_user, &tenants, &by_to);
	if (admitted < 0) {
		refuse(nh, SIP_500_INTERNAL_SERVER_ERROR);
		return;
	}
	if (!eng->cfg.allow_any_inbound && admitted == 0) {
		access_refused(eng, src, false, sip);
		refuse(nh, SIP_403_FORBIDDEN);
		return;
	}
	if (!inbound_read_invite(sip, by_to, &f)) {
		refuse(nh, SIP_404_NOT_FOUND);
		goto out;
	}
	/* an INVITE without an offer gets ours (PCMU first) in the 200 */
	struct sdp_remote r = {.payload_type = 0, .te_payload_type = -1};
	if (sip->sip_payload)
		media_parse_sdp(sip->sip_payload->pl_data, sip->sip_payload->pl_len, &r);
	/* a trunk that requires SRTP takes no plain offer from where it admits INVITEs */
	enum sip_srtp srtp = trunks_inbound_srtp(eng, src);
	if (r.payload_type < 0 || (srtp == SIP_SRTP_REQUIRED && !r.has_crypto)) {
		explicit_bzero(&r.crypto, sizeof r.crypto);
		refuse(nh, SIP_488_NOT_ACCEPTABLE);
		goto out;
	}
	struct leg *l = leg_create(eng, CALL_INBOUND);
	if (!l) {
		explicit_bzero(&r.crypto, sizeof r.crypto);
		refuse(nh, SIP_500_INTERNAL_SERVER_ERROR);
		goto out;
	}
	l->nh = nh;
	l->state = LEG_PENDING;
	/* an INVITE over TLS is answered with our TLS Contact: the caller's requests in the
	 * dialog stay on TLS */
	l->tls = sip->sip_via && sip->sip_via->v_protocol &&
		 !strcasecmp(sip->sip_via->v_protocol, "SIP/2.0/TLS");
	media_use_remote(l, &r);
	l->srtp_mode = srtp;
	bool srtp_ok = media_srtp_answer(l, &r); /* false only without randomness */
	explicit_bzero(&r.crypto, sizeof r.crypto);
	nua_handle_bind(nh, l); /* the handle's reference is the one leg_create gave */
	if (!srtp_ok) {
		leg_respond(nh, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
		leg_stop(l);
		goto out;
	}
	/* the call id is chosen here so the leg is findable (an API hang-up) from the moment
	 * the stored call can be seen */
	if (cp_uuid4(l->call_id)) {
		leg_respond(nh, SIP_500_INTERNAL_SERVER_ERROR, TAG_END());
		leg_stop(l);
		goto out;
	}
	leg_insert(eng, l);
	_Static_assert(sizeof l->sip_call_id == sizeof f.call_id, "sip_call_id");
	memcpy(l->sip_call_id, f.call_id, sizeof f.call_id);
	dialog_invited(l, sip); /* kept at the ACK of our 200 */

	struct inbound_call in = {.call_id = l->call_id,
				  .number = f.number,
				  .from = f.from,
				  .to = f.to,
				  .provider_call_id = l->sip_call_id,
				  .tenants = tenants};
	leg_ref(l); /* held by the message until inbound_on_created */
	call_service_inbound(eng->svc, &in, on_stored, l);
out:
	free(tenants);
}

/* Refuses the INVITE of a pending leg; if the call was stored, records why it failed. */
static void inbound_reject(struct leg *l, int status, const char *phrase, bool stored,
			   const char *end_reason)
{
	leg_respond(l->nh, status, phrase, TAG_END());
	if (stored) {
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
					.to = CALL_FAILED,
					.ended_at = cp_now_ms(),
					.end_reason = end_reason,
					.sip_status = status};
		leg_post_event(l, &u);
	}
	leg_stop(l);
	leg_unref(l); /* the message's reference */
}

/* The store's answer, back on the engine thread: answer the INVITE, or refuse it. */
static void inbound_on_created(struct sip_engine *eng, struct leg *l, enum cp_err err,
			       const struct call *c)
{
	if (l->state != LEG_PENDING) {
		/* the caller gave up (CANCEL) or the API ended it meanwhile: nothing to answer.
		 * Record it (a no-op if the API's end is recorded already). */
		if (err == CP_OK) {
			struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
						.to = CALL_CANCELED,
						.ended_at = cp_now_ms(),
						.end_reason = "remote_cancel",
						.sip_status = 487};
			call_service_post_event(eng->svc, l->call_id, &u);
		}
		leg_unref(l);
		return;
	}
	if (eng->stopping) {
		inbound_reject(l, SIP_503_SERVICE_UNAVAILABLE, err == CP_OK, "node_shutdown");
		return;
	}
	if (err == CP_ERR_NOT_FOUND) {
		inbound_reject(l, SIP_404_NOT_FOUND, false, NULL); /* no call record */
		return;
	}
	if (err != CP_OK) {
		inbound_reject(l, SIP_500_INTERNAL_SERVER_ERROR, false, NULL);
		return;
	}
	if (media_port_create(eng, l)) {
		inbound_reject(l, SIP_503_SERVICE_UNAVAILABLE, true, "no_media_port");
		return;
	}
	l->max_duration_s = c->max_duration_s;
	bridge_keep_call(l, c);
	char sdp[600];
	media_sdp(eng, l, l->payload_type, sdp, sizeof sdp);
	leg_respond(l->nh, SIP_200_OK, SIPTAG_CONTACT_STR(sip_contact_hdr(eng, l->tls)),
		    SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp),
		    NUTAG_MEDIA_ENABLE(0), TAG_END());
	/* answered once the ACK comes (engine.c records it then); a caller that never sends
	 * it has not answered anything */
	l->state = LEG_ANSWERED;
	bridge_start(l); /* media flows from the 200 on: the caller hears us at once */
	leg_unref(l);
}

/* The store's answer to call_service_inbound(), as a message to the engine thread. */
struct stored {
	struct leg *leg; /* holds the reference taken for call_service_inbound() */
	enum cp_err err;
	struct call call; /* the stored call (owns its heap fields); zero unless CP_OK */
};

/* MSG: hands the store's answer to inbound_on_created(), then frees the call's copy. */
static void stored(struct sip_engine *eng, void *data)
{
	struct stored *m = data;
	inbound_on_created(eng, m->leg, m->err, &m->call);
	call_clear(&m->call);
}

/* Worker thread: the store has (or has not) created the inbound call. */
static void on_stored(void *arg, enum cp_err err, const struct call *c)
{
	struct leg *l = arg;
	struct stored m = {.leg = l, .err = err};
	if (c && call_copy(&m.call, c))
		m.err = CP_ERR_INTERNAL;
	if (sip_post(l->eng, stored, &m, sizeof m)) {
		call_clear(&m.call);
		log_msg(LOG_ERROR, "sip_inbound",
			"could not hand inbound call %s back to the engine", c ? c->id : "?");
	}
}
