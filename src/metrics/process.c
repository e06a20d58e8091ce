/*
 * process.c - what the process_* families report, read from the kernel at each scrape: CPU
 * time, memory, descriptors and the start time. metrics.c renders them under the names the
 * Prometheus client libraries use, so that existing dashboards and alerts (descriptors near
 * the limit, a restart) apply unchanged. A value the kernel does not give (no /proc) is left
 * out.
 */
#include "metrics_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Descriptors open now: the entries of /proc/self/fd, less the one reading it. -1 if none. */
static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

/* The process's start, in seconds since the epoch: its start in clock ticks after boot
 * (/proc/self/stat, field 22) plus the boot time (/proc/stat btime). -1 if unknown. */
static double start_time(void)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	/* fields after the command name, which may hold spaces and parentheses: from the last ')' */
	char *p = strrchr(buf, ')');
	unsigned long long ticks;
	if (!p || sscanf(p + 2,
			 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
			 "%*d %*d %*d %llu",
			 &ticks) != 1)
		return -1;
	unsigned long long btime = 0;
	bool found = false;
	f = fopen("/proc/stat", "r");
	while (f && fgets(buf, sizeof buf, f))
		if (sscanf(buf, "btime %llu", &btime) == 1) {
			found = true;
			break;
		}
	if (f)
		fclose(f);
	long hz = sysconf(_SC_CLK_TCK);
	return found && hz > 0 ? (double)btime + (double)ticks / (double)hz : -1;
}

void metrics_process_read(struct metrics_process *out)
{
	memset(out, 0, sizeof *out);
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		out->has_cpu = true;
		out->cpu_seconds =
			(double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
			((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
	}
	out->open_fds = open_fds();
	out->has_fds = out->open_fds >= 0;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		out->has_max_fds = true;
		out->max_fds = rl.rlim_cur == RLIM_INFINITY ? 1e18 : (double)rl.rlim_cur;
	}
	unsigned long long vsize, rss;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f && fscanf(f, "%llu %llu", &vsize, &rss) == 2) {
		double page = (double)sysconf(_SC_PAGESIZE);
		out->has_memory = true;
		out->virtual_bytes = (double)vsize * page;
		out->resident_bytes = (double)rss * page;
	}
	if (f)
		fclose(f);
	out->start_seconds = start_time();
	out->has_start = out->start_seconds >= 0;
}
