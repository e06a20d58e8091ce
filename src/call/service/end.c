/*
 * end.c - ending one call, asked by an API request or by the engine (its max-duration
 * goodbye). Ending is the one operation that needs the engine: the service asks it to put a
 * BYE or CANCEL on the wire, and only when the engine confirms does it record the end, so a
 * hang-up that cannot be delivered changes nothing (502 for the client, who may retry). A
 * call never dialled (no engine) is recorded ended at once.
 *
 * Goodbyes (goodbye.h): an end with a goodbye asks the engine for a BYE that waits until the
 * call has said its last words; while it waits, the call is in the table of goodbyes under
 * way, and another end of it joins that one instead of hanging up on its own, so every end
 * gets the one result and the call makes one transition. Speech is rendered on the thread
 * that ends the call (goodbye.h says which).
 *
 * The engine answers on its own thread; the answer becomes a job (the end_job itself) that
 * the worker records in its group commit, and the requester is told once that is durable.
 */
#include "service_internal.h"
#include "call/goodbye.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_END_REASON "ended_by_api"

struct end_job {
	struct job job; /* the engine's answer, queued to the worker */
	struct call_service *svc;
	char id[CP_UUID_LEN + 1];
	char reason[CALL_REASON_MAX + 1];
	char req_id[40];
	enum call_status seen; /* status when the end was requested */
	int64_t t_start_us;    /* when the end was requested (monotonic) */
	int64_t wire_us;       /* request -> BYE/CANCEL handed to the transport */
	bool claimed;          /* the call's goodbye under way is this end */
	enum end_origin origin;
	enum metrics_dialect dialect; /* of the API request; none for the engine's own */
	call_end_fn done;
	void *arg;
	/* the engine's answer */
	enum cp_err err;
	enum hangup_kind kind;
	/* the outcome, decided by end_apply() and told by end_finish() once it is durable */
	struct cp_error result;
	struct call call;
	bool has_call;
	int goodbye_ms;
};

static void end_result(struct end_job *job, enum cp_err code, const char *msg, const struct call *c)
{
	job->result.code = code;
	snprintf(job->result.message, sizeof job->result.message, "%s", msg);
	if (c) {
		job->has_call = call_copy(&job->call, c) == 0;
	}
}

static void end_store_failed(struct end_job *job, enum store_result rc)
{
	struct cp_error e;
	store_fail(&e, rc, "call");
	end_result(job, e.code, e.message, NULL);
}

/* Tells the requester, and every end that joined its goodbye, the same result; the job is
 * gone afterwards. */
static void end_finish(struct end_job *job)
{
	/* an API end's latency; a goodbye's, and an emergency stop's per call, are not that */
	if (job->origin == END_API && !job->claimed && job->result.code == CP_OK)
		metrics_end_request(cp_mono_us() - job->t_start_us);
	struct goodbye_waiter *w =
		job->claimed ? goodbyes_release(job->svc->goodbyes, job->id) : NULL;
	const struct call *c = job->has_call ? &job->call : NULL;
	job->done(job->arg, &job->result, c, job->goodbye_ms);
	while (w) {
		struct goodbye_waiter *next = w->next;
		w->done(w->arg, &job->result, c, job->goodbye_ms);
		free(w);
		w = next;
	}
	call_clear(&job->call);
	free(job);
}

/* Records the end. kind says what went on the wire; HANGUP_NONE means nothing had to (a call
 * that was never dialled), in which case the target follows the status we find. */
static void end_record(struct writer *w, struct end_job *job, enum hangup_kind kind)
{
	struct call c = {0};
	enum call_status cur = job->seen;
	for (int attempt = 0; attempt < 4; attempt++) {
		enum call_status to;
		uint32_t from;
		if (kind == HANGUP_BYE) {
			to = CALL_COMPLETED;
			from = CALL_BIT(CALL_IN_PROGRESS);
		} else if (kind == HANGUP_CANCEL) {
			to = CALL_CANCELED;
			from = CALL_BIT(CALL_QUEUED) | CALL_BIT(CALL_RINGING);
		} else {
			to = call_end_status(cur);
			from = CALL_BIT(cur);
		}
		struct call_update u = {.from_mask = from,
					.to = to,
					.ended_at = cp_now_ms(),
					.end_reason = job->reason};
		struct cause why = {
			.req_id = job->req_id, .wire_us = job->wire_us, .dialect = job->dialect};
		enum store_result rc = svc_transition_logged(w, job->id, &u, &why, &c);
		if (rc == STORE_OK) {
			end_result(job, CP_OK, "", &c);
			goto out;
		}
		if (rc != STORE_CONFLICT) {
			end_store_failed(job, rc);
			goto out;
		}
		if (call_status_is_terminal(c.status)) {
			end_result(job, CP_ERR_NOT_ACTIVE, "call is not active", &c);
			goto out;
		}
		/* Still active but not where we expected: it moved meanwhile (answered while we
		 * were cancelling a call the engine had not dialled). End it from where it is. */
		cur = c.status;
		kind = HANGUP_NONE;
	}
	end_result(job, CP_ERR_INTERNAL, "call kept changing state", NULL);
out:
	call_clear(&c);
}

