/*
 * sdes.h - SDP Security Descriptions (RFC 4568): the a=crypto attribute that carries an SRTP
 * master key in SDP, read and written. Pure text: no SIP, no sockets; docs/CARRIERS.md, "SRTP".
 */
#ifndef CP_SIP_SDES_H
#define CP_SIP_SDES_H

#include <stddef.h>
#include <stdint.h>

#include "media/media.h"

/* One usable a=crypto line: its tag, its suite, its inline key (master key then salt). */
struct sdes_crypto {
	unsigned long tag; /* 1..999999999 */
	enum media_srtp_suite suite;
	uint8_t key[MEDIA_SRTP_KEY_LEN];
};

enum sdes_result {
	SDES_OK,
	SDES_MALFORMED,     /* not "tag SP suite SP key-params" (RFC 4568 9.1) */
	SDES_UNKNOWN_SUITE, /* a suite we do not do (AES_256, F8, NULL...) */
	SDES_BAD_KEY,       /* inline: not base64 of exactly 30 bytes */
	SDES_UNSUPPORTED,   /* a lifetime under 2^20 or over 2^48, an MKI,
					      * several keys, a session parameter */
};

/* Reads the value of one a=crypto attribute (what follows "a=crypto:", up to the line's end,
 * len bytes, not NUL-terminated) into *out. Only SDES_OK fills *out. */
enum sdes_result sdes_parse(const char *value, size_t len, struct sdes_crypto *out);
/* Writes "a=crypto:TAG SUITE inline:KEY\r\n" into buf (NUL-terminated); the length written,
 * or -1 if size is too small or c's suite is not one we do. */
int sdes_print(const struct sdes_crypto *c, char *buf, size_t size);
/* The suite's name as SDP writes it ("AES_CM_128_HMAC_SHA1_80"), NULL for NONE. */
const char *sdes_suite_name(enum media_srtp_suite suite);

#endif
