/*
 * dialog.c - keeping, durably, what ending a leg's dialog needs if this process dies.
 *
 * nua holds every dialog in memory; a run that dies leaves its far ends up. So from the moment
 * a far end is in a call with us until the dialog is over, the store keeps what a later run
 * needs to end it on the wire (restart.c sends it), as a small JSON text only this engine reads:
 *
 *   BYE     {"request":"BYE", "call_id", "local" (our From/To with our tag), "remote" (theirs
 *           with their tag), "cseq" (our next), "route" (the route set, name-addrs in order),
 *           "target" (the remote target URI), "transport"}: RFC 3261 12.1's dialog state.
 *   CANCEL  {"request":"CANCEL", "call_id", "local", "remote" (the INVITE's To, untagged),
 *           "cseq" (the INVITE's), "uri" (its Request-URI), "branch" (its Via branch),
 *           "dest" (where it was sent: sip:HOST[:PORT];transport=T), "transport"}: RFC 3261 9.1.
 *
 * "transport" is the top Via's (UDP, TCP, TLS): a dialog kept over TLS is ended over TLS even
 * when the far end's Contact names no transport (restart.c).
 *
 * When each is kept (the far end's view decides):
 *   - an INVITE of ours that rings: CANCEL at its first provisional response (a CANCEL may not
 *     be sent before one), again if a challenge made a new INVITE (new branch and CSeq);
 *   - our INVITE answered: BYE from the 2xx, posted in one job with the call's answered
 *     transition, and the ACK is sent only once that job is durable. A far end that got our
 *     ACK is therefore always one a later run can hang up; if we die before the ACK, the far
 *     end never gets it and ends the call itself (RFC 3261 13.3.1.4);
 *   - an INVITE to us answered: BYE at the caller's ACK, whose To carries our tag (nua does not
 *     show the tag it put in our 200). A run that dies between its 200 and that ACK leaves the
 *     caller up: nothing that run kept names the dialog;
 *   - a target refresh (re-INVITE with a new Contact) or a request nua sent in the dialog (a
 *     session refresh moves our CSeq on): the BYE state again.
 * leg_stop() forgets it (leg.c): the dialog is over, or the engine gave up on it.
 *
 * Writes go to the call service's worker like every engine event (call_service_post_dialog),
 * in order with them: the SIP thread never waits for the disk. Only the ACK of our INVITE's
 * 2xx waits, for one group commit, which is well inside the far end's 500 ms retransmission.
 *
 * Layering: below hangup.c (outbound.c, inbound.c and engine.c call it), above leg.c, whose
 * leg_find() finds the leg again when the write is durable.
 */
#include "sip_internal.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A header as text ("<sip:a@b>;tag=x"), set into o under key; nothing if h is NULL. */
static void set_header(json_t *o, const char *key, const void *h)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	char *s = h ? sip_header_as_string(home, (sip_header_t const *)h) : NULL;
	if (s)
		json_object_set_new(o, key, json_string(s));
	su_home_deinit(home);
}

/* A URI as text, set into o under key; nothing if u is NULL. */
static void set_url(json_t *o, const char *key, const url_t *u)
{
	su_home_t home[1] = {SU_HOME_INIT(home)};
	char *s = u ? url_as_string(home, u) : NULL;
	if (s)
		json_object_set_new(o, key, json_string(s));
	su_home_deinit(home);
}

json_t *dialog_route_set(sip_record_route_t const *rr, bool reverse)
{
	json_t *set = json_array();
	su_home_t home[1] = {SU_HOME_INIT(home)};
	for (; rr; rr = rr->r_next) {
		char *s = sip_header_as_string(home, (sip_header_t const *)rr);
		if (!s)
			continue;
		if (reverse)
			json_array_insert_new(set, 0, json_string(s));
		else
			json_array_append_new(set, json_string(s));
	}
	su_home_deinit(home);
	return set;
}

/* The transport of a message's top Via ("UDP", "TCP"); "UDP" when it names none. */
static const char *via_transport(sip_t const *sip)
{
	const char *t = sip->sip_via ? sip_via_transport(sip->sip_via) : NULL;
	return t && *t ? t : "UDP";
}

/* ---- posting ---------------------------------------------------------------------------- */

/* What the worker hands back once an answer's dialog is durable. */
struct durable {
	struct sip_engine *eng;
	char call_id[CP_UUID_LEN + 1];
};

/* MSG: the 2xx's dialog is kept: ACK it, if the leg still waits to. */
static void acknowledge(struct sip_engine *eng, void *data)
{
	struct durable *m = data;
	struct leg *l = leg_find(eng, m->call_id);
	if (l && l->awaiting_ack && l->nh) {
		l->awaiting_ack = false;
		nua_ack(l->nh, TAG_END());
	}
}

/* Worker thread: the job that kept the dialog is committed (or failed): back to the engine. */
static void durable_done(void *arg)
{
	struct durable *d = arg;
	if (sip_post(d->eng, acknowledge, d, sizeof *d))
		log_msg(LOG_WARN, "sip_engine", "call %s: the engine is gone before its ACK",
			d->call_id);
	free(d);
}

/* Posts l's dialog state (with u, may be NULL); with ack, its 2xx is ACKed once durable. Out
 * of memory, the step still goes and the answer is ACKed at once, unkept (logged). */
