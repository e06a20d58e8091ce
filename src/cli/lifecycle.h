/*
 * lifecycle.h - `callplane serve` from the moment it is ready until it must shut down: the
 * service manager's protocol (sd_notify), the pid file `callplane drain` reads, the signals,
 * housekeeping, and the drain (docs/OPERATIONS.md, "Drain").
 *
 * serve.c blocks SIGTERM and SIGINT in every thread before it starts any; lifecycle_run() takes
 * them here, on the main thread, and returns what serve.c must do next: shut down, and with
 * which end reason for the calls still up.
 */
#ifndef CP_LIFECYCLE_H
#define CP_LIFECYCLE_H

#include <stddef.h>

#include "call/call_service.h"
#include "store/store.h"

struct lifecycle_config {
	struct call_service *svc;
	struct store *st;
	int drain_timeout_s;  /* 0: the first signal shuts down at once */
	const char *pid_file; /* NULL: none */
	/* housekeeping run on the main thread about once a second (NULL: none) */
	void (*each_second)(void *arg);
	void *arg;
};

/* Why lifecycle_run() returned. */
enum lifecycle_end {
	LIFECYCLE_STOP,          /* a signal, no drain (drain timeout 0) */
	LIFECYCLE_DRAINED,       /* every live call ended within the drain */
	LIFECYCLE_DRAIN_TIMEOUT, /* the drain's time ran out with calls left */
	LIFECYCLE_FORCED,        /* a second signal during the drain */
};

struct lifecycle;

/* Takes the pid file (created, locked, our pid written) and the signals (SIGTERM, SIGINT,
 * which the caller has blocked in every thread). NULL with the problem in why (one line) when
 * the pid file cannot be had. cfg's pointers must outlive the lifecycle. */
struct lifecycle *lifecycle_create(const struct lifecycle_config *cfg, char *why, size_t size);
/* Any thread: a call may have ended (an outbox event was committed). Costs an atomic load
 * unless the server drains. */
void lifecycle_wake(struct lifecycle *lc);
/* Tells the service manager the server is ready, then waits: runs cfg's each_second about
 * once a second, purges old idempotency records every minute, pings the watchdog while the server is healthy (call_service_health), and on
 * the first signal either returns (no drain) or drains: no new calls, until no call is live,
 * the drain timeout passes, or a second signal comes. Tells the service manager it is
 * stopping before it returns. */
enum lifecycle_end lifecycle_run(struct lifecycle *lc);
/* Removes the pid file, whose lock is held until the process exits, and frees lc (NULL is
 * ignored). */
void lifecycle_destroy(struct lifecycle *lc);

#endif
