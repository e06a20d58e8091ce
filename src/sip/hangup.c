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
 * Goodbyes: a request with a goodbye, for an answered leg with media, does not send its BYE
 * when its turn comes. It asks the media plane to play what is queued and the goodbye's audio
 * (bridge_goodbye) and waits on the leg; the media plane's goodbye_done hook comes back as
 * hangup_goodbye_over(), which sends the BYE and answers the request. The media engine keeps
 * the deadline (max_wait_ms); a timer here ends the goodbye GOODBYE_BACKSTOP_MS later should
 * that word never come, so nothing keeps a call up past its deadline. Any other end of the
 * call meanwhile (an emergency stop, the far end's BYE, shutdown) cuts the goodbye: its BYE
 * goes now and the waiting request is answered not active. A leg without media (never
 * answered, no media session) ends at once, as without a goodbye.
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
/* how long past its deadline a goodbye may wait for the media plane's word (its wheel is
 * late by a tick or two at worst) */
#define GOODBYE_BACKSTOP_MS 500
/* how long the call service may take to start a max-duration goodbye (a render of tens of
 * milliseconds) before the call ends without it */
#define MAX_DURATION_GOODBYE_WAIT_MS 5000

/* RFC 3326: a Q.850 cause (16 normal clearing, 19 no answer) with our end reason as text. */
static void reason_header(int cause, const char *reason, char *buf, size_t size)
{
	snprintf(buf, size, "Q.850;cause=%d;text=\"%s\"", cause, reason);
}

/* The end reason as a header of its own, for far ends (a carrier's CDRs, a PBX's dialplan)
 * that read a plain header more easily than the Reason's quoted text. Reasons are
 * [A-Za-z0-9_.:-] (call_reason_valid, or ours): nothing to escape. */
static void end_reason_header(const char *reason, char *buf, size_t size)
{
	snprintf(buf, size, "X-Callplane-End-Reason: %s", reason);
}

void hangup_cancel_leg(struct sip_engine *eng, struct leg *l, int cause, const char *reason)
{
	(void)eng;
	char hdr[128];
	reason_header(cause, reason, hdr, sizeof hdr);
	snprintf(l->bye_reason, sizeof l->bye_reason, "%s", reason); /* if a 200 crosses it */
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
	bridge_stop(l); /* the agent hears "stop" with the BYE, not after it */
	if (!l->nh) {
		/* no dialog (a web leg): stopping the media told the browser; nothing to send */
		l->state = LEG_BYEING;
		leg_stop_soon(l);
		return;
	}
	if (l->state == LEG_ANSWERED) {
		/* RFC 3261 15: no BYE before the ACK of our 200; send it when the ACK arrives */
		snprintf(l->bye_reason, sizeof l->bye_reason, "%s", reason);
		l->state = LEG_BYEING;
		return;
	}
	l->state = LEG_BYEING;
	char end[128];
	end_reason_header(reason, end, sizeof end);
	nua_bye(l->nh, SIPTAG_REASON_STR(hdr), SIPTAG_HEADER_STR(end), TAG_END());
}

static void goodbye_backstop(struct sip_engine *eng, su_timer_t *t, struct leg *l);

/* Starts req's goodbye on the answered leg l, or joins the one under way: true if req now
 * waits for hangup_goodbye_over(). false: nothing to play on (no media session), send the
 * BYE now. */
static bool goodbye_start(struct sip_engine *eng, struct leg *l, struct hangup_req *req)
{
	req->next = NULL;
	if (l->goodbye_reqs) {
		struct hangup_req **p = &l->goodbye_reqs;
		while (*p)
			p = &(*p)->next;
		*p = req;
		return true;
	}
	if (bridge_goodbye(l, req->audio, req->audio_len, req->max_wait_ms))
		return false;
	free(req->audio); /* the media engine has its copy */
	req->audio = NULL;
	l->goodbye_reqs = req;
	l->goodbye_since_us = cp_mono_us();
	if (!l->goodbye_timer)
		l->goodbye_timer = su_timer_create(su_root_task(eng->root), GOODBYE_BACKSTOP_MS);
	if (l->goodbye_timer)
		su_timer_set_interval(l->goodbye_timer, goodbye_backstop, l,
				      (su_duration_t)req->max_wait_ms + GOODBYE_BACKSTOP_MS);
	return true;
}

void hangup_goodbye_over(struct sip_engine *eng, struct leg *l, int goodbye_ms)
{
	if (!l->goodbye_reqs)
		return;
	if (l->state != LEG_CONFIRMED && l->state != LEG_ANSWERED) {
		leg_goodbye_answer(l, CP_ERR_NOT_ACTIVE, HANGUP_NONE, 0);
		return;
	}
	hangup_leg_now(eng, l, l->goodbye_reqs->reason);
	l->end_recorded = true;
	l->end_status = CALL_COMPLETED;
	/* with the monotonic clock, so that the gap to the media plane's media_goodbye_done
	 * line can be measured (bench/goodbye.py) */
	log_json(LOG_INFO, "sip_goodbye_bye",
		 json_pack("{s:s, s:i, s:I}", "call_id", l->call_id, "goodbye_ms", goodbye_ms,
			   "mono_us", (json_int_t)cp_mono_us()));
	leg_goodbye_answer(l, CP_OK, HANGUP_BYE, goodbye_ms);
}

/* The media plane did not end l's goodbye by its deadline: end it here. */
static void goodbye_backstop(struct sip_engine *eng, su_timer_t *t, struct leg *l)
{
	(void)t;
	int ms = (int)((cp_mono_us() - l->goodbye_since_us) / 1000);
	log_json(LOG_WARN, "sip_goodbye_backstop",
		 json_pack("{s:s, s:i}", "call_id", l->call_id, "waited_ms", ms));
	hangup_goodbye_over(eng, l, ms);
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
			if (answered && req->goodbye && goodbye_start(eng, l, req))
				return; /* answered by hangup_goodbye_over() */
			hangup_leg_now(eng, l, req->reason);
			l->end_recorded = true;
			l->end_status = answered ? CALL_COMPLETED : CALL_CANCELED;
			kind = answered ? HANGUP_BYE : HANGUP_CANCEL;
			break;
		}
		case LEG_WEB_WAITING:
			/* a web call its browser has not joined: nothing on any wire */
			l->state = LEG_CANCELING;
			l->end_recorded = true;
			l->end_status = CALL_CANCELED;
			leg_stop_soon(l);
			kind = HANGUP_CANCEL;
			break;
		case LEG_PENDING:
			/* an inbound call not answered yet: refuse the INVITE (487), as a CANCEL
			 * from the caller would; inbound_on_created() then finds it ended */
			leg_respond(l->nh, SIP_487_REQUEST_TERMINATED, TAG_END());
			l->state = LEG_CANCELING;
			l->end_recorded = true;
			l->end_status = CALL_CANCELED;
			kind = HANGUP_CANCEL;
			break;
		default: err = CP_ERR_NOT_ACTIVE; break;
		}
	}
	req->done(req->arg, err, kind, 0);
	free(req->audio);
	free(req);
	/* this BYE cut a goodbye under way: its hang-ups learn it after this one's end */
	if (l && kind == HANGUP_BYE)
		leg_goodbye_answer(l, CP_ERR_NOT_ACTIVE, HANGUP_NONE, 0);
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
		req->done(req->arg, CP_ERR_UNDELIVERABLE, HANGUP_NONE, 0);
		free(req->audio);
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
		req->done(req->arg, CP_ERR_UNDELIVERABLE, HANGUP_NONE, 0);
		free(req->audio);
		free(req);
	}
	eng->hq_tail = NULL;
}