/* Decides (and records) the outcome of the engine's answer; end_finish() tells it. */
static void end_apply(struct writer *w, struct job *j)
{
	struct end_job *job = (struct end_job *)j;
	if (job->err == CP_OK) {
		end_record(w, job, job->kind);
	} else if (job->err == CP_ERR_NOT_ACTIVE) {
		struct call c = {0};
		enum store_result rc = STORE(w->st, call_get, NULL, job->id, &c);
		if (rc == STORE_OK)
			end_result(job, CP_ERR_NOT_ACTIVE, "call is not active", &c);
		else
			end_store_failed(job, rc);
		call_clear(&c);
	} else {
		end_result(job, CP_ERR_UNDELIVERABLE,
			   "the hang-up could not be handed to the network; nothing changed, retry",
			   NULL);
	}
}

static void end_job_finish(struct job *j)
{
	end_finish((struct end_job *)j);
}

static const struct job_ops end_ops = {.apply = end_apply, .finish = end_job_finish};

/* The engine's answer to hangup(): on the engine thread, so hand it to the worker. */
static void end_hung_up(void *arg, enum cp_err err, enum hangup_kind kind, int goodbye_ms)
{
	struct end_job *end = arg;
	if (err == CP_OK && kind != HANGUP_NONE) {
		end->wire_us = cp_mono_us() - end->t_start_us;
		/* a goodbye's wait is its speech, not latency */
		if (!end->claimed && end->origin != END_ENGINE)
			metrics_end_to_wire(end->wire_us);
	}
	end->goodbye_ms = err == CP_OK ? goodbye_ms : 0;
	end->err = err;
	end->kind = kind;
	svc_post(end->svc, &end->job);
}

/* The agent's --goodbye-text, a copy (the caller frees it); NULL when it has none. */
static char *agent_goodbye(struct call_service *svc, const struct call *c)
{
	struct scope sc = {0};
	snprintf(sc.tenant_id, sizeof sc.tenant_id, "%s", c->tenant_id);
	struct agent *agent = malloc(sizeof *agent); /* two texts of 4 KiB: not on a stack */
	char *text = NULL;
	if (agent && STORE(svc->st, agent_get, &sc, c->agent_id, agent) == STORE_OK &&
	    agent->goodbye_text[0])
		text = strdup(agent->goodbye_text);
	free(agent);
	return text;
}

/* Checks an end's options (docs/API.md's rules for POST /v1/calls/{id}/end); false with the
 * 400 told through done. */
static bool end_options_valid(const struct call_end_options *opt, const char **reason,
			      call_end_fn done, void *arg)
{
	struct cp_error e = {0};
	if (!*reason)
		*reason = DEFAULT_END_REASON;
	if (!call_reason_valid(*reason))
		cp_fail(&e, CP_ERR_INVALID, "reason must be 1..%d characters of [A-Za-z0-9_.:-]",
			CALL_REASON_MAX);
	else if (opt->goodbye_text && !call_goodbye_text_valid(opt->goodbye_text))
		cp_fail(&e, CP_ERR_INVALID, "goodbye.text must be 1..%d characters",
			CALL_GOODBYE_TEXT_MAX);
	else if (opt->has_max_wait &&
		 (opt->max_wait_ms < 0 || opt->max_wait_ms > CALL_GOODBYE_WAIT_MAX_MS))
		cp_fail(&e, CP_ERR_INVALID, "max_wait_ms must be an integer in 0..%d",
			CALL_GOODBYE_WAIT_MAX_MS);
	else if (opt->has_max_wait && !opt->after_playout && !opt->goodbye_text)
		cp_fail(&e, CP_ERR_INVALID, "max_wait_ms needs after_playout or goodbye");
	else
		return true;
	done(arg, &e, NULL, 0);
	return false;
}

/* Asks the engine for c's BYE after its goodbye (the words rendered here, on the caller's
 * thread); the engine answers through end_hung_up. */
static void hangup_after_goodbye(struct call_service *svc, struct end_job *job,
				 const struct call *c, const char *words, int max_wait_ms,
				 int wait_ms)
{
	struct hangup_goodbye gb = {.max_wait_ms = max_wait_ms};
	uint8_t *audio = NULL;
	int64_t t0 = cp_mono_us();
	if (words)
		goodbye_speech(words, c->id, &audio, &gb.len);
	gb.audio = audio;
	/* audio_ms: callplane's own words (8 bytes a millisecond), said after the queued audio */
	json_t *f = json_pack("{s:s, s:i, s:I, s:I}", "call_id", c->id, "max_wait_ms", max_wait_ms,
			      "audio_ms", (json_int_t)(gb.len / 8), "render_ms",
			      (json_int_t)((cp_mono_us() - t0) / 1000));
	if (job->req_id[0])
		json_object_set_new(f, "req_id", json_string(job->req_id));
	log_json(LOG_INFO, "call_goodbye_start", f);
	svc->tel.ops->hangup(svc->tel.engine, c, job->reason, wait_ms, &gb, end_hung_up, job);
	free(audio);
}

