/*
 * fair.c - per-tenant shares and per-webhook circuit breakers. See fair.h.
 *
 * Two small hash tables keyed by id: the tenants with attempts in flight (an entry exists only
 * while its count is above zero) and the webhooks whose circuit is not plainly closed (an
 * entry exists from a webhook's first failure until a 2xx, or until it has been quiet for
 * FORGET_MS). A tenant with due deliveries but nothing in flight needs no entry: fair_pick()
 * counts those among the offer itself, which is at most a few dozen deliveries.
 */
#include "fair.h"
#include "core/log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define BUCKETS 1024
#define SWEEP_EVERY_MS 60000
#define FORGET_MS (3600LL * 1000)

struct node {
	struct node *next;
	char id[CP_UUID_LEN + 1];
};

struct table {
	struct node *bucket[BUCKETS];
};

struct busy_tenant {
	struct node n; /* first: a node is its entry */
	int in_flight;
};

enum circuit { CLOSED, OPEN, HALF_OPEN };

struct hook {
	struct node n; /* first: a node is its entry */
	enum circuit state;
	int failures;   /* consecutive */
	bool probing;   /* half-open, with its probe in flight */
	int64_t period; /* the current open period */
	int64_t open_until;
	int64_t touched; /* last failure or change of state */
};

struct fair {
	struct fair_config cfg;
	struct table tenants, hooks;
	int in_flight;
	int busy; /* tenants with attempts in flight */
	int64_t swept;
};

static size_t bucket_of(const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % BUCKETS;
}

static struct node *find(const struct table *t, const char *id)
{
	struct node *n = t->bucket[bucket_of(id)];
	while (n && strcmp(n->id, id))
		n = n->next;
	return n;
}

/* The entry of id, created (zeroed, size bytes) if missing; NULL when out of memory. */
static struct node *get(struct table *t, const char *id, size_t size)
{
	struct node *n = find(t, id);
	if (n || !(n = calloc(1, size)))
		return n;
	snprintf(n->id, sizeof n->id, "%s", id);
	struct node **head = &t->bucket[bucket_of(id)];
	n->next = *head;
	*head = n;
	return n;
}

static void drop(struct table *t, struct node *n)
{
	struct node **p = &t->bucket[bucket_of(n->id)];
	while (*p != n)
		p = &(*p)->next;
	*p = n->next;
	free(n);
}

static void clear(struct table *t)
{
	for (size_t i = 0; i < BUCKETS; i++)
		while (t->bucket[i])
			drop(t, t->bucket[i]);
}

struct fair *fair_create(const struct fair_config *cfg)
{
	struct fair *f = calloc(1, sizeof *f);
	if (f)
		f->cfg = *cfg;
	return f;
}

void fair_destroy(struct fair *f)
{
	if (!f)
		return;
	clear(&f->tenants);
	clear(&f->hooks);
	free(f);
}

static const char *const circuit_names[] = {"closed", "open", "half_open"};

static void circuit_log(const struct hook *h, const char *tenant_id)
{
	json_t *j = json_pack("{s:s, s:s, s:i}", "webhook_id", h->n.id, "state",
			      circuit_names[h->state], "failures", h->failures);
	if (tenant_id)
		json_object_set_new(j, "tenant_id", json_string(tenant_id));
	if (h->state == OPEN)
		json_object_set_new(j, "open_ms", json_integer(h->period));
	log_json(h->state == OPEN ? LOG_WARN : LOG_INFO, "webhook_circuit", j);
}

static void circuit_open(struct fair *f, struct hook *h, const char *tenant_id, int64_t period,
			 int64_t now)
{
	h->state = OPEN;
	h->period = period < f->cfg.open_max_ms ? period : f->cfg.open_max_ms;
	h->open_until = now + h->period;
	h->probing = false;
	h->touched = now;
	circuit_log(h, tenant_id);
}

/* Forgets circuits quiet for FORGET_MS (deleted webhooks among them); once a minute. */
static void sweep(struct fair *f, int64_t now)
{
	if (now - f->swept < SWEEP_EVERY_MS)
		return;
	f->swept = now;
	for (size_t i = 0; i < BUCKETS; i++) {
		struct node *n = f->hooks.bucket[i];
		while (n) {
			struct node *next = n->next;
			struct hook *h = (struct hook *)n;
			if (!h->probing && now - h->touched >= FORGET_MS)
				drop(&f->hooks, n);
			n = next;
		}
	}
}

/* Whether the circuit of x's webhook keeps x from starting now; if so, sets x's pick: held
 * to the end of the open period (given up instead when too old), or while a probe is out. */
