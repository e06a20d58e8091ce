/*
 * metrics.c - the counters, gauges and histograms of metrics.h, and their text exposition.
 *
 * Storage: every counted value is a 64-bit atomic in struct shard, one array per family, as
 * many dimensions as it has labels, each label's values fixed below. There are METRICS_SHARDS
 * shards, cache-line aligned; a thread takes one the first time it counts (round robin) and
 * keeps it, so threads on different cores add to different cache lines and a hot counter
 * never bounces between them. An addition is one relaxed fetch_add: nothing orders it against
 * anything else, and a scrape that sums the shards meanwhile sees each value whole. Gauges
 * kept here (in-flight attempts, open streams) are added to with +1 and -1 modulo 2^64, so
 * their shards' sum is right even when the two halves land in different shards.
 *
 * Histograms keep per-bucket counts (not cumulative) and the sum in microseconds; the
 * exposition makes the buckets cumulative and derives _count from them, so _count always
 * equals the +Inf bucket even when a scrape races an observation.
 *
 * Rendering is driven by one table (families[]): name, help, type, where its cells are (an
 * offset into struct shard, or into the collected struct metrics_sample) and its labels. A
 * family marked sparse shows only its series that are not zero: their label sets are cross
 * products (status x reason x dialect) of which a server ever touches a few; the others show
 * every series, zero included, so that rate() sees a series from its start. The process_*
 * families come last, from what process.c reads of the kernel.
 *
 * Collectors are a list under collectors_mu, which a scrape holds while it runs them: one
 * scrape collects at a time, and a collector removed is no longer running.
 */
#include "metrics.h"
#include "metrics_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_SHARDS 8
#define HIST_MAX_BOUNDS 15

typedef atomic_uint_fast64_t cell;

/* ---- label values ----------------------------------------------------------------------- */

static const char *const dialect_names[METRICS_DIALECTS] = {
	"canonical", "talkover", "voxworks", "pilotstatus", "cartesia", "none",
};

enum { N_CLASS = 4 };
static const char *const class_names[N_CLASS] = {"2xx", "3xx", "4xx", "5xx"};

static const char *const direction_names[2] = {"outbound", "inbound"};

enum { N_STATUS = 5 };
static const char *const status_names[N_STATUS] = {
	"completed", "canceled", "failed", "busy", "no_answer",
};

static const char *const active_names[3] = {"queued", "ringing", "in_progress"};

/* Every end reason callplane gives itself, its dialects' defaults, then "other" for the
 * reasons API clients choose (free text: they must not grow the label set). */
/* as written: the label values as a table */
/* clang-format off */
#define END_REASONS(X)                                                                         \
	X(ended_by_api) X(api_ended) X(api_cancelled) X(remote_hangup) X(remote_cancel)         \
	X(busy) X(no_answer) X(failed) X(no_route) X(no_media_port) X(ack_timeout)              \
	X(max_duration) X(media_timeout) X(agent_unavailable) X(agent_disconnected)              \
	X(node_restart) X(node_shutdown) X(drain_timeout) X(token_expired) X(srtp_required)     \
	X(unreachable)
/* clang-format on */
#define REASON_ENUM(r) REASON_##r,
#define REASON_NAME(r) #r,
enum { END_REASONS(REASON_ENUM) REASON_OTHER, N_REASON };
static const char *const reason_names[N_REASON] = {END_REASONS(REASON_NAME) "other"};

static const char *const sip_direction_names[2] = {"received", "sent"};

enum { N_METHOD = 5 };
static const char *const method_names[N_METHOD] = {"INVITE", "BYE", "CANCEL", "OPTIONS", "other"};

/* The SIP status codes a call server meets (RFC 3261 21 and the common extensions); any other
 * is "other". */
/* as written: the label values as a table */
/* clang-format off */
#define SIP_CODES(X)                                                                           \
	X(100) X(180) X(181) X(182) X(183) X(200) X(202) X(400) X(401) X(403) X(404) X(405)     \
	X(407) X(408) X(410) X(415) X(420) X(480) X(481) X(482) X(483) X(484) X(486) X(487)     \
	X(488) X(491) X(500) X(501) X(502) X(503) X(504) X(600) X(603) X(604) X(606)
