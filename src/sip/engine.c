/*
 * engine.c - the SIP engine: its thread, its nua instance and the dispatch of nua's events, the
 * telephony ops other threads call, and the media engine it starts.
 *
 * Threading: everything sofia happens on the engine thread (su_root_run). The telephony ops
 * below run on HTTP threads and only post a message (post.c); if the message cannot be sent,
 * the hang-up is reported undeliverable at once (nothing changed). Progress goes back to the
 * call service through its queue, never by calling the store from here.
 *
 * Layering: this file is the top of the SIP layer. It turns nua's events and the messages into
 * calls on the files below it (outbound.c, inbound.c, web.c, hangup.c, then leg.c, bridge.c,
 * media.c, post.c) and nothing below calls back into it. Web calls (web.c) are legs without a
 * dialog, so the telephony ops serve them as they serve phone calls. The media engine is started here, with hooks
 * that post to this thread, because ending a call for the media plane is a hang-up and the
 * hang-up files sit above the media ones.
 *
 * Sockets: NUTAG_URL without a transport listens on UDP and TCP. The UDP buffers are enlarged
 * (TPTAG_UDP_RMEM/WMEM): a burst of thousands of BYEs and their 200s otherwise overflows the
 * kernel's default buffer (measured: 16k retransmissions at 10k calls with the default).
 * With --sip-tls, NUTAG_SIPS_URL adds a TLS listener (tls.c stages its files): calls and
 * registrations through TLS trunks, sips: destinations and INVITEs from carriers over TLS use
 * it, with our Contact naming it (contact_tls_hdr) so the far end's requests in the dialog
 * come back over TLS too. Servers we connect to are verified (TPTLS_VERIFY_SUBJECTS_OUT: the
 * chain against the CA file, the host name against the certificate's names; depth up to 9).
 * A server refused that way is a connection sofia closes with our request unsent; nta tells
 * its transaction only when TPTAG_SDWN_ERROR is set (nta's own default is off), with a 503 it
 * makes itself, which outbound.c and register.c tell from a far end's 503.
 *
 * Methods: we serve INVITE, ACK, BYE, CANCEL and OPTIONS and nothing else (SIP_ALLOW). nua's
 * default list also accepts MESSAGE, REFER, SUBSCRIBE, NOTIFY, PRACK and UPDATE: it answers
 * them itself (200, 202), keeps a handle for each request outside a dialog, and for a REFER
 * sends NOTIFYs to whatever Contact the sender wrote. Replacing the list makes nua answer
 * every other method 405 with our Allow before it makes a handle, so an unauthenticated
 * request leaves nothing behind and is never reflected.
 */
#include "sip_internal.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a start-up waits for the far ends of dialogs a previous run left up to answer
 * their BYE or CANCEL (restart.c): the server is not ready meanwhile. */
#define RESTART_WAIT_MS 5000

/* What we answer to; SIPTAG_ALLOW_STR replaces nua's list (NUTAG_ALLOW would add to it). */
#define SIP_ALLOW "INVITE, ACK, BYE, CANCEL, OPTIONS"

void sip_config_defaults(struct sip_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->host, sizeof cfg->host, "127.0.0.1");
	cfg->port = 5060;
	cfg->ring_timeout_s = 60;
	cfg->hangup_rate = 5000;
	cfg->hangup_wait_ms = 2000;
	cfg->rtp_port_min = 16384;
	cfg->rtp_port_max = 32766;
	cfg->udp_buffer = 4u * 1024 * 1024;
	cfg->tcp_idle_s = 300;
	cfg->inbound_rate = 50;
	media_config_defaults(&cfg->media);
}

/* ---- nua events ------------------------------------------------------------------------- */

/* An inbound 200 was never ACKed: nua gave up waiting (RFC 3261 timer H, 32 s) and sends a
 * BYE itself. The caller never confirmed anything, so the call was not answered: it ends
 * failed, as ack_timeout, and its RTP port is freed now, not when nua is done with that BYE
 * (another 32 s if the caller does not answer it either). */
static void on_ack_timeout(struct leg *l)
{
	log_json(LOG_INFO, "sip_ack_timeout",
		 json_pack("{s:s, s:s}", "call_id", l->call_id, "sip_call_id", l->sip_call_id));
	struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
				.to = CALL_FAILED,
				.ended_at = cp_now_ms(),
				.end_reason = "ack_timeout",
				.sip_status = 408};
	leg_post_event(l, &u);
	bridge_stop(l);
	media_port_destroy(l);
	l->state = LEG_BYEING; /* nua's BYE is ours to wait for; terminated follows */
}