static bool held(struct fair *f, struct hook *h, struct delivery *x, int64_t now)
{
	if (h->state == OPEN && now >= h->open_until) {
		h->state = HALF_OPEN;
		h->probing = false;
		h->touched = now;
		circuit_log(h, x->tenant_id);
	}
	if (h->state == CLOSED || (h->state == HALF_OPEN && !h->probing))
		return false;
	if (h->state == HALF_OPEN) {
		/* the probe's outcome decides: no give-up while the webhook may have recovered */
		x->pick = DELIVERY_HOLD;
		x->hold_until = now + f->cfg.recheck_ms;
	} else if (now - x->created_at >= f->cfg.max_age_ms) {
		x->pick = DELIVERY_GIVE_UP;
		x->why = "not attempted: the webhook's circuit is open after consecutive failures";
	} else {
		x->pick = DELIVERY_HOLD;
		x->hold_until = h->open_until;
	}
	return true;
}

static int tenant_in_flight(const struct fair *f, const char *tenant_id)
{
	const struct busy_tenant *t = (const struct busy_tenant *)find(&f->tenants, tenant_id);
	return t ? t->in_flight : 0;
}

/* Tenants with work: those with attempts in flight, and those with only due deliveries (each
 * counted at its first offered delivery). */
static int tenants_with_work(const struct fair *f, const struct delivery *d, size_t n)
{
	int count = f->busy;
	for (size_t i = 0; i < n; i++) {
		if (tenant_in_flight(f, d[i].tenant_id))
			continue;
		size_t j = 0;
		while (j < i && strcmp(d[j].tenant_id, d[i].tenant_id))
			j++;
		if (j == i)
			count++;
	}
	return count;
}

void fair_pick(struct fair *f, int64_t now, struct delivery *d, size_t n)
{
	sweep(f, now);
	int tenants = tenants_with_work(f, d, n);
	int slots = f->cfg.slots;
	int share = tenants <= 1 ? slots : slots / tenants;
	if (share < 1)
		share = 1;
	/* the others' shares start beside what a tenant started before they had work */
	int cap = tenants <= 1 ? slots : 2 * slots;
	for (size_t i = 0; i < n; i++) {
		struct delivery *x = &d[i];
		x->pick = DELIVERY_LEAVE;
		struct hook *h = (struct hook *)find(&f->hooks, x->webhook_id);
		if (h && held(f, h, x, now))
			continue;
		if (tenant_in_flight(f, x->tenant_id) >= share || f->in_flight >= cap)
			continue;
		struct busy_tenant *t =
			(struct busy_tenant *)get(&f->tenants, x->tenant_id, sizeof *t);
		if (!t)
			continue;
		if (t->in_flight++ == 0)
			f->busy++;
		f->in_flight++;
		if (h && h->state == HALF_OPEN)
			h->probing = true;
		x->pick = DELIVERY_TAKE;
	}
}

void fair_done(struct fair *f, const char *tenant_id, const char *webhook_id, enum fair_outcome o,
	       int64_t now)
{
	struct busy_tenant *t = (struct busy_tenant *)find(&f->tenants, tenant_id);
	if (t && --t->in_flight <= 0) {
		drop(&f->tenants, &t->n);
		f->busy--;
	}
	if (f->in_flight > 0)
		f->in_flight--;
	struct hook *h = (struct hook *)find(&f->hooks, webhook_id);
	switch (o) {
	case FAIR_DELIVERED:
		if (h) {
			if (h->state != CLOSED) {
				h->state = CLOSED;
				h->failures = 0;
				circuit_log(h, tenant_id);
			}
			drop(&f->hooks, &h->n);
		}
		break;
	case FAIR_NOT_SENT:
		if (h && h->state == HALF_OPEN)
			h->probing = false;
		break;
	case FAIR_FAILED:
		if (!h && !(h = (struct hook *)get(&f->hooks, webhook_id, sizeof *h)))
			break;
		h->failures++;
		h->touched = now;
		if (h->state == CLOSED && h->failures >= f->cfg.breaker_failures)
			circuit_open(f, h, tenant_id, f->cfg.open_initial_ms, now);
		else if (h->state == HALF_OPEN)
			circuit_open(f, h, tenant_id, 2 * h->period, now);
		break;
	}
}

int fair_in_flight(const struct fair *f)
{
	return f->in_flight;
}

int fair_tenant_in_flight(const struct fair *f, const char *tenant_id)
{
	return tenant_in_flight(f, tenant_id);
}

const char *fair_circuit(const struct fair *f, const char *webhook_id)
{
	const struct hook *h = (const struct hook *)find(&f->hooks, webhook_id);
	return circuit_names[h ? h->state : CLOSED];
}
