/*
 * srtp.c - SRTP and SRTCP (RFC 3711) of one session, with libsrtp2: what rtp.c sends is
 * protected just before sendto(), what arrives is unprotected before any other check.
 *
 * A session with SRTP has two libsrtp contexts: tx, made of our master key, protects our one
 * SSRC; rx, made of the far end's master key, takes any SSRC it sends (ssrc_any_inbound, so
 * a far end that restarts its stream under a new SSRC is still heard, as over plain RTP).
 * libsrtp adds a stream for a new SSRC only once a packet of it has authenticated, so a
 * stranger who finds the port cannot make the context grow. SRTCP uses the same master keys
 * (RFC 3711 4.3) and always an 80-bit tag (RFC 4568 6.2: _32 applies to SRTP only).
 *
 * A packet that does not authenticate, replays one already seen, or is too short to be
 * SRTP is dropped and counted (stats.srtp_dropped), never passed on: the checks of rtp.c run
 * on authenticated packets only, so a forged packet cannot latch an address either.
 *
 * The master keys live in the contexts (libsrtp derives the session keys at creation); the
 * copies kept on the session to notice a re-INVITE's new keys are wiped when it ends. No key
 * is ever logged.
 *
 * Alignment: libsrtp reads packet headers as 32-bit words, so every buffer handed to it is
 * 4-byte aligned (the callers' buffers are declared so).
 */
#include "media/media_internal.h"
#include "core/log.h"

#include <pthread.h>
#include <string.h>

#include <srtp2/srtp.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static srtp_err_status_t init_status = srtp_err_status_fail;

static void init_library(void)
{
	init_status = srtp_init();
}

int sec_init(void)
{
	pthread_once(&init_once, init_library);
	return init_status == srtp_err_status_ok ? 0 : -1;
}

/* A context for key: tx protects our stream, rx unprotects any stream of the far end. */
static srtp_t context(enum media_srtp_suite suite, const uint8_t *key, bool tx)
{
	srtp_policy_t p;
	memset(&p, 0, sizeof p);
	if (suite == MEDIA_SRTP_AES128_SHA1_32)
		srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p.rtp);
	else
		srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtp);
	srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtcp);
	p.ssrc.type = tx ? ssrc_any_outbound : ssrc_any_inbound;
	/* libsrtp reads the key and does not keep the pointer */
	uint8_t k[MEDIA_SRTP_KEY_LEN];
	memcpy(k, key, sizeof k);
	p.key = k;
	p.window_size = 128;
	srtp_t ctx = NULL;
	srtp_err_status_t err = srtp_create(&ctx, &p);
	explicit_bzero(k, sizeof k);
	return err == srtp_err_status_ok ? ctx : NULL;
}

int sec_open(struct session *s, const struct media_srtp *k)
{
	if (k->suite == MEDIA_SRTP_NONE) {
		sec_close(s);
		return 0;
	}
	if (s->srtp_tx && s->srtp_suite == k->suite &&
	    !memcmp(s->srtp_keys, k->tx_key, MEDIA_SRTP_KEY_LEN) &&
	    !memcmp(s->srtp_keys + MEDIA_SRTP_KEY_LEN, k->rx_key, MEDIA_SRTP_KEY_LEN))
		return 0; /* a re-INVITE that kept the keys: the contexts go on */
	if (sec_init())
		goto fail;
	srtp_t tx = context(k->suite, k->tx_key, true);
	srtp_t rx = tx ? context(k->suite, k->rx_key, false) : NULL;
	if (!rx) {
		if (tx)
			srtp_dealloc(tx);
		goto fail;
	}
	sec_close(s);
	s->srtp_tx = tx;
	s->srtp_rx = rx;
	s->srtp_suite = k->suite;
	memcpy(s->srtp_keys, k->tx_key, MEDIA_SRTP_KEY_LEN);
	memcpy(s->srtp_keys + MEDIA_SRTP_KEY_LEN, k->rx_key, MEDIA_SRTP_KEY_LEN);
	return 0;
fail:
	log_msg(LOG_ERROR, "media", "call %s: cannot set up its SRTP", s->call_id);
	return -1;
}

void sec_close(struct session *s)
{
	if (s->srtp_tx)
		srtp_dealloc(s->srtp_tx);
	if (s->srtp_rx)
		srtp_dealloc(s->srtp_rx);
	s->srtp_tx = s->srtp_rx = NULL;
	s->srtp_suite = MEDIA_SRTP_NONE;
	explicit_bzero(s->srtp_keys, sizeof s->srtp_keys);
}

int sec_protect(struct session *s, uint8_t *pkt, size_t *len, bool rtcp)
{
	int n = (int)*len;
	srtp_err_status_t err =
		rtcp ? srtp_protect_rtcp(s->srtp_tx, pkt, &n) : srtp_protect(s->srtp_tx, pkt, &n);
	if (err != srtp_err_status_ok)
		return -1;
	*len = (size_t)n;
	return 0;
}

int sec_unprotect(struct session *s, uint8_t *pkt, size_t *len, bool rtcp)
{
	int n = (int)*len;
	srtp_err_status_t err = rtcp ? srtp_unprotect_rtcp(s->srtp_rx, pkt, &n)
				     : srtp_unprotect(s->srtp_rx, pkt, &n);
	if (err != srtp_err_status_ok || n < 0) {
		atomic_fetch_add_explicit(&s->me->stats.srtp_dropped, 1, memory_order_relaxed);
		return -1;
	}
	*len = (size_t)n;
	return 0;
}
