/*
 * metrics.h - the process's Prometheus metrics: counters, gauges and histograms whose label
 * values are fixed at compile time, and their text exposition (GET /metrics, format 0.0.4).
 *
 * Counting is for hot paths: each function below is a few relaxed atomic additions into the
 * calling thread's shard (no lock, no allocation); a scrape sums the shards. What is cheaper
 * to read when asked than to count as it happens (how many calls are active, the webhook
 * backlog, the media engine's own counters) comes from collectors: their owners register one
 * while they live, and metrics_render() calls each to fill a struct metrics_sample.
 *
 * Label values outside a family's fixed set are counted under "other" (an end reason an API
 * client chose, a SIP status code not listed), so no input can grow the label set.
 * docs/OPERATIONS.md lists every metric.
 *
 * This module is a leaf: it includes nothing of the server's other layers, which call into it.
 */
#ifndef CP_METRICS_H
#define CP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where an API request came in, for the `dialect` label. The zero value is the canonical API,
 * so a dialect or an end that does not say is counted as canonical. METRICS_NO_DIALECT: a call
 * that no API request ended (the far end, the engine, a restart). */
enum metrics_dialect {
	METRICS_CANONICAL,
	METRICS_TALKOVER,
	METRICS_VOXWORKS,
	METRICS_PILOTSTATUS,
	METRICS_CARTESIA,
	METRICS_API_DIALECTS,
	METRICS_NO_DIALECT = METRICS_API_DIALECTS,
	METRICS_DIALECTS
};

/* How one webhook delivery attempt went. */
enum metrics_webhook_outcome {
	METRICS_WEBHOOK_DELIVERED,   /* a 2xx answer */
	METRICS_WEBHOOK_REJECTED,    /* any other HTTP answer */
	METRICS_WEBHOOK_UNREACHABLE, /* no HTTP answer: refused, timed out, not started */
	METRICS_WEBHOOK_OUTCOMES
};

/* ---- counting (any thread; lock-free) ------------------------------------------------- */

/* An HTTP request answered with status, by the dialect of its route. */
void metrics_http_request(enum metrics_dialect d, unsigned status);
/* A request refused by its key's rate limit (429). */
void metrics_http_rate_limited(enum metrics_dialect d);

/* A call was stored (created through the API, or arriving). */
void metrics_call_created(bool inbound);
/* A call reached its terminal status (a status name: completed, canceled, failed, busy,
 * no_answer) with reason, ended by an API request of dialect d (METRICS_NO_DIALECT: not by the
 * API). Counted once its transition is durable. */
void metrics_call_ended(const char *status, const char *reason, enum metrics_dialect d);
/* An API end's BYE or CANCEL was handed to the transport, us after the request reached the
 * call service. */
void metrics_end_to_wire(int64_t us);
/* An API request ended a call (without a goodbye), us after it reached the call service:
 * the end is durable and its answer goes out now. */
void metrics_end_request(int64_t us);

/* A SIP response with code to a request of method ("INVITE", "BYE", ...), sent by us or
 * received from a far end. */
void metrics_sip_response(bool sent, const char *method, int code);

/* An INVITE from outside every trunk was refused: from a source no trunk admits (403), or over
 * its source's rate (503). */
void metrics_sip_inbound_refused(bool rate);
/* A trunk's registration reached status: "registered", "failed" or "unregistered". */
void metrics_trunk_registration(const char *status);
/* Trunks whose registrar holds our contact: +1 when one is registered, -1 when it is no
 * longer. */
void metrics_trunks_registered(int delta);

/* A COMMIT took us: the worker's group commit (group), or a write's own transaction. */
void metrics_store_commit(bool group, int64_t us);

void metrics_webhook_attempt(enum metrics_webhook_outcome o);
/* A delivery was given up: failed for good. */
void metrics_webhook_given_up(void);
/* Attempts in flight: +1 when one starts, -1 when it ends or is abandoned. */
void metrics_webhook_in_flight(int delta);

/* Open live-event streams (GET /v1/events): +1 when one opens, -1 when it closes. */
void metrics_sse_clients(int delta);

/* A receive stream's RFC 3550 interarrival jitter, sampled (in microseconds). */
void metrics_rtp_jitter(int64_t us);

/* ---- collectors (values read at scrape time) ------------------------------------------ */

/* What collectors add to at each scrape (every field starts at 0; collectors add to it, so
 * two instances of one owner, as in tests, are summed). */
struct metrics_sample {
	int64_t calls_active[3]; /* queued, ringing, in_progress */
	int64_t webhook_pending; /* deliveries not yet delivered or failed */
	int64_t webhook_due;     /* of those, due now */
	int64_t media_sessions;  /* media sessions ever started */
	int64_t rtp_in, rtp_out, rtp_dropped, rtp_expected, rtp_lost;
	int64_t agent_frames_in, agent_frames_out, dtmf_in, dtmf_out, playout_dropped_bytes;
};

/* A collector: storage owned by the registering object, which must remove it before it is
 * freed. collect() runs on the scraping thread, one scrape at a time, and may block briefly
 * (a store read). */
struct metrics_collector {
	void (*collect)(void *arg, struct metrics_sample *out);
	void *arg;
	struct metrics_collector *next; /* the registry's */
};
void metrics_collector_add(struct metrics_collector *c);
/* Returns once no scrape is running c. */
void metrics_collector_remove(struct metrics_collector *c);

/* ---- exposition ----------------------------------------------------------------------- */

/* The Content-Type of metrics_render()'s text. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Every metric in the text exposition format (malloc'd, NUL-terminated; *len its length);
 * NULL when out of memory. */
char *metrics_render(size_t *len);

#endif
