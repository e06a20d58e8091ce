/*
 * query.c - what a key may read of its calls (one, a page of them, a call's recording), and
 * redaction, which drops what a call said about people and deletes its recording.
 */
#include "service_internal.h"
#include "core/log.h"
#include "media/record.h"

#include <errno.h>
#include <string.h>

/* How long a read of a recording waits for the writer to finish the file of a call that has
 * just ended (it is signalled at the hang-up; this bounds a slow disk's flush and fsync). */
#define RECORDING_FINISH_WAIT_MS 2000

enum cp_err call_get(struct call_service *svc, const struct scope *sc, const char *id,
		     struct call *out, struct cp_error *err)
{
	return store_fail(err, STORE(svc->st, call_get, sc, id, out), "call");
}

enum cp_err call_list(struct call_service *svc, const struct scope *sc, const struct call_filter *f,
		      struct call **out, size_t *n, struct cp_error *err)
{
	return store_fail(err, STORE(svc->st, call_list, sc, f, out, n), "calls");
}

enum cp_err call_redact(struct call_service *svc, const struct scope *sc, const char *id,
			const char *req_id, struct call *out, struct cp_error *err)
{
	enum cp_err e = call_get(svc, sc, id, out, err);
	if (e != CP_OK)
		return e;
	enum store_result rc = STORE(svc->st, call_redact, out->id, cp_now_ms(), out);
	if (rc == STORE_CONFLICT)
		return cp_fail(err, CP_ERR_NOT_ACTIVE, "call is still active; end it first");
	if (rc != STORE_OK)
		return store_fail(err, rc, "call");
	/* After the row: from now on nothing serves the file, whatever happens to it. Each
	 * redaction tries again, so a failure here is the client's to retry. */
	bool removed = !svc->recordings_dir || recording_remove(svc->recordings_dir, out->id) == 0;
	json_t *f = json_pack("{s:s, s:b}", "call_id", out->id, "recording_removed", removed);
	if (req_id)
		json_object_set_new(f, "req_id", json_string(req_id));
	if (!removed)
		json_object_set_new(f, "error", json_string(strerror(errno)));
	log_json(removed ? LOG_INFO : LOG_ERROR, "call_redacted", f);
	if (!removed)
		return cp_fail(err, CP_ERR_INTERNAL,
			       "the call's recording could not be deleted; retry");
	return CP_OK;
}

enum cp_err call_recording_open(struct call_service *svc, const struct scope *sc, const char *id,
				int *fd, struct call *out_call, struct cp_error *err)
{
	struct call c = {0};
	enum cp_err e = call_get(svc, sc, id, &c, err);
	*fd = -1;
	if (e == CP_OK && !call_has_recording(&c))
		e = cp_fail(err, CP_ERR_NOT_FOUND,
			    call_is_redacted(&c) ? "the call was redacted"
			    : !c.record          ? "the call was not recorded"
			    : !c.answered_at
				    ? "the call was never answered"
				    : "the call is still up: its recording is served once it ends");
	if (e == CP_OK && svc->recordings_dir) {
		/* the writer finishes the file in the moments after the end: wait out what is left
		 * of that window, no more (a lost recording of an old call answers at once) */
		int64_t left = c.ended_at + RECORDING_FINISH_WAIT_MS - cp_now_ms();
		*fd = recording_open_read(svc->recordings_dir, c.id,
					  left < 0 ? 0
					  : left > RECORDING_FINISH_WAIT_MS
						  ? RECORDING_FINISH_WAIT_MS
						  : (int)left);
	}
	if (e == CP_OK && *fd < 0 && svc->recordings_dir && errno != ENOENT) {
		log_msg(LOG_ERROR, "recording_unreadable", "call %s: %s", c.id, strerror(errno));
		e = cp_fail(err, CP_ERR_INTERNAL, "the call's recording could not be read");
	} else if (e == CP_OK && *fd < 0) {
		/* lost (the writer failed, logged as recording_failed) or kept elsewhere */
		e = cp_fail(err, CP_ERR_NOT_FOUND, "the call's recording file is missing");
	}
	if (out_call)
		call_move(out_call, &c); /* empty when the key cannot see it */
	call_clear(&c);
	return e;
}
