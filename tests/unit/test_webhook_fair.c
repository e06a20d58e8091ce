/*
 * test_webhook_fair.c - webhook/fair.c: per-tenant shares of the delivery worker's slots and
 * the per-webhook circuit breaker, driven with made-up deliveries and a made-up clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/fair.h"

#define TA "aaaaaaaa-0000-4000-8000-000000000001"
#define TB "bbbbbbbb-0000-4000-8000-000000000002"
#define TC "cccccccc-0000-4000-8000-000000000003"
#define W1 "11111111-0000-4000-8000-000000000001"
#define W2 "22222222-0000-4000-8000-000000000002"
#define WB "bbbbbbbb-1111-4000-8000-000000000002"
#define NOW 1700000000000LL

static const struct fair_config shares_cfg = {
	.slots = 32,
	.breaker_failures = 5,
	.open_initial_ms = 1000,
	.open_max_ms = 4000,
	.recheck_ms = 100,
	.max_age_ms = 60000,
};

static const struct fair_config breaker_cfg = {
	.slots = 32,
	.breaker_failures = 3,
	.open_initial_ms = 1000,
	.open_max_ms = 4000,
	.recheck_ms = 100,
	.max_age_ms = 10000,
};

/* An offer of n deliveries: tenants[i % nt] and hooks[i % nt], created at `created`. */
static struct delivery *offer(size_t n, const char *const *tenants, const char *const *hooks,
			      size_t nt, int64_t created)
{
	struct delivery *d = calloc(n, sizeof *d);
	assert_non_null(d);
	for (size_t i = 0; i < n; i++) {
		d[i].id = (int64_t)i + 1;
		snprintf(d[i].tenant_id, sizeof d[i].tenant_id, "%s", tenants[i % nt]);
		snprintf(d[i].webhook_id, sizeof d[i].webhook_id, "%s", hooks[i % nt]);
		d[i].created_at = created;
		d[i].pick = DELIVERY_GONE; /* fair_pick must set every pick */
	}
	return d;
}

static size_t count_pick(const struct delivery *d, size_t n, enum delivery_pick p,
			 const char *tenant)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += d[i].pick == p && (!tenant || !strcmp(d[i].tenant_id, tenant));
	return c;
}

/* Ends `n` of the tenant's attempts in flight with outcome o. */
static void finish(struct fair *f, const char *tenant, const char *hook, int n, enum fair_outcome o,
		   int64_t now)
{
	for (int i = 0; i < n; i++)
		fair_done(f, tenant, hook, o, now);
}

/* Picks one delivery of (tenant, hook) created at `created`, at time now; returns it. */
static struct delivery pick_one(struct fair *f, const char *tenant, const char *hook,
				int64_t created, int64_t now)
{
	const char *t[] = {tenant}, *h[] = {hook};
	struct delivery *d = offer(1, t, h, 1, created);
	fair_pick(f, now, d, 1);
	struct delivery one = *d;
	free(d);
	return one;
}

static void test_a_tenant_alone_may_use_every_slot(void **state)
{
	(void)state;
	struct fair *f = fair_create(&shares_cfg);
	const char *t[] = {TA, TA}, *h[] = {W1, W2};
	struct delivery *d = offer(64, t, h, 2, NOW);
	fair_pick(f, NOW, d, 64);
	assert_int_equal(count_pick(d, 64, DELIVERY_TAKE, NULL), 32);
	assert_int_equal(count_pick(d, 64, DELIVERY_LEAVE, NULL), 32);
	for (size_t i = 0; i < 32; i++)
		assert_int_equal(d[i].pick, DELIVERY_TAKE); /* in the order offered */
	assert_int_equal(fair_in_flight(f), 32);
	assert_int_equal(fair_tenant_in_flight(f, TA), 32);
	free(d);
	fair_destroy(f);
}

static void test_a_second_tenant_starts_beside_a_full_worker(void **state)
{
	(void)state;
	struct fair *f = fair_create(&shares_cfg);
	const char *ta[] = {TA}, *wa[] = {W1};
	struct delivery *d = offer(32, ta, wa, 1, NOW);
	fair_pick(f, NOW, d, 32);
	assert_int_equal(fair_tenant_in_flight(f, TA), 32);
	free(d);

	/* B has work now: its share (32 / 2) starts at once, beside A's 32; A starts nothing */
	const char *tab[] = {TA, TB}, *wab[] = {W1, WB};
	d = offer(40, tab, wab, 2, NOW);
	fair_pick(f, NOW + 10, d, 40);
	assert_int_equal(count_pick(d, 40, DELIVERY_TAKE, TA), 0);
	assert_int_equal(count_pick(d, 40, DELIVERY_TAKE, TB), 16);
	assert_int_equal(fair_in_flight(f), 48);
	free(d);

	/* 20 of A's end: A (12) is below its share again, B (16) is at it */
	finish(f, TA, W1, 20, FAIR_DELIVERED, NOW + 20);
	d = offer(40, tab, wab, 2, NOW);
	fair_pick(f, NOW + 30, d, 40);
	assert_int_equal(count_pick(d, 40, DELIVERY_TAKE, TA), 4);
	assert_int_equal(count_pick(d, 40, DELIVERY_TAKE, TB), 0);
	assert_int_equal(fair_tenant_in_flight(f, TA), 16);
	assert_int_equal(fair_tenant_in_flight(f, TB), 16);
	assert_int_equal(fair_in_flight(f), 32);
	free(d);

	/* B's attempts end and B has nothing due: A alone may fill every slot again */
	finish(f, TB, WB, 16, FAIR_DELIVERED, NOW + 40);
	d = offer(40, ta, wa, 1, NOW);
	fair_pick(f, NOW + 50, d, 40);
	assert_int_equal(count_pick(d, 40, DELIVERY_TAKE, TA), 16);
	assert_int_equal(fair_in_flight(f), 32);
	free(d);
	fair_destroy(f);
}