void svc_end(struct call_service *svc, const struct scope *sc, const char *id,
	     const struct call_end_options *opt, const char *req_id, enum end_origin origin,
	     call_end_fn done, void *arg)
{
	int64_t t_start_us = cp_mono_us();
	struct cp_error e = {0};
	struct call c = {0};
	const char *reason = opt->reason;
	if (!end_options_valid(opt, &reason, done, arg))
		return;
	if (call_get(svc, sc, id, &c, &e) != CP_OK) {
		done(arg, &e, NULL, 0);
		return;
	}
	if (opt->agent_id && strcmp(opt->agent_id, c.agent_id)) {
		cp_fail(&e, CP_ERR_NOT_FOUND, "call not found for this agent");
		done(arg, &e, NULL, 0);
		call_clear(&c);
		return;
	}
	if (call_status_is_terminal(c.status)) {
		cp_fail(&e, CP_ERR_NOT_ACTIVE, "call is not active");
		done(arg, &e, &c, 0);
		call_clear(&c);
		return;
	}
	/* a goodbye needs an answered call and an engine to play it; anything else ends now */
	char *agents = NULL;
	const char *words = NULL;
	bool goodbye = false;
	if (c.status == CALL_IN_PROGRESS && svc->tel.ops && origin != END_EMERGENCY) {
		if (opt->agent_goodbye && !opt->goodbye_text)
			agents = agent_goodbye(svc, &c);
		words = opt->goodbye_text ? opt->goodbye_text : agents;
		goodbye = opt->after_playout || words;
	}
	struct end_job *job = calloc(1, sizeof *job);
	if (!job) {
		cp_fail(&e, CP_ERR_INTERNAL, "out of memory");
		done(arg, &e, NULL, 0);
		goto out;
	}
	job->job.ops = &end_ops;
	job->svc = svc;
	snprintf(job->id, sizeof job->id, "%s", c.id);
	snprintf(job->reason, sizeof job->reason, "%s", reason);
	snprintf(job->req_id, sizeof job->req_id, "%s", req_id ? req_id : "");
	job->seen = c.status;
	job->t_start_us = t_start_us;
	job->origin = origin;
	job->dialect = origin == END_ENGINE ? METRICS_NO_DIALECT : opt->dialect;
	job->done = done;
	job->arg = arg;
	if (origin != END_EMERGENCY && goodbyes_join(svc->goodbyes, c.id, goodbye, done, arg)) {
		/* a goodbye is under way: this end is that one, and learns its result */
		json_t *f = json_pack("{s:s}", "call_id", c.id);
		if (req_id && *req_id)
			json_object_set_new(f, "req_id", json_string(req_id));
		log_json(LOG_INFO, "call_end_joined", f);
		free(job);
		goto out;
	}
	job->claimed = goodbye;
	/* the emergency stop has no wait bound: every call of it must go, however long the
	 * pacer needs; so has the engine's own end */
	int wait_ms = origin == END_API ? -1 : 0;
	if (goodbye) {
		hangup_after_goodbye(svc, job, &c, words,
				     opt->has_max_wait ? opt->max_wait_ms
						       : CALL_GOODBYE_WAIT_DEFAULT_MS,
				     wait_ms);
	} else if (svc->tel.ops) {
		svc->tel.ops->hangup(svc->tel.engine, &c, reason, wait_ms, NULL, end_hung_up, job);
	} else {
		struct writer w = svc_writer(svc);
		end_record(&w, job, HANGUP_NONE);
		end_finish(job);
	}
out:
	free(agents);
	call_clear(&c);
}

void call_end_with(struct call_service *svc, const struct scope *sc, const char *id,
		   const struct call_end_options *opt, const char *req_id, call_end_fn done,
		   void *arg)
{
	svc_end(svc, sc, id, opt, req_id, END_API, done, arg);
}

/* ---- the engine's goodbyes -------------------------------------------------------------- */

/* How an engine-asked end went: nobody waits for it, the transition is logged already. */
static void engine_end_done(void *arg, const struct cp_error *err, const struct call *c,
			    int goodbye_ms)
{
	(void)arg;
	(void)goodbye_ms;
	if (err->code != CP_OK && err->code != CP_ERR_NOT_ACTIVE)
		log_msg(LOG_WARN, "call_goodbye_end_failed", "call %s: %s", c ? c->id : "?",
			err->message);
}

void svc_speak(void *ctx, const char *call_id, const char *reason, const char *text)
{
	struct call_end_options opt = {.reason = reason, .goodbye_text = text};
	svc_end(ctx, NULL, call_id, &opt, NULL, END_ENGINE, engine_end_done, NULL);
}

void call_service_post_goodbye(struct call_service *svc, const char *call_id, const char *reason,
			       const char *text)
{
	if (!svc->speaker) {
		svc_speak(svc, call_id, reason, text);
		return;
	}
	if (speaker_post(svc->speaker, call_id, reason, text))
		log_msg(LOG_ERROR, "call_goodbye_lost",
			"out of memory for call %s's goodbye; the"
			" engine ends it without one",
			call_id);
}