/* nua_i_state: ready follows the ACK of an answer: ours of an outbound one (recorded
 * in_progress at its 2xx; media starts now), the caller's of an inbound one (recorded
 * in_progress now: an inbound call is answered at the ACK); or it sends a BYE we owe (a 200
 * that crossed our CANCEL, a hang-up that waited for the ACK); terminating or terminated
 * before an inbound 200's ACK is its ACK timeout; terminated ends the leg, recording a call
 * that ended unseen. */
static void on_state(struct sip_engine *eng, struct leg *l, tagi_t tags[])
{
	int cs = -1;
	tl_gets(tags, NUTAG_CALLSTATE_REF(cs), TAG_END());
	if (cs == nua_callstate_ready) {
		switch (l->state) {
		case LEG_ANSWERED:
			l->state = LEG_CONFIRMED;
			if (l->srtp_refused) {
				/* recorded failed at its 2xx (outbound.c): no media, only the BYE */
				hangup_leg_now(eng, l, "srtp_required");
				break;
			}
			hangup_arm_max_duration(eng, l);
			if (l->dir == CALL_OUTBOUND) {
				bridge_start(l);
			} else {
				/* the caller ACKed our 200: the inbound call is answered now */
				struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED),
							.to = CALL_IN_PROGRESS,
							.answered_at = cp_now_ms(),
							.sip_status = 200};
				leg_post_event(l, &u);
			}
			break;
		case LEG_CANCELING:
			/* the far end's 200 crossed our CANCEL: nua has ACKed it; end it with a BYE
			 * at once so no leg is left up. The call is already recorded as ended. */
			log_json(LOG_INFO, "sip_cancel_crossed",
				 json_pack("{s:s, s:s}", "call_id", l->call_id, "sip_call_id",
					   l->sip_call_id));
			l->state = LEG_CONFIRMED;
			hangup_leg_now(eng, l, l->bye_reason[0] ? l->bye_reason : "ended_by_api");
			break;
		case LEG_BYEING:
			/* a BYE we owed while waiting for the ACK */
			l->state = LEG_CONFIRMED;
			hangup_leg_now(eng, l, l->bye_reason);
			break;
		default: break;
		}
	} else if (cs == nua_callstate_terminating || cs == nua_callstate_terminated) {
		if (l->state == LEG_ANSWERED && l->dir == CALL_INBOUND)
			on_ack_timeout(l);
		if (cs != nua_callstate_terminated)
			return;
		if (!l->end_recorded && (l->state == LEG_CONFIRMED || l->state == LEG_ANSWERED)) {
			/* ended without a BYE we saw (e.g. a session timer ran out): it is over */
			struct call_update u = {.from_mask = CALL_BIT(CALL_IN_PROGRESS),
						.to = CALL_COMPLETED,
						.ended_at = cp_now_ms(),
						.end_reason = "failed"};
			leg_post_event(l, &u);
		}
		leg_stop(l);
	}
}

/* A re-INVITE (e.g. a session-timer refresh): answer with our SDP, keeping the codec. */
static void answer_reinvite(struct sip_engine *eng, struct leg *l, sip_t const *sip)
{
	char sdp[600];
	int pt = l->payload_type;
	if (sip && sip->sip_payload && sip->sip_payload->pl_len) {
		struct sdp_remote r;
		media_parse_sdp(sip->sip_payload->pl_data, sip->sip_payload->pl_len, &r);
		if (r.payload_type < 0) {
			leg_respond(l->nh, SIP_488_NOT_ACCEPTABLE, TAG_END());
			return;
		}
		bool srtp_ok = media_srtp_answer(l, &r);
		explicit_bzero(&r.crypto, sizeof r.crypto);
		if (!srtp_ok) {
			leg_respond(l->nh, SIP_488_NOT_ACCEPTABLE, TAG_END());
			return;
		}
		pt = r.payload_type;
		media_use_remote(l, &r);
		bridge_update(l);
	}
	dialog_target_refresh(l, sip);
	media_sdp(eng, l, pt, sdp, sizeof sdp);
	leg_respond(l->nh, SIP_200_OK, SIPTAG_CONTACT_STR(sip_contact_hdr(eng, l->tls)),
		    SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp), TAG_END());
}

/* nua_i_bye (nua answers it): records the far end's hang-up of an answered call and stops
 * its media; nua_i_state terminated follows and stops the leg. */
static void on_remote_bye(struct leg *l)
{
	if (l->state != LEG_CONFIRMED && l->state != LEG_ANSWERED)
		return; /* BYEs crossing: ours is already recorded */
	leg_post_end(l, "remote_hangup");
	bridge_stop(l);
	l->state = LEG_BYEING; /* nothing more to send; terminated follows */
	leg_goodbye_answer(l, CP_ERR_NOT_ACTIVE, HANGUP_NONE, 0); /* a goodbye it cut short */
}

