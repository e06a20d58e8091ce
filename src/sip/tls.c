/*
 * tls.c - SIP over TLS: the files of --sip-tls-cert, --sip-tls-key and --sip-tls-ca, checked
 * before the server starts, and handed to sofia-sip's TLS transport the way it reads them.
 *
 * sofia-sip (tport_type_tls.c) takes no file names: TPTAG_CERTIFICATE names a directory in
 * which it reads "agent.pem" (the certificate chain and its key, one file) and "cafile.pem"
 * (the certificates it trusts), once, when the transport is bound. A file it cannot use is
 * only a debug line there: a missing key makes a listener that fails every handshake, and a
 * wrong CA every outgoing connection. So the files are read and checked here first, with the
 * OpenSSL sofia uses (a certificate, an unencrypted key that is the certificate's, a CA file
 * holding at least one certificate), and a problem stops the start with the file named.
 *
 * Staging: the engine thread copies the checked files into a directory of its own (mkdtemp,
 * mode 0700, the files 0600), binds, and removes the directory at once: sofia keeps what it
 * read in its SSL context, and the copy of the key lives on disk only while nua binds.
 *
 * Verification is sofia's: TPTLS_VERIFY_SUBJECTS_OUT (engine.c) checks the chain of every
 * server we connect to against cafile.pem and that one of the certificate's subjectAltName
 * DNS/IP entries (or its common name) is the host we connected to. Servers' clients (a
 * carrier calling us) are not asked for a certificate.
 */
#include "sip_internal.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

/* far above a key, a chain or a CA bundle (Debian's is ~200 KiB) */
#define TLS_FILE_MAX (8 * 1024 * 1024)

const char *sip_tls_ca_file(const struct sip_config *cfg)
{
	return cfg->tls_ca[0] ? cfg->tls_ca : X509_get_default_cert_file();
}

/* The first PEM certificate of text; NULL if it holds none. The caller frees it. */
static X509 *first_cert(const char *text, size_t len)
{
	BIO *b = BIO_new_mem_buf(text, (int)len);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return x;
}

/* How many PEM certificates text holds. */
static int count_certs(const char *text, size_t len)
{
	BIO *b = BIO_new_mem_buf(text, (int)len);
	int n = 0;
	X509 *x;
	while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		X509_free(x);
		n++;
	}
	BIO_free(b);
	ERR_clear_error(); /* the end of the text reads as an error */
	return n;
}

/* The files of cfg, read: the chain and key (NULL without --sip-tls-cert) and the CA text. */
struct tls_files {
	char *cert, *key, *ca;
	size_t cert_len, key_len, ca_len;
};

static void files_free(struct tls_files *f)
{
	free(f->cert);
	cp_free_secret(f->key, f->key_len);
	free(f->ca);
	memset(f, 0, sizeof *f);
}

/* Reads and checks the files of cfg into f; 0, or 1 (a file cannot be read) or 2 (a file
 * does not hold what it must) with the problem in why and f freed. */
static int files_load(const struct sip_config *cfg, struct tls_files *f, char *why, size_t size)
{
	memset(f, 0, sizeof *f);
	const char *ca = sip_tls_ca_file(cfg);
	if (cfg->tls_cert[0] && cp_read_file(cfg->tls_cert, TLS_FILE_MAX, &f->cert, &f->cert_len)) {
		snprintf(why, size, "--sip-tls-cert %s: cannot read it: %s", cfg->tls_cert,
			 strerror(errno));
		return 1;
	}
	if (cfg->tls_key[0] && cp_read_file(cfg->tls_key, TLS_FILE_MAX, &f->key, &f->key_len)) {
		snprintf(why, size, "--sip-tls-key %s: cannot read it: %s", cfg->tls_key,
			 strerror(errno));
		files_free(f);
		return 1;
	}
	if (cp_read_file(ca, TLS_FILE_MAX, &f->ca, &f->ca_len)) {
		snprintf(why, size, "--sip-tls-ca %s: cannot read it: %s", ca, strerror(errno));
		files_free(f);
		return 1;
	}
	if (count_certs(f->ca, f->ca_len) == 0) {
		snprintf(why, size, "--sip-tls-ca %s holds no PEM certificate", ca);
		files_free(f);
		return 2;
	}
	if (!f->cert)
		return 0;
	X509 *x = first_cert(f->cert, f->cert_len);
	if (!x) {
		snprintf(why, size, "--sip-tls-cert %s holds no PEM certificate", cfg->tls_cert);
		files_free(f);
		return 2;
	}
	BIO *b = BIO_new_mem_buf(f->key, (int)f->key_len);
	/* no passphrase callback: an encrypted key is refused, not prompted for */
	EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"") : NULL;
	BIO_free(b);
	int rc = 0;
	if (!pk) {
		snprintf(why, size, "--sip-tls-key %s holds no unencrypted PEM private key",
			 cfg->tls_key);
		rc = 2;
	} else if (X509_check_private_key(x, pk) != 1) {
		snprintf(why, size, "--sip-tls-key %s is not the key of the certificate in %s",
			 cfg->tls_key, cfg->tls_cert);
		rc = 2;
	}
	EVP_PKEY_free(pk);
	X509_free(x);
	ERR_clear_error();
	if (rc)
		files_free(f);
	return rc;
}

int sip_tls_check(const struct sip_config *cfg, char *why, size_t size)
{
	struct tls_files f;
	int rc = files_load(cfg, &f, why, size);
	if (rc == 0)
		files_free(&f);
	return rc;
}

/* Writes n bytes of text (then more, when more is not NULL) to dir/name, mode 0600. */
static int write_file(const char *dir, const char *name, const char *text, size_t n,
		      const char *more, size_t more_n)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
		return -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	bool ok = write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1 &&
		  (!more || write(fd, more, more_n) == (ssize_t)more_n);
	return close(fd) == 0 && ok ? 0 : -1;
}

int sip_tls_stage(const struct sip_config *cfg, char *dir, size_t size, char *why, size_t why_size)
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (snprintf(dir, size, "%s/callplane-sip-tls-XXXXXX", tmp) >= (int)size || !mkdtemp(dir)) {
		snprintf(why, why_size, "cannot make a directory in %s: %s", tmp, strerror(errno));
		dir[0] = '\0';
		return -1;
	}
	struct tls_files f;
	if (files_load(cfg, &f, why, why_size)) {
		sip_tls_unstage(dir);
		return -1;
	}
	int rc = write_file(dir, "cafile.pem", f.ca, f.ca_len, NULL, 0);
	if (!rc && f.cert)
		rc = write_file(dir, "agent.pem", f.cert, f.cert_len, f.key, f.key_len);
	if (rc)
		snprintf(why, why_size, "cannot write into %s: %s", dir, strerror(errno));
	files_free(&f);
	if (rc)
		sip_tls_unstage(dir);
	return rc;
}

void sip_tls_unstage(char *dir)
{
	static const char *const names[] = {"agent.pem", "cafile.pem"};
	if (!dir[0])
		return;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char path[PATH_MAX];
		if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) < (int)sizeof path)
			unlink(path);
	}
	rmdir(dir);
	dir[0] = '\0';
}

const char *sip_contact_hdr(const struct sip_engine *eng, bool tls)
{
	return tls && eng->contact_tls_hdr[0] ? eng->contact_tls_hdr : eng->contact_hdr;
}
