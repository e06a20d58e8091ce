/*
 * test_metrics.c - src/metrics/: counting into the fixed label sets, histograms, gauges moved
 * from several threads, collectors, and the text exposition they are rendered in (every
 * family announced once before its samples, cumulative buckets, _count equal to +Inf).
 *
 * The metrics are one set per process and this binary starts from zero, so each test counts
 * what it adds; values are read back by parsing metrics_render()'s text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"

/* The rendered text (the caller frees it). */
static char *render(void)
{
	size_t len = 0;
	char *text = metrics_render(&len);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	return text;
}

/* The value of one series ("name{labels}" exactly as rendered, or "name"); -1 when absent. */
static double value_of(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *line = text; *line;) {
		const char *end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		if (!strncmp(line, series, n) && line[n] == ' ')
			return strtod(line + n + 1, NULL);
		line = *end ? end + 1 : end;
	}
	return -1;
}

static double get(const char *series)
{
	char *text = render();
	double v = value_of(text, series);
	free(text);
	return v;
}

/* How many sample lines of text start with prefix. */
static int lines_with(const char *text, const char *prefix)
{
	int count = 0;
	size_t n = strlen(prefix);
	for (const char *line = text; *line;) {
		if (!strncmp(line, prefix, n))
			count++;
		const char *end = strchr(line, '\n');
		if (!end)
			break;
		line = end + 1;
	}
	return count;
}

/* ---- histograms ------------------------------------------------------------------------- */

static void test_histogram_buckets_sum_count(void **state)
{
	(void)state;
	/* -5 counts as 0; a bound is inside its bucket (le); beyond the last bound is +Inf */
	int64_t us[] = {-5, 100, 101, 2500, 5000000, 6000000};
	for (size_t i = 0; i < sizeof us / sizeof us[0]; i++)
		metrics_end_to_wire(us[i]);
	char *t = render();
	const char *h = "callplane_end_to_wire_seconds";
	char name[128];
	struct {
		const char *le;
		double want;
	} b[] = {
		{"0.0001", 2}, {"0.00025", 3}, {"0.0005", 3}, {"0.001", 3},
		{"0.0025", 4}, {"0.005", 4},   {"0.01", 4},   {"1", 4},
		{"2.5", 4},    {"5", 5},       {"+Inf", 6},
	};
	for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
		snprintf(name, sizeof name, "%s_bucket{le=\"%s\"}", h, b[i].le);
		assert_float_equal(value_of(t, name), b[i].want, 0);
	}
	snprintf(name, sizeof name, "%s_count", h);
	assert_float_equal(value_of(t, name), 6, 0);
	snprintf(name, sizeof name, "%s_sum", h);
	assert_float_equal(value_of(t, name), 11.002701, 1e-9);
	/* 15 bounds and +Inf, no more */
	snprintf(name, sizeof name, "%s_bucket{", h);
	assert_int_equal(lines_with(t, name), 16);
	free(t);
}

static void test_histogram_with_label(void **state)
{
	(void)state;
	metrics_store_commit(true, 700);
	metrics_store_commit(true, 300);
	metrics_store_commit(false, 20000);
	char *t = render();
	assert_float_equal(value_of(t, "callplane_store_commit_seconds_bucket{kind=\"group\","
				       "le=\"0.0005\"}"),
			   1, 0);
	assert_float_equal(value_of(t, "callplane_store_commit_seconds_bucket{kind=\"group\","
				       "le=\"0.001\"}"),
			   2, 0);
	assert_float_equal(value_of(t, "callplane_store_commit_seconds_count{kind=\"group\"}"), 2,
			   0);
	assert_float_equal(value_of(t, "callplane_store_commit_seconds_sum{kind=\"group\"}"), 0.001,
			   1e-9);
	assert_float_equal(value_of(t, "callplane_store_commit_seconds_bucket{kind=\"write\","
				       "le=\"0.01\"}"),
			   0, 0);
	assert_float_equal(value_of(t, "callplane_store_commit_seconds_bucket{kind=\"write\","
				       "le=\"0.025\"}"),
			   1, 0);
	assert_float_equal(value_of(t, "callplane_store_commit_seconds_count{kind=\"write\"}"), 1,
			   0);
	free(t);
}