/* nua_i_cancel of an inbound INVITE (nua answers 487): records the call canceled. */
static void on_remote_cancel(struct leg *l)
{
	if (l->state != LEG_PENDING && l->state != LEG_ANSWERED)
		return;
	struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING),
				.to = CALL_CANCELED,
				.ended_at = cp_now_ms(),
				.end_reason = "remote_cancel",
				.sip_status = 487};
	leg_post_event(l, &u);
}

/* RFC 3261 18.3: a datagram that ends before the body its Content-Length announces is an
 * error. The parser refuses most such INVITEs itself (400), but one that ends right after its
 * headers reaches us without a body, as if it had made no offer; either way it is not read. */
static bool body_short(sip_t const *sip)
{
	size_t announced = sip && sip->sip_content_length ? sip->sip_content_length->l_length : 0;
	size_t got = sip && sip->sip_payload ? sip->sip_payload->pl_len : 0;
	return got < announced || (sip && (sip->sip_flags & MSG_FLG_TRUNC));
}

/* The metrics of SIP responses an event tells of: a response to one of our requests as it
 * arrived (nua reports those it makes up itself, such as a timeout's 408, without a message,
 * and they are not counted), or one nua gave on its own to a request it reports: 200 to a BYE,
 * a CANCEL (and then 487 to the INVITE it cancels) or an OPTIONS. The answers nua gives to
 * requests it never reports (405 outside SIP_ALLOW, 481 outside a dialog) are not seen. */
static void count_responses(nua_event_t event, int status, sip_t const *sip)
{
	if (sip && sip->sip_status && sip->sip_cseq) {
		metrics_sip_response(false, sip->sip_cseq->cs_method_name,
				     sip->sip_status->st_status);
		return;
	}
	if (status < 200 || !sip || !sip->sip_request)
		return;
	if (event == nua_i_bye || event == nua_i_cancel || event == nua_i_options)
		metrics_sip_response(true, sip->sip_request->rq_method_name, status);
	if (event == nua_i_cancel)
		metrics_sip_response(true, "INVITE", 487);
}

/* Every nua event, on the engine thread: l is the handle's leg (NULL for a handle nua made
 * for a new request, which inbound.c binds or destroys). */
static void on_nua_event(nua_event_t event, int status, char const *phrase, nua_t *nua,
			 struct sip_engine *eng, nua_handle_t *nh, struct leg *l, sip_t const *sip,
			 tagi_t tags[])
{
	(void)nua;
	count_responses(event, status, sip);
	switch (event) {
	case nua_i_invite:
		if (body_short(sip)) {
			leg_respond(nh, SIP_400_BAD_REQUEST,
				    TAG_END()); /* a dialog stays as it is */
			if (!l)
				nua_handle_destroy(nh);
		} else if (!l)
			inbound_on_invite(eng, nh, sip);
		else
			answer_reinvite(eng, l, sip);
		break;
	case nua_r_invite:
		if (l)
			outbound_on_invite_response(eng, l, status, phrase, sip);
		break;
	case nua_i_state:
		if (l)
			on_state(eng, l, tags);
		break;
	case nua_i_bye:
		if (l)
			on_remote_bye(l);
		break;
	case nua_i_cancel:
		if (l)
			on_remote_cancel(l);
		break;
	case nua_i_ack:
		if (l)
			dialog_acked(l, sip);
		break;
	case nua_r_update:
		if (l && status >= 200 && status < 300)
			dialog_sent(l, sip);
		break;
	case nua_r_bye:
	case nua_r_cancel:
		if (status >= 200 && log_enabled(status < 300 ? LOG_DEBUG : LOG_WARN)) {
			json_t *f = json_pack("{s:s, s:s, s:i}", "call_id", l ? l->call_id : "",
					      "request", event == nua_r_bye ? "BYE" : "CANCEL",
					      "status", status);
			log_json(status < 300 ? LOG_DEBUG : LOG_WARN, "sip_hangup_result", f);
		}
		break;
	case nua_r_register:
	case nua_r_unregister: register_on_response(eng, nh, event, status, phrase, sip); break;
	case nua_r_shutdown:
		if (status >= 200)
			su_root_break(eng->root);
		break;
	case nua_i_terminated:
		if (l)
			leg_stop(l);
		break;
	case nua_i_options:
	case nua_i_refer:
	case nua_i_message:
	case nua_i_chat:
	case nua_i_subscribe:
	case nua_i_notify:
	case nua_i_publish:
	case nua_i_register:
	case nua_i_info:
	case nua_i_update:
	case nua_i_prack:
	case nua_i_method:
		/* nua answered it (only OPTIONS passes our Allow); a handle it made for a
		 * request outside a dialog is ours to free (a registration's is not) */
		if (!l && nh && !register_owns(eng, nh))
			nua_handle_destroy(nh);
		break;
	default: break;
	}
}

/* ---- messages from other threads -------------------------------------------------------- */

