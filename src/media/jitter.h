/*
 * jitter.h - the receive-side jitter buffer: puts the far end's frames back in sequence
 * order for the agent, drops duplicates and frames that come too late, and waits a bounded
 * time for a missing frame before skipping it.
 *
 * Why not a playout buffer (libre's jbuf, oRTP's): those hold every frame until a fill level
 * is reached, adding their depth to every frame's latency, because a sound card must never
 * run dry. The consumer here is an agent reading a socket: a frame in order goes out the
 * moment it arrives (no added latency), and only a frame behind a gap waits, at most
 * hold_ms, for the gap to fill. Single-threaded (the media thread); no allocation.
 */
#ifndef CP_MEDIA_JITTER_H
#define CP_MEDIA_JITTER_H

#include <stdbool.h>
#include <stdint.h>

#define JITTER_SLOTS 16      /* frames held at most: 320 ms of 20 ms frames */
#define JITTER_FRAME_MAX 480 /* bytes: 60 ms of G.711 */

struct jitter_frame {
	uint16_t seq;
	uint32_t ts;
	uint16_t len;
	int64_t at_ms; /* when it arrived */
	uint8_t data[JITTER_FRAME_MAX];
};

struct jitter {
	int hold_ms;
	bool started;
	uint16_t next_seq; /* the frame the agent gets next */
	int late_run;      /* late frames in a row: a sender restart after 8 */
	bool used[JITTER_SLOTS];
	struct jitter_frame slot[JITTER_SLOTS];
	uint64_t n_dup, n_late, n_lost, n_reset;
};

enum jitter_put_result { JITTER_QUEUED, JITTER_DUP, JITTER_LATE, JITTER_OVERSIZE };

void jitter_init(struct jitter *j, int hold_ms);
/* Forgets every frame: the next put starts a new sequence (SSRC change, re-INVITE). */
void jitter_reset(struct jitter *j);
enum jitter_put_result jitter_put(struct jitter *j, uint16_t seq, uint32_t ts, const uint8_t *data,
				  uint16_t len, int64_t now_ms);
/* The next frame for the agent, or NULL: in order, or behind a gap that has waited hold_ms
 * (the gap counts as lost). The frame stays valid until the next put or get. */
const struct jitter_frame *jitter_get(struct jitter *j, int64_t now_ms);

#endif
