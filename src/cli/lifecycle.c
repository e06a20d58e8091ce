/*
 * lifecycle.c - `callplane serve` between ready and shutdown. See lifecycle.h.
 *
 * The main thread waits in poll() on two descriptors: a signalfd for SIGTERM and SIGINT
 * (blocked in every thread, so they are only ever read here, never handled in signal context)
 * and an eventfd that lifecycle_wake() writes when an outbox event commits during a drain. The
 * timeout of each poll is the nearest of: the next idempotency purge, the next watchdog ping,
 * and during a drain the deadline and the next count of live calls.
 *
 * The drain: the call service stops taking calls (call_service_drain: POST /v1/calls and
 * INVITEs get 503), /readyz turns 503, and the live calls are counted in the store. Each call
 * that ends commits an event, which wakes the loop to count again (at most every
 * RECOUNT_MIN_MS, and every RECOUNT_MS anyway), so the server goes on to its shutdown within
 * milliseconds of the last call's end. Counting the store, not the engine's dialogs, means
 * every end is durable before the process goes.
 *
 * The service manager (systemd, Type=notify) hears READY=1 once the server serves, WATCHDOG=1
 * every half of WatchdogSec= while the store answers a read and the SIP engine's thread a
 * ping (a wedged engine is restarted), STATUS= lines while draining, and STOPPING=1 at the
 * first signal, with EXTEND_TIMEOUT_USEC so that a drain longer than TimeoutStopSec= is not
 * cut by it. Without NOTIFY_SOCKET all of this is silent.
 *
 * The pid file is locked (flock) for as long as the process lives: `callplane drain` signals
 * the pid only while the lock is held, so a stale file or a reused pid is never signalled, and
 * waits for the lock to be released (by the kernel, at exit) to know the server is gone.
 */
#include "lifecycle.h"
#include "core/log.h"
#include "core/util.h"
#include "http/http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#define PURGE_EVERY_MS 60000
/* a drain counts live calls again this soon after an end, and this often without one */
#define RECOUNT_MIN_MS 20
#define RECOUNT_MS 1000
/* what the shutdown after a drain may take (the engine's hang-ups and nua, HTTP's requests in
 * flight and streams: about 5 s each at worst), asked of the service manager beyond the drain */
#define SHUTDOWN_GRACE_S 30
/* the longest the watchdog's health check waits for the SIP engine's thread */
#define WATCHDOG_ENGINE_TIMEOUT_MS 1000

struct lifecycle {
	struct lifecycle_config cfg;
	int sig_fd, wake_fd, pid_fd;
	atomic_bool draining;
};

static int64_t now_ms(void)
{
	return cp_mono_us() / 1000;
}