/* The dialogs did not all end within 5 s of stop(): leave the loop anyway. */
static void stop_timeout(struct sip_engine *eng, su_timer_t *t, struct leg *unused)
{
	(void)t;
	(void)unused;
	log_msg(LOG_WARN, "sip_engine", "shutdown timed out with %zu dialogs left", eng->n_legs);
	su_root_break(eng->root);
}

/* MSG: the call service asks to dial c (the message owns its heap fields). */
static void dial(struct sip_engine *eng, void *data)
{
	struct call *c = data;
	outbound_dial(eng, c);
	call_clear(c);
}

struct web_open_msg {
	struct call call; /* heap fields owned by the message */
	int join_ms;
};

/* MSG: a web call waits for its browser. */
static void web_open(struct sip_engine *eng, void *data)
{
	struct web_open_msg *m = data;
	web_leg_open(eng, &m->call, m->join_ms);
	call_clear(&m->call);
}

struct web_join_msg {
	char call_id[CP_UUID_LEN + 1];
	struct web_socket ws; /* ws.pending: the message's heap copy */
};

/* MSG: a web call's browser connected. */
static void web_join(struct sip_engine *eng, void *data)
{
	struct web_join_msg *m = data;
	web_leg_join(eng, m->call_id, &m->ws);
	free((void *)m->ws.pending);
}

/* MSG: an API hang-up, answered through its done() callback. */
static void hangup(struct sip_engine *eng, void *data)
{
	hangup_request(eng, *(struct hangup_req **)data);
}

struct media_end {
	char call_id[CP_UUID_LEN + 1];
	char reason[CALL_REASON_MAX + 1];
};

/* MSG: the media plane asks to end a call (media_timeout, agent_*). A leg ending already
 * stays as it is, so the end is recorded once, by whoever ended it first. */
static void media_end(struct sip_engine *eng, void *data)
{
	struct media_end *m = data;
	struct leg *l = leg_find(eng, m->call_id);
	if (l)
		hangup_answered(eng, l, m->reason);
}

struct goodbye_over {
	char call_id[CP_UUID_LEN + 1];
	int goodbye_ms;
};

/* MSG: the media plane finished a call's goodbye: its BYE goes now (hangup.c). */
static void goodbye_over(struct sip_engine *eng, void *data)
{
	struct goodbye_over *m = data;
	struct leg *l = leg_find(eng, m->call_id);
	if (l)
		hangup_goodbye_over(eng, l, m->goodbye_ms);
}

/* MSG: sip_engine_stop(): refuses what is still queued for the pacer, hangs up every dialog
 * (data: the end reason, text) and shuts nua down; the loop ends at nua_r_shutdown or
 * stop_timeout. */
static void stop(struct sip_engine *eng, void *data)
{
	const char *reason = data;
	eng->stopping = true;
	hangup_fail_queue(eng);
	hangup_drain_all(eng, reason);
	nua_shutdown(eng->nua);
	/* nua reports nua_r_shutdown once its dialogs are gone; never wait longer than this */
	eng->stop_timer = su_timer_create(su_root_task(eng->root), 5000);
	su_timer_set(eng->stop_timer, stop_timeout, NULL);
}

struct trunks_msg {
	struct sip_trunk *v; /* heap, n of them: the table takes it */
	size_t n;
};

/* MSG: the stored trunks were loaded again: they replace the table. */
static void set_trunks(struct sip_engine *eng, void *data)
{
	struct trunks_msg *m = data;
	register_reconcile(eng, m->v, m->n);
	trunks_replace(eng, m->v, m->n);
	log_json(LOG_INFO, "sip_trunks", json_pack("{s:I}", "trunks", (json_int_t)m->n));
}

int sip_engine_set_trunks(struct sip_engine *eng, const struct sip_trunk *trunks, size_t n)
{
	struct trunks_msg m = {.v = n ? malloc(n * sizeof *m.v) : NULL, .n = n};
	if (n && !m.v)
		return -1;
	if (n)
		memcpy(m.v, trunks, n * sizeof *m.v);
	if (sip_post(eng, set_trunks, &m, sizeof m)) {
		free(m.v);
		return -1;
	}
	return 0;
}

/* ---- the media plane -------------------------------------------------------------------- */

/* The media engine's hooks run on the media thread and only post: end_call and goodbye_done
 * become messages to this thread (the BYE is sent here), dtmf goes to the call service's
 * worker queue (a call.dtmf event), released counts a port pair free (atomics, media.c). */
static void hook_end_call(void *arg, const char *call_id, const char *reason)
{
	struct sip_engine *eng = arg;
	struct media_end m;
	snprintf(m.call_id, sizeof m.call_id, "%s", call_id);
	snprintf(m.reason, sizeof m.reason, "%s", reason);
	if (sip_post(eng, media_end, &m, sizeof m))
		log_msg(LOG_ERROR, "media", "could not end call %s (%s): the SIP engine is gone",
			call_id, reason);
}