static void test_three_tenants_each_get_a_third(void **state)
{
	(void)state;
	struct fair *f = fair_create(&shares_cfg);
	const char *t[] = {TA, TB, TC}, *h[] = {W1, WB, W2};
	struct delivery *d = offer(60, t, h, 3, NOW);
	fair_pick(f, NOW, d, 60);
	/* 32 / 3 = 10 each: two slots stay free rather than go to one tenant */
	assert_int_equal(count_pick(d, 60, DELIVERY_TAKE, TA), 10);
	assert_int_equal(count_pick(d, 60, DELIVERY_TAKE, TB), 10);
	assert_int_equal(count_pick(d, 60, DELIVERY_TAKE, TC), 10);
	assert_int_equal(fair_in_flight(f), 30);
	free(d);
	fair_destroy(f);
}

static void test_never_more_than_twice_the_slots(void **state)
{
	(void)state;
	struct fair *f = fair_create(&shares_cfg);
	const char *ta[] = {TA}, *wa[] = {W1};
	struct delivery *d = offer(32, ta, wa, 1, NOW);
	fair_pick(f, NOW, d, 32);
	free(d);
	/* 40 more tenants, one delivery each: a share of one each, until 2 x 32 are in flight */
	char tenants[40][CP_UUID_LEN + 1], hooks[40][CP_UUID_LEN + 1];
	const char *tp[40], *hp[40];
	for (int i = 0; i < 40; i++) {
		snprintf(tenants[i], sizeof tenants[i], "dddddddd-0000-4000-8000-%012d", i);
		snprintf(hooks[i], sizeof hooks[i], "eeeeeeee-0000-4000-8000-%012d", i);
		tp[i] = tenants[i];
		hp[i] = hooks[i];
	}
	d = offer(40, tp, hp, 40, NOW);
	fair_pick(f, NOW, d, 40);
	assert_int_equal(count_pick(d, 40, DELIVERY_TAKE, NULL), 32);
	for (size_t i = 0; i < 32; i++)
		assert_int_equal(d[i].pick, DELIVERY_TAKE);
	assert_int_equal(fair_in_flight(f), 64);
	free(d);
	fair_destroy(f);
}

static void test_circuit_opens_after_consecutive_failures(void **state)
{
	(void)state;
	struct fair *f = fair_create(&breaker_cfg);
	int64_t t = NOW;
	/* two failures, then a success: the count starts again */
	for (int i = 0; i < 2; i++)
		assert_int_equal(pick_one(f, TA, W1, t, t).pick, DELIVERY_TAKE);
	finish(f, TA, W1, 2, FAIR_FAILED, t);
	assert_int_equal(pick_one(f, TA, W1, t, t).pick, DELIVERY_TAKE);
	finish(f, TA, W1, 1, FAIR_DELIVERED, t);
	assert_string_equal(fair_circuit(f, W1), "closed");
	for (int i = 0; i < 2; i++)
		assert_int_equal(pick_one(f, TA, W1, t, t).pick, DELIVERY_TAKE);
	finish(f, TA, W1, 2, FAIR_FAILED, t);
	assert_string_equal(fair_circuit(f, W1), "closed");
	/* the third in a row opens it for open_initial_ms */
	assert_int_equal(pick_one(f, TA, W1, t, t).pick, DELIVERY_TAKE);
	finish(f, TA, W1, 1, FAIR_FAILED, t);
	assert_string_equal(fair_circuit(f, W1), "open");
	assert_int_equal(fair_in_flight(f), 0);

	struct delivery x = pick_one(f, TA, W1, t + 500, t + 500);
	assert_int_equal(x.pick, DELIVERY_HOLD);
	assert_int_equal(x.hold_until, t + 1000);
	/* older than max_age while the circuit is open: given up, not attempted */
	x = pick_one(f, TA, W1, t + 500 - 10000, t + 500);
	assert_int_equal(x.pick, DELIVERY_GIVE_UP);
	assert_non_null(x.why);
	/* another webhook of the same tenant is not held */
	assert_int_equal(pick_one(f, TA, W2, t, t + 500).pick, DELIVERY_TAKE);
	finish(f, TA, W2, 1, FAIR_DELIVERED, t + 600);
	assert_int_equal(fair_in_flight(f), 0);
	fair_destroy(f);
}