/* clang-format on */
#define CODE_ENUM(c) CODE_##c,
#define CODE_NAME(c) #c,
#define CODE_SLOT(c) [c] = CODE_##c + 1,
enum { SIP_CODES(CODE_ENUM) CODE_OTHER, N_CODE };
static const char *const code_names[N_CODE] = {SIP_CODES(CODE_NAME) "other"};
/* code -> its index + 1; 0: not listed */
static const unsigned char code_slot[700] = {SIP_CODES(CODE_SLOT)};

static const char *const outcome_names[METRICS_WEBHOOK_OUTCOMES] = {
	"delivered",
	"rejected",
	"unreachable",
};

static const char *const commit_names[2] = {"write", "group"};

static const char *const refused_names[2] = {"source", "rate"};

enum { N_REGISTRATION = 3 };
static const char *const registration_names[N_REGISTRATION] = {
	"registered",
	"failed",
	"unregistered",
};

/* Histogram upper bounds, in microseconds. Latencies: 100 us to 5 s. Jitter (RFC 3550, 8 kHz
 * audio): 250 us to 160 ms. */
/* as written: the bounds as a table */
/* clang-format off */
static const int64_t latency_bounds[] = {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
					 100000, 250000, 500000, 1000000, 2500000, 5000000};
static const int64_t jitter_bounds[] = {250, 500, 1000, 2000, 5000, 10000, 20000, 40000, 80000,
					160000};
/* clang-format on */
_Static_assert(sizeof latency_bounds / sizeof latency_bounds[0] <= HIST_MAX_BOUNDS, "bounds");

/* ---- storage ---------------------------------------------------------------------------- */

struct hist {
	cell bucket[HIST_MAX_BOUNDS + 1]; /* the last one: above every bound (+Inf) */
	cell sum_us;
};

struct shard {
	_Alignas(64) cell http_requests[METRICS_API_DIALECTS][N_CLASS];
	cell http_rate_limited[METRICS_API_DIALECTS];
	cell calls_created[2];
	cell calls_ended[N_STATUS][N_REASON][METRICS_DIALECTS];
	cell sip_responses[2][N_METHOD][N_CODE];
	cell webhook_attempts[METRICS_WEBHOOK_OUTCOMES];
	cell webhook_given_up;
	cell webhook_in_flight;
	cell sse_clients;
	cell sip_inbound_refused[2];
	cell trunk_registrations[N_REGISTRATION];
	cell trunks_registered;
	struct hist end_request, end_to_wire, store_commit[2], rtp_jitter;
};

static struct shard shards[METRICS_SHARDS];
static atomic_uint next_shard;
static _Thread_local struct shard *my_shard;

static struct shard *shard(void)
{
	struct shard *s = my_shard;
	if (!s) {
		unsigned i = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed);
		s = my_shard = &shards[i % METRICS_SHARDS];
	}
	return s;
}

