/*
 * test_record.c - media/record.c: a recording is the far end on the left and what was played
 * on the right, sample for sample, and a crash leaves a file that start-up repairs; reading a
 * recording waits only for one being finished, and deleting one takes both its files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sndfile.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "media/record.h"

static int make_dir(void **state)
{
	char *dir = strdup("/tmp/cp-record-XXXXXX");
	assert_non_null(mkdtemp(dir));
	*state = dir;
	return 0;
}

static int remove_dir(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", (char *)*state);
	assert_int_equal(system(cmd), 0);
	free(*state);
	return 0;
}

static SNDFILE *open_wav(const char *dir, const char *name, SF_INFO *info)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	memset(info, 0, sizeof *info);
	return sf_open(path, SFM_READ, info);
}

static void test_far_left_played_right(void **state)
{
	const char *dir = *state;
	struct recorder *rc = recorder_start(dir);
	assert_non_null(rc);
	struct recording *r = recording_open(rc, "call-1");
	assert_non_null(r);
	int16_t far[160], played[160];
	for (int f = 0; f < 50; f++) { /* 1 s in 20 ms frames */
		for (int i = 0; i < 160; i++) {
			far[i] = (int16_t)(f * 160 + i);
			played[i] = (int16_t) - (f * 160 + i);
		}
		recording_write(r, far, played, 160);
	}
	recording_close(r);
	recorder_stop(rc);

	SF_INFO info;
	SNDFILE *sf = open_wav(dir, "call-1.wav", &info);
	assert_non_null(sf);
	assert_int_equal(info.samplerate, 8000);
	assert_int_equal(info.channels, 2);
	assert_int_equal(info.frames, 8000);
	assert_int_equal(info.format, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
	static short all[16000];
	assert_int_equal(sf_readf_short(sf, all, 8000), 8000);
	for (int i = 0; i < 8000; i++) {
		assert_int_equal(all[2 * i], i);
		assert_int_equal(all[2 * i + 1], -i);
	}
	sf_close(sf);
	struct stat st;
	char part[512];
	snprintf(part, sizeof part, "%s/call-1.wav.part", dir);
	assert_int_equal(stat(part, &st), -1); /* renamed when finished */
}

static void test_crash_leaves_a_part_that_start_up_repairs(void **state)
{
	const char *dir = *state;
	/* a writer that dies (no close) after a header update at 4000 frames and 1000 more */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char part[512];
		snprintf(part, sizeof part, "%s/call-2.wav.part", dir);
		SF_INFO info = {.samplerate = 8000,
				.channels = 2,
				.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
		SNDFILE *sf = sf_open(part, SFM_WRITE, &info);
		static short frames[2 * 5000];
		for (int i = 0; i < 5000; i++)
			frames[2 * i] = frames[2 * i + 1] = (short)i;
		if (!sf || sf_writef_short(sf, frames, 4000) != 4000)
			_exit(1);
		sf_command(sf, SFC_UPDATE_HEADER_NOW, NULL, 0);
		if (sf_writef_short(sf, frames + 8000, 1000) != 1000)
			_exit(1);
		_exit(0); /* killed: nothing closed */
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* and one a crash left before its first header: nothing to keep */
	char empty[512];
	snprintf(empty, sizeof empty, "%s/call-3.wav.part", dir);
	FILE *f = fopen(empty, "w");
	assert_non_null(f);
	fclose(f);

	assert_int_equal(recorder_repair(dir), 1);
	SF_INFO info;
	SNDFILE *sf = open_wav(dir, "call-2.wav", &info);
	assert_non_null(sf);
	assert_int_equal(info.channels, 2);
	assert_int_equal(info.frames, 4000); /* up to its last header update */
	short first[2];
	assert_int_equal(sf_readf_short(sf, first, 1), 1);
	assert_int_equal(first[0], 0);
	sf_close(sf);
	struct stat st;
	char path[512];
	snprintf(path, sizeof path, "%s/call-2.wav.part", dir);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(stat(empty, &st), -1);
	snprintf(path, sizeof path, "%s/call-3.wav", dir);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(recorder_repair(dir), 0); /* nothing left to repair */
}

/* A recorded call that ended before its first frame still has its (empty) file. */
static void test_a_call_without_frames_leaves_an_empty_wav(void **state)
{
	const char *dir = *state;
	struct recorder *rc = recorder_start(dir);
	assert_non_null(rc);
	recording_close(recording_open(rc, "call-4"));
	recorder_stop(rc);
	SF_INFO info;
	SNDFILE *sf = open_wav(dir, "call-4.wav", &info);
	assert_non_null(sf);
	assert_int_equal(info.channels, 2);
	assert_int_equal(info.samplerate, 8000);
	assert_int_equal(info.frames, 0);
	sf_close(sf);
}

static void touch(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool exists(const char *dir, const char *name)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

/* A writer in another process: after delay_ms, creates ID.wav.part (when make_part), then
 * after delay_ms more renames it to ID.wav. Returns its pid. */
static pid_t writer_later(const char *dir, const char *id, bool make_part, int delay_ms)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char from[512], to[512];
		snprintf(from, sizeof from, "%s/%s.wav.part", dir, id);
		snprintf(to, sizeof to, "%s/%s.wav", dir, id);
		usleep((useconds_t)delay_ms * 1000);
		if (make_part) {
			FILE *f = fopen(from, "w");
			if (!f || fputs("RIFF", f) < 0 || fclose(f))
				_exit(1);
			usleep((useconds_t)delay_ms * 1000);
		}
		_exit(rename(from, to) ? 1 : 0);
	}
	return pid;
}

