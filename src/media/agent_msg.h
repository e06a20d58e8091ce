/*
 * agent_msg.h - one text message from the agent (Twilio Media Streams, docs/MEDIA.md), parsed
 * into what the media engine acts on. Pure: no session, no socket, no clock, so every byte an
 * agent can send is exercised by tests/unit and fuzz/ without a call.
 */
#ifndef CP_MEDIA_AGENT_MSG_H
#define CP_MEDIA_AGENT_MSG_H

#include <stddef.h>
#include <stdint.h>

#define AGENT_PAYLOAD_MAX (96 * 1024)               /* base64 text of one media message */
#define AGENT_AUDIO_MAX (AGENT_PAYLOAD_MAX / 4 * 3) /* the audio it decodes to */
#define AGENT_MARK_NAME_MAX 127

enum agent_event {
	AGENT_MEDIA, /* audio[0..audio_len) to queue */
	AGENT_MARK,  /* mark_name */
	AGENT_CLEAR,
};

struct agent_msg {
	enum agent_event event;
	size_t audio_len;
	char mark_name[AGENT_MARK_NAME_MAX + 1];
};

/*
 * Parses text[0..len) for the stream whose streamSid is sid. A message without a streamSid is
 * taken as this stream's (as Twilio's agents may omit it). audio (AGENT_AUDIO_MAX bytes, the
 * caller's) receives a media message's decoded audio. Returns 0, or -1 with *why set to a
 * static sentence for the log (not JSON, no event, an unknown event, another stream's
 * streamSid, a payload that is missing, too large or not base64, a mark without a name).
 */
int agent_msg_parse(const char *text, size_t len, const char *sid, struct agent_msg *m,
		    uint8_t *audio, const char **why);

#endif
