/*
 * fuzz_sip_msg.c - libFuzzer target: any bytes as a SIP message from the network, parsed by
 * sofia-sip's message parser as nua parses what arrives, then read by what we write ourselves
 * on top of it: what an INVITE says (inbound_read_invite: the dialled number from the
 * Request-URI or the To, From, Request-URI, Call-ID), the credentials that answer a digest
 * challenge (trunk_credentials), and the SDP of its body (media_parse_sdp, fed sofia's payload
 * as the engine feeds it: not NUL-terminated). Every SIP header is sofia's to parse; these are
 * the only places we read one.
 *
 * Whatever the bytes: nothing is read or written out of bounds or leaked; a number accepted is
 * E.164 ("+" and 2..15 digits); the texts read fit their buffers; credentials are
 * "scheme:realm:user:password" ending in the trunk's user and password.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "sip/sip_internal.h"

#include <sofia-sip/msg.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	su_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msg_t *msg = msg_make(sip_default_mclass(), 0, data, (ssize_t)size);
	sip_t *sip = msg ? sip_object(msg) : NULL;
	if (!sip) {
		msg_destroy(msg);
		return 0;
	}
	/* the number from the Request-URI, and from To (an INVITE on a registration) */
	for (int by_to = 0; sip->sip_request && by_to < 2; by_to++) {
		struct invite_facts f;
		bool ok = inbound_read_invite(sip, by_to, &f);
		if (ok && !cp_is_e164(f.number))
			abort();
		if (strnlen(f.from, sizeof f.from) == sizeof f.from ||
		    strnlen(f.to, sizeof f.to) == sizeof f.to ||
		    strnlen(f.call_id, sizeof f.call_id) == sizeof f.call_id)
			abort();
	}
	char cred[512];
	if (trunk_credentials("trunkuser", "pa:ss", sip, cred, sizeof cred)) {
		static const char tail[] = ":trunkuser:pa:ss";
		size_t n = strlen(cred);
		if (n < sizeof tail || strcmp(cred + n - (sizeof tail - 1), tail))
			abort();
	}
	if (sip->sip_payload) {
		struct sdp_remote r;
		media_parse_sdp(sip->sip_payload->pl_data, sip->sip_payload->pl_len, &r);
		if (r.payload_type != -1 && r.payload_type != 0 && r.payload_type != 8)
			abort();
	}
	msg_destroy(msg);
	return 0;
}
