/*
 * fuzz_agent_msg.c - libFuzzer target: any bytes as one text message from the agent
 * (media/agent_msg.c). Whatever the bytes, the parser returns 0 or -1 with a reason, reads and
 * writes only within its buffers, and a media message never decodes to more audio than
 * AGENT_AUDIO_MAX.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "media/agent_msg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR); /* a log line per input would be most of the time spent */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t audio[AGENT_AUDIO_MAX];
	struct agent_msg m;
	const char *why = NULL;
	/* the text as libre hands it over: exactly size bytes, no terminator */
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	int rc = agent_msg_parse(text, size, "MZ0123456789abcdef", &m, audio, &why);
	if (rc == 0 && m.event == AGENT_MEDIA && m.audio_len > AGENT_AUDIO_MAX)
		abort();
	if (rc == 0 && m.event == AGENT_MARK && strlen(m.mark_name) > AGENT_MARK_NAME_MAX)
		abort();
	if (rc != 0 && !why)
		abort();
	free(text);
	return 0;
}
