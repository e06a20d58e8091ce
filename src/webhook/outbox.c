/*
 * outbox.c - the delivery worker: one thread, libcurl multi. See webhook.h.
 *
 * The loop: offer-and-lease due deliveries (the store offers them round-robin over tenants,
 * fair.c decides which start: shares and circuits), drive the transfers, record each attempt
 * that ended, and poll. A lease round runs when an event was committed, when an attempt ended
 * (a share may have room again), and every IDLE_POLL_MS for retries and held deliveries; not
 * on every socket wake-up, because a round reads every due row. For the same reason rounds
 * are spaced by three times the last one's duration: nothing while deliveries keep up, and
 * under a backlog of tens of thousands the worker still spends most of its time on sending.
 *
 * Stopping never waits for a receiver: the attempts in flight are abandoned, and their
 * deliveries are made due again at once without counting an attempt, so the next run sends
 * them first.
 *
 * Targets (target.c): unless private addresses are allowed, every address libcurl is about
 * to connect to is checked in its open-socket hook, after its own resolution, so what is
 * checked is what would be connected to, whatever the name resolved to at creation. A refused
 * address fails the delivery at once (retrying would meet the same address, or flip-flop with
 * a rebinding name), recorded with the address. Redirects are not followed (libcurl's
 * default, set anyway): a 3xx is a failed attempt, never a second connection. Proxies from the
 * environment are not used then: through one the address connected to is the proxy's.
 *
 * Metrics: attempts by outcome, deliveries given up and attempts in flight are counted here as
 * they happen; the backlog (pending and due deliveries) is read from the store when scraped.
 */
#include "webhook.h"
#include "fair.h"
#include "core/list.h"
#include "core/log.h"
#include "core/util.h"
#include "metrics/metrics.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define IDLE_POLL_MS 250
#define LEASE_SLACK_MS 30000
#define BACKOFF_CAP_MS (3600LL * 1000)
/* a delivery waiting for its webhook's probe is looked at again after this (at most) */
#define RECHECK_MS 1000

struct attempt {
	struct attempt *prev, *next; /* in flight */
	struct delivery d;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	char error[CURL_ERROR_SIZE];
	bool check_target;              /* refuse private addresses (no --webhook-allow-private) */
	char refused[INET6_ADDRSTRLEN]; /* a private address the open-socket hook refused */
};

struct webhook_worker {
	struct store *st;
	struct webhook_config cfg;
	struct fair *fair;
	CURLM *multi;
	pthread_t thread;
	atomic_bool stopping;
	atomic_bool woken;                  /* an event was committed since the last lease round */
	int64_t leased_us;                  /* monotonic end of the last lease round */
	int64_t round_gap_us;               /* the least time from one round to the next */
	int64_t lease_now;                  /* wall clock of the round fair_pick() runs in */
	struct attempt *flying;             /* list of attempts in flight */
	struct metrics_collector collector; /* the backlog, read when scraped */
};

void webhook_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void webhook_config_defaults(struct webhook_config *cfg)
{
	cfg->retry_initial_ms = 1000;
	cfg->max_age_ms = 24LL * 3600 * 1000;
	cfg->timeout_ms = 10000;
	cfg->concurrency = 32;
	cfg->breaker_failures = 5;
	cfg->breaker_open_max_ms = 10LL * 60 * 1000;
}

void webhook_worker_wake(void *worker)
{
	struct webhook_worker *w = worker;
	if (w) {
		atomic_store(&w->woken, true);
		curl_multi_wakeup(w->multi);
	}
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
	(void)p;
	(void)u;
	return size * n;
}

static void attempt_free(struct attempt *a)
{
	if (a->easy)
		curl_easy_cleanup(a->easy);
	curl_slist_free_all(a->headers);
	free(a->body);
	free(a->d.payload);
	free(a);
}

/* Delay before retry number `attempts` (1 = first retry): initial * 2^(attempts-1), capped,
 * with +-25% jitter so a recovering receiver is not hit by every retry at once. */
static int64_t backoff_ms(const struct webhook_config *cfg, int attempts)
{
	int64_t d = cfg->retry_initial_ms;
	for (int i = 1; i < attempts && d < BACKOFF_CAP_MS; i++)
		d *= 2;
	if (d > BACKOFF_CAP_MS)
		d = BACKOFF_CAP_MS;
	unsigned r = 0;
	cp_random(&r, sizeof r);
	double jitter = 0.75 + 0.5 * (r / 4294967295.0);
	return (int64_t)(d * jitter);
}

/* Records the attempt's outcome in the store and tells fair.c it ended; sent: it reached the
 * wire (a failure to even start one says nothing of the webhook), or the webhook's target
 * refused it; permanent: no retry can succeed, the delivery fails now. */
