/*
 * leg.c - legs: their lifetime, the table that finds them by call id, and the events they post
 * to the call service.
 *
 * A leg is one dialog (one call) as the engine sees it (struct leg, sip_internal.h). Its life:
 * leg_create() when we dial or an INVITE arrives; bound to its nua handle (the handle's magic,
 * holding a reference); entered in the table under the call id (the table holds another);
 * leg_stop() when the dialog is over (nua reports it terminated, or it failed before it
 * began), which stops its timers and media, forgets the dialog state kept for a restart
 * (dialog.c) and drops the handle's and the table's references;
 * the last leg_unref() destroys it. A leg stopped during a goodbye answers the hang-ups that
 * waited for it (leg_goodbye_answer()). Legs are reference counted only so that a message in
 * flight (an inbound call waiting for the store) can hold one; all counting happens on the
 * engine thread, so a plain int does.
 *
 * The table is a fixed array of LEG_TABLE_SIZE (65,536) chains, indexed by the FNV-1a hash of
 * the call id: it never resizes, and at the calls one RTP address allows (~27,700) a chain
 * holds less than one leg on average.
 *
 * Layering: this file sits on media.c and bridge.c (a leg's sockets and its media session,
 * which leg_stop() ends) and below every file that handles SIP (hangup.c, inbound.c,
 * outbound.c, engine.c). It calls none of them; they answer INVITEs through leg_respond().
 */
#include "sip_internal.h"

#include <stdlib.h>
#include <string.h>

#include <sofia-sip/su_tagarg.h>

/* FNV-1a of a call id, as a table index. */
static unsigned hash_id(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % LEG_TABLE_SIZE;
}

struct leg *leg_create(struct sip_engine *eng, enum call_direction dir)
{
	struct leg *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->eng = eng;
	l->refs = 1;
	l->dir = dir;
	l->rtp_fd = -1;
	l->rtcp_fd = -1;
	l->payload_type = -1;
	l->te_payload_type = -1;
	return l;
}

void leg_ref(struct leg *l)
{
	l->refs++;
}

void leg_unref(struct leg *l)
{
	if (--l->refs > 0)
		return;
	if (l->ring_timer)
		su_timer_destroy(l->ring_timer);
	if (l->max_timer)
		su_timer_destroy(l->max_timer);
	if (l->goodbye_timer)
		su_timer_destroy(l->goodbye_timer);
	media_port_destroy(l);
	json_decref(l->dialog);
	free(l->stream_url);
	free(l->metadata);
	free(l->max_duration_goodbye);
	explicit_bzero(l->srtp_offer_keys, sizeof l->srtp_offer_keys);
	explicit_bzero(&l->srtp, sizeof l->srtp);
	free(l);
}

void leg_insert(struct sip_engine *eng, struct leg *l)
{
	unsigned h = hash_id(l->call_id);
	l->hnext = eng->table[h];
	eng->table[h] = l;
	eng->n_legs++;
	leg_ref(l);
}

struct leg *leg_find(struct sip_engine *eng, const char *call_id)
{
	for (struct leg *l = eng->table[hash_id(call_id)]; l; l = l->hnext)
		if (!strcmp(l->call_id, call_id))
			return l;
	return NULL;
}

void leg_foreach(struct sip_engine *eng, void (*fn)(struct leg *l, void *arg), void *arg)
{
	for (size_t i = 0; i < LEG_TABLE_SIZE; i++) {
		struct leg *next;
		for (struct leg *l = eng->table[i]; l; l = next) {
			next = l->hnext; /* fn may take l out of the table (and free it) */
			fn(l, arg);
		}
	}
}

/* Takes l out of the table and drops the table's reference; a leg not in it stays as it is. */
static void leg_remove(struct sip_engine *eng, struct leg *l)
{
	if (!l->call_id[0])
		return;
	for (struct leg **p = &eng->table[hash_id(l->call_id)]; *p; p = &(*p)->hnext) {
		if (*p == l) {
			*p = l->hnext;
			eng->n_legs--;
			leg_unref(l);
			return;
		}
	}
}

void leg_stop(struct leg *l)
{
	if (l->state == LEG_STOPPED)
		return;
	l->state = LEG_STOPPED;
	leg_goodbye_answer(l, CP_ERR_NOT_ACTIVE, HANGUP_NONE, 0);
	if (l->ring_timer)
		su_timer_reset(l->ring_timer);
	if (l->max_timer)
		su_timer_reset(l->max_timer);
	bridge_stop(l);
	media_port_destroy(l);
	if (l->dialog_kept) {
		/* the dialog is over on the wire (or given up): nothing for a restart to end */
		call_service_post_dialog(l->eng->svc, l->call_id, NULL, NULL, NULL, NULL);
		l->dialog_kept = false;
	}
	l->awaiting_ack = false;
	if (l->nh) {
		nua_handle_bind(l->nh, NULL);
		nua_handle_destroy(l->nh);
		l->nh = NULL;
		leg_unref(l); /* the handle's reference */
	}
	leg_remove(l->eng, l);
}

/* leg_stop() as a leg_foreach() function. */
static void stop_one(struct leg *l, void *unused)
{
	(void)unused;
	leg_stop(l);
}

void leg_stop_all(struct sip_engine *eng)
{
	leg_foreach(eng, stop_one, NULL);
}

void leg_goodbye_answer(struct leg *l, enum cp_err err, enum hangup_kind kind, int goodbye_ms)
{
	struct hangup_req *req = l->goodbye_reqs;
	l->goodbye_reqs = NULL;
	if (l->goodbye_timer)
		su_timer_reset(l->goodbye_timer);
	while (req) {
		struct hangup_req *next = req->next;
		req->done(req->arg, err, kind, goodbye_ms);
		free(req->audio);
		free(req);
		req = next;
	}
}

/* MSG: leg_stop_soon()'s stop, by call id (a leg stopped meanwhile is not found). */
static void stop_posted(struct sip_engine *eng, void *data)
{
	struct leg *l = leg_find(eng, data);
	if (l)
		leg_stop(l);
}

void leg_stop_soon(struct leg *l)
{
	/* a failed post leaves the leg to leg_stop_all(): the engine is leaving its loop */
	if (l->call_id[0])
		sip_post(l->eng, stop_posted, l->call_id, sizeof l->call_id);
}

void leg_post_event(struct leg *l, const struct call_update *u)
{
	if (!l->call_id[0])
		return;
	if (call_status_is_terminal(u->to) && u->from_mask != CALL_BIT(u->to)) {
		l->end_recorded = true;
		l->end_status = u->to;
	}
	call_service_post_event(l->eng->svc, l->call_id, u);
}

bool leg_answered(const struct leg *l)
{
	return l->state == LEG_CONFIRMED || (l->state == LEG_ANSWERED && l->dir == CALL_OUTBOUND);
}

void leg_post_end(struct leg *l, const char *reason)
{
	bool answered = leg_answered(l);
	struct call_update u = {.from_mask = CALL_BIT(answered ? CALL_IN_PROGRESS : CALL_QUEUED),
				.to = answered ? CALL_COMPLETED : CALL_CANCELED,
				.ended_at = cp_now_ms(),
				.end_reason = reason};
	leg_post_event(l, &u);
}

void leg_respond(nua_handle_t *nh, int status, char const *phrase, tag_type_t tag,
		 tag_value_t value, ...)
{
	ta_list ta;
	ta_start(ta, tag, value);
	metrics_sip_response(true, "INVITE", status);
	nua_respond(nh, status, phrase, ta_tags(ta));
	(void)ta_end(ta); /* a comma expression that ends in 0 */
}
