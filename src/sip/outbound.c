/*
 * outbound.c - calls callplane places: INVITE, provisional and final responses, ring timeout.
 *
 * Routing: a sip:/sips: destination is dialled directly, without credentials; an E.164 number
 * goes through the call's trunk (the agent's, else the default one of --trunk) as
 * sip:NUMBER@TARGET, through the trunk's outbound proxy when it has one, answering one digest
 * challenge per INVITE with the trunk's credentials. The trunk also decides the From (its
 * --from-user and --from-domain, else the caller's number at our address), adds the caller's
 * number as P-Asserted-Identity or Remote-Party-ID when asked, and its extra headers. A call
 * whose trunk is gone (deleted since the call was created), or another tenant's, fails
 * no_route. A call over TLS (a trunk's --transport tls, a sips: or transport=tls destination)
 * names our TLS address in its Contact, and fails no_route on a server without --sip-tls.
 * Final responses map onto statuses: 486/600 busy, 408/480 no_answer (as does our
 * own ring timeout, which CANCELs), anything else >= 300 failed; sip_status keeps the code.
 * A 503 that nta made itself (sip_not_reached) says the INVITE never reached the far end:
 * the connection was refused, an ICMP error came back, the name did not resolve, or (with
 * TPTAG_SDWN_ERROR, engine.c) the TLS handshake failed or the connection closed before any
 * answer, as when we refuse the far end's certificate. That call ends failed, unreachable, at
 * once, rather than at the ring timeout or as if the far end had refused it.
 *
 * An answer is ACKed by us, not by nua (NUTAG_AUTOACK(0)): only once the dialog's state and the
 * answered transition are durable (dialog.c), so that a far end holding our ACK is always one a
 * restart can hang up. Until then the leg is LEG_ANSWERED, as an inbound leg waiting for the
 * caller's ACK is; nua reports the call ready after our ACK.
 *
 * The leg is in the table from the dial on; nua's handle holds a reference from the INVITE
 * until leg_stop(). This file calls hangup.c (CANCEL at ring timeout) and the files below it.
 */
#include "sip_internal.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>

/* Records the end of a call not answered (queued or ringing) as `to`. */
static void post_end(struct leg *l, enum call_status to, const char *reason, int sip_status)
{
	struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
				.to = to,
				.ended_at = cp_now_ms(),
				.end_reason = reason,
				.sip_status = sip_status};
	leg_post_event(l, &u);
}

/* The ring timer fired: CANCEL an INVITE still unanswered, recorded no_answer. */
static void ring_timeout(struct sip_engine *eng, su_timer_t *t, struct leg *l)
{
	(void)t;
	if (l->state != LEG_INVITING && l->state != LEG_EARLY)
		return;
	log_json(LOG_INFO, "sip_ring_timeout", json_pack("{s:s}", "call_id", l->call_id));
	hangup_cancel_leg(eng, l, 19, "no_answer"); /* Q.850 19: no answer from user */
	post_end(l, CALL_NO_ANSWER, "no_answer", 0);
}

/* "<sip:...>" for an address that is a SIP URI, or a number at our address. */
static void name_addr(struct sip_engine *eng, const char *addr, char *buf, size_t size)
{
	if (!strncasecmp(addr, "sip:", 4) || !strncasecmp(addr, "sips:", 5))
		snprintf(buf, size, "<%s>", addr);
	else
		snprintf(buf, size, "<sip:%s@%s:%d>", addr, eng->cfg.advertise, eng->cfg.port);
}

/* What the INVITE of c says through trunk tr (NULL: a sip: URI, dialled as it is): To (the
 * Request-URI), From, and the extra headers (the caller-id header, then the trunk's). */
struct invite_addrs {
	char to[TRUNK_HOST_MAX + 320], from[TRUNK_HOST_MAX + 320];
	char headers[TRUNK_HEADERS_MAX + TRUNK_HOST_MAX + 400];
};