static inline void add(cell *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* The bucket of v: the first whose bound is >= v ("le"), else the last (+Inf). */
static int bucket_of(const int64_t *bounds, int n, int64_t v)
{
	int i = 0;
	while (i < n && v > bounds[i])
		i++;
	return i;
}

static void observe(struct hist *h, const int64_t *bounds, int n, int64_t us)
{
	if (us < 0)
		us = 0;
	add(&h->bucket[bucket_of(bounds, n, us)], 1);
	add(&h->sum_us, (uint64_t)us);
}

#define N_LATENCY ((int)(sizeof latency_bounds / sizeof latency_bounds[0]))
#define N_JITTER ((int)(sizeof jitter_bounds / sizeof jitter_bounds[0]))

/* The index of name in names[0..n-1]; fallback when absent. */
static int index_of(const char *const *names, int n, const char *name, int fallback)
{
	for (int i = 0; name && i < n; i++)
		if (!strcmp(names[i], name))
			return i;
	return fallback;
}

static enum metrics_dialect api_dialect(enum metrics_dialect d)
{
	return d < METRICS_API_DIALECTS ? d : METRICS_CANONICAL;
}

/* ---- counting --------------------------------------------------------------------------- */

void metrics_http_request(enum metrics_dialect d, unsigned status)
{
	unsigned c = status < 200 ? 0 : status >= 500 ? 3 : status / 100 - 2;
	add(&shard()->http_requests[api_dialect(d)][c], 1);
}

void metrics_http_rate_limited(enum metrics_dialect d)
{
	add(&shard()->http_rate_limited[api_dialect(d)], 1);
}

void metrics_call_created(bool inbound)
{
	add(&shard()->calls_created[inbound], 1);
}

void metrics_call_ended(const char *status, const char *reason, enum metrics_dialect d)
{
	int s = index_of(status_names, N_STATUS, status, -1);
	if (s < 0)
		return; /* not a terminal status: nothing ended */
	int r = index_of(reason_names, REASON_OTHER, reason, REASON_OTHER);
	add(&shard()->calls_ended[s][r][d < METRICS_DIALECTS ? d : METRICS_NO_DIALECT], 1);
}

void metrics_end_to_wire(int64_t us)
{
	observe(&shard()->end_to_wire, latency_bounds, N_LATENCY, us);
}

void metrics_end_request(int64_t us)
{
	observe(&shard()->end_request, latency_bounds, N_LATENCY, us);
}

void metrics_sip_response(bool sent, const char *method, int code)
{
	int m = index_of(method_names, N_METHOD - 1, method, N_METHOD - 1);
	int c = code >= 0 && code < (int)sizeof code_slot && code_slot[code] ? code_slot[code] - 1
									     : CODE_OTHER;
	add(&shard()->sip_responses[sent][m][c], 1);
}

void metrics_store_commit(bool group, int64_t us)
{
	observe(&shard()->store_commit[group], latency_bounds, N_LATENCY, us);
}

void metrics_webhook_attempt(enum metrics_webhook_outcome o)
{
	if (o < METRICS_WEBHOOK_OUTCOMES)
		add(&shard()->webhook_attempts[o], 1);
}

void metrics_webhook_given_up(void)
{
	add(&shard()->webhook_given_up, 1);
}

void metrics_webhook_in_flight(int delta)
{
	add(&shard()->webhook_in_flight, (uint64_t)(int64_t)delta);
}

void metrics_sse_clients(int delta)
{
	add(&shard()->sse_clients, (uint64_t)(int64_t)delta);
}

void metrics_sip_inbound_refused(bool rate)
{
	add(&shard()->sip_inbound_refused[rate], 1);
}

void metrics_trunk_registration(const char *status)
{
	for (int i = 0; i < N_REGISTRATION; i++)
		if (!strcmp(status, registration_names[i]))
			add(&shard()->trunk_registrations[i], 1);
}

void metrics_trunks_registered(int delta)
{
	add(&shard()->trunks_registered, (uint64_t)(int64_t)delta);
}

void metrics_rtp_jitter(int64_t us)
{
	observe(&shard()->rtp_jitter, jitter_bounds, N_JITTER, us);
}

/* ---- collectors ------------------------------------------------------------------------- */

/* Guards the list, and is held through every scrape's collection: a collector removed
 * returns only once no scrape is using it. */
static pthread_mutex_t collectors_mu = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_collector *collectors;

void metrics_collector_add(struct metrics_collector *c)
{
	pthread_mutex_lock(&collectors_mu);
	c->next = collectors;
	collectors = c;
	pthread_mutex_unlock(&collectors_mu);
}

void metrics_collector_remove(struct metrics_collector *c)
{
	pthread_mutex_lock(&collectors_mu);
	for (struct metrics_collector **p = &collectors; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&collectors_mu);
}

static void collect(struct metrics_sample *out)
{
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&collectors_mu);
	for (struct metrics_collector *c = collectors; c; c = c->next)
		c->collect(c->arg, out);
	pthread_mutex_unlock(&collectors_mu);
}

/* ---- the families ----------------------------------------------------------------------- */

struct dim {
	const char *name;
	const char *const *values;
	int n;
};

static const struct dim d_api_dialect = {"dialect", dialect_names, METRICS_API_DIALECTS};
static const struct dim d_dialect = {"dialect", dialect_names, METRICS_DIALECTS};
static const struct dim d_class = {"class", class_names, N_CLASS};
static const struct dim d_direction = {"direction", direction_names, 2};
static const struct dim d_status = {"status", status_names, N_STATUS};
static const struct dim d_active = {"status", active_names, 3};
static const struct dim d_reason = {"reason", reason_names, N_REASON};
static const struct dim d_sip_direction = {"direction", sip_direction_names, 2};
static const struct dim d_method = {"method", method_names, N_METHOD};
static const struct dim d_code = {"code", code_names, N_CODE};
static const struct dim d_outcome = {"outcome", outcome_names, METRICS_WEBHOOK_OUTCOMES};
static const struct dim d_refused = {"why", refused_names, 2};
static const struct dim d_registration = {"status", registration_names, N_REGISTRATION};
static const struct dim d_commit = {"kind", commit_names, 2};