/* A goodbye is over: its BYE, on this thread. Should the message fail (the engine is gone),
 * the engine's stop has ended the call already. */
static void hook_goodbye_done(void *arg, const char *call_id, int goodbye_ms)
{
	struct sip_engine *eng = arg;
	struct goodbye_over m = {.goodbye_ms = goodbye_ms};
	snprintf(m.call_id, sizeof m.call_id, "%s", call_id);
	if (sip_post(eng, goodbye_over, &m, sizeof m))
		log_msg(LOG_WARN, "media", "goodbye of call %s over after the SIP engine stopped",
			call_id);
}

/* A digit heard on a call: a call.dtmf event, queued to the worker. */
static void hook_dtmf(void *arg, const char *call_id, char digit)
{
	struct sip_engine *eng = arg;
	call_service_post_dtmf(eng->svc, call_id, digit);
}

/* The media engine closed a call's sockets: their port is free again. */
static void hook_released(void *arg, int addr_index)
{
	media_port_destroyed(arg, addr_index);
}

/* Starts the media engine (its own thread) with the hooks above; -1 (logged) on failure. */
static int media_plane_start(struct sip_engine *eng)
{
	struct media_hooks hooks = {.arg = eng,
				    .end_call = hook_end_call,
				    .dtmf = hook_dtmf,
				    .released = hook_released,
				    .goodbye_done = hook_goodbye_done};
	eng->media_engine = media_engine_start(&eng->cfg.media, &hooks);
	if (!eng->media_engine) {
		log_msg(LOG_ERROR, "media", "cannot start the media engine");
		return -1;
	}
	return 0;
}

/* Stops and destroys the media engine: after the dialogs, whose sessions stopped as they
 * ended. */
static void media_plane_stop(struct sip_engine *eng)
{
	if (!eng->media_engine)
		return;
	media_engine_stop(eng->media_engine);
	media_engine_destroy(eng->media_engine);
	eng->media_engine = NULL;
}

/* ---- telephony ops (HTTP / worker threads) ---------------------------------------------- */

/* The SIP Call-ID of a call to be dialled: 128 random bits at our advertise address. */
static void op_new_call_id(void *engine, char *buf, size_t size)
{
	struct sip_engine *eng = engine;
	unsigned char rnd[16];
	char hex[33];
	if (cp_random(rnd, sizeof rnd))
		memset(rnd, 0, sizeof rnd);
	cp_hex(rnd, sizeof rnd, hex);
	snprintf(buf, size, "%s@%s", hex, eng->cfg.advertise);
}

/* Posts the dial of c; -1 (nothing happens) if the engine cannot take it. */
static int op_dial(void *engine, const struct call *c)
{
	struct call copy = {0};
	/* the message owns copies of the heap fields; dial() frees them */
	if (call_copy(&copy, c))
		return -1;
	if (sip_post(engine, dial, &copy, sizeof copy)) {
		call_clear(&copy);
		return -1;
	}
	return 0;
}

/* Digits to an answered call's far end: straight to the media engine's queue. */
static int op_send_dtmf(void *engine, const struct call *c, const char *digits)
{
	return bridge_send_dtmf(engine, c->id, digits);
}

/* Posts a hang-up of c; done() is called exactly once: by hangup.c on the engine thread, or
 * here at once (undeliverable) if the engine cannot take it. wait_ms < 0 means the configured
 * wait (--hangup-wait-ms). The goodbye's audio is copied into the request. */
static void op_hangup(void *engine, const struct call *c, const char *reason, int wait_ms,
		      const struct hangup_goodbye *goodbye, hangup_done_fn done, void *arg)
{
	struct sip_engine *eng = engine;
	struct hangup_req *req = calloc(1, sizeof *req);
	if (req && goodbye) {
		req->goodbye = true;
		req->max_wait_ms = goodbye->max_wait_ms;
		if (goodbye->len && (req->audio = malloc(goodbye->len)))
			memcpy(req->audio, goodbye->audio, goodbye->len);
		req->audio_len = req->audio ? goodbye->len : 0;
		if (goodbye->len && !req->audio) {
			free(req);
			req = NULL;
		}
	}
	if (!req) {
		done(arg, CP_ERR_UNDELIVERABLE, HANGUP_NONE, 0);
		return;
	}
	snprintf(req->call_id, sizeof req->call_id, "%s", c->id);
	snprintf(req->reason, sizeof req->reason, "%s", reason);
	if (wait_ms < 0)
		wait_ms = eng->cfg.hangup_wait_ms;
	req->deadline_us = wait_ms > 0 ? cp_mono_us() + (int64_t)wait_ms * 1000 : 0;
	req->done = done;
	req->arg = arg;
	if (sip_post(eng, hangup, &req, sizeof req)) {
		free(req->audio);
		free(req);
		done(arg, CP_ERR_UNDELIVERABLE, HANGUP_NONE, 0);
	}
}

