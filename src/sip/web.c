/*
 * web.c - web legs: calls from a browser (POST /v1/web-calls), whose far end is the browser's
 * WebSocket in the media plane instead of a SIP dialog.
 *
 * A web call is a leg like any other, without a nua handle, so that everything the engine does
 * to legs holds for it unchanged: API ends and emergency stops (paced like BYEs), the media
 * plane's watchdogs, max duration, shutdown. Its life:
 *   - web_leg_open() (the web_open telephony op, once the call is stored queued): a leg in
 *     LEG_WEB_WAITING, with no socket, whose ring timer is the join window (the access
 *     token's lifetime and JOIN_SLACK_MS): if nobody joins by then the call ends no_answer,
 *     end_reason "token_expired";
 *   - web_leg_join() (the web_join op, once the HTTP server has upgraded the browser's
 *     WebSocket): the leg is answered, in_progress is recorded, max duration is armed, and the
 *     socket becomes the media session's far end (bridge_start_web);
 *   - the end: hangup.c treats a leg without a handle as having nothing to send: its "BYE" is
 *     the stop of the media session, which tells the browser, and the leg leaves the table
 *     (leg_stop_soon). A waiting leg ended by the API is recorded canceled.
 * A join that finds no waiting leg (the call has ended, or was joined already) releases the
 * socket: the browser sees it close.
 *
 * Layering: beside outbound.c and inbound.c; calls hangup.c, leg.c and bridge.c.
 */
#include "sip_internal.h"
#include "core/log.h"

#include <stdio.h>

/* A join whose token passed its check just before the token expired still finds its leg. */
#define JOIN_SLACK_MS 1000

/* The join window closed: a call nobody joined ends no_answer. */
static void join_expired(struct sip_engine *eng, su_timer_t *t, struct leg *l)
{
	(void)eng;
	(void)t;
	if (l->state != LEG_WEB_WAITING)
		return;
	log_json(LOG_INFO, "web_not_joined", json_pack("{s:s}", "call_id", l->call_id));
	struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
				.to = CALL_NO_ANSWER,
				.ended_at = cp_now_ms(),
				.end_reason = "token_expired"};
	leg_post_event(l, &u);
	l->state = LEG_CANCELING; /* a late join finds it ending */
	leg_stop_soon(l);
}

void web_leg_open(struct sip_engine *eng, const struct call *c, int join_ms)
{
	struct leg *l = eng->stopping ? NULL : leg_create(eng, CALL_WEB);
	if (!l) {
		/* as a dial that cannot start ends */
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
					.to = CALL_FAILED,
					.ended_at = cp_now_ms(),
					.end_reason = eng->stopping ? "node_shutdown" : "failed"};
		call_service_post_event(eng->svc, c->id, &u);
		return;
	}
	snprintf(l->call_id, sizeof l->call_id, "%s", c->id);
	bridge_keep_call(l, c);
	l->max_duration_s = c->max_duration_s;
	l->state = LEG_WEB_WAITING;
	leg_insert(eng, l);
	l->ring_timer = su_timer_create(su_root_task(eng->root), join_ms + JOIN_SLACK_MS);
	if (l->ring_timer)
		su_timer_set(l->ring_timer, join_expired, l);
	leg_unref(l); /* the table holds it */
}

void web_leg_join(struct sip_engine *eng, const char *call_id, const struct web_socket *ws)
{
	struct leg *l = leg_find(eng, call_id);
	if (!l || l->dir != CALL_WEB || l->state != LEG_WEB_WAITING) {
		log_json(LOG_INFO, "web_join_refused",
			 json_pack("{s:s, s:s}", "call_id", call_id, "why",
				   l ? "the call is not waiting for its browser"
				     : "no such web call"));
		ws->release(ws->ctx);
		return;
	}
	if (l->ring_timer)
		su_timer_reset(l->ring_timer);
	l->state = LEG_CONFIRMED;
	struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
				.to = CALL_IN_PROGRESS,
				.answered_at = cp_now_ms()};
	leg_post_event(l, &u);
	hangup_arm_max_duration(eng, l);
	bridge_start_web(l, ws);
	log_json(LOG_INFO, "web_joined", json_pack("{s:s}", "call_id", call_id));
}
