/*
 * service_internal.h - what the files of the call service share (call_service.h is its
 * public face). One concern per file, as libre's sipsess/ is laid out:
 *
 *   lifecycle.c   create, start, stop, destroy; settings, draining, health
 *   worker.c      the FIFO of jobs and the worker thread that applies them in group commits
 *   transition.c  the writer, and svc_transition(): the only way a call changes state
 *   events.c      the engine's events: status updates and trunk registrations
 *   create.c      a new outbound call: checked, stored, dialled
 *   web_call.c    a new web call, and the tokens its browser joins with
 *   inbound.c     a new inbound call, stored on the worker
 *   query.c       reads: get, list, a call's recording; redaction
 *   dtmf.c        digits sent to the far end, and digits it pressed
 *   end.c         ending one call (API, engine goodbyes), with or without a goodbye
 *   end_all.c     the emergency stop: every active call of a scope
 *   restart.c     what a crash leaves: calls ended node_restart, dialogs kept and hung up
 *
 * The files form a one-way hierarchy (lifecycle at the top, transition and worker at the
 * bottom): worker.c runs jobs through their job_ops and so knows no kind of job; each kind
 * lives in the file of its concern.
 *
 * Jobs. The engine reports through a FIFO drained by one worker thread, so (1) the SIP
 * thread never blocks on a disk write and (2) everything the engine says about one call --
 * answered, then hang-up confirmed -- is applied in the order it happened on the wire. A job
 * runs in two phases: apply (the store work, inside the batch's transaction) and finish
 * (once that work is durable: tell whoever waits, free the job).
 *
 * Metrics (metrics.h): a call ended or created is counted once its write is durable, never
 * more: a transition applied through the worker's group commit marks its job (struct ended),
 * and the worker counts it after the commit, before the job's finish; a batch whose commit
 * fails is applied again one job at a time, which counts as it goes. The active calls per
 * status are read from the store when scraped (a collector), not kept here.
 */
#ifndef CP_CALL_SERVICE_INTERNAL_H
#define CP_CALL_SERVICE_INTERNAL_H

#include "call/call_service.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct job;
struct goodbyes;
struct speaker;

struct call_service {
	struct store *st;
	struct telephony tel; /* ops NULL: no engine */

	/* the worker's FIFO (worker.c) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	bool running, stopping;
	pthread_t worker;

	void (*on_event)(void *arg); /* an outbox event was committed */
	void *on_event_arg;

	char *recordings_dir;      /* NULL: no recordings */
	struct web_tokens *tokens; /* the access tokens of web calls */
	atomic_bool draining;      /* no new calls (call_service_drain) */

	struct goodbyes *goodbyes;          /* the calls whose goodbye is under way */
	struct speaker *speaker;            /* the engine's goodbyes; NULL before start */
	struct metrics_collector collector; /* the active calls, read when scraped */
};

/* ---- the writer and transitions (transition.c) ------------------------------------------ */

/* Where store work goes, and when the outbox events it writes are announced (on_event).
 * Outside a group commit: to the service's store, announced at once. Inside one (worker.c):
 * to the batch, announced once it has committed, as no one else can read them before. */
struct writer {
	struct call_service *svc;
	struct store *st; /* svc->st, or the open batch */
	bool batched;
	bool event_pending; /* batched: an event waits for the commit */
	struct job *job;    /* batched: the job being applied */
};

/* A writer straight to the service's store. */
struct writer svc_writer(struct call_service *svc);
/* An outbox event was written through w: announced now, or after the commit. */
void svc_event_written(struct writer *w);

/* What a transition's log line and metrics say about the request that caused it. */
struct cause {
	const char *req_id;
	int64_t wire_us; /* API request -> BYE/CANCEL handed to the transport; 0 = n/a */
	enum metrics_dialect dialect; /* the API dialect that ended the call, or none */
};

/* Applies step to call id as one conditional store update, restricted to the state
 * machine's sources of its target, writes its outbox event, counts an end (ended_through)
 * and logs the transition. out (may be NULL) receives the call; STORE_CONFLICT when it had
 * moved on. */
