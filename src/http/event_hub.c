/*
 * event_hub.c - the live-event hub: the open event streams, each fed from the outbox.
 *
 * Each open stream is a client: its scope, the sequence number of the last event it was sent,
 * and a buffer of formatted bytes not yet taken by the socket. When its connection can take
 * more, the client's read (on an MHD thread) first drains the buffer, then reads up to BATCH
 * new events for its scope from the store and formats them ("id: SEQ\nevent: TYPE\ndata:
 * {event}\n\n"); with nothing to send it returns 0 and the stream parks until the next wake.
 * event_hub_wake() (after every committed event) and the ticker (every TICK_S) wake all
 * streams; a client that has sent nothing for HEARTBEAT_S sends a comment line instead, which
 * keeps proxies from closing an idle connection and lets a write notice a client gone away.
 *
 * A key may hold at most max_per_key streams at once: each stream costs a descriptor and a
 * store read per wake, and one key's forgotten tabs must not take what the API needs. A client
 * is listed (and counted) before its stream exists, so two opens at once cannot both take the
 * last place; a stream whose client has already hung up is not counted, so a client that
 * reconnects at once is not refused for the stream it just left. Every listed client is one
 * of the metrics' open streams (callplane_sse_clients).
 *
 * hub->mu guards the list of clients (their links and stream pointers) and the ticker's stop;
 * the rest of a client is touched only by its stream's read and done callbacks, which MHD never
 * runs at once.
 */
#include "event_hub.h"
#include "core/list.h"
#include "core/log.h"
#include "core/util.h"
#include "auth/auth.h"
#include "metrics/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEARTBEAT_S 15
#define TICK_S 1 /* the ticker looks every second; each stream beats on its own clock */
#define BATCH 100

struct sse_client {
	struct sse_client *prev, *next;
	struct event_hub *hub;
	struct http_stream *stream;
	struct scope scope;
	char key_id[CP_UUID_LEN + 1];
	int64_t last_seq;
	bool listed; /* in hub->clients */
	char *buf;   /* formatted, not yet sent */
	size_t len, off;
	int64_t last_write_us;
};

struct event_hub {
	struct store *st;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sse_client *clients;
	int max_per_key;
	bool stopping;
	pthread_t ticker;
};

static void wake_all(struct event_hub *hub)
{
	pthread_mutex_lock(&hub->mu);
	for (struct sse_client *c = hub->clients; c; c = c->next)
		if (c->stream)
			http_stream_wake(c->stream);
	pthread_mutex_unlock(&hub->mu);
}

void event_hub_wake(void *hub)
{
	if (hub)
		wake_all(hub);
}

static void *ticker_main(void *arg)
{
	struct event_hub *hub = arg;
	pthread_setname_np(pthread_self(), "cp-events");
	pthread_mutex_lock(&hub->mu);
	while (!hub->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += TICK_S;
		if (pthread_cond_timedwait(&hub->cv, &hub->mu, &until) == ETIMEDOUT) {
			pthread_mutex_unlock(&hub->mu);
			wake_all(hub);
			pthread_mutex_lock(&hub->mu);
		}
	}
	pthread_mutex_unlock(&hub->mu);
	return NULL;
}

struct event_hub *event_hub_create(struct store *st, int max_per_key)
{
	struct event_hub *hub = calloc(1, sizeof *hub);
	if (!hub)
		return NULL;
	hub->st = st;
	hub->max_per_key = max_per_key;
	pthread_mutex_init(&hub->mu, NULL);
	pthread_cond_init(&hub->cv, NULL);
	if (pthread_create(&hub->ticker, NULL, ticker_main, hub)) {
		free(hub);
		return NULL;
	}
	return hub;
}

void event_hub_destroy(struct event_hub *hub)
{
	if (!hub)
		return;
	pthread_mutex_lock(&hub->mu);
	hub->stopping = true;
	pthread_cond_signal(&hub->cv);
	pthread_mutex_unlock(&hub->mu);
	pthread_join(hub->ticker, NULL);
	pthread_mutex_destroy(&hub->mu);
	pthread_cond_destroy(&hub->cv);
	free(hub);
}