enum kind { COUNTER, GAUGE, HISTOGRAM };
enum source { SHARDS, SAMPLE };

struct family {
	const char *name;
	enum kind kind;
	enum source src;
	size_t off;               /* its first cell in struct shard or struct metrics_sample */
	const struct dim *dim[3]; /* as its array nests, outermost first; NULL after the last */
	bool sparse;              /* only the series that are not zero */
	const int64_t *bounds;    /* histograms: upper bounds (us) */
	int n_bounds;
	const char *help;
};

#define SH(field) SHARDS, offsetof(struct shard, field)
#define SA(field) SAMPLE, offsetof(struct metrics_sample, field)
#define LATENCY latency_bounds, N_LATENCY

/* as written: a family's fields on two or three lines */
/* clang-format off */
static const struct family families[] = {
	{"callplane_http_requests_total", COUNTER, SH(http_requests), {&d_api_dialect, &d_class},
	 false, NULL, 0, "HTTP requests answered, by the dialect of their route and status class."},
	{"callplane_http_rate_limited_total", COUNTER, SH(http_rate_limited), {&d_api_dialect},
	 false, NULL, 0, "Requests refused 429 by their key's rate limit."},
	{"callplane_calls_active", GAUGE, SA(calls_active), {&d_active}, false, NULL, 0,
	 "Calls not ended, by status (from the store)."},
	{"callplane_calls_created_total", COUNTER, SH(calls_created), {&d_direction}, false, NULL,
	 0, "Calls stored: placed through the API (outbound) or arriving (inbound)."},
	{"callplane_calls_ended_total", COUNTER, SH(calls_ended), {&d_status, &d_reason, &d_dialect},
	 true, NULL, 0, "Calls ended, by final status, end_reason, and the API dialect that ended "
	 "them (none: the far end, a watchdog or a restart)."},
	{"callplane_end_request_seconds", HISTOGRAM, SH(end_request), {NULL}, false, LATENCY,
	 "API requests that ended a call, without a goodbye: request reaching the call service to "
	 "the end durable and answered."},
	{"callplane_end_to_wire_seconds", HISTOGRAM, SH(end_to_wire), {NULL}, false, LATENCY,
	 "API ends without a goodbye: request reaching the call service to BYE/CANCEL handed to "
	 "the SIP transport."},
	{"callplane_sip_responses_total", COUNTER, SH(sip_responses),
	 {&d_sip_direction, &d_method, &d_code}, true, NULL, 0,
	 "SIP responses received from far ends or sent by the engine, by request method and code."},
	{"callplane_store_commit_seconds", HISTOGRAM, SH(store_commit), {&d_commit}, false, LATENCY,
	 "Store COMMITs: the worker's group commits, and writes in a transaction of their own."},
	{"callplane_webhook_deliveries_pending", GAUGE, SA(webhook_pending), {NULL}, false, NULL, 0,
	 "Webhook deliveries not yet delivered or given up (the backlog)."},
	{"callplane_webhook_deliveries_due", GAUGE, SA(webhook_due), {NULL}, false, NULL, 0,
	 "Pending webhook deliveries whose next attempt is due now."},
	{"callplane_webhook_attempts_in_flight", GAUGE, SH(webhook_in_flight), {NULL}, false, NULL,
	 0, "Webhook delivery attempts under way."},
	{"callplane_webhook_attempts_total", COUNTER, SH(webhook_attempts), {&d_outcome}, false,
	 NULL, 0, "Webhook delivery attempts that ended: 2xx (delivered), another HTTP status "
	 "(rejected), or no HTTP answer (unreachable)."},
	{"callplane_webhook_deliveries_given_up_total", COUNTER, SH(webhook_given_up), {NULL},
	 false, NULL, 0, "Webhook deliveries failed for good (too old to retry, or unrenderable)."},
	{"callplane_sse_clients", GAUGE, SH(sse_clients), {NULL}, false, NULL, 0,
	 "Open live-event streams (GET /v1/events)."},
	{"callplane_sip_inbound_refused_total", COUNTER, SH(sip_inbound_refused), {&d_refused},
	 false, NULL, 0, "INVITEs refused before any call existed: from a source no trunk admits "
	 "(403), or over the source's --inbound-rate (503)."},
	{"callplane_trunk_registrations_total", COUNTER, SH(trunk_registrations),
	 {&d_registration}, false, NULL, 0, "Trunk registrations that reached a status: registered "
	 "(a 2xx to REGISTER), failed (retried after a back-off), unregistered."},
	{"callplane_trunks_registered", GAUGE, SH(trunks_registered), {NULL}, false, NULL, 0,
	 "Trunks whose registrar holds callplane's contact now."},
	{"callplane_media_sessions_total", COUNTER, SA(media_sessions), {NULL}, false, NULL, 0,
	 "Media sessions started (answered calls with RTP)."},
	{"callplane_rtp_packets_received_total", COUNTER, SA(rtp_in), {NULL}, false, NULL, 0,
	 "RTP packets accepted from far ends."},
	{"callplane_rtp_packets_sent_total", COUNTER, SA(rtp_out), {NULL}, false, NULL, 0,
	 "RTP packets sent to far ends."},
	{"callplane_rtp_packets_dropped_total", COUNTER, SA(rtp_dropped), {NULL}, false, NULL, 0,
	 "RTP packets refused (bad, foreign source, unexpected payload) or not sent."},
	{"callplane_rtp_packets_expected_total", COUNTER, SA(rtp_expected), {NULL}, false, NULL, 0,
	 "RTP packets far ends sent, by their sequence numbers (RFC 3550 A.3)."},
	{"callplane_rtp_packets_lost_total", COUNTER, SA(rtp_lost), {NULL}, false, NULL, 0,
	 "RTP packets far ends sent that never arrived (RFC 3550 A.3 cumulative loss)."},
	{"callplane_rtp_jitter_seconds", HISTOGRAM, SH(rtp_jitter), {NULL}, false, jitter_bounds,
	 N_JITTER, "RFC 3550 interarrival jitter of each receive stream, sampled every RTCP "
	 "interval and at its end."},
	{"callplane_agent_frames_received_total", COUNTER, SA(agent_frames_in), {NULL}, false,
	 NULL, 0, "Media frames received from agents' streams."},
	{"callplane_agent_frames_sent_total", COUNTER, SA(agent_frames_out), {NULL}, false, NULL,
	 0, "Media frames sent to agents' streams."},
	{"callplane_dtmf_received_total", COUNTER, SA(dtmf_in), {NULL}, false, NULL, 0,
	 "DTMF digits received from far ends (RFC 4733)."},
	{"callplane_dtmf_sent_total", COUNTER, SA(dtmf_out), {NULL}, false, NULL, 0,
	 "DTMF digits sent to far ends (RFC 4733)."},
	{"callplane_playout_dropped_bytes_total", COUNTER, SA(playout_dropped_bytes), {NULL},
	 false, NULL, 0, "Agent audio dropped because a playout queue was full (bytes)."},
};
/* clang-format on */