/* The writer_later() pid exited 0. */
static void writer_done(pid_t pid)
{
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The finished file is opened at once; none by the bound is ENOENT; a file that appears within
 * the bound (its .part made and renamed by a writer meanwhile, or renamed from a .part there)
 * is opened. */
static void test_open_read_waits_for_the_file(void **state)
{
	const char *dir = *state;
	touch(dir, "done.wav", "RIFF");
	int fd = recording_open_read(dir, "done", 2000);
	assert_true(fd >= 0);
	char buf[8] = {0};
	assert_int_equal(read(fd, buf, sizeof buf), 4);
	assert_string_equal(buf, "RIFF");
	close(fd);

	errno = 0;
	assert_int_equal(recording_open_read(dir, "none", 0), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(recording_open_read(dir, "none", 50), -1);
	assert_int_equal(errno, ENOENT);

	/* nothing there yet: a writer creates the .part, then renames it */
	pid_t early = writer_later(dir, "late", true, 50);
	fd = recording_open_read(dir, "late", 5000);
	assert_true(fd >= 0);
	close(fd);
	writer_done(early);

	touch(dir, "slow.wav.part", "x"); /* no writer: the bound ends the wait */
	errno = 0;
	assert_int_equal(recording_open_read(dir, "slow", 50), -1);
	assert_int_equal(errno, ENOENT);

	pid_t pid = writer_later(dir, "slow", false, 100);
	fd = recording_open_read(dir, "slow", 5000);
	assert_true(fd >= 0);
	close(fd);
	writer_done(pid);

	assert_int_equal(recording_open_read(dir, "../done", 0), -1); /* not a plain id */
	assert_int_equal(errno, ENOENT);
}

static void test_remove_takes_both_files(void **state)
{
	const char *dir = *state;
	touch(dir, "a.wav", "x");
	touch(dir, "a.wav.part", "x");
	touch(dir, "b.wav", "x");
	assert_int_equal(recording_remove(dir, "a"), 0);
	assert_false(exists(dir, "a.wav"));
	assert_false(exists(dir, "a.wav.part"));
	assert_true(exists(dir, "b.wav"));
	assert_int_equal(recording_remove(dir, "a"), 0);    /* none left: done */
	assert_int_equal(recording_remove(dir, "../b"), 0); /* not an id of ours: nothing */
	assert_true(exists(dir, "b.wav"));
	/* a file that cannot be removed is an error (here: a non-empty directory in its place) */
	char sub[512];
	snprintf(sub, sizeof sub, "%s/c.wav", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	touch(sub, "inside", "x");
	assert_int_equal(recording_remove(dir, "c"), -1);
}

static void test_path_takes_plain_ids_only(void **state)
{
	(void)state;
	char buf[64];
	assert_int_equal(recording_path("/r", "0b0e-AZ9", buf, sizeof buf), 0);
	assert_string_equal(buf, "/r/0b0e-AZ9.wav");
	assert_int_equal(recording_path("/r", "../etc/passwd", buf, sizeof buf), -1);
	assert_int_equal(recording_path("/r", "a/b", buf, sizeof buf), -1);
	assert_int_equal(recording_path("/r", "", buf, sizeof buf), -1);
	assert_int_equal(recording_path("/a-long-directory-name",
					"0123456789abcdef0123456789abcdef", buf, 32),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_far_left_played_right, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_crash_leaves_a_part_that_start_up_repairs,
						make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_a_call_without_frames_leaves_an_empty_wav,
						make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_open_read_waits_for_the_file, make_dir,
						remove_dir),
		cmocka_unit_test_setup_teardown(test_remove_takes_both_files, make_dir, remove_dir),
		cmocka_unit_test(test_path_takes_plain_ids_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