/* ---- max duration ----------------------------------------------------------------------- */

bool hangup_answered(struct sip_engine *eng, struct leg *l, const char *reason)
{
	if (l->state != LEG_CONFIRMED && l->state != LEG_ANSWERED)
		return false; /* not up, or ending already for another reason */
	leg_post_end(l, reason);
	hangup_leg_now(eng, l, reason);
	leg_goodbye_answer(l, CP_ERR_NOT_ACTIVE, HANGUP_NONE, 0); /* a goodbye cut short */
	return true;
}

/* l's max-duration timer fired: end the call as max_duration if it is still up. A call with a
 * max-duration goodbye asks the call service to say it (the service renders speech, which
 * this thread never does, and hangs up with a goodbye); should that not begin within
 * MAX_DURATION_GOODBYE_WAIT_MS, the timer fires again and the call ends without it. A goodbye
 * already under way (an API end) is left to end the call within its own deadline. */
static void max_duration_reached(struct sip_engine *eng, su_timer_t *t, struct leg *l)
{
	(void)t;
	if (l->state != LEG_CONFIRMED && l->state != LEG_ANSWERED)
		return;
	if (l->goodbye_reqs)
		return;
	if (!l->max_duration_asked)
		log_json(LOG_INFO, "sip_max_duration",
			 json_pack("{s:s, s:i, s:b}", "call_id", l->call_id, "max_duration_s",
				   l->max_duration_s, "goodbye", l->max_duration_goodbye != NULL));
	if (l->max_duration_goodbye && !l->max_duration_asked) {
		l->max_duration_asked = true;
		call_service_post_goodbye(eng->svc, l->call_id, "max_duration",
					  l->max_duration_goodbye);
		su_timer_set_interval(l->max_timer, max_duration_reached, l,
				      MAX_DURATION_GOODBYE_WAIT_MS);
		return;
	}
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
	if (l->state == LEG_WEB_WAITING) {
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
					.to = CALL_CANCELED,
					.ended_at = cp_now_ms(),
					.end_reason = reason};
		leg_post_event(l, &u);
		l->state = LEG_CANCELING;
		leg_stop_soon(l);
	} else if (l->state == LEG_INVITING || l->state == LEG_EARLY) {
		hangup_cancel_leg(l->eng, l, 16, reason);
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
					.to = CALL_CANCELED,
					.ended_at = cp_now_ms(),
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