/* ---- rendering -------------------------------------------------------------------------- */

/* A growing text buffer; oom is set (and further writes dropped) once an allocation fails. */
struct metrics_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

__attribute__((format(printf, 2, 3))) static void put(struct metrics_buf *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	if (!b->p && !(b->p = malloc(b->cap = 16384))) {
		b->oom = true;
		return;
	}
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap + (size_t)n + 1) * 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* "# HELP name help\n# TYPE name type\n" */
static void family_head(struct metrics_buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The sum over the shards of the cell at off (a gauge's deltas wrap to its signed value). */
static uint64_t shards_sum(size_t off)
{
	uint64_t v = 0;
	for (int s = 0; s < METRICS_SHARDS; s++)
		v += atomic_load_explicit((cell *)((char *)&shards[s] + off), memory_order_relaxed);
	return v;
}

static int n_dims(const struct family *f)
{
	int n = 0;
	while (n < 3 && f->dim[n])
		n++;
	return n;
}

/* Writes the labels of series i of f into out ("" without labels, else `a="x",b="y"`). */
static void labels_of(const struct family *f, int i, char *out, size_t size)
{
	int n = n_dims(f), idx[3];
	for (int d = n - 1; d >= 0; d--) {
		idx[d] = i % f->dim[d]->n;
		i /= f->dim[d]->n;
	}
	size_t len = 0;
	out[0] = '\0';
	for (int d = 0; d < n && len < size; d++)
		len += (size_t)snprintf(out + len, size - len, "%s%s=\"%s\"", d ? "," : "",
					f->dim[d]->name, f->dim[d]->values[idx[d]]);
}

static void render_histogram(struct metrics_buf *b, const struct family *f, int series,
			     const char *labels)
{
	size_t base = f->off + (size_t)series * sizeof(struct hist);
	uint64_t count[HIST_MAX_BOUNDS + 1], total = 0;
	for (int i = 0; i <= f->n_bounds; i++) {
		count[i] =
			shards_sum(base + offsetof(struct hist, bucket) + (size_t)i * sizeof(cell));
		total += count[i];
	}
	if (f->sparse && !total)
		return;
	const char *sep = *labels ? "," : "";
	uint64_t cum = 0;
	for (int i = 0; i < f->n_bounds; i++) {
		cum += count[i];
		put(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, labels, sep,
		    (double)f->bounds[i] / 1e6, (unsigned long long)cum);
	}
	put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, labels, sep,
	    (unsigned long long)total);
	uint64_t sum_us = shards_sum(base + offsetof(struct hist, sum_us));
	const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
	put(b, "%s_sum%s%s%s %.6f\n", f->name, open, labels, close, (double)sum_us / 1e6);
	put(b, "%s_count%s%s%s %llu\n", f->name, open, labels, close, (unsigned long long)total);
}

static void render_family(struct metrics_buf *b, const struct family *f,
			  const struct metrics_sample *sample)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	family_head(b, f->name, types[f->kind], f->help);
	int n = 1;
	for (int d = 0; d < n_dims(f); d++)
		n *= f->dim[d]->n;
	for (int i = 0; i < n; i++) {
		char labels[256];
		labels_of(f, i, labels, sizeof labels);
		if (f->kind == HISTOGRAM) {
			render_histogram(b, f, i, labels);
			continue;
		}
		int64_t v = f->src == SAMPLE
				    ? ((const int64_t *)((const char *)sample + f->off))[i]
				    : (int64_t)shards_sum(f->off + (size_t)i * sizeof(cell));
		if (f->sparse && !v)
			continue;
		put(b, "%s%s%s%s %lld\n", f->name, *labels ? "{" : "", labels, *labels ? "}" : "",
		    (long long)v);
	}
}

