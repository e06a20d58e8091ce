/*
 * bridge.c - the SIP engine's side of the media plane (src/media): it starts the media
 * engine, hands each answered dialog's sockets to it, tells it about re-INVITEs and
 * hang-ups, and turns what the media engine decides into SIP and call events.
 *
 * Ownership: a leg's RTP/RTCP sockets belong to the leg until bridge_start(), and to the
 * media engine from then on (it closes them and calls media_release() from its thread, hence
 * the atomic port counters in media.c). A media session lives from the answer until the
 * dialog ends; bridge_stop() is called as soon as a BYE is sent or received, so RTP and the
 * agent's stream stop with the call, not when nua finally releases the handle.
 *
 * The media engine's hooks run on the media thread and only post: end_call becomes a
 * message to this engine's thread (the BYE is sent there), dtmf goes to the call service's
 * worker queue (a call.dtmf event).
 */
#include "sip_internal.h"
#include "core/log.h"

#include <string.h>

static void hook_end_call(void *arg, const char *call_id, const char *reason)
{
	struct sip_engine *eng = arg;
	if (engine_send_media_end(eng, call_id, reason))
		log_msg(LOG_ERROR, "media", "could not end call %s (%s): the SIP engine is gone",
			call_id, reason);
}

static void hook_dtmf(void *arg, const char *call_id, char digit)
{
	struct sip_engine *eng = arg;
	call_service_post_dtmf(eng->svc, call_id, digit);
}

static void hook_released(void *arg, int addr_index)
{
	media_release(arg, addr_index);
}

int bridge_start_engine(struct sip_engine *eng)
{
	struct media_hooks hooks = {.arg = eng, .end_call = hook_end_call, .dtmf = hook_dtmf,
				    .released = hook_released};
	eng->media_engine = media_engine_start(&eng->cfg.media, &hooks);
	if (!eng->media_engine) {
		log_msg(LOG_ERROR, "media", "cannot start the media engine");
		return -1;
	}
	return 0;
}

void bridge_stop_engine(struct sip_engine *eng)
{
	if (!eng->media_engine)
		return;
	media_engine_stop(eng->media_engine);
	media_engine_free(eng->media_engine);
	eng->media_engine = NULL;
}

void bridge_keep_call(struct leg *l, const struct call *c)
{
	snprintf(l->tenant_id, sizeof l->tenant_id, "%s", c->tenant_id);
	/* a failed copy leaves the call without a stream (RTP only) or without parameters */
	l->stream_url = c->stream_url ? strdup(c->stream_url) : NULL;
	l->metadata = c->metadata ? strdup(c->metadata) : NULL;
}

void bridge_start(struct leg *l)
{
	struct sip_engine *eng = l->eng;
	if (l->media_started || l->rtp_fd < 0 || !eng->media_engine)
		return;
	struct media_start ms = {
		.call_id = l->call_id,
		.rtp_fd = l->rtp_fd,
		.rtcp_fd = l->rtcp_fd,
		.addr_index = l->rtp_addr,
		.remote = l->remote_rtp,
		.remote_len = l->remote_rtp_len,
		.payload_type = l->payload_type == 8 ? 8 : 0,
		.te_payload_type = l->te_payload_type,
		.stream_url = l->stream_url,
		.metadata = l->metadata,
		.account = l->tenant_id,
	};
	/* the sockets are the media engine's now, whatever happens to the message */
	l->rtp_fd = l->rtcp_fd = -1;
	l->media_started = true;
	if (media_session_start(eng->media_engine, &ms))
		log_msg(LOG_ERROR, "media", "call %s: could not start its media", l->call_id);
}

void bridge_update(struct leg *l)
{
	if (!l->media_started)
		return;
	media_session_update(l->eng->media_engine, l->call_id, &l->remote_rtp, l->remote_rtp_len,
			     l->payload_type == 8 ? 8 : 0, l->te_payload_type);
}

void bridge_stop(struct leg *l)
{
	if (!l->media_started || !l->eng->media_engine)
		return;
	l->media_started = false;
	media_session_stop(l->eng->media_engine, l->call_id);
}

void bridge_on_media_end(struct sip_engine *eng, const char *call_id, const char *reason)
{
	struct leg *l = leg_find(eng, call_id);
	if (l)
		hangup_answered(eng, l, reason);    /* a leg ending already stays as it is */
}

int bridge_send_dtmf(struct sip_engine *eng, const char *call_id, const char *digits)
{
	if (!eng->media_engine)
		return -1;
	return media_send_dtmf(eng->media_engine, call_id, digits);
}