/* Posts that web call c waits for its browser; -1 (nothing happens) if the engine cannot
 * take it. */
static int op_web_open(void *engine, const struct call *c, int join_ms)
{
	struct web_open_msg m = {.join_ms = join_ms};
	if (call_copy(&m.call, c))
		return -1;
	if (sip_post(engine, web_open, &m, sizeof m)) {
		call_clear(&m.call);
		return -1;
	}
	return 0;
}

/* Posts the join of web call call_id by its browser's socket; releases the socket at once if
 * the engine cannot take it. */
static void op_web_join(void *engine, const char *call_id, const struct web_socket *ws)
{
	struct web_join_msg m = {.ws = *ws};
	snprintf(m.call_id, sizeof m.call_id, "%s", call_id);
	uint8_t *pending = NULL;
	if (ws->pending_len && !(pending = malloc(ws->pending_len))) {
		ws->release(ws->ctx);
		return;
	}
	if (pending)
		memcpy(pending, ws->pending, ws->pending_len);
	m.ws.pending = pending;
	if (sip_post(engine, web_join, &m, sizeof m)) {
		free(pending);
		ws->release(ws->ctx);
	}
}

/* A liveness check waiting for the engine thread. The waiter may give up before the thread
 * gets to it, so both hold a reference and the last to let go frees it. */
struct ping {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool answered;
	int refs;
};

static void ping_unref(struct ping *p)
{
	pthread_mutex_lock(&p->mu);
	int left = --p->refs;
	pthread_mutex_unlock(&p->mu);
	if (left)
		return;
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

/* MSG: a liveness check reached the engine thread, behind everything posted before it. */
static void pong(struct sip_engine *eng, void *data)
{
	(void)eng;
	struct ping *p = *(struct ping **)data;
	pthread_mutex_lock(&p->mu);
	p->answered = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	ping_unref(p);
}

/* A round trip through the engine thread's queue, waited for at most timeout_ms: a thread
 * stuck in a handler (or gone) does not answer. */
static int op_ping(void *engine, int timeout_ms)
{
	struct ping *p = calloc(1, sizeof *p);
	if (!p)
		return -1;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->mu, NULL);
	p->refs = 2;
	if (sip_post(engine, pong, &p, sizeof p)) {
		p->refs = 1; /* the message was never made: only ours */
		ping_unref(p);
		return -1;
	}
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->mu);
	while (!p->answered && pthread_cond_timedwait(&p->cv, &p->mu, &until) == 0)
		;
	bool answered = p->answered;
	pthread_mutex_unlock(&p->mu);
	ping_unref(p);
	return answered ? 0 : -1;
}

static const struct telephony_ops sip_ops = {
	.new_call_id = op_new_call_id,
	.dial = op_dial,
	.hangup = op_hangup,
	.send_dtmf = op_send_dtmf,
	.web_open = op_web_open,
	.web_join = op_web_join,
	.ping = op_ping,
};

struct telephony sip_engine_telephony(struct sip_engine *eng)
{
	struct telephony t = {.ops = &sip_ops, .engine = eng};
	return t;
}

/* ---- thread ----------------------------------------------------------------------------- */

/* The caps on SIP over TCP connections: each second, each tenth of a second while a sweep
 * finds connections to shut down (a flood goes on). */
static void guard_tick(struct sip_engine *eng, su_timer_t *t, struct leg *unused)
{
	(void)unused;
	su_timer_set_interval(t, guard_tick, NULL, tcp_guard_sweep(eng) ? 100 : 1000);
}

/* The URL nua listens on, "SCHEME:HOST:PORT", for a transport on host. Behind a 1:1 NAT the
 * advertise address is not this host's: then the transport binds host (maddr) and names
 * advertise in the Via of every request it sends (UDP and TCP, TLS alike). */
static void listen_url(char *buf, size_t size, const char *scheme, const char *advertise,
		       const char *host, int port)
{
	bool nat = strcmp(advertise, host) != 0;
	const char *name = nat ? advertise : host;
	snprintf(buf, size, strchr(name, ':') ? "%s:[%s]:%d%s%s" : "%s:%s:%d%s%s", scheme, name,
		 port, nat ? ";maddr=" : "", nat ? host : "");
}

/* The engine thread tells sip_engine_start() how its start went (0 or -1). */
static void started(struct sip_engine *eng, int status)
{
	pthread_mutex_lock(&eng->start_mu);
	eng->start_status = status;
	eng->started = true;
	pthread_cond_signal(&eng->start_cv);
	pthread_mutex_unlock(&eng->start_mu);
}

