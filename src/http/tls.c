/*
 * tls.c - the API's certificate and key (--tls-cert, --tls-key), read and checked before the
 * server starts, so that a wrong file stops the start with a message naming it instead of a
 * server that listens and fails every handshake.
 *
 * libmicrohttpd serves HTTPS through GnuTLS (Debian's build has it: MHD_FEATURE_TLS) from
 * PEM text in memory. The same GnuTLS parses the files here, one at a time, so the message
 * says which one is wrong, and then as a pair (the key must be the certificate's): what MHD
 * would load, refused before it is asked to.
 */
#include "http_internal.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* far above a key or a chain of certificates (a few KiB) */
#define TLS_FILE_MAX (1024 * 1024)

/* Checks the PEM texts in t: the certificates, the key, then the pair. */
static enum http_tls_result check(const struct http_tls *t, const char *cert_path,
				  const char *key_path, char *why, size_t size)
{
	gnutls_datum_t cert = {(unsigned char *)t->cert, (unsigned)t->cert_len};
	gnutls_datum_t key = {(unsigned char *)t->key, (unsigned)t->key_len};
	gnutls_x509_crt_t *crts = NULL;
	unsigned n_crts = 0;
	int r = gnutls_x509_crt_list_import2(&crts, &n_crts, &cert, GNUTLS_X509_FMT_PEM, 0);
	for (unsigned i = 0; i < n_crts; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	if (r < 0 || n_crts == 0) {
		snprintf(why, size, "--tls-cert %s holds no PEM certificate (%s)", cert_path,
			 r < 0 ? gnutls_strerror(r) : "none found");
		return HTTP_TLS_INVALID;
	}
	gnutls_x509_privkey_t pk;
	if (gnutls_x509_privkey_init(&pk) < 0) {
		snprintf(why, size, "out of memory");
		return HTTP_TLS_UNREADABLE;
	}
	r = gnutls_x509_privkey_import2(pk, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_x509_privkey_deinit(pk);
	if (r < 0) {
		snprintf(why, size, "--tls-key %s holds no unencrypted PEM private key (%s)",
			 key_path, gnutls_strerror(r));
		return HTTP_TLS_INVALID;
	}
	gnutls_certificate_credentials_t cred;
	if (gnutls_certificate_allocate_credentials(&cred) < 0) {
		snprintf(why, size, "out of memory");
		return HTTP_TLS_UNREADABLE;
	}
	r = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_certificate_free_credentials(cred);
	if (r < 0) {
		snprintf(why, size,
			 "--tls-key %s is not the key of the certificate in --tls-cert %s (%s)",
			 key_path, cert_path, gnutls_strerror(r));
		return HTTP_TLS_INVALID;
	}
	return HTTP_TLS_OK;
}

enum http_tls_result http_tls_load(const char *cert_path, const char *key_path,
				   struct http_tls *out, char *why, size_t size)
{
	memset(out, 0, sizeof *out);
	if (cp_read_file(cert_path, TLS_FILE_MAX, &out->cert, &out->cert_len)) {
		snprintf(why, size, "--tls-cert %s: cannot read it: %s", cert_path,
			 strerror(errno));
		return HTTP_TLS_UNREADABLE;
	}
	if (cp_read_file(key_path, TLS_FILE_MAX, &out->key, &out->key_len)) {
		snprintf(why, size, "--tls-key %s: cannot read it: %s", key_path, strerror(errno));
		http_tls_free(out);
		return HTTP_TLS_UNREADABLE;
	}
	enum http_tls_result r = check(out, cert_path, key_path, why, size);
	if (r != HTTP_TLS_OK)
		http_tls_free(out);
	return r;
}

void http_tls_free(struct http_tls *t)
{
	free(t->cert);
	cp_free_secret(t->key, t->key_len);
	memset(t, 0, sizeof *t);
}
