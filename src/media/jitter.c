/*
 * jitter.c - the receive-side reorder buffer (see jitter.h for why it is not a playout
 * buffer).
 *
 * Frames live in JITTER_SLOTS slots indexed by seq % JITTER_SLOTS, so a put and a get are
 * O(1) apart from the scan for the oldest frame when a gap times out. Sequence numbers are
 * compared as int16_t differences (RFC 3550 wrap-around). A frame more than JITTER_SLOTS
 * ahead of the next expected one means the sender jumped: what is held is dropped (lost)
 * and the sequence restarts there. Eight late frames in a row mean the sender restarted
 * behind us: the sequence restarts at the latest one.
 */
#include "media/jitter.h"

#include <string.h>

void jitter_init(struct jitter *j, int hold_ms)
{
	memset(j, 0, sizeof *j);
	j->hold_ms = hold_ms;
}

void jitter_reset(struct jitter *j)
{
	for (int i = 0; i < JITTER_SLOTS; i++) {
		if (j->used[i])
			j->n_lost++;
		j->used[i] = false;
	}
	j->started = false;
	j->late_run = 0;
	j->n_reset++;
}

static void store(struct jitter *j, uint16_t seq, uint32_t ts, const uint8_t *data, uint16_t len,
		  int64_t now_ms)
{
	int i = seq % JITTER_SLOTS;
	struct jitter_frame *f = &j->slot[i];
	f->seq = seq;
	f->ts = ts;
	f->len = len;
	f->at_ms = now_ms;
	memcpy(f->data, data, len);
	j->used[i] = true;
}

enum jitter_put_result jitter_put(struct jitter *j, uint16_t seq, uint32_t ts, const uint8_t *data,
				  uint16_t len, int64_t now_ms)
{
	if (len > JITTER_FRAME_MAX)
		return JITTER_OVERSIZE;
	if (!j->started) {
		j->started = true;
		j->next_seq = seq;
	}
	int16_t d = (int16_t)(uint16_t)(seq - j->next_seq);
	if (d < 0) {
		j->n_late++;
		if (++j->late_run < 8)
			return JITTER_LATE;
		/* the sender went back in time (restart): follow it */
		jitter_reset(j);
		j->started = true;
		j->next_seq = seq;
		d = 0;
	}
	j->late_run = 0;
	if (d >= JITTER_SLOTS) {
		/* a jump past everything we can hold: give up the gap */
		for (int i = 0; i < JITTER_SLOTS; i++) {
			if (j->used[i])
				j->n_lost++;
			j->used[i] = false;
		}
		j->n_lost += (uint64_t)d;
		j->n_reset++;
		j->next_seq = seq;
	}
	int i = seq % JITTER_SLOTS;
	if (j->used[i] && j->slot[i].seq == seq) {
		j->n_dup++;
		return JITTER_DUP;
	}
	store(j, seq, ts, data, len, now_ms);
	return JITTER_QUEUED;
}

const struct jitter_frame *jitter_get(struct jitter *j, int64_t now_ms)
{
	if (!j->started)
		return NULL;
	int i = j->next_seq % JITTER_SLOTS;
	if (j->used[i] && j->slot[i].seq == j->next_seq) {
		j->used[i] = false;
		j->next_seq++;
		return &j->slot[i];
	}
	/* a gap: has the oldest frame behind it waited long enough? */
	int best = -1;
	int16_t best_d = 0;
	for (int k = 0; k < JITTER_SLOTS; k++) {
		if (!j->used[k])
			continue;
		int16_t d = (int16_t)(uint16_t)(j->slot[k].seq - j->next_seq);
		if (best < 0 || d < best_d) {
			best = k;
			best_d = d;
		}
	}
	if (best < 0 || now_ms - j->slot[best].at_ms < j->hold_ms)
		return NULL;
	j->n_lost += (uint64_t)best_d;
	j->used[best] = false;
	j->next_seq = (uint16_t)(j->slot[best].seq + 1);
	return &j->slot[best];
}