enum store_result svc_transition_logged(struct writer *w, const char *id,
					const struct call_update *step, const struct cause *why,
					struct call *out);
/* The same, caused by req_id (may be NULL) and no API dialect. */
enum store_result svc_transition(struct writer *w, const char *id, const struct call_update *step,
				 const char *req_id, struct call *out);

/* A call_update that outlives the caller's strings: u copies them into the buffers. */
struct kept_update {
	struct call_update u;
	char end_reason[CALL_REASON_MAX + 1];
	char provider_call_id[CALL_PROVIDER_ID_MAX + 1];
};
void svc_keep_update(struct kept_update *k, const struct call_update *u);

/* ---- jobs (worker.c) --------------------------------------------------------------------- */

/* A call a job's transition ended, to be counted once the job is durable. reason points into
 * the job, which lives until then. */
struct ended {
	bool set;
	enum call_status status;
	const char *reason;
	enum metrics_dialect dialect;
};

/* What one kind of job does. */
struct job_ops {
	/* Phase 1, inside the batch's transaction: the store work, through w. Applied again, on
	 * its own, when the batch's commit failed: it starts afresh each time. */
	void (*apply)(struct writer *w, struct job *j);
	/* Phase 2, once the store work is durable: tells whoever waits and frees the job. */
	void (*finish)(struct job *j);
};

/* The head of every job; a kind's own job embeds it as its first member. */
struct job {
	struct job *next;
	const struct job_ops *ops;
	struct ended ended; /* set while applied (transition.c), counted before finish */
};

/* Queues j (its ops set) for the worker, or runs both its phases here when there is no
 * worker. j is the worker's until its finish. */
void svc_post(struct call_service *svc, struct job *j);
/* Starts and stops the worker thread (lifecycle.c). */
int svc_worker_start(struct call_service *svc);
void svc_worker_stop(struct call_service *svc);

/* ---- creating calls (create.c) ----------------------------------------------------------- */

/* How a new call starts on the engine (dial, or wait for a browser); 0 if the engine took it. */
typedef int svc_start_fn(struct call_service *svc, const struct call *c, void *arg);

/* Gives c (its plain fields set) its metadata (NULL: {}), stream URL and max-duration goodbye
 * from agent, stores it queued, and has the engine start it; a call the engine does not take
 * is recorded failed at once. On CP_OK the call is moved to out; c is cleared either way.
 * unstarted: the 500's message when even that could not be recorded. */
enum cp_err svc_store_and_start(struct call_service *svc, struct call *c, const struct agent *agent,
				const char *metadata, const char *stream_url, const char *req_id,
				svc_start_fn *start, void *arg, const char *unstarted,
				struct call *out, struct cp_error *err);
/* The call streams its audio to url (NULL or "": none): a copy on c; -1 if out of memory. */
int svc_set_stream_url(struct call *c, const char *url);
/* The call says the agent's max-duration goodbye when max_duration ends it: a copy on c when
 * it has a max duration and the agent such a goodbye; -1 if out of memory. */
int svc_set_max_duration_goodbye(struct call *c, const struct agent *agent);
/* NULL, or a JSON object of at most CALL_METADATA_MAX bytes. */
bool svc_metadata_valid(const char *text);
/* The call_created log line. */
void svc_log_created(const struct call *c, const char *req_id);

/* ---- ending calls (end.c) ---------------------------------------------------------------- */

/* Where an end comes from, which decides how it waits and whom it joins. */
enum end_origin {
	END_API,       /* a route: the pacer's default wait; joins a goodbye under way */
	END_EMERGENCY, /* call_end_all(): no wait bound; never waits for a goodbye */
	END_ENGINE,    /* the engine's max-duration goodbye: no wait bound; joins */
};

/* Ends call id as origin asks; done runs exactly once (call_end_with()'s contract). */
void svc_end(struct call_service *svc, const struct scope *sc, const char *id,
	     const struct call_end_options *opt, const char *req_id, enum end_origin origin,
	     call_end_fn done, void *arg);
/* The speaker's work (speaker_fn, ctx the service): the goodbye the engine asked for. */
void svc_speak(void *ctx, const char *call_id, const char *reason, const char *text);

#endif
