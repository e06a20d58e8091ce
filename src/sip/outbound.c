/*
 * outbound.c - calls callplane places: INVITE, provisional and final responses, ring timeout.
 *
 * Routing: a sip:/sips: destination is dialled directly; an E.164 number goes to the configured
 * trunk as sip:NUMBER@TRUNK, answering one digest challenge per INVITE with the trunk's
 * credentials. Final responses map onto statuses: 486/600 busy, 408/480 no_answer (as does our
 * own ring timeout, which CANCELs), anything else >= 300 failed; sip_status keeps the code.
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

#include <sofia-sip/msg_header.h>

/* Records the end of a call not answered (queued or ringing) as `to`. */
static void post_end(struct leg *l, enum call_status to, const char *reason, int sip_status)
{
	struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
				.to = to, .ended_at = cp_now_ms(), .end_reason = reason,
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
	hangup_cancel_leg(eng, l, 19, "no_answer");   /* Q.850 19: no answer from user */
	post_end(l, CALL_NO_ANSWER, "no_answer", 0);
}

/* "<sip:...>" for an address that is a SIP URI or a number. */
static void name_addr(struct sip_engine *eng, const char *addr, bool via_trunk, char *buf,
		      size_t size)
{
	if (!strncasecmp(addr, "sip:", 4) || !strncasecmp(addr, "sips:", 5))
		snprintf(buf, size, "<%s>", addr);
	else if (via_trunk)
		snprintf(buf, size, "<sip:%s@%s>", addr, eng->trunk_host);
	else
		snprintf(buf, size, "<sip:%s@%s:%d>", addr, eng->cfg.advertise, eng->cfg.port);
}

void outbound_dial(struct sip_engine *eng, const struct call *c)
{
	bool is_uri = !strncasecmp(c->to, "sip:", 4) || !strncasecmp(c->to, "sips:", 5);
	struct leg *l = leg_create(eng, CALL_OUTBOUND);
	if (!l) {
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED), .to = CALL_FAILED,
					.ended_at = cp_now_ms(), .end_reason = "failed"};
		call_service_post_event(eng->svc, c->id, &u);
		return;
	}
	snprintf(l->call_id, sizeof l->call_id, "%s", c->id);
	snprintf(l->sip_call_id, sizeof l->sip_call_id, "%s", c->provider_call_id);
	l->max_duration_s = c->max_duration_s;
	bridge_keep_call(l, c);
	leg_insert(eng, l);
	leg_unref(l);   /* the table holds it now */

	if (eng->stopping) {
		post_end(l, CALL_FAILED, "node_shutdown", 0);
		leg_stop(l);
		return;
	}
	if (!is_uri && !eng->trunk_host[0]) {
		log_json(LOG_WARN, "sip_no_route",
			 json_pack("{s:s, s:s}", "call_id", c->id, "to", c->to));
		post_end(l, CALL_FAILED, "no_route", 0);
		leg_stop(l);
		return;
	}
	if (media_port_create(eng, l)) {
		post_end(l, CALL_FAILED, "no_media_port", 0);
		leg_stop(l);
		return;
	}

	char to[300], from[300], sdp[600];
	name_addr(eng, c->to, !is_uri, to, sizeof to);
	name_addr(eng, c->from, false, from, sizeof from);
	media_sdp(eng, l, -1, sdp, sizeof sdp);

	l->nh = nua_handle(eng->nua, l, SIPTAG_TO_STR(to), SIPTAG_FROM_STR(from),
			   SIPTAG_CALL_ID_STR(c->provider_call_id), TAG_END());
	if (!l->nh) {
		post_end(l, CALL_FAILED, "failed", 0);
		leg_stop(l);
		return;
	}
	leg_ref(l);   /* the handle's reference, dropped in leg_stop() */
	l->state = LEG_INVITING;
	/* no automatic ACK: a 2xx is ACKed once its dialog is kept durably (dialog.c) */
	nua_invite(l->nh, NUTAG_AUTOACK(0), SIPTAG_CONTACT_STR(eng->contact_hdr),
		   SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp), TAG_END());
	if (eng->cfg.ring_timeout_s > 0) {
		l->ring_timer = su_timer_create(su_root_task(eng->root),
						(su_duration_t)eng->cfg.ring_timeout_s * 1000);
		su_timer_set(l->ring_timer, ring_timeout, l);
	}
}

bool outbound_credentials(const struct sip_config *cfg, sip_t const *sip, char *cred,
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
	int n = snprintf(cred, size, "%s:%s:%s:%s", scheme, realm, cfg->trunk_user,
			 cfg->trunk_password);
	return n >= 0 && (size_t)n < size;
}

/* Answers a digest challenge to our INVITE with the trunk's credentials, once per INVITE;
 * false if there are none, or no realm, or we tried already. */
static bool authenticate(struct sip_engine *eng, struct leg *l, sip_t const *sip)
{
	char cred[512];
	if (!eng->cfg.trunk_user[0] || l->auth_tries++ >= 1 || !sip ||
	    !outbound_credentials(&eng->cfg, sip, cred, sizeof cred))
		return false;
	nua_authenticate(l->nh, NUTAG_AUTH(cred), TAG_END());
	return true;
}

void outbound_on_invite_response(struct sip_engine *eng, struct leg *l, int status,
				 sip_t const *sip)
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
		}
		if (!sip)
			return;
		if (l->state == LEG_CONFIRMED) {
			dialog_sent(l, sip);      /* a refresh nua sent was answered */
			return;
		}
		if (l->awaiting_ack ||
		    (l->state != LEG_INVITING && l->state != LEG_EARLY && l->state != LEG_CANCELING))
			return;
		if (l->ring_timer)
			su_timer_reset(l->ring_timer);
		if (l->state == LEG_CANCELING) {
			/* the 2xx crossed our CANCEL: the call is recorded ended, but its far end is
			 * up until the BYE that follows the ACK (engine.c on_state) */
			dialog_answered(l, sip, NULL);
			return;
		}
		/* answered: recorded with the dialog that ends it, ACKed once both are durable */
		l->state = LEG_ANSWERED;
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
					.to = CALL_IN_PROGRESS, .answered_at = cp_now_ms(),
					.sip_status = 200};
		dialog_answered(l, sip, &u);
		return;
	}
	if ((status == 401 || status == 407) && l->state != LEG_CANCELING && authenticate(eng, l, sip))
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
	if (status == 486 || status == 600)
		post_end(l, CALL_BUSY, "busy", status);
	else if (status == 408 || status == 480)
		post_end(l, CALL_NO_ANSWER, "no_answer", status);
	else
		post_end(l, CALL_FAILED, "failed", status);
}