/* Creates, locks and fills the pid file; -1 with the problem in why. */
static int pid_file_take(struct lifecycle *lc, char *why, size_t size)
{
	const char *path = lc->cfg.pid_file;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(why, size, "cannot open the pid file %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		snprintf(why, size, "the pid file %s is held by another running server", path);
		close(fd);
		return -1;
	}
	char text[32];
	int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) || write(fd, text, (size_t)n) != n) {
		snprintf(why, size, "cannot write the pid file %s: %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	lc->pid_fd = fd;
	return 0;
}

struct lifecycle *lifecycle_create(const struct lifecycle_config *cfg, char *why, size_t size)
{
	struct lifecycle *lc = calloc(1, sizeof *lc);
	if (!lc) {
		snprintf(why, size, "out of memory");
		return NULL;
	}
	lc->cfg = *cfg;
	lc->sig_fd = lc->wake_fd = lc->pid_fd = -1;
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	lc->sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	lc->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (lc->sig_fd < 0 || lc->wake_fd < 0) {
		snprintf(why, size, "cannot wait for signals: %s", strerror(errno));
		lifecycle_destroy(lc);
		return NULL;
	}
	if (cfg->pid_file && pid_file_take(lc, why, size)) {
		lifecycle_destroy(lc);
		return NULL;
	}
	return lc;
}

void lifecycle_wake(struct lifecycle *lc)
{
	if (!lc || !atomic_load_explicit(&lc->draining, memory_order_relaxed))
		return;
	uint64_t one = 1;
	if (write(lc->wake_fd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is full of wakes not yet read; nothing is lost */
	}
}

/* The next signal taken (0 if none is pending). */
static int take_signal(struct lifecycle *lc)
{
	struct signalfd_siginfo si;
	return read(lc->sig_fd, &si, sizeof si) == (ssize_t)sizeof si ? (int)si.ssi_signo : 0;
}

/* Pings the service manager's watchdog if the server is healthy; a server whose store or
 * engine does not answer is left for the watchdog to restart. */
static void watchdog(struct lifecycle *lc)
{
	struct call_service_health h;
	call_service_health(lc->cfg.svc, WATCHDOG_ENGINE_TIMEOUT_MS, &h);
	if (h.store_ok && h.engine_ok) {
		sd_notify(0, "WATCHDOG=1");
		return;
	}
	log_json(LOG_ERROR, "watchdog_withheld",
		 json_pack("{s:s, s:s}", "store", h.store_ok ? "ok" : "error", "sip",
			   h.engine_ok ? "ok" : "unresponsive"));
}

/* Tells the service manager the server stops now, allowing it extend_s more seconds. */
static void notify_stopping(const char *status, long extend_s)
{
	sd_notifyf(0, "STOPPING=1\nSTATUS=%s\nEXTEND_TIMEOUT_USEC=%lld", status,
		   (long long)extend_s * 1000000LL);
}

/* Starts the drain: no new calls from now on. */
static void drain_start(struct lifecycle *lc, int sig, size_t live)
{
	atomic_store(&lc->draining, true);
	call_service_drain(lc->cfg.svc);
	char status[96];
	snprintf(status, sizeof status, "draining: %zu calls live", live);
	notify_stopping(status, lc->cfg.drain_timeout_s + SHUTDOWN_GRACE_S);
	log_json(LOG_INFO, "drain",
		 json_pack("{s:i, s:I, s:i}", "signal", sig, "calls", (json_int_t)live, "timeout_s",
			   lc->cfg.drain_timeout_s));
}

enum lifecycle_end lifecycle_run(struct lifecycle *lc)
{
	uint64_t dog_us = 0;
	if (sd_watchdog_enabled(0, &dog_us) <= 0)
		dog_us = 0;
	int64_t dog_every = dog_us ? (int64_t)(dog_us / 2000) : 0;
	if (dog_us && dog_every < 1)
		dog_every = 1;
	sd_notify(0, "READY=1\nSTATUS=ready");
	if (dog_every)
		sd_notify(0, "WATCHDOG=1");

	int64_t now = now_ms();
	int64_t next_purge = now + PURGE_EVERY_MS;
	int64_t next_second = lc->cfg.each_second ? now + 1000 : INT64_MAX;
	int64_t next_dog = dog_every ? now + dog_every : INT64_MAX;
	int64_t drain_start_ms = 0, deadline = INT64_MAX, next_count = INT64_MAX, last_count = 0;
	size_t live = 0;
	bool draining = false;
	for (;;) {
		int64_t until = next_purge < next_dog ? next_purge : next_dog;
		if (next_second < until)
			until = next_second;
		if (deadline < until)
			until = deadline;
		if (next_count < until)
			until = next_count;
		int64_t wait = until - now_ms();
		struct pollfd p[2] = {{.fd = lc->sig_fd, .events = POLLIN},
				      {.fd = lc->wake_fd, .events = POLLIN}};
		if (poll(p, 2,
			 wait < 0       ? 0
			 : wait > 60000 ? 60000
					: (int)wait) < 0 &&
		    errno != EINTR)
			log_msg(LOG_ERROR, "lifecycle", "poll: %s", strerror(errno));
		now = now_ms();

		int sig = (p[0].revents & POLLIN) ? take_signal(lc) : 0;
		if (sig && draining) {
			log_json(LOG_INFO, "drain_forced",
				 json_pack("{s:i, s:I}", "signal", sig, "calls", (json_int_t)live));
			return LIFECYCLE_FORCED;
		}
		if (sig) {
			log_json(LOG_INFO, "shutdown", json_pack("{s:i}", "signal", sig));
			if (lc->cfg.drain_timeout_s <= 0) {
				notify_stopping("stopping", SHUTDOWN_GRACE_S);
				return LIFECYCLE_STOP;
			}
			if (call_service_live_calls(lc->cfg.svc, &live))
				live = 0; /* unknown: counted again below */
			drain_start(lc, sig, live);
			draining = true;
			drain_start_ms = now;
			deadline = now + (int64_t)lc->cfg.drain_timeout_s * 1000;
			next_count = now;
		}
		if (p[1].revents & POLLIN) {
			uint64_t n;
			if (read(lc->wake_fd, &n, sizeof n) == (ssize_t)sizeof n &&
			    next_count > last_count + RECOUNT_MIN_MS)
				next_count = last_count + RECOUNT_MIN_MS;
		}
		if (draining && now >= next_count) {
			size_t n;
			last_count = now;
			next_count = now + RECOUNT_MS;
			if (call_service_live_calls(lc->cfg.svc, &n) == 0) {
				if (n == 0) {
					log_json(LOG_INFO, "drained",
						 json_pack("{s:I}", "ms",
							   (json_int_t)(now - drain_start_ms)));
					sd_notify(0, "STATUS=drained: stopping");
					return LIFECYCLE_DRAINED;
				}
				if (n != live)
					sd_notifyf(0, "STATUS=draining: %zu calls live", n);
				live = n;
			}
		}
		if (draining && now >= deadline) {
			log_json(LOG_WARN, "drain_timeout",
				 json_pack("{s:I, s:i}", "calls", (json_int_t)live, "timeout_s",
					   lc->cfg.drain_timeout_s));
			sd_notify(0, "STATUS=drain timed out: ending the calls left");
			return LIFECYCLE_DRAIN_TIMEOUT;
		}
		if (now >= next_second) {
			lc->cfg.each_second(lc->cfg.arg);
			next_second = now_ms() + 1000;
		}
		if (now >= next_purge) {
			STORE(lc->cfg.st, idem_purge, cp_now_ms() - HTTP_IDEMPOTENCY_TTL_MS);
			next_purge = now + PURGE_EVERY_MS;
		}
		if (now >= next_dog) {
			watchdog(lc);
			next_dog = now_ms() + dog_every;
		}
	}
}

void lifecycle_destroy(struct lifecycle *lc)
{
	if (!lc)
		return;
	/* The pid file goes now, its lock with the process: the descriptor is left open on
	 * purpose, so `callplane drain` returns only once the server has exited. */
	if (lc->pid_fd >= 0)
		unlink(lc->cfg.pid_file);
	if (lc->sig_fd >= 0)
		close(lc->sig_fd);
	if (lc->wake_fd >= 0)
		close(lc->wake_fd);
	free(lc);
}