/* The engine thread: creates the root and nua (listening), runs the loop until stop, then
 * stops every leg left and destroys nua and the root. Posting is refused from then on. */
static void *engine_main(void *arg)
{
	struct sip_engine *eng = arg;
	pthread_setname_np(pthread_self(), "cp-sip");
	char url[300];
	bool v6 = strchr(eng->cfg.host, ':') != NULL;
	snprintf(url, sizeof url, v6 ? "sip:[%s]:%d" : "sip:%s:%d", eng->cfg.host, eng->cfg.port);
	char bind_url[600];
	listen_url(bind_url, sizeof bind_url, "sip", eng->cfg.advertise, eng->cfg.host,
		   eng->cfg.port);

	su_home_init(eng->home);
	eng->root = su_root_create(eng);
	if (!eng->root) {
		started(eng, -1);
		return NULL;
	}
	su_root_threading(eng->root, 1);
	char sips_url[600] = "", tls_dir[PATH_MAX] = "", why[300];
	if (eng->cfg.tls_port) {
		listen_url(sips_url, sizeof sips_url, "sips", eng->cfg.advertise, eng->cfg.tls_host,
			   eng->cfg.tls_port);
		if (sip_tls_stage(&eng->cfg, tls_dir, sizeof tls_dir, why, sizeof why)) {
			log_msg(LOG_ERROR, "sip_engine", "SIP over TLS: %s", why);
			su_root_destroy(eng->root);
			eng->root = NULL;
			started(eng, -1);
			return NULL;
		}
	}
	/* the far ends a previous run left up are hung up before any new call is taken; a
	 * dialog kept over TLS is ended over TLS, with the files staged for nua */
	restart_hangup(eng, bind_url, sips_url, tls_dir, eng->left, eng->n_left, RESTART_WAIT_MS);
	eng->nua = nua_create(
		eng->root, on_nua_event, eng, NUTAG_URL(bind_url),
		/* RFC 3581: ask for rport in our requests, so answers come back
			       * through a NAT to where they left (nta answers requests at their
			       * source port, and fills in received/rport, by default) */
		NTATAG_CLIENT_RPORT(1), TAG_IF(sips_url[0], NUTAG_SIPS_URL(sips_url)),
		TAG_IF(sips_url[0], TPTAG_CERTIFICATE(tls_dir)),
		TAG_IF(sips_url[0], TPTAG_TLS_VERIFY_POLICY(TPTLS_VERIFY_SUBJECTS_OUT)),
		TAG_IF(sips_url[0], TPTAG_TLS_VERIFY_DEPTH(9)),
		/* a TCP or TLS connection that closes under requests still waiting
			       * for their answer (a refused TLS handshake among them) fails them
			       * at once, 503 from nta, instead of leaving them to time out */
		TPTAG_SDWN_ERROR(1), NUTAG_MEDIA_ENABLE(0), NUTAG_AUTOACK(1), NUTAG_AUTOANSWER(0),
		NUTAG_AUTOALERT(0), NUTAG_ENABLEINVITE(1), SIPTAG_ALLOW_STR(SIP_ALLOW),
		SIPTAG_USER_AGENT_STR("callplane"), TPTAG_UDP_RMEM(eng->cfg.udp_buffer),
		TPTAG_UDP_WMEM(eng->cfg.udp_buffer),
		/* SIP over TCP: a connection unused this long is closed, one whose
			       * message stays incomplete 32 s (or the idle time if shorter) too */
		TPTAG_IDLE(eng->cfg.tcp_idle_s * 1000u),
		TPTAG_TIMEOUT((eng->cfg.tcp_idle_s < 32 ? eng->cfg.tcp_idle_s : 32) * 1000u),
		TAG_END());
	sip_tls_unstage(tls_dir); /* sofia has read it; the key's copy goes now */
	if (!eng->nua) {
		log_msg(LOG_ERROR, "sip_engine", "cannot listen on %s%s%s", url,
			sips_url[0] ? " and " : "", sips_url);
		su_root_destroy(eng->root);
		eng->root = NULL;
		started(eng, -1);
		return NULL;
	}
	eng->pace_timer = su_timer_create(su_root_task(eng->root), 5);
	eng->guard_timer = su_timer_create(su_root_task(eng->root), 1000);
	tcp_guard_open(eng);
	su_timer_set_interval(eng->guard_timer, guard_tick, NULL, 1000);
	register_reconcile(eng, eng->trunks, eng->n_trunks);
	started(eng, 0);
	json_t *rtp = json_array();
	json_t *rtp_adv = json_array();
	for (int i = 0; i < eng->n_media; i++) {
		json_array_append_new(rtp, json_string(eng->media[i].bind_text));
		json_array_append_new(rtp_adv, json_string(eng->media[i].text));
	}
	log_json(LOG_INFO, "sip_listening",
		 json_pack("{s:s, s:s, s:s, s:o, s:o, s:I}", "url", url, "bind_url", bind_url,
			   "contact", eng->contact, "rtp_addrs", rtp, "rtp_advertise", rtp_adv,
			   "rtp_capacity", (json_int_t)sip_config_rtp_capacity(&eng->cfg)));
	if (sips_url[0])
		log_json(LOG_INFO, "sip_tls",
			 json_pack("{s:s, s:s, s:b, s:s}", "url", sips_url, "ca_file",
				   sip_tls_ca_file(&eng->cfg), "certificate",
				   eng->cfg.tls_cert[0] != 0, "verify",
				   "chain and host name of every server we connect to"));

	su_root_run(eng->root);

	pthread_mutex_lock(&eng->msg_mu);
	eng->gone = true;
	pthread_mutex_unlock(&eng->msg_mu);
	leg_stop_all(eng);
	register_stop(eng);
	if (eng->stop_timer)
		su_timer_destroy(eng->stop_timer);
	su_timer_destroy(eng->pace_timer);
	su_timer_destroy(eng->guard_timer);
	tcp_guard_close(eng);
	nua_destroy(eng->nua);
	su_root_destroy(eng->root);
	su_home_deinit(eng->home);
	return NULL;
}

