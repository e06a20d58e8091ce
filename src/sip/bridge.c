/*
 * bridge.c - a leg's session in the media plane (src/media): hands an answered dialog's
 * sockets to the media engine, tells it about re-INVITEs and hang-ups, and sends DTMF.
 *
 * Ownership: a leg's RTP/RTCP sockets (a web leg's: the browser's WebSocket, bridge_start_web)
 * belong to the leg until bridge_start(), and to the media engine from then on (it closes them and reports each pair through its released hook,
 * from its thread, hence the atomic port counters in media.c). A media session lives from the
 * answer until the dialog ends; bridge_stop() is called as soon as a BYE is sent or received,
 * so RTP and the agent's stream stop with the call, not when nua finally releases the handle.
 *
 * A goodbye (bridge_goodbye) is the media plane's part of a hang-up that lets the call finish
 * speaking: the media engine plays what is queued and the goodbye's own audio, then calls its
 * goodbye_done hook, which engine.c turns into a message to this thread, where hangup.c sends
 * the BYE.
 *
 * Layering: this file sits at the bottom of the SIP layer, beside media.c: it works on one
 * leg's fields and the media engine, and calls no other SIP file. What the media engine
 * decides (end a call, a digit heard) comes back through its hooks, which engine.c creates
 * the media engine with, so ending a call for the media plane is hang-up's business (above
 * this file), not this file's.
 */
#include "sip_internal.h"
#include "core/log.h"

#include <string.h>

void bridge_keep_call(struct leg *l, const struct call *c)
{
	snprintf(l->tenant_id, sizeof l->tenant_id, "%s", c->tenant_id);
	l->record = c->record;
	/* a failed copy leaves the call without a stream (RTP only) or without parameters */
	l->stream_url = c->stream_url ? strdup(c->stream_url) : NULL;
	l->metadata = c->metadata ? strdup(c->metadata) : NULL;
	/* a failed copy ends the call at max duration without its goodbye */
	l->max_duration_goodbye = c->max_duration_goodbye ? strdup(c->max_duration_goodbye) : NULL;
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
		.record = l->record,
		.srtp = l->srtp,
	};
	/* the sockets are the media engine's now, whatever happens to the message */
	l->rtp_fd = l->rtcp_fd = -1;
	l->media_started = true;
	if (media_session_start(eng->media_engine, &ms))
		log_msg(LOG_ERROR, "media", "call %s: could not start its media", l->call_id);
	explicit_bzero(&ms.srtp, sizeof ms.srtp);
}

void bridge_start_web(struct leg *l, const struct web_socket *ws)
{
	struct sip_engine *eng = l->eng;
	if (l->media_started || !eng->media_engine) {
		ws->release(ws->ctx);
		return;
	}
	struct media_web web = {.fd = ws->fd,
				.pending = ws->pending,
				.pending_len = ws->pending_len,
				.release = ws->release,
				.ctx = ws->ctx};
	struct media_start ms = {
		.call_id = l->call_id,
		.rtp_fd = -1,
		.rtcp_fd = -1,
		.addr_index = -1,
		.payload_type = 0,
		.te_payload_type = -1,
		.stream_url = l->stream_url,
		.metadata = l->metadata,
		.account = l->tenant_id,
		.record = l->record,
		.web = &web,
	};
	/* the socket is the media engine's now, whatever happens to the message */
	l->media_started = true;
	if (media_session_start(eng->media_engine, &ms))
		log_msg(LOG_ERROR, "media", "call %s: could not start its media", l->call_id);
}

void bridge_update(struct leg *l)
{
	if (!l->media_started)
		return;
	media_session_update(l->eng->media_engine, l->call_id, &l->remote_rtp, l->remote_rtp_len,
			     l->payload_type == 8 ? 8 : 0, l->te_payload_type, &l->srtp);
}

void bridge_stop(struct leg *l)
{
	if (!l->media_started || !l->eng->media_engine)
		return;
	l->media_started = false;
	media_session_stop(l->eng->media_engine, l->call_id);
}

int bridge_goodbye(struct leg *l, const uint8_t *audio, size_t len, int max_wait_ms)
{
	if (!l->media_started || !l->eng->media_engine)
		return -1;
	return media_session_goodbye(l->eng->media_engine, l->call_id, audio, len, max_wait_ms);
}

int bridge_send_dtmf(struct sip_engine *eng, const char *call_id, const char *digits)
{
	if (!eng->media_engine)
		return -1;
	return media_send_dtmf(eng->media_engine, call_id, digits);
}
