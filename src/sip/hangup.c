/*
 * hangup.c - putting BYE and CANCEL on the wire: on request, at max duration, at shutdown.
 *
 * Pacing: every hang-up passes a token bucket (cfg.hangup_rate per second, bursts of 100).
 * A single API end finds a token and goes out at once; an emergency stop of thousands of calls
 * queues and drains every 5 ms, so neither our socket nor the far end's overflows. A request
 * that waited past its deadline (cfg.hangup_wait_ms, for API ends) is answered undeliverable
 * instead: the client gets 502 and nothing changed, rather than a reply it stopped waiting for.
 *
 * Each request is answered exactly once through its done() callback, on this thread.
 *
 * Layering: hangup.c sits on leg.c (finding legs, recording ends) and bridge.c (media stops
 * with the BYE); outbound.c, inbound.c and engine.c call it, and it calls none of them.
 */
#include "sip_internal.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PACE_BURST 100.0
#define PACE_TICK_MS 5

/* RFC 3326: a Q.850 cause (16 normal clearing, 19 no answer) with our end reason as text. */
static void reason_header(int cause, const char *reason, char *buf, size_t size)
{
	snprintf(buf, size, "Q.850;cause=%d;text=\"%s\"", cause, reason);
}

void hangup_cancel_leg(struct sip_engine *eng, struct leg *l, int cause, const char *reason)
{
	(void)eng;
	char hdr[128];
	reason_header(cause, reason, hdr, sizeof hdr);
	snprintf(l->bye_reason, sizeof l->bye_reason, "%s", reason);  /* if a 200 crosses it */
	if (l->ring_timer)
		su_timer_reset(l->ring_timer);
	nua_cancel(l->nh, SIPTAG_REASON_STR(hdr), TAG_END());
	l->state = LEG_CANCELING;
}

void hangup_leg_now(struct sip_engine *eng, struct leg *l, const char *reason)
{
	(void)eng;
	char hdr[128];
	reason_header(16, reason, hdr, sizeof hdr);
	if (l->max_timer)
		su_timer_reset(l->max_timer);
	bridge_stop(l);          /* the agent hears "stop" with the BYE, not after it */
	if (l->state == LEG_ANSWERED) {
		/* RFC 3261 15: no BYE before the ACK of our 200; send it when the ACK arrives */
		snprintf(l->bye_reason, sizeof l->bye_reason, "%s", reason);
		l->state = LEG_BYEING;
		return;
	}
	l->state = LEG_BYEING;
	nua_bye(l->nh, SIPTAG_REASON_STR(hdr), TAG_END());
}

/* Executes one request now. */
static void hangup_execute(struct sip_engine *eng, struct hangup_req *req)
{
	struct leg *l = leg_find(eng, req->call_id);
	enum cp_err err = CP_OK;
	enum hangup_kind kind = HANGUP_NONE;

	if (req->deadline_us && cp_mono_us() > req->deadline_us) {
		err = CP_ERR_UNDELIVERABLE;
	} else if (!l) {
		/* no dialog: a call we never dialled (or lost in a restart); nothing to send */
		kind = HANGUP_NONE;
	} else {
		switch (l->state) {
		case LEG_INVITING:
		case LEG_EARLY:
			hangup_cancel_leg(eng, l, 16, req->reason);
			l->end_recorded = true;
			l->end_status = CALL_CANCELED;
			kind = HANGUP_CANCEL;
			break;
		case LEG_CONFIRMED:
		case LEG_ANSWERED: {
			/* an inbound 200 not ACKed yet is not answered: that call ends canceled,
			 * and its BYE goes when the ACK comes */
			bool answered = leg_answered(l);
			hangup_leg_now(eng, l, req->reason);
			l->end_recorded = true;
			l->end_status = answered ? CALL_COMPLETED : CALL_CANCELED;
			kind = answered ? HANGUP_BYE : HANGUP_CANCEL;
			break;
		}
		case LEG_PENDING:
			/* an inbound call not answered yet: refuse the INVITE (487), as a CANCEL
			 * from the caller would; inbound_on_created() then finds it ended */
			nua_respond(l->nh, SIP_487_REQUEST_TERMINATED, TAG_END());
			l->state = LEG_CANCELING;
			l->end_recorded = true;
			l->end_status = CALL_CANCELED;
			kind = HANGUP_CANCEL;
			break;
		default:
			err = CP_ERR_NOT_ACTIVE;
			break;
		}
	}
	req->done(req->arg, err, kind);
	free(req);
}