/* The process_* families, under the client libraries' names and help. */
static void render_process(struct metrics_buf *b)
{
	struct metrics_process p;
	metrics_process_read(&p);
	if (p.has_cpu) {
		family_head(b, "process_cpu_seconds_total", "counter",
			    "User and system CPU time spent, in seconds.");
		put(b, "process_cpu_seconds_total %.6f\n", p.cpu_seconds);
	}
	if (p.has_fds) {
		family_head(b, "process_open_fds", "gauge", "Open file descriptors.");
		put(b, "process_open_fds %ld\n", p.open_fds);
	}
	if (p.has_max_fds) {
		family_head(b, "process_max_fds", "gauge",
			    "The soft limit of open file descriptors (RLIMIT_NOFILE).");
		put(b, "process_max_fds %.0f\n", p.max_fds);
	}
	if (p.has_memory) {
		family_head(b, "process_virtual_memory_bytes", "gauge",
			    "Virtual memory size in bytes.");
		put(b, "process_virtual_memory_bytes %.0f\n", p.virtual_bytes);
		family_head(b, "process_resident_memory_bytes", "gauge",
			    "Resident memory size in bytes.");
		put(b, "process_resident_memory_bytes %.0f\n", p.resident_bytes);
	}
	if (p.has_start) {
		family_head(b, "process_start_time_seconds", "gauge",
			    "Start time of the process since the Unix epoch, in seconds.");
		put(b, "process_start_time_seconds %.2f\n", p.start_seconds);
	}
}

#ifndef CALLPLANE_VERSION
#define CALLPLANE_VERSION "dev"
#endif

char *metrics_render(size_t *len)
{
	struct metrics_buf b = {0};
	struct metrics_sample sample;
	collect(&sample);
	for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
		render_family(&b, &families[i], &sample);
	/* the version is a build's word, never a client's: no quoting needed beyond a literal */
	family_head(&b, "callplane_build_info", "gauge", "This build of callplane (always 1).");
	put(&b, "callplane_build_info{version=\"%s\"} 1\n", CALLPLANE_VERSION);
	render_process(&b);
	if (b.oom || !b.p) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