struct sip_engine *sip_engine_start(const struct sip_config *cfg, struct call_service *svc,
				    struct left_dialog *left, size_t n_left)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, (void (*)(void))su_init);
	struct sip_engine *eng = calloc(1, sizeof *eng);
	if (!eng)
		return NULL;
	eng->cfg = *cfg;
	eng->svc = svc;
	eng->left = left;
	eng->n_left = n_left;
	if (!eng->cfg.advertise[0]) /* serve chooses one for a wildcard host */
		snprintf(eng->cfg.advertise, sizeof eng->cfg.advertise, "%s", cfg->host);
	bool v6 = strchr(eng->cfg.advertise, ':') != NULL;
	snprintf(eng->contact, sizeof eng->contact,
		 v6 ? "sip:callplane@[%s]:%d" : "sip:callplane@%s:%d", eng->cfg.advertise,
		 cfg->port);
	snprintf(eng->contact_hdr, sizeof eng->contact_hdr, "<%s>", eng->contact);
	if (cfg->tls_port)
		snprintf(eng->contact_tls_hdr, sizeof eng->contact_tls_hdr,
			 v6 ? "<sip:callplane@[%s]:%d;transport=tls>"
			    : "<sip:callplane@%s:%d;transport=tls>",
			 eng->cfg.advertise, cfg->tls_port);
	if (trunks_create(eng) || access_create(eng) || media_create(eng) ||
	    media_plane_start(eng)) {
		trunks_destroy(eng);
		access_destroy(eng);
		free(eng);
		return NULL;
	}
	eng->tokens = 100;
	eng->tokens_at_us = cp_mono_us();
	pthread_mutex_init(&eng->start_mu, NULL);
	pthread_cond_init(&eng->start_cv, NULL);
	pthread_mutex_init(&eng->msg_mu, NULL);
	if (pthread_create(&eng->thread, NULL, engine_main, eng)) {
		media_plane_stop(eng);
		trunks_destroy(eng);
		access_destroy(eng);
		free(eng);
		return NULL;
	}
	pthread_mutex_lock(&eng->start_mu);
	while (!eng->started)
		pthread_cond_wait(&eng->start_cv, &eng->start_mu);
	pthread_mutex_unlock(&eng->start_mu);
	if (eng->start_status) {
		pthread_join(eng->thread, NULL);
		media_plane_stop(eng);
		pthread_mutex_destroy(&eng->start_mu);
		pthread_cond_destroy(&eng->start_cv);
		trunks_destroy(eng);
		access_destroy(eng);
		free(eng);
		return NULL;
	}
	return eng;
}

void sip_engine_stop(struct sip_engine *eng, const char *reason)
{
	if (!eng)
		return;
	char text[CALL_REASON_MAX + 1];
	snprintf(text, sizeof text, "%s", reason);
	if (sip_post(eng, stop, text, sizeof text) == 0)
		pthread_join(eng->thread, NULL);
	else
		log_msg(LOG_ERROR, "sip_engine", "could not stop the engine thread");
	media_plane_stop(eng);
}

void sip_engine_destroy(struct sip_engine *eng)
{
	if (!eng)
		return;
	pthread_mutex_destroy(&eng->start_mu);
	pthread_cond_destroy(&eng->start_cv);
	pthread_mutex_destroy(&eng->msg_mu);
	trunks_destroy(eng);
	access_destroy(eng);
	free(eng);
}
