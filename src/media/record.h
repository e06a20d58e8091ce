/*
 * record.h - call recordings: a stereo WAV per call (left: the far end, right: what callplane
 * played to it, the agent and any goodbye), 8 kHz 16-bit, written as the call goes.
 *
 * The media thread hands each 20 ms frame pair to recording_write(), which only copies it
 * into the recording's pending buffer; one writer thread (cp-record) takes the buffers every
 * 200 ms and writes them with libsndfile, so the disk never stalls the media thread. While a
 * call is up its file is DIR/<call_id>.wav.part, its header brought up to date every second
 * (a crash loses at most the last second); when the call ends the file is closed and renamed
 * DIR/<call_id>.wav. At start-up recorder_repair() turns every .part a crash left behind into
 * a .wav of what its header covers.
 */
#ifndef CP_MEDIA_RECORD_H
#define CP_MEDIA_RECORD_H

#include <stddef.h>
#include <stdint.h>

struct recorder;
struct recording;

/* Starts the writer thread for recordings in dir (created if missing, mode 0750). NULL on
 * failure (logged). */
struct recorder *recorder_start(const char *dir);
/* Finishes every open recording (written, closed, renamed) and stops the thread. */
void recorder_stop(struct recorder *rc);

/* A recording for call_id; the file is created by the writer. NULL: out of memory. */
struct recording *recording_open(struct recorder *rc, const char *call_id);
/* n samples of each channel (8 kHz), copied. Beyond 10 s not yet written (a disk that
 * cannot keep up) the newest audio is dropped and counted, never memory without bound. */
void recording_write(struct recording *r, const int16_t *far, const int16_t *played, size_t n);
/* The call ended: the writer finishes the file. r is not to be used again. */
void recording_close(struct recording *r);

/* DIR/<call_id>.wav into buf; -1 if it does not fit or the id is not a plain id. */
int recording_path(const char *dir, const char *call_id, char *buf, size_t size);
/* Opens call_id's finished recording for reading (O_RDONLY | O_CLOEXEC; the caller closes
 * it), waiting up to wait_ms for it to appear: the writer finishes a call's file within
 * moments of the call's end (for a call that ended just now, not even its .part may exist
 * yet), so the caller gives the time left of that window, and 0 for a call ended long ago.
 * -1 with errno ENOENT when there is none by then. Any thread. */
int recording_open_read(const char *dir, const char *call_id, int wait_ms);
/* Deletes call_id's recording, finished or not: 0 when none is left, -1 (errno) if a file
 * could not be removed. The .part goes first, so a writer finishing it meanwhile either
 * renames it before (and the .wav is removed next) or finds it gone. Any thread. */
int recording_remove(const char *dir, const char *call_id);
/* At start-up, before any call: each DIR/<id>.wav.part becomes DIR/<id>.wav (what its header
 * covers). Returns how many were repaired, -1 if dir cannot be read. */
int recorder_repair(const char *dir);

#endif