static void record(struct webhook_worker *w, struct attempt *a, long http_status, const char *err,
		   bool sent, bool permanent)
{
	int64_t now = cp_now_ms();
	int attempts = a->d.attempts + 1;
	const char *status;
	int64_t next = now;
	bool ok = http_status >= 200 && http_status < 300;
	if (ok) {
		status = "delivered";
	} else if (permanent || now - a->d.created_at >= w->cfg.max_age_ms) {
		status = "failed";
	} else {
		status = "pending";
		next = now + backoff_ms(&w->cfg, attempts);
	}
	STORE(w->st, delivery_record, a->d.id, status, next, (int)http_status, err, now);
	metrics_webhook_attempt(ok                        ? METRICS_WEBHOOK_DELIVERED
				: sent && http_status > 0 ? METRICS_WEBHOOK_REJECTED
							  : METRICS_WEBHOOK_UNREACHABLE);
	if (!strcmp(status, "failed"))
		metrics_webhook_given_up();
	fair_done(w->fair, a->d.tenant_id, a->d.webhook_id,
		  ok     ? FAIR_DELIVERED
		  : sent ? FAIR_FAILED
			 : FAIR_NOT_SENT,
		  now);
	json_t *f = json_pack("{s:I, s:s, s:s, s:s, s:i, s:i}", "delivery_id", (json_int_t)a->d.id,
			      "event_id", a->d.event_id, "type", a->d.type, "status", status,
			      "http_status", (int)http_status, "attempt", attempts);
	if (err && *err)
		json_object_set_new(f, "error", json_string(err));
	if (ok)
		json_object_set_new(f, "latency_ms", json_integer(now - a->d.created_at));
	log_json(!strcmp(status, "failed") ? LOG_WARN : LOG_INFO, "webhook_attempt", f);
}