/* ---- fixed label sets ------------------------------------------------------------------- */

static void test_calls_ended_labels(void **state)
{
	(void)state;
	char *t = render();
	/* sparse: nothing ended yet, so no series at all, but the family is announced */
	assert_int_equal(lines_with(t, "callplane_calls_ended_total{"), 0);
	assert_non_null(strstr(t, "# TYPE callplane_calls_ended_total counter\n"));
	free(t);
	metrics_call_ended("completed", "ended_by_api", METRICS_CANONICAL);
	metrics_call_ended("completed", "ended_by_api", METRICS_CANONICAL);
	metrics_call_ended("completed", "api_ended", METRICS_VOXWORKS);
	/* a reason an API client chose is "other": it must not grow the label set */
	metrics_call_ended("canceled", "customer_changed_mind", METRICS_TALKOVER);
	metrics_call_ended("busy", "busy", METRICS_NO_DIALECT);
	metrics_call_ended("failed", NULL, METRICS_NO_DIALECT);
	/* reasons of callplane's own (a drain's timeout, a web call nobody joined) */
	metrics_call_ended("completed", "drain_timeout", METRICS_NO_DIALECT);
	metrics_call_ended("no_answer", "token_expired", METRICS_NO_DIALECT);
	/* not a terminal status: nothing ended */
	metrics_call_ended("in_progress", "ended_by_api", METRICS_CANONICAL);
	metrics_call_ended(NULL, "ended_by_api", METRICS_CANONICAL);
	t = render();
	assert_float_equal(value_of(t, "callplane_calls_ended_total{status=\"completed\","
				       "reason=\"ended_by_api\",dialect=\"canonical\"}"),
			   2, 0);
	assert_float_equal(value_of(t, "callplane_calls_ended_total{status=\"completed\","
				       "reason=\"api_ended\",dialect=\"voxworks\"}"),
			   1, 0);
	assert_float_equal(value_of(t, "callplane_calls_ended_total{status=\"canceled\","
				       "reason=\"other\",dialect=\"talkover\"}"),
			   1, 0);
	assert_float_equal(value_of(t, "callplane_calls_ended_total{status=\"busy\","
				       "reason=\"busy\",dialect=\"none\"}"),
			   1, 0);
	assert_float_equal(value_of(t, "callplane_calls_ended_total{status=\"failed\","
				       "reason=\"other\",dialect=\"none\"}"),
			   1, 0);
	assert_float_equal(value_of(t, "callplane_calls_ended_total{status=\"completed\","
				       "reason=\"drain_timeout\",dialect=\"none\"}"),
			   1, 0);
	assert_float_equal(value_of(t, "callplane_calls_ended_total{status=\"no_answer\","
				       "reason=\"token_expired\",dialect=\"none\"}"),
			   1, 0);
	assert_int_equal(lines_with(t, "callplane_calls_ended_total{"), 7);
	free(t);
}

