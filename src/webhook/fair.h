/*
 * fair.h - which due delivery the webhook worker starts: per-tenant shares of the worker's
 * slots, and a circuit breaker per webhook.
 *
 * Shares. A tenant has work while it has attempts in flight or deliveries due. With T tenants
 * having work, each may hold slots / T attempts (at least one); a tenant alone may hold every
 * slot. The share bounds what a tenant *starts*: attempts it started before others had work run
 * to their end (at most one attempt timeout), and the others' attempts start beside them rather
 * than behind them, so the attempts in flight may exceed slots for that long, never 2 x slots.
 * A tenant whose receivers hang therefore delays nobody else: it fills its own share.
 *
 * Breakers. A webhook's circuit is closed while its attempts succeed. After breaker_failures
 * consecutive failed attempts (any answer but 2xx, a refused connection, a timeout) it opens:
 * its deliveries are held (their next attempt moved to the end of the open period, no attempt
 * counted) for open_initial_ms, doubling with each failed probe up to open_max_ms. When the
 * period ends the circuit is half-open: the next delivery is the probe, the others wait for its
 * outcome (held recheck_ms at a time). A 2xx closes the circuit and resets the period; a
 * failure opens it again. A delivery older than max_age_ms that an open circuit holds is given
 * up (failed) without an attempt, as its own retries would have been (not while a probe is out:
 * the webhook may have recovered). Circuits live in memory: a restart closes
 * them all, and a webhook still failing opens again after breaker_failures attempts.
 *
 * Pure bookkeeping: no I/O but its log lines (`webhook_circuit`), no clock of its own, no
 * lock. The webhook worker's thread is its only caller.
 */
#ifndef CP_WEBHOOK_FAIR_H
#define CP_WEBHOOK_FAIR_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct fair_config {
	int slots;               /* attempts in flight the tenants share */
	int breaker_failures;    /* consecutive failed attempts that open a circuit */
	int64_t open_initial_ms; /* the first open period; doubles per failed probe */
	int64_t open_max_ms;     /* the longest open period */
	int64_t recheck_ms;      /* how long a delivery waiting for a probe is held */
	int64_t max_age_ms;      /* a held delivery older than this is given up */
};

enum fair_outcome {
	FAIR_DELIVERED, /* answered 2xx */
	FAIR_FAILED,    /* sent, and failed: counts toward opening the circuit */
	FAIR_NOT_SENT,  /* abandoned or never sent: says nothing of the webhook */
};

struct fair;

/* NULL when out of memory. */
struct fair *fair_create(const struct fair_config *cfg);
void fair_destroy(struct fair *f);

/* Decides each of the n offered deliveries at time now (a delivery_picker, store.h): sets
 * pick (and hold_until or why). Each TAKE is in flight from here until its fair_done(). */
void fair_pick(struct fair *f, int64_t now, struct delivery *d, size_t n);

/* An attempt fair_pick() took has ended with outcome o. */
void fair_done(struct fair *f, const char *tenant_id, const char *webhook_id, enum fair_outcome o,
	       int64_t now);

/* Attempts in flight: all, and of one tenant. */
int fair_in_flight(const struct fair *f);
int fair_tenant_in_flight(const struct fair *f, const char *tenant_id);

/* The state of a webhook's circuit: "closed", "open" or "half_open". */
const char *fair_circuit(const struct fair *f, const char *webhook_id);

#endif