static void test_half_open_probe_then_doubling_then_closed(void **state)
{
	(void)state;
	struct fair *f = fair_create(&breaker_cfg);
	int64_t t = NOW;
	for (int i = 0; i < 3; i++)
		pick_one(f, TA, W1, t, t);
	finish(f, TA, W1, 3, FAIR_FAILED, t);
	assert_string_equal(fair_circuit(f, W1), "open");

	/* at the end of the period: one probe; the others wait for it, even when old */
	const char *ta[] = {TA}, *wa[] = {W1};
	struct delivery *d = offer(3, ta, wa, 1, t + 1000 - 20000);
	fair_pick(f, t + 1000, d, 3);
	assert_int_equal(d[0].pick, DELIVERY_TAKE);
	assert_int_equal(d[1].pick, DELIVERY_HOLD);
	assert_int_equal(d[1].hold_until, t + 1000 + 100);
	assert_int_equal(d[2].pick, DELIVERY_HOLD);
	assert_string_equal(fair_circuit(f, W1), "half_open");
	free(d);

	/* the probe fails: open again for twice the period */
	finish(f, TA, W1, 1, FAIR_FAILED, t + 1500);
	assert_string_equal(fair_circuit(f, W1), "open");
	struct delivery x = pick_one(f, TA, W1, t + 3400, t + 3400);
	assert_int_equal(x.pick, DELIVERY_HOLD);
	assert_int_equal(x.hold_until, t + 1500 + 2000);
	/* and again: 4000, then no longer than open_max_ms (4000) */
	assert_int_equal(pick_one(f, TA, W1, t + 3500, t + 3500).pick, DELIVERY_TAKE);
	finish(f, TA, W1, 1, FAIR_FAILED, t + 3500);
	assert_int_equal(pick_one(f, TA, W1, t + 3500, t + 3500).hold_until, t + 3500 + 4000);
	assert_int_equal(pick_one(f, TA, W1, t + 7500, t + 7500).pick, DELIVERY_TAKE);
	finish(f, TA, W1, 1, FAIR_FAILED, t + 7500);
	assert_int_equal(pick_one(f, TA, W1, t + 7500, t + 7500).hold_until, t + 7500 + 4000);

	/* a probe answered 2xx closes it: everything starts again */
	assert_int_equal(pick_one(f, TA, W1, t + 11500, t + 11500).pick, DELIVERY_TAKE);
	finish(f, TA, W1, 1, FAIR_DELIVERED, t + 11600);
	assert_string_equal(fair_circuit(f, W1), "closed");
	d = offer(3, ta, wa, 1, t + 11600);
	fair_pick(f, t + 11600, d, 3);
	assert_int_equal(count_pick(d, 3, DELIVERY_TAKE, NULL), 3);
	free(d);
	finish(f, TA, W1, 3, FAIR_DELIVERED, t + 11700);
	/* closed again: the first period is the initial one */
	for (int i = 0; i < 3; i++)
		pick_one(f, TA, W1, t + 12000, t + 12000);
	finish(f, TA, W1, 3, FAIR_FAILED, t + 12000);
	assert_int_equal(pick_one(f, TA, W1, t + 12000, t + 12000).hold_until, t + 13000);
	assert_int_equal(fair_in_flight(f), 0);
	fair_destroy(f);
}

static void test_attempts_not_sent_say_nothing(void **state)
{
	(void)state;
	struct fair *f = fair_create(&breaker_cfg);
	int64_t t = NOW;
	for (int i = 0; i < 5; i++)
		pick_one(f, TA, W1, t, t);
	finish(f, TA, W1, 5, FAIR_NOT_SENT, t);
	assert_string_equal(fair_circuit(f, W1), "closed");
	assert_int_equal(fair_in_flight(f), 0);
	assert_int_equal(fair_tenant_in_flight(f, TA), 0);

	/* a probe abandoned lets the next delivery probe */
	for (int i = 0; i < 3; i++)
		pick_one(f, TA, W1, t, t);
	finish(f, TA, W1, 3, FAIR_FAILED, t);
	assert_int_equal(pick_one(f, TA, W1, t, t + 1000).pick, DELIVERY_TAKE);
	assert_int_equal(pick_one(f, TA, W1, t, t + 1000).pick, DELIVERY_HOLD);
	finish(f, TA, W1, 1, FAIR_NOT_SENT, t + 1100);
	assert_string_equal(fair_circuit(f, W1), "half_open");
	assert_int_equal(pick_one(f, TA, W1, t, t + 1100).pick, DELIVERY_TAKE);
	finish(f, TA, W1, 1, FAIR_DELIVERED, t + 1200);
	assert_string_equal(fair_circuit(f, W1), "closed");
	fair_destroy(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_tenant_alone_may_use_every_slot),
		cmocka_unit_test(test_a_second_tenant_starts_beside_a_full_worker),
		cmocka_unit_test(test_three_tenants_each_get_a_third),
		cmocka_unit_test(test_never_more_than_twice_the_slots),
		cmocka_unit_test(test_circuit_opens_after_consecutive_failures),
		cmocka_unit_test(test_half_open_probe_then_doubling_then_closed),
		cmocka_unit_test(test_attempts_not_sent_say_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