static void test_sip_codes_and_methods(void **state)
{
	(void)state;
	metrics_sip_response(true, "INVITE", 200);
	metrics_sip_response(true, "INVITE", 200);
	metrics_sip_response(false, "BYE", 481);
	metrics_sip_response(false, "INVITE", 486);
	metrics_sip_response(false, "REGISTER", 200); /* not a listed method */
	metrics_sip_response(false, NULL, 200);
	metrics_sip_response(true, "INVITE", 299); /* not a listed code */
	metrics_sip_response(true, "INVITE", 9999);
	metrics_sip_response(true, "INVITE", -1);
	char *t = render();
	const char *p = "callplane_sip_responses_total";
	char name[160];
	struct {
		const char *labels;
		double want;
	} s[] = {
		{"direction=\"sent\",method=\"INVITE\",code=\"200\"", 2},
		{"direction=\"received\",method=\"BYE\",code=\"481\"", 1},
		{"direction=\"received\",method=\"INVITE\",code=\"486\"", 1},
		{"direction=\"received\",method=\"other\",code=\"200\"", 2},
		{"direction=\"sent\",method=\"INVITE\",code=\"other\"", 3},
	};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
		snprintf(name, sizeof name, "%s{%s}", p, s[i].labels);
		assert_float_equal(value_of(t, name), s[i].want, 0);
	}
	snprintf(name, sizeof name, "%s{", p);
	assert_int_equal(lines_with(t, name), 5);
	free(t);
}

static void test_http_classes_and_dialects(void **state)
{
	(void)state;
	metrics_http_request(METRICS_CANONICAL, 200);
	metrics_http_request(METRICS_CANONICAL, 201);
	metrics_http_request(METRICS_CANONICAL, 404);
	metrics_http_request(METRICS_CARTESIA, 503);
	metrics_http_request(METRICS_PILOTSTATUS, 302);
	metrics_http_request(METRICS_NO_DIALECT, 200); /* no route: the canonical API's */
	metrics_http_rate_limited(METRICS_TALKOVER);
	char *t = render();
	const char *p = "callplane_http_requests_total";
	char name[160];
	snprintf(name, sizeof name, "%s{dialect=\"canonical\",class=\"2xx\"}", p);
	assert_float_equal(value_of(t, name), 3, 0);
	snprintf(name, sizeof name, "%s{dialect=\"canonical\",class=\"4xx\"}", p);
	assert_float_equal(value_of(t, name), 1, 0);
	snprintf(name, sizeof name, "%s{dialect=\"cartesia\",class=\"5xx\"}", p);
	assert_float_equal(value_of(t, name), 1, 0);
	snprintf(name, sizeof name, "%s{dialect=\"pilotstatus\",class=\"3xx\"}", p);
	assert_float_equal(value_of(t, name), 1, 0);
	/* not sparse: every dialect and class, zero included; no "none" for requests */
	snprintf(name, sizeof name, "%s{dialect=\"voxworks\",class=\"2xx\"}", p);
	assert_float_equal(value_of(t, name), 0, 0);
	snprintf(name, sizeof name, "%s{", p);
	assert_int_equal(lines_with(t, name), 5 * 4);
	assert_float_equal(value_of(t, "callplane_http_rate_limited_total{dialect=\"talkover\"}"),
			   1, 0);
	free(t);
}

/* ---- threads and gauges ----------------------------------------------------------------- */

#define THREADS 6
#define PER_THREAD 5000

static void *count_from_thread(void *arg)
{
	long id = (long)arg;
	for (int i = 0; i < PER_THREAD; i++) {
		metrics_webhook_attempt(METRICS_WEBHOOK_REJECTED);
		/* half the threads open streams, the other half close them */
		metrics_sse_clients(id % 2 ? 1 : -1);
	}
	metrics_webhook_in_flight(id % 2 ? 3 : -1);
	return NULL;
}

