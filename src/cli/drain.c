/*
 * drain.c - `callplane drain`: tells a running server to drain, and waits until it is gone.
 *
 * The server is found through its pid file (serve --pid-file), which it keeps locked (flock)
 * for as long as it runs (lifecycle.c). The pid is signalled only while that lock is held, so
 * a file left by a killed server, or a pid the kernel has since given to another process, is
 * never signalled; and the lock's release is how the wait knows the server has exited (the
 * server removes the file and lets the lock go as its very last act). The signal is SIGTERM,
 * exactly what a service manager sends: the server drains for its --drain-timeout (0: it ends
 * every call at once), and a second `callplane drain` during the drain ends the calls left at
 * once.
 */
#include "cli.h"
#include "args.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* how often the wait looks at the pid file's lock */
#define POLL_MS 20

static const char drain_usage[] =
	"usage: callplane drain [--pid-file FILE] [--timeout SECONDS]\n"
	"  Sends SIGTERM to the server whose pid file is FILE (default: $CALLPLANE_PID_FILE) and\n"
	"  waits until it has exited (at most SECONDS with --timeout; --timeout 0: do not wait).\n"
	"  The server drains for its --drain-timeout; run drain again to end the calls left at "
	"once.\n";

int cli_drain(int argc, char **argv)
{
	const char *path = NULL, *timeout = NULL;
	struct opt opts[] = {
		{"pid-file", &path, OPT_OPTIONAL}, {"timeout", &timeout, OPT_OPTIONAL}, {0}};
	const char *pos[1];
	int n_pos;
	enum args_result ar = args_parse(argc, argv, opts, pos, 0, &n_pos, drain_usage);
	if (ar != ARGS_OK)
		return ar == ARGS_HELP ? 0 : 2;
	if (!path || !*path)
		path = getenv("CALLPLANE_PID_FILE");
	if (!path || !*path) {
		fprintf(stderr,
			"error: no pid file: give --pid-file FILE or set CALLPLANE_PID_FILE\n");
		return 2;
	}
	long long wait_s = -1; /* no bound */
	if (timeout && !cp_parse_int(timeout, 0, 86400 * 7, &wait_s)) {
		fprintf(stderr, "error: --timeout must be 0..604800 seconds\n");
		return 2;
	}

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			fprintf(stderr, "error: no server is running: %s does not exist\n", path);
		else
			fprintf(stderr, "error: cannot open %s: %s\n", path, strerror(errno));
		return 1;
	}
	int rc = 1;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		fprintf(stderr, "error: no server is running: no server holds %s\n", path);
		goto out;
	}
	char text[32] = {0};
	ssize_t got = pread(fd, text, sizeof text - 1, 0);
	char *nl = got > 0 ? strchr(text, '\n') : NULL;
	if (nl)
		*nl = '\0';
	long long pid;
	if (got <= 0 || !cp_parse_int(text, 2, 1LL << 30, &pid)) {
		fprintf(stderr, "error: %s does not hold a pid\n", path);
		goto out;
	}
	if (kill((pid_t)pid, SIGTERM)) {
		fprintf(stderr, "error: cannot signal the server (pid %lld): %s\n", pid,
			strerror(errno));
		goto out;
	}
	if (wait_s == 0) {
		rc = cli_print(json_pack("{s:I, s:b}", "pid", (json_int_t)pid, "stopped", 0));
		goto out;
	}
	int64_t start = cp_mono_us();
	while (flock(fd, LOCK_SH | LOCK_NB) != 0) {
		if (wait_s > 0 && cp_mono_us() - start >= wait_s * 1000000) {
			fprintf(stderr,
				"error: the server (pid %lld) is still running after %lld s\n", pid,
				wait_s);
			goto out;
		}
		struct timespec ts = {.tv_nsec = POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	rc = cli_print(json_pack("{s:I, s:b, s:f}", "pid", (json_int_t)pid, "stopped", 1, "seconds",
				 (double)((cp_mono_us() - start) / 1000) / 1000.0));
out:
	close(fd);
	return rc;
}