static void invite_addrs(struct sip_engine *eng, const struct call *c, const struct sip_trunk *tr,
			 struct invite_addrs *a)
{
	a->headers[0] = '\0';
	if (!tr) {
		name_addr(eng, c->to, a->to, sizeof a->to);
		name_addr(eng, c->from, a->from, sizeof a->from);
		return;
	}
	char ours[TRUNK_HOST_MAX + 16];
	bool v6 = strchr(eng->cfg.advertise, ':') != NULL;
	snprintf(ours, sizeof ours, v6 ? "[%s]:%d" : "%s:%d", eng->cfg.advertise, eng->cfg.port);
	const char *domain = tr->from_domain[0] ? tr->from_domain : ours;
	snprintf(a->to, sizeof a->to, "<sip:%s@%s>", c->to, tr->target);
	snprintf(a->from, sizeof a->from, "<sip:%s@%s>", tr->from_user[0] ? tr->from_user : c->from,
		 domain);
	size_t used = 0;
	if (tr->caller_id == SIP_CALLER_ID_PAI)
		used = (size_t)snprintf(a->headers, sizeof a->headers,
					"P-Asserted-Identity: <sip:%s@%s>", c->from, domain);
	else if (tr->caller_id == SIP_CALLER_ID_RPID)
		used = (size_t)snprintf(a->headers, sizeof a->headers,
					"Remote-Party-ID: <sip:%s@%s>;party=calling;screen=yes;"
					"privacy=off",
					c->from, domain);
	if (tr->headers[0] && used < sizeof a->headers)
		snprintf(a->headers + used, sizeof a->headers - used, "%s%s", used ? "\r\n" : "",
			 tr->headers);
}

/* Whether a destination URI asks for TLS: sips:, or a transport=tls parameter. */
static bool uri_wants_tls(const char *uri)
{
	if (!strncasecmp(uri, "sips:", 5))
		return true;
	for (const char *p = strchr(uri, ';'); p; p = strchr(p + 1, ';'))
		if (!strncasecmp(p, ";transport=tls", 14) &&
		    (p[14] == '\0' || p[14] == ';' || p[14] == '>' || p[14] == '?'))
			return true;
	return false;
}