static void test_counts_from_many_threads(void **state)
{
	(void)state;
	pthread_t t[THREADS];
	double before = get("callplane_webhook_attempts_total{outcome=\"rejected\"}");
	for (long i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, count_from_thread, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	char *text = render();
	assert_float_equal(value_of(text, "callplane_webhook_attempts_total{outcome=\"rejected\"}"),
			   before + THREADS * PER_THREAD, 0);
	/* a gauge's +1 and -1 from different threads (shards) still sum to its value */
	assert_float_equal(value_of(text, "callplane_sse_clients"), 0, 0);
	assert_float_equal(value_of(text, "callplane_webhook_attempts_in_flight"), 3 * 3 - 3, 0);
	free(text);
	metrics_webhook_in_flight(-6);
	metrics_sse_clients(-2);
	assert_float_equal(get("callplane_webhook_attempts_in_flight"), 0, 0);
	assert_float_equal(get("callplane_sse_clients"), -2, 0);
	metrics_sse_clients(2);
}

/* Trunk registrations are counted by the statuses listed, and only those ("registering" is a
 * step, not a status reached); inbound refusals by why. */
static void test_trunks_and_inbound_refusals(void **state)
{
	(void)state;
	const char *reg = "callplane_trunk_registrations_total{status=\"registered\"}";
	const char *fail = "callplane_trunk_registrations_total{status=\"failed\"}";
	const char *unreg = "callplane_trunk_registrations_total{status=\"unregistered\"}";
	const char *src = "callplane_sip_inbound_refused_total{why=\"source\"}";
	const char *rate = "callplane_sip_inbound_refused_total{why=\"rate\"}";
	double reg0 = get(reg), fail0 = get(fail), unreg0 = get(unreg), src0 = get(src);
	double rate0 = get(rate);
	metrics_trunk_registration("registering");
	metrics_trunk_registration("registered");
	metrics_trunk_registration("registered");
	metrics_trunk_registration("failed");
	metrics_trunk_registration("unregistered");
	metrics_trunk_registration("nonsense");
	metrics_trunks_registered(1);
	metrics_sip_inbound_refused(false);
	metrics_sip_inbound_refused(true);
	metrics_sip_inbound_refused(true);
	assert_float_equal(get(reg), reg0 + 2, 0);
	assert_float_equal(get(fail), fail0 + 1, 0);
	assert_float_equal(get(unreg), unreg0 + 1, 0);
	assert_float_equal(get("callplane_trunks_registered"), 1, 0);
	assert_float_equal(get(src), src0 + 1, 0);
	assert_float_equal(get(rate), rate0 + 2, 0);
	char *text = render();
	assert_int_equal(lines_with(text, "callplane_trunk_registrations_total{"), 3);
	free(text);
	metrics_trunks_registered(-1);
	assert_float_equal(get("callplane_trunks_registered"), 0, 0);
}

/* ---- collectors ------------------------------------------------------------------------- */

static void collect_a(void *arg, struct metrics_sample *out)
{
	out->calls_active[2] += *(int *)arg;
	out->webhook_pending += 7;
	out->rtp_lost += 3;
}

static void collect_b(void *arg, struct metrics_sample *out)
{
	out->calls_active[2] += *(int *)arg;
	out->calls_active[0] += 1;
}

static void test_collectors_sum_and_leave(void **state)
{
	(void)state;
	int a = 10, b = 5;
	assert_float_equal(get("callplane_calls_active{status=\"in_progress\"}"), 0, 0);
	struct metrics_collector ca = {.collect = collect_a, .arg = &a};
	struct metrics_collector cb = {.collect = collect_b, .arg = &b};
	metrics_collector_add(&ca);
	metrics_collector_add(&cb);
	char *t = render();
	assert_float_equal(value_of(t, "callplane_calls_active{status=\"in_progress\"}"), 15, 0);
	assert_float_equal(value_of(t, "callplane_calls_active{status=\"queued\"}"), 1, 0);
	assert_float_equal(value_of(t, "callplane_calls_active{status=\"ringing\"}"), 0, 0);
	assert_float_equal(value_of(t, "callplane_webhook_deliveries_pending"), 7, 0);
	assert_float_equal(value_of(t, "callplane_rtp_packets_lost_total"), 3, 0);
	free(t);
	metrics_collector_remove(&ca);
	assert_float_equal(get("callplane_calls_active{status=\"in_progress\"}"), 5, 0);
	assert_float_equal(get("callplane_webhook_deliveries_pending"), 0, 0);
	metrics_collector_remove(&cb);
	metrics_collector_remove(&cb); /* removing one not listed is harmless */
	assert_float_equal(get("callplane_calls_active{status=\"in_progress\"}"), 0, 0);
}

/* ---- the exposition format -------------------------------------------------------------- */

/* The family a sample line belongs to: its name, less a histogram's suffix. */
static void family_of(const char *line, const char *types, char *out, size_t size)
{
	size_t n = strcspn(line, "{ ");
	snprintf(out, size, "%.*s", (int)n, line);
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	for (int i = 0; i < 3; i++) {
		size_t sl = strlen(suffixes[i]);
		if (n > sl && !strcmp(out + n - sl, suffixes[i])) {
			char base[160], want[200];
			snprintf(base, sizeof base, "%.*s", (int)(n - sl), out);
			snprintf(want, sizeof want, "# TYPE %s histogram\n", base);
			if (strstr(types, want)) {
				snprintf(out, size, "%s", base);
				return;
			}
		}
	}
}

static void test_exposition_is_well_formed(void **state)
{
	(void)state;
	metrics_end_request(1234);
	metrics_rtp_jitter(1500);
	char *t = render();
	assert_true(strlen(t) > 0 && t[strlen(t) - 1] == '\n');
	char seen[64][160];
	int n_seen = 0;
	char current[160] = "";
	for (char *line = t; *line;) {
		char *end = strchr(line, '\n');
		assert_non_null(end);
		*end = '\0';
		if (!strncmp(line, "# HELP ", 7)) {
			char name[160];
			assert_int_equal(sscanf(line + 7, "%159s", name), 1);
			for (int i = 0; i < n_seen; i++)
				assert_string_not_equal(seen[i], name); /* each family once */
			assert_true(n_seen < 64);
			snprintf(seen[n_seen++], sizeof seen[0], "%s", name);
			snprintf(current, sizeof current, "%s", name);
			/* its TYPE follows at once */
			char want[200];
			snprintf(want, sizeof want, "# TYPE %s ", name);
			assert_int_equal(strncmp(end + 1, want, strlen(want)), 0);
		} else if (line[0] != '#') {
			/* a sample of the family announced last: "name{labels} value" */
			*end = '\n';
			char fam[160];
			family_of(line, t, fam, sizeof fam);
			*end = '\0';
			assert_string_equal(fam, current);
			char *space = strrchr(line, ' ');
			assert_non_null(space);
			char *num_end;
			strtod(space + 1, &num_end);
			assert_true(num_end != space + 1 && *num_end == '\0');
		}
		*end = '\n';
		line = end + 1;
	}
	assert_int_equal(n_seen, 37); /* every family, as docs/OPERATIONS.md lists them */
	free(t);
}

static void test_process_families(void **state)
{
	(void)state;
	char *t = render();
	assert_true(value_of(t, "process_open_fds") >= 3);
	assert_true(value_of(t, "process_max_fds") >= value_of(t, "process_open_fds"));
	assert_true(value_of(t, "process_resident_memory_bytes") > 0);
	assert_true(value_of(t, "process_cpu_seconds_total") >= 0);
	double start = value_of(t, "process_start_time_seconds"), now = (double)time(NULL);
	assert_true(start > now - 3600 && start <= now + 1);
	assert_float_equal(value_of(t, "callplane_build_info{version=\"dev\"}"), 1, 0);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* first: it expects no end counted yet */
		cmocka_unit_test(test_calls_ended_labels),
		cmocka_unit_test(test_histogram_buckets_sum_count),
		cmocka_unit_test(test_histogram_with_label),
		cmocka_unit_test(test_sip_codes_and_methods),
		cmocka_unit_test(test_http_classes_and_dialects),
		cmocka_unit_test(test_counts_from_many_threads),
		cmocka_unit_test(test_trunks_and_inbound_refusals),
		cmocka_unit_test(test_collectors_sum_and_leave),
		cmocka_unit_test(test_exposition_is_well_formed),
		cmocka_unit_test(test_process_families),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
