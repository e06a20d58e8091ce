/*
 * metrics_internal.h - what the files of src/metrics/ share. metrics.c counts and renders every
 * family; process.c reads from the kernel what the process_* families (CPU, memory,
 * descriptors, start time) report, as every Prometheus client library exports them.
 */
#ifndef CP_METRICS_INTERNAL_H
#define CP_METRICS_INTERNAL_H

#include <stdbool.h>

/* The process as the kernel describes it now; a value it does not give is left out (its
 * has_ flag false). */
struct metrics_process {
	bool has_cpu, has_fds, has_max_fds, has_memory, has_start;
	double cpu_seconds; /* user + system */
	long open_fds;
	double max_fds; /* the soft RLIMIT_NOFILE */
	double virtual_bytes, resident_bytes;
	double start_seconds; /* since the epoch */
};

/* process.c */
void metrics_process_read(struct metrics_process *out);

#endif