void outbound_dial(struct sip_engine *eng, const struct call *c)
{
	bool is_uri = !strncasecmp(c->to, "sip:", 4) || !strncasecmp(c->to, "sips:", 5);
	struct leg *l = leg_create(eng, CALL_OUTBOUND);
	if (!l) {
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
					.to = CALL_FAILED,
					.ended_at = cp_now_ms(),
					.end_reason = "failed"};
		call_service_post_event(eng->svc, c->id, &u);
		return;
	}
	snprintf(l->call_id, sizeof l->call_id, "%s", c->id);
	snprintf(l->sip_call_id, sizeof l->sip_call_id, "%s", c->provider_call_id);
	l->max_duration_s = c->max_duration_s;
	bridge_keep_call(l, c);
	leg_insert(eng, l);
	leg_unref(l); /* the table holds it now */

	if (eng->stopping) {
		post_end(l, CALL_FAILED, "node_shutdown", 0);
		leg_stop(l);
		return;
	}
	const struct sip_trunk *tr = is_uri ? NULL : trunk_find(eng, c->trunk_id);
	if (!is_uri && (!tr || (tr->tenant_id[0] && strcmp(tr->tenant_id, c->tenant_id)))) {
		log_json(LOG_WARN, "sip_no_route",
			 json_pack("{s:s, s:s, s:s}", "call_id", c->id, "to", c->to, "trunk_id",
				   c->trunk_id));
		post_end(l, CALL_FAILED, "no_route", 0);
		leg_stop(l);
		return;
	}
	bool tls = tr ? tr->tls : uri_wants_tls(c->to);
	if (tls && !eng->cfg.tls_port) {
		log_json(LOG_WARN, "sip_no_tls",
			 json_pack("{s:s, s:s, s:s, s:s}", "call_id", c->id, "to", c->to,
				   "trunk_id", c->trunk_id, "why",
				   "the call is over TLS and serve has no --sip-tls"));
		post_end(l, CALL_FAILED, "no_route", 0);
		leg_stop(l);
		return;
	}
	if (media_port_create(eng, l)) {
		post_end(l, CALL_FAILED, "no_media_port", 0);
		leg_stop(l);
		return;
	}
	l->via_trunk = tr != NULL;
	l->tls = tls;
	if (tr)
		memcpy(l->trunk_id, tr->id, sizeof l->trunk_id);
	l->srtp_mode = tr ? tr->srtp : SIP_SRTP_OFF;
	if (media_srtp_offer(l)) {
		log_msg(LOG_ERROR, "sip", "call %s: no randomness for its SRTP keys", c->id);
		post_end(l, CALL_FAILED, "failed", 0);
		leg_stop(l);
		return;
	}

	struct invite_addrs a;
	char sdp[600];
	const char *proxy = tr && tr->outbound_proxy[0] ? tr->outbound_proxy : NULL;
	invite_addrs(eng, c, tr, &a);
	media_sdp(eng, l, -1, sdp, sizeof sdp);

	l->nh = nua_handle(eng->nua, l, SIPTAG_TO_STR(a.to), SIPTAG_FROM_STR(a.from),
			   SIPTAG_CALL_ID_STR(c->provider_call_id), TAG_END());
	if (!l->nh) {
		post_end(l, CALL_FAILED, "failed", 0);
		leg_stop(l);
		return;
	}
	/* a handle preference, which nua_handle()'s tags do not set */
	if (proxy)
		nua_set_hparams(l->nh, NUTAG_PROXY(proxy), TAG_END());
	leg_ref(l); /* the handle's reference, dropped in leg_stop() */
	l->state = LEG_INVITING;
	/* no automatic ACK: a 2xx is ACKed once its dialog is kept durably (dialog.c) */
	nua_invite(l->nh, NUTAG_AUTOACK(0), SIPTAG_CONTACT_STR(sip_contact_hdr(eng, tls)),
		   TAG_IF(a.headers[0], SIPTAG_HEADER_STR(a.headers)),
		   SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp), TAG_END());
	if (eng->cfg.ring_timeout_s > 0) {
		l->ring_timer = su_timer_create(su_root_task(eng->root),
						(su_duration_t)eng->cfg.ring_timeout_s * 1000);
		su_timer_set(l->ring_timer, ring_timeout, l);
	}
}

/* Answers a digest challenge to our INVITE with its trunk's credentials, once per INVITE;
 * false if it went to no trunk, or the trunk has none, or no realm, or we tried already. */
static bool authenticate(struct sip_engine *eng, struct leg *l, sip_t const *sip)
{
	char cred[TRUNK_TEXT_MAX + SIP_PASSWORD_MAX + 300];
	const struct sip_trunk *tr = l->via_trunk ? trunk_find(eng, l->trunk_id) : NULL;
	if (!tr || !tr->user[0] || l->auth_tries++ >= 1 || !sip ||
	    !trunk_credentials(tr->user, tr->password, sip, cred, sizeof cred))
		return false;
	nua_authenticate(l->nh, NUTAG_AUTH(cred), TAG_END());
	return true;
}