/* CURLOPT_OPENSOCKETFUNCTION, on every attempt (one way to open a socket, the one the tests
 * use): refuses a connection to a private address unless they are allowed (CURL_SOCKET_BAD:
 * libcurl tries the name's next address, if any, else fails the transfer). */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct attempt *a = arg;
	if (a->check_target && purpose == CURLSOCKTYPE_IPCXN && webhook_addr_private(&addr->addr)) {
		if (!a->refused[0]) /* the error names the first */
			webhook_addr_text(&addr->addr, a->refused, sizeof a->refused);
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* The attempt's headers: the event's, and its signature by the webhook's signing (format.c).
 * Standard Webhooks' webhook-id is the event id, the same on every retry, as their receivers
 * dedupe on it. 0, or -1 when the body cannot be signed. */
static int sign(struct attempt *a)
{
	char hdr[256], sig[200];
	int64_t now_s = cp_now_ms() / 1000;
	bool standard = !strcmp(a->d.signing, "standard");
	if (standard &&
	    webhook_signature_standard(a->d.secret, a->d.event_id, now_s, a->body, sig, sizeof sig))
		return -1;
	a->headers = curl_slist_append(a->headers, "Content-Type: application/json");
	a->headers = curl_slist_append(a->headers, "User-Agent: callplane-webhooks/1");
	snprintf(hdr, sizeof hdr, "Callplane-Event-Id: %s", a->d.event_id);
	a->headers = curl_slist_append(a->headers, hdr);
	if (standard) {
		snprintf(hdr, sizeof hdr, "webhook-id: %s", a->d.event_id);
		a->headers = curl_slist_append(a->headers, hdr);
		snprintf(hdr, sizeof hdr, "webhook-timestamp: %lld", (long long)now_s);
		a->headers = curl_slist_append(a->headers, hdr);
		snprintf(hdr, sizeof hdr, "webhook-signature: %s", sig);
	} else {
		webhook_signature(a->d.secret, now_s, a->body, sig, sizeof sig);
		snprintf(hdr, sizeof hdr, "Callplane-Signature: %s", sig);
	}
	a->headers = curl_slist_append(a->headers, hdr);
	snprintf(hdr, sizeof hdr, "Callplane-Event-Type: %s", a->d.type);
	a->headers = curl_slist_append(a->headers, hdr);
	return 0;
}

/* Starts a delivery fair.c took; on any failure to start, it is recorded and let go. */
static void start_attempt(struct webhook_worker *w, struct delivery *d)
{
	struct attempt *a = calloc(1, sizeof *a);
	if (!a) {
		/* the lease expires and the delivery is offered again */
		fair_done(w->fair, d->tenant_id, d->webhook_id, FAIR_NOT_SENT, cp_now_ms());
		return;
	}
	a->d = *d;
	d->payload = NULL;
	a->body = webhook_body(a->d.format, a->d.payload);
	/* permanent, both: retrying cannot help */
	const char *why =
		!a->body  ? "could not render the body for this format"
		: sign(a) ? "could not sign: the secret is not whsec_ + base64 of 24..64 bytes"
			  : NULL;
	if (why) {
		STORE(w->st, delivery_record, a->d.id, "failed", cp_now_ms(), 0, why, cp_now_ms());
		metrics_webhook_given_up();
		fair_done(w->fair, a->d.tenant_id, a->d.webhook_id, FAIR_NOT_SENT, cp_now_ms());
		attempt_free(a);
		return;
	}
	a->easy = curl_easy_init();
	if (!a->easy) {
		record(w, a, 0, "curl_easy_init failed", false, false);
		attempt_free(a);
		return;
	}
	curl_easy_setopt(a->easy, CURLOPT_URL, a->d.url);
	curl_easy_setopt(a->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(a->easy, CURLOPT_POSTFIELDS, a->body);
	curl_easy_setopt(a->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(a->body));
	curl_easy_setopt(a->easy, CURLOPT_HTTPHEADER, a->headers);
	curl_easy_setopt(a->easy, CURLOPT_TIMEOUT_MS, (long)w->cfg.timeout_ms);
	curl_easy_setopt(a->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)w->cfg.timeout_ms);
	curl_easy_setopt(a->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(a->easy, CURLOPT_ERRORBUFFER, a->error);
	curl_easy_setopt(a->easy, CURLOPT_PRIVATE, a);
	curl_easy_setopt(a->easy, CURLOPT_FOLLOWLOCATION, 0L);
	a->check_target = !w->cfg.allow_private;
	curl_easy_setopt(a->easy, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(a->easy, CURLOPT_OPENSOCKETDATA, a);
	if (a->check_target)
		curl_easy_setopt(a->easy, CURLOPT_PROXY, "");
	if (curl_multi_add_handle(w->multi, a->easy) != CURLM_OK) {
		record(w, a, 0, "curl_multi_add_handle failed", false, false);
		attempt_free(a);
		return;
	}
	LIST_PUSH(w->flying, a);
	metrics_webhook_in_flight(1);
}

/* delivery_picker: fair.c decides, at the round's time */
static void pick(void *arg, struct delivery *d, size_t n)
{
	struct webhook_worker *w = arg;
	fair_pick(w->fair, w->lease_now, d, n);
}

/* One lease round: the store offers up to 2 x concurrency due deliveries (enough for every
 * tenant's share to be seen), fair.c picks, and the taken ones start. */
static void lease_round(struct webhook_worker *w)
{
	struct delivery *d = NULL;
	size_t n = 0;
	int64_t t0 = cp_mono_us();
	w->lease_now = cp_now_ms();
	atomic_store(&w->woken, false);
	STORE(w->st, delivery_lease, w->lease_now,
	      w->lease_now + w->cfg.timeout_ms + LEASE_SLACK_MS, 2 * w->cfg.concurrency, pick, w,
	      &d, &n);
	for (size_t i = 0; i < n; i++) {
		if (d[i].pick == DELIVERY_TAKE)
			start_attempt(w, &d[i]);
		else if (d[i].pick == DELIVERY_GONE)
			fair_done(w->fair, d[i].tenant_id, d[i].webhook_id, FAIR_NOT_SENT,
				  w->lease_now);
		else if (d[i].pick == DELIVERY_GIVE_UP) {
			metrics_webhook_given_up();
			log_json(LOG_WARN, "webhook_attempt",
				 json_pack("{s:I, s:s, s:s, s:s, s:s}", "delivery_id",
					   (json_int_t)d[i].id, "event_id", d[i].event_id, "type",
					   d[i].type, "status", "failed", "error", d[i].why));
		}
	}
	delivery_list_free(d, n);
	/* a round reads every due row: under a backlog, rounds are spaced so that they take
	 * at most a quarter of this thread's time */
	w->leased_us = cp_mono_us();
	w->round_gap_us = 3 * (w->leased_us - t0);
}
static void unlink_attempt(struct webhook_worker *w, struct attempt *a)
{
	metrics_webhook_in_flight(-1);
	LIST_UNLINK(w->flying, a);
}

/* Records every attempt that ended; how many did. */
static int reap(struct webhook_worker *w)
{
	CURLMsg *m;
	int left, ended = 0;
	while ((m = curl_multi_info_read(w->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct attempt *a = NULL;
		long code = 0;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&a);
		if (m->data.result == CURLE_OK)
			curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		char err[CURL_ERROR_SIZE + 160] = "";
		/* refused, and no other address of the name connected */
		bool refused = m->data.result != CURLE_OK && a->refused[0];
		if (refused)
			snprintf(err, sizeof err,
				 "refused to connect to %s: a private address "
				 "(serve --webhook-allow-private allows it)",
				 a->refused);
		else if (m->data.result != CURLE_OK)
			snprintf(err, sizeof err, "%s",
				 a->error[0] ? a->error : curl_easy_strerror(m->data.result));
		else if (code < 200 || code >= 300)
			snprintf(err, sizeof err, "HTTP %ld", code);
		curl_multi_remove_handle(w->multi, m->easy_handle);
		record(w, a, code, err, true, refused);
		unlink_attempt(w, a);
		attempt_free(a);
		ended++;
	}
	return ended;
}

static void *worker_main(void *arg)
{
	struct webhook_worker *w = arg;
	int running = 0;
	bool ended = true;
	pthread_setname_np(pthread_self(), "cp-webhooks");
	while (!atomic_load(&w->stopping)) {
		int64_t since = cp_mono_us() - w->leased_us;
		bool due = since >= (int64_t)IDLE_POLL_MS * 1000 ||
			   ((ended || atomic_load(&w->woken)) && since >= w->round_gap_us);
		if (due)
			lease_round(w);
		curl_multi_perform(w->multi, &running);
		ended = reap(w) > 0 || (ended && !due);
		/* wait for a transfer, a wake-up, or the time of the next round */
		int wait_ms = IDLE_POLL_MS;
		if (ended || atomic_load(&w->woken))
			wait_ms = (int)((w->round_gap_us - (cp_mono_us() - w->leased_us)) / 1000);
		if (wait_ms > 0)
			curl_multi_poll(w->multi, NULL, 0,
					wait_ms > IDLE_POLL_MS ? IDLE_POLL_MS : wait_ms, NULL);
	}
	return NULL;
}

/* The collector: the backlog, from the store. */
static void collect_backlog(void *arg, struct metrics_sample *out)
{
	struct webhook_worker *w = arg;
	int64_t pending, due;
	if (STORE(w->st, delivery_backlog, cp_now_ms(), &pending, &due) != STORE_OK)
		return;
	out->webhook_pending += pending;
	out->webhook_due += due;
}

struct webhook_worker *webhook_worker_start(struct store *st, const struct webhook_config *cfg)
{
	struct webhook_worker *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->st = st;
	w->cfg = *cfg;
	/* a crash left its attempts in flight leased: retried now, not when the lease runs out */
	STORE(st, delivery_release_leased, cp_now_ms());
	struct fair_config fc = {.slots = cfg->concurrency,
				 .breaker_failures = cfg->breaker_failures,
				 .open_initial_ms = cfg->retry_initial_ms,
				 .open_max_ms = cfg->breaker_open_max_ms,
				 .recheck_ms = cfg->timeout_ms < RECHECK_MS ? cfg->timeout_ms
									    : RECHECK_MS,
				 .max_age_ms = cfg->max_age_ms};
	w->fair = fair_create(&fc);
	w->multi = w->fair ? curl_multi_init() : NULL;
	if (!w->multi || pthread_create(&w->thread, NULL, worker_main, w)) {
		if (w->multi)
			curl_multi_cleanup(w->multi);
		fair_destroy(w->fair);
		free(w);
		return NULL;
	}
	w->collector = (struct metrics_collector){.collect = collect_backlog, .arg = w};
	metrics_collector_add(&w->collector);
	return w;
}

/* Abandons every attempt in flight: their deliveries are due again now, no attempt counted. */
static void abandon_all(struct webhook_worker *w)
{
	size_t n = 0;
	for (struct attempt *a = w->flying; a; a = a->next)
		n++;
	int64_t *ids = n ? calloc(n, sizeof *ids) : NULL;
	size_t i = 0;
	int64_t now = cp_now_ms();
	while (w->flying) {
		struct attempt *a = w->flying;
		curl_multi_remove_handle(w->multi, a->easy);
		if (ids)
			ids[i++] = a->d.id;
		fair_done(w->fair, a->d.tenant_id, a->d.webhook_id, FAIR_NOT_SENT, now);
		unlink_attempt(w, a);
		attempt_free(a);
	}
	/* without the release (no memory, a store error) the leases expire: later, not lost */
	if (i && STORE(w->st, delivery_release, ids, i, now) == STORE_OK)
		log_json(LOG_INFO, "webhook_abandoned",
			 json_pack("{s:I}", "deliveries", (json_int_t)i));
	free(ids);
}

void webhook_worker_stop(struct webhook_worker *w)
{
	if (!w)
		return;
	metrics_collector_remove(&w->collector);
	atomic_store(&w->stopping, true);
	curl_multi_wakeup(w->multi);
	pthread_join(w->thread, NULL);
	abandon_all(w);
	curl_multi_cleanup(w->multi);
	fair_destroy(w->fair);
	free(w);
}
