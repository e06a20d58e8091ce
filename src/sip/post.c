/*
 * post.c - running a function on the engine thread, from any thread.
 *
 * Other threads (HTTP, the call-service worker, the media thread) never touch the engine's
 * state. They post a message instead: a function and a copy of its argument, which
 * su_msg_send() queues on the engine's root; the engine thread runs the functions in the
 * order they were posted. The sender names the function, so each file keeps the handlers of
 * its own messages (inbound.c the store's answer, engine.c dial, hang-up and stop) and this
 * file, at the bottom of the SIP layer, knows none of them.
 *
 * Posting is refused once the engine thread has left its loop: eng->gone is set under msg_mu
 * before the root is destroyed, so a late sender gets -1 rather than touching a freed root.
 */
#include "sip_internal.h"

#include <string.h>

struct sip_msg {
	sip_post_fn *fn;
	/* the argument, aligned as the structures posted (pointers, int64_t) need */
	union {
		void *p;
		int64_t i;
		double d;
	} data[];
};

static void on_msg(struct sip_engine *eng, su_msg_r msg, struct sip_msg *m)
{
	(void)msg;
	m->fn(eng, m->data);
}

int sip_post(struct sip_engine *eng, sip_post_fn *fn, const void *data, size_t size)
{
	int rc = -1;
	pthread_mutex_lock(&eng->msg_mu);
	if (!eng->gone) {
		su_msg_r m = SU_MSG_R_INIT;
		if (su_msg_create(m, su_root_task(eng->root), su_task_null, on_msg,
				  sizeof(struct sip_msg) + size) == 0) {
			struct sip_msg *msg = su_msg_data(m);
			msg->fn = fn;
			if (size)
				memcpy(msg->data, data, size);
			rc = su_msg_send(m) == 0 ? 0 : -1;
		}
	}
	pthread_mutex_unlock(&eng->msg_mu);
	return rc;
}