void outbound_on_invite_response(struct sip_engine *eng, struct leg *l, int status,
				 char const *phrase, sip_t const *sip)
{
	if (status <= 100)
		return;
	if (status < 200) {
		struct call_update ring = {.from_mask = CALL_BIT(CALL_QUEUED), .to = CALL_RINGING};
		const struct call_update *u = NULL;
		if (status >= 180 && l->state == LEG_INVITING)
			l->state = LEG_EARLY;
		if (status >= 180 && !l->ringing_reported && l->state == LEG_EARLY) {
			l->ringing_reported = true;
			u = &ring;
		}
		/* a ringing INVITE can now be CANCELled: keep what that needs, with the step */
		if (sip && (l->state == LEG_INVITING || l->state == LEG_EARLY))
			dialog_ringing(l, sip, u);
		else if (u)
			leg_post_event(l, u);
		return;
	}
	if (status < 300) {
		/* the answer's SDP is kept now; media starts when nua reports the call ready */
		if (sip && sip->sip_payload && sip->sip_payload->pl_len) {
			struct sdp_remote r;
			media_parse_sdp(sip->sip_payload->pl_data, sip->sip_payload->pl_len, &r);
			if (r.payload_type >= 0)
				media_use_remote(l, &r);
			/* the first answer decides SRTP; a refused one ends the call at the ACK */
			if (l->state == LEG_INVITING || l->state == LEG_EARLY)
				(void)media_srtp_answered(l, &r);
			explicit_bzero(&r.crypto, sizeof r.crypto);
		} else if (l->state == LEG_INVITING || l->state == LEG_EARLY) {
			struct sdp_remote none = {.payload_type = -1};
			(void)media_srtp_answered(l, &none);
		}
		if (!sip)
			return;
		if (l->state == LEG_CONFIRMED) {
			dialog_sent(l, sip); /* a refresh nua sent was answered */
			return;
		}
		if (l->awaiting_ack || (l->state != LEG_INVITING && l->state != LEG_EARLY &&
					l->state != LEG_CANCELING))
			return;
		if (l->ring_timer)
			su_timer_reset(l->ring_timer);
		if (l->state == LEG_CANCELING) {
			/* the 2xx crossed our CANCEL: the call is recorded ended, but its far end is
			 * up until the BYE that follows the ACK (engine.c on_state) */
			dialog_answered(l, sip, NULL);
			return;
		}
		if (l->srtp_refused) {
			/* answered without the SRTP its trunk requires: the call failed; its far end
			 * is up until the BYE that follows the ACK (engine.c on_state) */
			log_json(LOG_WARN, "sip_srtp_refused",
				 json_pack("{s:s, s:s}", "call_id", l->call_id, "sip_call_id",
					   l->sip_call_id));
			struct call_update f = {.from_mask = CALL_BIT(CALL_QUEUED) |
							     CALL_BIT(CALL_RINGING),
						.to = CALL_FAILED,
						.ended_at = cp_now_ms(),
						.end_reason = "srtp_required"};
			leg_post_event(l, &f);
			l->state = LEG_ANSWERED;
			dialog_answered(l, sip, NULL);
			return;
		}
		/* answered: recorded with the dialog that ends it, ACKed once both are durable */
		l->state = LEG_ANSWERED;
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
					.to = CALL_IN_PROGRESS,
					.answered_at = cp_now_ms(),
					.sip_status = 200};
		dialog_answered(l, sip, &u);
		return;
	}
	if ((status == 401 || status == 407) && l->state != LEG_CANCELING &&
	    authenticate(eng, l, sip))
		return;
	if (l->ring_timer)
		su_timer_reset(l->ring_timer);
	if (l->state == LEG_CANCELING || l->end_recorded) {
		/* the final answer to an INVITE we cancelled: keep its code on the ended call */
		enum call_status st = l->end_recorded ? l->end_status : CALL_CANCELED;
		struct call_update u = {.from_mask = CALL_BIT(st), .to = st, .sip_status = status};
		call_service_post_event(eng->svc, l->call_id, &u);
		return;
	}
	if (l->state != LEG_INVITING && l->state != LEG_EARLY)
		return;
	if (sip_not_reached(status, sip)) {
		log_json(LOG_WARN, "sip_unreachable",
			 json_pack("{s:s, s:s, s:b, s:s}", "call_id", l->call_id, "sip_call_id",
				   l->sip_call_id, "tls", l->tls, "why", phrase ? phrase : ""));
		post_end(l, CALL_FAILED, "unreachable", status);
	} else if (status == 486 || status == 600)
		post_end(l, CALL_BUSY, "busy", status);
	else if (status == 408 || status == 480)
		post_end(l, CALL_NO_ANSWER, "no_answer", status);
	else
		post_end(l, CALL_FAILED, "failed", status);
}
