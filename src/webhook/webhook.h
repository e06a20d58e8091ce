/*
 * webhook.h - delivering the event outbox to users' HTTP endpoints.
 *
 * Events are written by the store in the same transaction as the call transition they report
 * (see store.h, struct call_update.event), with one pending delivery per matching webhook. This
 * worker leases due deliveries, POSTs them with libcurl's multi interface (many in flight, one
 * thread, never touching the API or the SIP engine), and records each attempt: 2xx delivered;
 * anything else retried with exponential backoff and jitter until max_age, then failed. A lease
 * that outlives a crash simply expires, so a pending delivery survives kill -9 and is sent
 * after restart with the same event id: delivery is at least once; receivers dedupe on
 * Callplane-Event-Id.
 *
 * Fairness (fair.h): tenants share the worker's slots, so one tenant's hanging receivers
 * never hold another tenant's deliveries back, and a webhook that keeps failing has its
 * circuit opened: its deliveries wait (no attempt counted) while a single probe tests it.
 */
#ifndef CP_WEBHOOK_H
#define CP_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/store.h"

struct sockaddr;

struct webhook_config {
	int retry_initial_ms;        /* first retry delay; doubles per attempt (default 1000) */
	int64_t max_age_ms;          /* give up after this age (default 24 h) */
	int timeout_ms;              /* one attempt (default 10 s) */
	int concurrency;             /* slots the tenants share (default 32; see fair.h) */
	int breaker_failures;        /* consecutive failures that open a circuit (default 5) */
	int64_t breaker_open_max_ms; /* longest open period (default 10 min); the first is
				      * retry_initial_ms, doubled per failed probe */
	bool allow_private;          /* connect to private addresses too (target.c; default no) */
};

struct webhook_worker;

/* Once, before any thread starts (libcurl's global state). */
void webhook_global_init(void);
void webhook_config_defaults(struct webhook_config *cfg);
struct webhook_worker *webhook_worker_start(struct store *st, const struct webhook_config *cfg);
/* Any thread: new events were committed, look now. */
void webhook_worker_wake(void *worker);
/* Stops at once: attempts in flight are abandoned, their deliveries due again now (sent first
 * by the next run), no attempt counted. */
void webhook_worker_stop(struct webhook_worker *w);

/* ---- format.c --------------------------------------------------------------------------- */

/* The body a webhook of this format receives for a stored canonical event; heap, or NULL for
 * an event the format does not carry. */
char *webhook_body(const char *format, const char *payload);
bool webhook_format_valid(const char *format);
/* "t=UNIX,v1=HEX(HMAC-SHA256(secret, t + "." + body))" into buf. */
void webhook_signature(const char *secret, int64_t unix_s, const char *body, char *buf,
		       size_t size);
bool webhook_signing_valid(const char *signing); /* callplane | standard */

/* Standard Webhooks: a secret is "whsec_" + the base64 of a key of this many bytes */
#define WEBHOOK_STANDARD_KEY_MIN 24
#define WEBHOOK_STANDARD_KEY_MAX 64
/* The key of a Standard Webhooks secret into key (WEBHOOK_STANDARD_KEY_MAX bytes), *key_len
 * its length; -1 when secret is not "whsec_" + canonical base64 of 24..64 bytes. */
int webhook_standard_key(const char *secret, unsigned char *key, size_t *key_len);
/* A new Standard Webhooks secret ("whsec_" + base64 of 24 random bytes) into buf; 0 or -1. */
int webhook_standard_secret(char *buf, size_t size);
/* The webhook-signature header's value, "v1,BASE64(HMAC-SHA256(key, msg_id + "." + t + "." +
 * body))", into buf; -1 when secret is not a Standard Webhooks secret (or no memory). */
int webhook_signature_standard(const char *secret, const char *msg_id, int64_t unix_s,
			       const char *body, char *buf, size_t size);

/* ---- target.c: where a webhook may point ------------------------------------------------ */

/* Whether a socket address is private (loopback, RFC 1918, CGNAT, link-local, unspecified,
 * multicast, reserved, their IPv6 kin and IPv4 addresses carried in IPv6); see target.c for
 * the ranges. Pure. */
bool webhook_addr_private(const struct sockaddr *sa);
/* The numeric address of sa (IPv4 or IPv6) into buf; "?" for another family. */
void webhook_addr_text(const struct sockaddr *sa, char *buf, size_t size);
/* CP_OK when url is an http or https URL with a host and, unless allow_private, every address
 * its host resolves to now is public; else CP_ERR_INVALID (not such a URL) or
 * CP_ERR_WEBHOOK_TARGET (private, or not resolving) with err filled. Resolves the host (may
 * wait on DNS) only when !allow_private. */
enum cp_err webhook_target_check(const char *url, bool allow_private, struct cp_error *err);

#endif