/* Appends new events for this client to its buffer. */
static void fetch(struct sse_client *c)
{
	struct stored_event *ev = NULL;
	size_t n = 0;
	if (STORE(c->hub->st, events_since, &c->scope, c->last_seq, BATCH, &ev, &n) != STORE_OK)
		return;
	size_t need = 0;
	for (size_t i = 0; i < n; i++)
		need += strlen(ev[i].payload) + strlen(ev[i].type) + 64;
	if (need) {
		free(c->buf);
		c->buf = malloc(need);
		c->len = c->off = 0;
		for (size_t i = 0; c->buf && i < n; i++) {
			c->len += (size_t)snprintf(c->buf + c->len, need - c->len,
						   "id: %lld\nevent: %s\ndata: %s\n\n",
						   (long long)ev[i].seq, ev[i].type, ev[i].payload);
			c->last_seq = ev[i].seq;
		}
	}
	event_list_free(ev, n);
}

static long client_read(void *cls, char *out, size_t max)
{
	struct sse_client *c = cls;
	if (c->off >= c->len)
		fetch(c);
	if (c->off >= c->len) {
		if (cp_mono_us() - c->last_write_us < (int64_t)HEARTBEAT_S * 1000000)
			return 0;
		static const char beat[] = ": keepalive\n\n";
		size_t n = sizeof beat - 1 < max ? sizeof beat - 1 : max;
		memcpy(out, beat, n);
		c->last_write_us = cp_mono_us();
		return (long)n;
	}
	size_t n = c->len - c->off < max ? c->len - c->off : max;
	memcpy(out, c->buf + c->off, n);
	c->off += n;
	c->last_write_us = cp_mono_us();
	return (long)n;
}

static void client_done(void *cls)
{
	struct sse_client *c = cls;
	struct event_hub *hub = c->hub;
	pthread_mutex_lock(&hub->mu);
	if (c->listed) {
		LIST_UNLINK(hub->clients, c);
		metrics_sse_clients(-1);
	}
	pthread_mutex_unlock(&hub->mu);
	free(c->buf);
	free(c);
}

void event_hub_open(struct event_hub *hub, struct http_request *r, const struct principal *who,
		    int64_t after)
{
	int64_t start = after;
	enum store_result rc =
		after == EVENT_HUB_FROM_NOW ? STORE(hub->st, events_last_seq, &start) : STORE_OK;
	if (rc != STORE_OK) {
		struct cp_error e;
		store_fail(&e, rc, "events");
		http_reply_error(r, &e);
		return;
	}
	struct sse_client *c = calloc(1, sizeof *c);
	if (!c) {
		http_reply_fail(r, CP_ERR_INTERNAL, "out of memory");
		return;
	}
	c->hub = hub;
	c->scope = who->scope;
	snprintf(c->key_id, sizeof c->key_id, "%s", who->key.id);
	c->last_seq = start;
	pthread_mutex_lock(&hub->mu);
	int open = 0;
	for (struct sse_client *o = hub->clients; o; o = o->next) /* one gone is not counted */
		open += !strcmp(o->key_id, c->key_id) &&
			!(o->stream && http_stream_client_gone(o->stream));
	if (open >= hub->max_per_key) {
		pthread_mutex_unlock(&hub->mu);
		free(c);
		http_reply_fail(r, CP_ERR_RATE_LIMITED,
				"this key has %d event streams open, the most "
				"it may have (--events-per-key)",
				open);
		return;
	}
	c->listed = true;
	LIST_PUSH(hub->clients, c);
	metrics_sse_clients(1);
	pthread_mutex_unlock(&hub->mu);
	/* an opening comment tells the client the stream is live before any event arrives */
	c->buf = strdup(": callplane events\n\n");
	c->len = c->buf ? strlen(c->buf) : 0;
	c->last_write_us = cp_mono_us();
	/* The response is handed to MHD only after the handler returns, on this thread, so
	 * client_done cannot run before the stream is set below. */
	struct http_stream *s =
		http_reply_stream(r, "text/event-stream", client_read, client_done, c);
	if (!s)
		return; /* client_done unlisted and freed c */
	pthread_mutex_lock(&hub->mu);
	c->stream = s;
	pthread_mutex_unlock(&hub->mu);
}