static void keep(struct leg *l, const struct call_update *u, bool ack)
{
	char *text = json_dumps(l->dialog, JSON_COMPACT);
	struct durable *d = text && ack ? calloc(1, sizeof *d) : NULL;
	if (!text || (ack && !d)) {
		log_msg(LOG_ERROR, "call_dialog_lost", "call %s: out of memory", l->call_id);
		if (u)
			leg_post_event(l, u);
		if (ack)
			nua_ack(l->nh, TAG_END());
		free(text);
		return;
	}
	if (d) {
		d->eng = l->eng;
		snprintf(d->call_id, sizeof d->call_id, "%s", l->call_id);
		l->awaiting_ack = true;
	}
	call_service_post_dialog(l->eng->svc, l->call_id, u, text, d ? durable_done : NULL, d);
	l->dialog_kept = true;
	free(text);
}

/* ---- what the engine tells us ----------------------------------------------------------- */

void dialog_ringing(struct leg *l, sip_t const *sip, const struct call_update *u)
{
	const char *branch = sip && sip->sip_via ? sip->sip_via->v_branch : NULL;
	const char *kept =
		l->dialog ? json_string_value(json_object_get(l->dialog, "branch")) : NULL;
	if (!branch || !sip->sip_to || !sip->sip_from || !sip->sip_cseq || !l->call_id[0] ||
	    (kept && !strcmp(kept, branch))) {
		if (u)
			leg_post_event(l, u);
		return;
	}
	json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "request", "CANCEL", "call_id",
			      l->sip_call_id, "cseq", (json_int_t)sip->sip_cseq->cs_seq, "branch",
			      branch, "transport", via_transport(sip));
	set_header(o, "local", sip->sip_from);
	su_home_t home[1] = {SU_HOME_INIT(home)};
	const url_t *to = sip->sip_to->a_url;
	char *uri = url_as_string(home, to), dest[300], remote[1100];
	snprintf(remote, sizeof remote, "<%s>", uri ? uri : "");
	json_object_set_new(o, "remote", json_string(remote));
	json_object_set_new(o, "uri", json_string(uri ? uri : ""));
	/* where the INVITE went: its Request-URI (nua sends to the To URI; we set no route) */
	snprintf(dest, sizeof dest, "sip:%s%s%s;transport=%s", to->url_host ? to->url_host : "",
		 to->url_port ? ":" : "", to->url_port ? to->url_port : "", via_transport(sip));
	json_object_set_new(o, "dest", json_string(dest));
	su_home_deinit(home);
	json_decref(l->dialog);
	l->dialog = o;
	keep(l, u, false);
}

void dialog_answered(struct leg *l, sip_t const *sip, const struct call_update *u)
{
	json_t *o = json_pack(
		"{s:s, s:s, s:I, s:o, s:s}", "request", "BYE", "call_id", l->sip_call_id, "cseq",
		(json_int_t)(sip->sip_cseq ? sip->sip_cseq->cs_seq + 1 : 1), "route",
		dialog_route_set(sip->sip_record_route, true), "transport", via_transport(sip));
	set_header(o, "local", sip->sip_from);
	set_header(o, "remote", sip->sip_to);
	/* the remote target; a 2xx without Contact (a broken far end) leaves the To URI */
	set_url(o, "target",
		sip->sip_contact ? sip->sip_contact->m_url
		: sip->sip_to    ? sip->sip_to->a_url
				 : NULL);
	json_decref(l->dialog);
	l->dialog = o;
	keep(l, u, true);
}

void dialog_invited(struct leg *l, sip_t const *sip)
{
	json_t *o = json_pack("{s:s, s:s, s:o, s:s}", "request", "BYE", "call_id", l->sip_call_id,
			      "route", dialog_route_set(sip->sip_record_route, false), "transport",
			      via_transport(sip));
	set_header(o, "remote", sip->sip_from);
	set_url(o, "target",
		sip->sip_contact ? sip->sip_contact->m_url
		: sip->sip_from  ? sip->sip_from->a_url
				 : NULL);
	json_decref(l->dialog);
	l->dialog = o; /* completed (and kept) at the ACK */
}

void dialog_acked(struct leg *l, sip_t const *ack)
{
	if (!l->dialog || l->dialog_kept || !ack || !ack->sip_to || !ack->sip_to->a_tag)
		return;
	set_header(l->dialog, "local", ack->sip_to);
	/* no request of ours yet in this dialog: the first CSeq is ours to choose, and nta
	 * would choose this one (RFC 3261 8.1.1.5: below 2^31) */
	json_object_set_new(l->dialog, "cseq",
			    json_integer((json_int_t)((sip_now() >> 1) & 0x7ffffff)));
	keep(l, NULL, false);
}

void dialog_target_refresh(struct leg *l, sip_t const *sip)
{
	if (!l->dialog_kept || !sip || !sip->sip_contact)
		return;
	const char *was = json_string_value(json_object_get(l->dialog, "target"));
	su_home_t home[1] = {SU_HOME_INIT(home)};
	char *now = url_as_string(home, sip->sip_contact->m_url);
	bool changed = now && (!was || strcmp(was, now));
	if (changed)
		json_object_set_new(l->dialog, "target", json_string(now));
	su_home_deinit(home);
	if (changed)
		keep(l, NULL, false);
}

void dialog_sent(struct leg *l, sip_t const *sip)
{
	const char *req =
		l->dialog ? json_string_value(json_object_get(l->dialog, "request")) : NULL;
	if (!l->dialog_kept || !req || strcmp(req, "BYE") || !sip || !sip->sip_cseq)
		return;
	json_int_t next = (json_int_t)sip->sip_cseq->cs_seq + 1;
	if (next <= json_integer_value(json_object_get(l->dialog, "cseq")))
		return;
	json_object_set_new(l->dialog, "cseq", json_integer(next));
	keep(l, NULL, false);
}
