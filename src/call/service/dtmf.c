/*
 * dtmf.c - DTMF both ways (RFC 4733): digits an API request sends to the far end of an
 * answered call, through the engine; and keys the far end pressed, which the engine reports
 * and the worker writes as call.dtmf events (SSE and webhooks), queued with the call's other
 * events so a digit lands between its call's answered and ended. No digit is stored on the
 * call.
 */
#include "service_internal.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum cp_err call_send_dtmf(struct call_service *svc, const struct scope *sc, const char *id,
			   const char *digits, const char *req_id, struct call *out,
			   struct cp_error *err)
{
	struct call c = {0};
	enum cp_err e;
	if (!call_dtmf_digits_valid(digits))
		return cp_fail(err, CP_ERR_INVALID,
			       "digits must be 1..%d characters of 0-9 * # A-D", CALL_DTMF_MAX);
	if ((e = call_get(svc, sc, id, &c, err)) != CP_OK)
		goto out;
	if (c.status != CALL_IN_PROGRESS) {
		e = cp_fail(err, CP_ERR_NOT_IN_PROGRESS, "call is %s; digits need an answered call",
			    call_status_name(c.status));
		goto out;
	}
	if (!svc->tel.ops || !svc->tel.ops->send_dtmf) {
		e = cp_fail(err, CP_ERR_MEDIA_UNAVAILABLE,
			    "no media engine on this node: digits"
			    " were not sent");
		goto out;
	}
	if (svc->tel.ops->send_dtmf(svc->tel.engine, &c, digits) != 0) {
		e = cp_fail(err, CP_ERR_MEDIA_UNAVAILABLE,
			    "the call has no media session: digits"
			    " were not sent");
		goto out;
	}
	/* the count, not the digits: they may be a PIN */
	json_t *f = json_pack("{s:s, s:i}", "call_id", c.id, "digits", (int)strlen(digits));
	if (req_id && *req_id)
		json_object_set_new(f, "req_id", json_string(req_id));
	log_json(LOG_INFO, "call_dtmf_sent", f);
	if (out)
		call_move(out, &c);
	e = CP_OK;
out:
	call_clear(&c);
	return e;
}

struct dtmf_job {
	struct job job;
	char call_id[CP_UUID_LEN + 1];
	char digit;
};

/* Writes the call.dtmf event: for a live call only. */
static void dtmf_apply(struct writer *w, struct job *j)
{
	struct dtmf_job *dj = (struct dtmf_job *)j;
	/* the digit needs no escaping: post_dtmf let only [0-9*#A-D] through */
	char extra[16];
	snprintf(extra, sizeof extra, "\"digit\":\"%c\"", dj->digit);
	enum store_result rc =
		STORE(w->st, call_event, dj->call_id, "call.dtmf", extra, CALL_ACTIVE_MASK, NULL);
	if (rc == STORE_OK) {
		svc_event_written(w);
	} else if (rc == STORE_NOT_FOUND || rc == STORE_CONFLICT) {
		log_msg(LOG_DEBUG, "call_dtmf_ignored", "call %s %s", dj->call_id,
			rc == STORE_NOT_FOUND ? "is unknown" : "has ended");
	}
}

static void dtmf_finish(struct job *j)
{
	free(j);
}

static const struct job_ops dtmf_ops = {.apply = dtmf_apply, .finish = dtmf_finish};

void call_service_post_dtmf(struct call_service *svc, const char *call_id, char digit)
{
	if (!call_dtmf_digit_valid(digit)) {
		log_msg(LOG_DEBUG, "call_dtmf_ignored", "call %s: not a DTMF digit (0x%02x)",
			call_id, (unsigned char)digit);
		return;
	}
	struct dtmf_job *dj = calloc(1, sizeof *dj);
	if (!dj) {
		log_msg(LOG_ERROR, "call_event_lost", "out of memory for call %s", call_id);
		return;
	}
	dj->job.ops = &dtmf_ops;
	snprintf(dj->call_id, sizeof dj->call_id, "%s", call_id);
	dj->digit = digit;
	svc_post(svc, &dj->job);
}
