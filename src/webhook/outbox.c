/*
 * outbox.c - the delivery worker: one thread, libcurl multi. See webhook.h.
 */
#include "webhook.h"
#include "core/log.h"
#include "core/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define IDLE_POLL_MS 250
#define LEASE_SLACK_MS 30000
#define BACKOFF_CAP_MS (3600LL * 1000)

struct attempt {
	struct attempt *prev, *next;     /* in flight */
	struct delivery d;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	char error[CURL_ERROR_SIZE];
};

struct webhook_worker {
	struct store *st;
	struct webhook_config cfg;
	CURLM *multi;
	pthread_t thread;
	atomic_bool stopping;
	int in_flight;
	struct attempt *flying;          /* list of attempts in flight */
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
}

void webhook_worker_wake(void *worker)
{
	struct webhook_worker *w = worker;
	if (w)
		curl_multi_wakeup(w->multi);
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

static void record(struct webhook_worker *w, struct attempt *a, long http_status, const char *err)
{
	int64_t now = cp_now_ms();
	int attempts = a->d.attempts + 1;
	const char *status;
	int64_t next = now;
	if (http_status >= 200 && http_status < 300) {
		status = "delivered";
	} else if (now - a->d.created_at >= w->cfg.max_age_ms) {
		status = "failed";
	} else {
		status = "pending";
		next = now + backoff_ms(&w->cfg, attempts);
	}
	STORE(w->st, delivery_record, a->d.id, status, next, (int)http_status, err, now);
	json_t *f = json_pack("{s:I, s:s, s:s, s:s, s:i, s:i}", "delivery_id", (json_int_t)a->d.id,
			      "event_id", a->d.event_id, "type", a->d.type, "status", status,
			      "http_status", (int)http_status, "attempt", attempts);
	if (err && *err)
		json_object_set_new(f, "error", json_string(err));
	if (!strcmp(status, "delivered"))
		json_object_set_new(f, "latency_ms", json_integer(now - a->d.created_at));
	log_json(!strcmp(status, "failed") ? LOG_WARN : LOG_INFO, "webhook_attempt", f);
}

static void start_attempt(struct webhook_worker *w, struct delivery *d)
{
	struct attempt *a = calloc(1, sizeof *a);
	if (!a) {
		free(d->payload);
		return;
	}
	a->d = *d;
	d->payload = NULL;
	a->body = webhook_body(a->d.format, a->d.payload);
	if (!a->body) {   /* permanent: retrying cannot help */
		STORE(w->st, delivery_record, a->d.id, "failed", cp_now_ms(), 0,
		      "could not render the body for this format", cp_now_ms());
		attempt_free(a);
		return;
	}
	char hdr[256], sig[200];
	webhook_signature(a->d.secret, cp_now_ms() / 1000, a->body, sig, sizeof sig);
	a->headers = curl_slist_append(a->headers, "Content-Type: application/json");
	a->headers = curl_slist_append(a->headers, "User-Agent: callplane-webhooks/1");
	snprintf(hdr, sizeof hdr, "Callplane-Event-Id: %s", a->d.event_id);
	a->headers = curl_slist_append(a->headers, hdr);
	snprintf(hdr, sizeof hdr, "Callplane-Signature: %s", sig);
	a->headers = curl_slist_append(a->headers, hdr);
	snprintf(hdr, sizeof hdr, "Callplane-Event-Type: %s", a->d.type);
	a->headers = curl_slist_append(a->headers, hdr);
	a->easy = curl_easy_init();
	if (!a->easy) {
		record(w, a, 0, "curl_easy_init failed");
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
	if (curl_multi_add_handle(w->multi, a->easy) != CURLM_OK) {
		record(w, a, 0, "curl_multi_add_handle failed");
		attempt_free(a);
		return;
	}
	a->next = w->flying;
	if (w->flying)
		w->flying->prev = a;
	w->flying = a;
	w->in_flight++;
}

/* delivery_picker: the first deliveries offered, as many as there is room for */
static void take_room(void *arg, struct delivery *d, size_t n)
{
	struct webhook_worker *w = arg;
	int room = w->cfg.concurrency - w->in_flight;
	for (size_t i = 0; i < n; i++)
		d[i].pick = (int)i < room ? DELIVERY_TAKE : DELIVERY_LEAVE;
}

static void lease_more(struct webhook_worker *w)
{
	int room = w->cfg.concurrency - w->in_flight;
	if (room <= 0)
		return;
	struct delivery *d = NULL;
	size_t n = 0;
	int64_t now = cp_now_ms();
	STORE(w->st, delivery_lease, now, now + w->cfg.timeout_ms + LEASE_SLACK_MS, room, take_room,
	      w, &d, &n);
	for (size_t i = 0; i < n; i++)
		if (d[i].pick == DELIVERY_TAKE)
			start_attempt(w, &d[i]);
	delivery_list_free(d, n);
}

static void unlink_attempt(struct webhook_worker *w, struct attempt *a)
{
	if (a->prev)
		a->prev->next = a->next;
	else
		w->flying = a->next;
	if (a->next)
		a->next->prev = a->prev;
	w->in_flight--;
}

static void reap(struct webhook_worker *w)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(w->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct attempt *a = NULL;
		long code = 0;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&a);
		if (m->data.result == CURLE_OK)
			curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		char err[CURL_ERROR_SIZE + 32] = "";
		if (m->data.result != CURLE_OK)
			snprintf(err, sizeof err, "%s", a->error[0] ? a->error
							     : curl_easy_strerror(m->data.result));
		else if (code < 200 || code >= 300)
			snprintf(err, sizeof err, "HTTP %ld", code);
		curl_multi_remove_handle(w->multi, m->easy_handle);
		record(w, a, code, err);
		unlink_attempt(w, a);
		attempt_free(a);
	}
}

static void *worker_main(void *arg)
{
	struct webhook_worker *w = arg;
	int running = 0;
	pthread_setname_np(pthread_self(), "cp-webhooks");
	while (!atomic_load(&w->stopping)) {
		lease_more(w);
		curl_multi_perform(w->multi, &running);
		reap(w);
		curl_multi_poll(w->multi, NULL, 0, IDLE_POLL_MS, NULL);
	}
	/* finish what is in flight, bounded by one attempt's timeout */
	int64_t until = cp_mono_us() + (int64_t)w->cfg.timeout_ms * 1000;
	while (w->in_flight > 0 && cp_mono_us() < until) {
		curl_multi_perform(w->multi, &running);
		reap(w);
		curl_multi_poll(w->multi, NULL, 0, 100, NULL);
	}
	return NULL;
}

struct webhook_worker *webhook_worker_start(struct store *st, const struct webhook_config *cfg)
{
	struct webhook_worker *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->st = st;
	w->cfg = *cfg;
	w->multi = curl_multi_init();
	if (!w->multi || pthread_create(&w->thread, NULL, worker_main, w)) {
		if (w->multi)
			curl_multi_cleanup(w->multi);
		free(w);
		return NULL;
	}
	return w;
}

void webhook_worker_stop(struct webhook_worker *w)
{
	if (!w)
		return;
	atomic_store(&w->stopping, true);
	curl_multi_wakeup(w->multi);
	pthread_join(w->thread, NULL);
	/* attempts still in flight after the bound stay leased; the lease expires and they are
	 * sent again after restart */
	while (w->flying) {
		struct attempt *a = w->flying;
		curl_multi_remove_handle(w->multi, a->easy);
		unlink_attempt(w, a);
		attempt_free(a);
	}
	curl_multi_cleanup(w->multi);
	free(w);
}