/* Adds the tokens earned since the last refill, up to the burst. */
static void refill(struct sip_engine *eng)
{
	int64_t now = cp_mono_us();
	eng->tokens += (double)(now - eng->tokens_at_us) * eng->cfg.hangup_rate / 1e6;
	if (eng->tokens > PACE_BURST)
		eng->tokens = PACE_BURST;
	eng->tokens_at_us = now;
}

static void pace_tick(struct sip_engine *eng, su_timer_t *t, struct leg *unused);

/* Executes queued requests while tokens last; arms the pace timer if some are left. */
static void pace_drain(struct sip_engine *eng)
{
	refill(eng);
	while (eng->hq_head && eng->tokens >= 1.0) {
		struct hangup_req *req = eng->hq_head;
		eng->hq_head = req->next;
		if (!eng->hq_head)
			eng->hq_tail = NULL;
		eng->tokens -= 1.0;
		hangup_execute(eng, req);
	}
	if (eng->hq_head && !eng->pace_armed) {
		eng->pace_armed = true;
		su_timer_set(eng->pace_timer, pace_tick, NULL);
	}
}

/* The pace timer fired: drain again. */
static void pace_tick(struct sip_engine *eng, su_timer_t *t, struct leg *unused)
{
	(void)t;
	(void)unused;
	eng->pace_armed = false;
	pace_drain(eng);
}

void hangup_request(struct sip_engine *eng, struct hangup_req *req)
{
	if (eng->stopping) {
		req->done(req->arg, CP_ERR_UNDELIVERABLE, HANGUP_NONE);
		free(req);
		return;
	}
	if (eng->cfg.hangup_rate <= 0) {
		hangup_execute(eng, req);
		return;
	}
	if (eng->hq_tail)
		eng->hq_tail->next = req;
	else
		eng->hq_head = req;
	eng->hq_tail = req;
	pace_drain(eng);
}

void hangup_fail_queue(struct sip_engine *eng)
{
	while (eng->hq_head) {
		struct hangup_req *req = eng->hq_head;
		eng->hq_head = req->next;
		req->done(req->arg, CP_ERR_UNDELIVERABLE, HANGUP_NONE);
		free(req);
	}
	eng->hq_tail = NULL;
}

/* ---- max duration ----------------------------------------------------------------------- */

bool hangup_answered(struct sip_engine *eng, struct leg *l, const char *reason)
{
	if (l->state != LEG_CONFIRMED && l->state != LEG_ANSWERED)
		return false;        /* not up, or ending already for another reason */
	leg_post_end(l, reason);
	hangup_leg_now(eng, l, reason);
	return true;
}

/* l's max-duration timer fired: end the call as max_duration if it is still up. */
static void max_duration_reached(struct sip_engine *eng, su_timer_t *t, struct leg *l)
{
	(void)t;
	if (l->state == LEG_CONFIRMED || l->state == LEG_ANSWERED)
		log_json(LOG_INFO, "sip_max_duration",
			 json_pack("{s:s, s:i}", "call_id", l->call_id, "max_duration_s",
				   l->max_duration_s));
	hangup_answered(eng, l, "max_duration");
}

void hangup_arm_max_duration(struct sip_engine *eng, struct leg *l)
{
	if (l->max_duration_s <= 0)
		return;
	if (!l->max_timer)
		l->max_timer = su_timer_create(su_root_task(eng->root),
					       (su_duration_t)l->max_duration_s * 1000);
	su_timer_set(l->max_timer, max_duration_reached, l);
}

/* ---- shutdown --------------------------------------------------------------------------- */

/* hangup_drain_all() for one leg; arg is the reason. */
static void drain(struct leg *l, void *arg)
{
	const char *reason = arg;
	if (l->state == LEG_INVITING || l->state == LEG_EARLY) {
		hangup_cancel_leg(l->eng, l, 16, reason);
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
					.to = CALL_CANCELED, .ended_at = cp_now_ms(),
					.end_reason = reason};
		leg_post_event(l, &u);
	} else {
		hangup_answered(l->eng, l, reason);
	}
}

void hangup_drain_all(struct sip_engine *eng, const char *reason)
{
	leg_foreach(eng, drain, (void *)reason);
}
