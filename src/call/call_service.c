/*
 * call_service.c - the canonical call service. See call_service.h.
 *
 * The only way a call changes state is transition(): one conditional store update (status must
 * be in the step's sources) followed by one log line. Ending a call is the one operation that
 * needs the engine: the service asks the engine to put a BYE or CANCEL on the wire and only
 * when the engine confirms does it record the end, so a hang-up that cannot be delivered
 * changes nothing (502 for the client, who may retry).
 *
 * Threads: HTTP threads call in directly. The engine reports through a FIFO drained by one
 * worker thread, so (1) the SIP thread never blocks on a disk write and (2) everything the
 * engine says about one call -- answered, then hang-up confirmed -- is applied in the order it
 * happened on the wire.
 *
 * Draining (call_service_drain): one flag, read without a lock by call_create() and by the
 * engine for each INVITE. Nothing else looks at it, so the calls already taken go on as
 * before: their ends, DTMF, goodbyes, events.
 *
 * Goodbyes (goodbye.h): an end with a goodbye asks the engine for a BYE that waits until the
 * call has said its last words; while it waits, the call is in the table of goodbyes under
 * way, and another end of it joins that one instead of hanging up on its own, so every end
 * gets the one result and the call makes one transition. Speech is rendered on the thread
 * that ends the call (goodbye.h says which).
 *
 * Metrics (metrics.h): a call ended or created is counted once its write is durable, never
 * more: a transition applied through the worker's group commit marks its job (struct ended),
 * and the job counts it in job_finish(), after the commit; a batch whose commit fails is
 * applied again one job at a time, which counts as it goes. The active calls per status are
 * read from the store when scraped (a collector), not kept here.
 */
#include "call_service.h"
#include "call/dial.h"
#include "call/goodbye.h"
#include "core/log.h"
#include "media/record.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_END_REASON "ended_by_api"
/* How long a read of a recording waits for the writer to finish the file of a call that has
 * just ended (it is signalled at the hang-up; this bounds a slow disk's flush and fsync). */
#define RECORDING_FINISH_WAIT_MS 2000

enum job_type { JOB_EVENT, JOB_HUNG_UP, JOB_INBOUND, JOB_DTMF, JOB_DIALOG, JOB_TRUNK };

struct end_job;

/* A call a job's transition ended, to be counted once the job is durable. reason points into
 * the job (or its end_job), which lives until then. */
struct ended {
	bool set;
	enum call_status status;
	const char *reason;
	enum metrics_dialect dialect;
};

struct job {
	enum job_type type;
	struct job *next;
	/* JOB_EVENT, JOB_DTMF, JOB_DIALOG */
	char call_id[CP_UUID_LEN + 1];
	char digit;                  /* JOB_DTMF */
	struct call_update u;        /* JOB_DIALOG: only when has_update */
	bool has_update;
	char *dialog;                /* JOB_DIALOG: heap; NULL forgets the call's dialog */
	dialog_durable_fn durable;   /* JOB_DIALOG: told once it is written (arg) */
	char end_reason[CALL_REASON_MAX + 1];
	char provider_call_id[CALL_PROVIDER_ID_MAX + 1];
	/* JOB_HUNG_UP */
	struct end_job *end;
	enum cp_err err;
	enum hangup_kind kind;
	/* JOB_INBOUND */
	char number[STORE_NUMBER_MAX + 1];
	char from[CALL_ADDR_MAX + 1], to[CALL_ADDR_MAX + 1];
	inbound_created_fn created;
	void *arg;
	struct call call;            /* JOB_INBOUND: the stored call */
	struct trunk_status trunk;   /* JOB_TRUNK */
	char *event_data;            /* JOB_TRUNK: heap, the data of its event, if it makes one */
	char *tenants;               /* JOB_INBOUND: heap, NULL = any tenant */
	struct ended ended;          /* set by job_apply, counted by job_finish */
};

struct call_service {
	struct store *st;
	struct telephony tel;        /* ops NULL: no engine */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	bool running, stopping;
	pthread_t worker;

	void (*on_event)(void *arg);     /* an outbox event was committed */
	void *on_event_arg;

	char *recordings_dir;        /* NULL: no recordings */
	struct web_tokens *tokens;       /* the access tokens of web calls */
	atomic_bool draining;            /* no new calls (call_service_drain) */

	struct goodbyes *goodbyes;       /* the calls whose goodbye is under way */
	struct speaker *speaker;         /* the engine's goodbyes; NULL before start */
	struct metrics_collector collector;  /* the active calls, read when scraped */
};

/* Where store work goes, and when the outbox events it writes are announced (on_event).
 * Outside a group commit: to the service's store, announced at once. Inside one (run_batch):
 * to the batch, announced once it has committed, as no one else can read them before. */
struct writer {
	struct call_service *svc;
	struct store *st;            /* svc->st, or the open batch */
	bool batched;
	bool event_pending;          /* batched: an event waits for the commit */
	struct job *job;             /* batched: the job being applied */
};

static struct writer direct(struct call_service *svc)
{
	return (struct writer){.svc = svc, .st = svc->st};
}

/* An outbox event was written through w. */
static void event_written(struct writer *w)
{
	if (w->batched)
		w->event_pending = true;
	else if (w->svc->on_event)
		w->svc->on_event(w->svc->on_event_arg);
}

static void run_job(struct call_service *svc, struct job *j);
static void run_batch(struct call_service *svc, struct job *list);

/* The collector: how many calls are in each active status. */
static void collect_active(void *arg, struct metrics_sample *out)
{
	struct call_service *svc = arg;
	int64_t counts[CALL_STATUS_COUNT];
	if (STORE(svc->st, call_count_active, counts) != STORE_OK)
		return;
	out->calls_active[0] += counts[CALL_QUEUED];
	out->calls_active[1] += counts[CALL_RINGING];
	out->calls_active[2] += counts[CALL_IN_PROGRESS];
}

struct call_service *call_service_create(struct store *st)
{
	struct call_service *svc = calloc(1, sizeof *svc);
	if (!svc)
		return NULL;
	svc->st = st;
	svc->goodbyes = goodbyes_create();
	svc->tokens = web_tokens_create();
	if (!svc->goodbyes || !svc->tokens) {
		goodbyes_destroy(svc->goodbyes);
		web_tokens_destroy(svc->tokens);
		free(svc);
		return NULL;
	}
	pthread_mutex_init(&svc->mu, NULL);
	pthread_cond_init(&svc->cv, NULL);
	svc->collector = (struct metrics_collector){.collect = collect_active, .arg = svc};
	metrics_collector_add(&svc->collector);
	return svc;
}

static void *worker_main(void *arg)
{
	struct call_service *svc = arg;
	pthread_setname_np(pthread_self(), "cp-worker");
	pthread_mutex_lock(&svc->mu);
	for (;;) {
		while (!svc->head && !svc->stopping)
			pthread_cond_wait(&svc->cv, &svc->mu);
		if (!svc->head)
			break;
		/* take everything queued: it becomes one group commit */
		struct job *list = svc->head;
		svc->head = svc->tail = NULL;
		pthread_mutex_unlock(&svc->mu);
		run_batch(svc, list);
		pthread_mutex_lock(&svc->mu);
	}
	pthread_mutex_unlock(&svc->mu);
	return NULL;
}

static void speak(void *ctx, const char *call_id, const char *reason, const char *text);

int call_service_start(struct call_service *svc)
{
	if (pthread_create(&svc->worker, NULL, worker_main, svc))
		return -1;
	svc->running = true;
	svc->speaker = speaker_start(speak, svc);
	if (!svc->speaker) {
		call_service_stop(svc);
		return -1;
	}
	return 0;
}

void call_service_stop(struct call_service *svc)
{
	/* the speaker first: the ends it starts are answered through the worker */
	speaker_stop(svc->speaker);
	svc->speaker = NULL;
	if (!svc->running)
		return;
	pthread_mutex_lock(&svc->mu);
	svc->stopping = true;
	pthread_cond_signal(&svc->cv);
	pthread_mutex_unlock(&svc->mu);
	pthread_join(svc->worker, NULL);
	svc->running = false;
}

void call_service_destroy(struct call_service *svc)
{
	if (!svc)
		return;
	call_service_stop(svc);
	metrics_collector_remove(&svc->collector);
	goodbyes_destroy(svc->goodbyes);
	pthread_mutex_destroy(&svc->mu);
	pthread_cond_destroy(&svc->cv);
	free(svc->recordings_dir);
	web_tokens_destroy(svc->tokens);
	free(svc);
}

int call_service_set_recordings(struct call_service *svc, const char *dir)
{
	char *copy = dir ? strdup(dir) : NULL;
	if (dir && !copy)
		return -1;
	free(svc->recordings_dir);
	svc->recordings_dir = copy;
	return 0;
}

void call_service_on_event(struct call_service *svc, void (*fn)(void *arg), void *arg)
{
	svc->on_event = fn;
	svc->on_event_arg = arg;
}

void call_service_set_telephony(struct call_service *svc, const struct telephony *tel)
{
	if (tel)
		svc->tel = *tel;
	else
		memset(&svc->tel, 0, sizeof svc->tel);
}

void call_service_drain(struct call_service *svc)
{
	atomic_store(&svc->draining, true);
}

bool call_service_accepting(const struct call_service *svc)
{
	return !atomic_load(&svc->draining);
}

int call_service_live_calls(struct call_service *svc, size_t *n)
{
	*n = 0;
	if (!svc->tel.ops)
		return 0;
	char (*ids)[CP_UUID_LEN + 1] = NULL;
	enum store_result rc = STORE(svc->st, call_active_ids, &ids, n);
	free(ids);
	return rc == STORE_OK ? 0 : -1;
}

void call_service_health(struct call_service *svc, int engine_timeout_ms,
			 struct call_service_health *out)
{
	int64_t seq;
	out->store_ok = STORE(svc->st, events_last_seq, &seq) == STORE_OK;
	out->has_engine = svc->tel.ops != NULL;
	out->engine_ok = !svc->tel.ops || !svc->tel.ops->ping ||
			 svc->tel.ops->ping(svc->tel.engine, engine_timeout_ms) == 0;
	out->draining = atomic_load(&svc->draining);
}

/* Queues a job for the worker, or runs it here when there is no worker. */
static void post(struct call_service *svc, struct job *j)
{
	pthread_mutex_lock(&svc->mu);
	if (!svc->running) {
		pthread_mutex_unlock(&svc->mu);
		run_job(svc, j);
		return;
	}
	if (svc->tail)
		svc->tail->next = j;
	else
		svc->head = j;
	svc->tail = j;
	pthread_cond_signal(&svc->cv);
	pthread_mutex_unlock(&svc->mu);
}

/* The outbox event a step emits: none for an update that keeps the status (a late sip_status). */
static const char *event_of(const struct call_update *u)
{
	if (u->from_mask == CALL_BIT(u->to))
		return NULL;
	if (u->to == CALL_RINGING)
		return "call.ringing";
	if (u->to == CALL_IN_PROGRESS)
		return "call.answered";
	return call_status_is_terminal(u->to) ? "call.ended" : NULL;
}

/* What a transition's log line and metrics say about the request that caused it. */
struct cause {
	const char *req_id;
	int64_t wire_us;             /* API request -> BYE/CANCEL handed to the transport; 0 = n/a */
	enum metrics_dialect dialect;    /* the API dialect that ended the call, or none */
};

static enum store_result transition_logged(struct writer *w, const char *id,
					   const struct call_update *step, const struct cause *why,
					   struct call *out);

static enum store_result transition(struct writer *w, const char *id,
				    const struct call_update *step, const char *req_id,
				    struct call *out)
{
	struct cause why = {.req_id = req_id, .dialect = METRICS_NO_DIALECT};
	return transition_logged(w, id, step, &why, out);
}

/* The call was ended through w: counted now if that is durable, else once its job is. */
static void ended_through(struct writer *w, const struct call_update *u,
			  enum metrics_dialect dialect)
{
	struct ended e = {.set = true, .status = u->to, .reason = u->end_reason,
			  .dialect = dialect};
	if (w->batched && w->job)
		w->job->ended = e;
	else
		metrics_call_ended(call_status_name(e.status), e.reason, e.dialect);
}

static enum store_result transition_logged(struct writer *w, const char *id,
					   const struct call_update *step, const struct cause *why,
					   struct call *out)
{
	const char *req_id = why->req_id;
	enum call_status prev = CALL_QUEUED;
	struct call_update with_event = *step;
	const struct call_update *u = &with_event;
	with_event.event = event_of(step);
	/* The state machine is enforced here, for every caller: a step may only leave states
	 * from which call_state.c allows its target (an update that keeps the status, e.g. a
	 * late sip_status, is the one exception). An illegal step matches no row: CONFLICT. */
	if (step->from_mask != CALL_BIT(step->to))
		with_event.from_mask &= call_sources_of(step->to);
	enum store_result rc = STORE(w->st, call_update, id, u, out, &prev);
	if (rc == STORE_OK && u->event)
		event_written(w);
	if (rc == STORE_OK && call_status_is_terminal(u->to) && prev != u->to)
		ended_through(w, u, why->dialect);
	if (rc == STORE_OK && log_enabled(LOG_INFO)) {
		/* hand-formatted: one line per transition is on the end-call hot path. Every value
		 * is an id, a status name, a validated reason ([A-Za-z0-9_.:-]) or a number. */
		char f[512];
		int n = snprintf(f, sizeof f, "\"call_id\":\"%s\",\"from\":\"%s\",\"to\":\"%s\"", id,
				 call_status_name(prev), call_status_name(u->to));
		if (req_id && *req_id)
			n += snprintf(f + n, sizeof f - (size_t)n, ",\"req_id\":\"%.32s\"", req_id);
		if (u->end_reason)
			n += snprintf(f + n, sizeof f - (size_t)n, ",\"end_reason\":\"%.64s\"", u->end_reason);
		if (u->sip_status)
			n += snprintf(f + n, sizeof f - (size_t)n, ",\"sip_status\":%d", u->sip_status);
		if (why->wire_us)
			snprintf(f + n, sizeof f - (size_t)n, ",\"api_to_wire_us\":%lld",
				 (long long)why->wire_us);
		log_fields(LOG_INFO, prev == u->to ? "call_updated" : "call_transition", f);
	}
	return rc;
}

enum store_result call_service_event(struct call_service *svc, const char *call_id,
				     const struct call_update *u, struct call *out)
{
	struct writer w = direct(svc);
	return transition(&w, call_id, u, NULL, out);
}

/* j's copy of u (its strings into j's own buffers). */
static void job_keep_update(struct job *j, const struct call_update *u)
{
	j->u = *u;
	if (u->end_reason) {
		snprintf(j->end_reason, sizeof j->end_reason, "%s", u->end_reason);
		j->u.end_reason = j->end_reason;
	}
	if (u->provider_call_id) {
		snprintf(j->provider_call_id, sizeof j->provider_call_id, "%s", u->provider_call_id);
		j->u.provider_call_id = j->provider_call_id;
	}
}

void call_service_post_event(struct call_service *svc, const char *call_id,
			     const struct call_update *u)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j) {
		log_msg(LOG_ERROR, "call_event_lost", "out of memory for call %s", call_id);
		return;
	}
	j->type = JOB_EVENT;
	snprintf(j->call_id, sizeof j->call_id, "%s", call_id);
	job_keep_update(j, u);
	post(svc, j);
}

void call_service_post_dialog(struct call_service *svc, const char *call_id,
			      const struct call_update *u, const char *state,
			      dialog_durable_fn durable, void *arg)
{
	struct job *j = calloc(1, sizeof *j);
	if (j && state && !(j->dialog = strdup(state))) {
		free(j);
		j = NULL;
	}
	if (!j) {
		/* the engine still waits for durable(): an answer is acknowledged either way */
		log_msg(LOG_ERROR, "call_event_lost", "out of memory for call %s", call_id);
		if (durable)
			durable(arg);
		return;
	}
	j->type = JOB_DIALOG;
	snprintf(j->call_id, sizeof j->call_id, "%s", call_id);
	if (u) {
		job_keep_update(j, u);
		j->has_update = true;
	}
	j->durable = durable;
	j->arg = arg;
	post(svc, j);
}

/* Keeps or forgets a call's dialog (apply phase), after the transition that came with it. */
static void dialog_record(struct writer *w, struct job *j)
{
	if (j->has_update)
		transition(w, j->call_id, &j->u, NULL, NULL);
	enum store_result rc = j->dialog ? STORE(w->st, dialog_put, j->call_id, j->dialog, cp_now_ms())
					 : STORE(w->st, dialog_clear, j->call_id);
	if (rc != STORE_OK)
		log_msg(LOG_ERROR, "call_dialog_lost", "call %s: the dialog state could not be %s",
			j->call_id, j->dialog ? "kept" : "forgotten");
}

void call_service_post_dtmf(struct call_service *svc, const char *call_id, char digit)
{
	if (!call_dtmf_digit_valid(digit)) {
		log_msg(LOG_DEBUG, "call_dtmf_ignored", "call %s: not a DTMF digit (0x%02x)", call_id,
			(unsigned char)digit);
		return;
	}
	struct job *j = calloc(1, sizeof *j);
	if (!j) {
		log_msg(LOG_ERROR, "call_event_lost", "out of memory for call %s", call_id);
		return;
	}
	j->type = JOB_DTMF;
	snprintf(j->call_id, sizeof j->call_id, "%s", call_id);
	j->digit = digit;
	post(svc, j);
}

/* Writes the call.dtmf event (apply phase): for a live call only. */
static void dtmf_record(struct writer *w, struct job *j)
{
	/* the digit needs no escaping: post_dtmf let only [0-9*#A-D] through */
	char extra[16];
	snprintf(extra, sizeof extra, "\"digit\":\"%c\"", j->digit);
	enum store_result rc = STORE(w->st, call_event, j->call_id, "call.dtmf", extra,
				     CALL_ACTIVE_MASK, NULL);
	if (rc == STORE_OK) {
		event_written(w);
	} else if (rc == STORE_NOT_FOUND || rc == STORE_CONFLICT) {
		log_msg(LOG_DEBUG, "call_dtmf_ignored", "call %s %s", j->call_id,
			rc == STORE_NOT_FOUND ? "is unknown" : "has ended");
	}
}

void call_service_post_trunk_status(struct call_service *svc, const struct trunk_status *s,
				    const char *event_data)
{
	struct job *j = calloc(1, sizeof *j);
	if (j && !(j->event_data = strdup(event_data))) {
		free(j);
		j = NULL;
	}
	if (!j) {
		log_msg(LOG_ERROR, "trunk_status_lost", "out of memory for trunk %s", s->trunk_id);
		return;
	}
	j->type = JOB_TRUNK;
	j->trunk = *s;
	post(svc, j);
}

/* Keeps a trunk's registration status (apply phase), with its event when it changed. */
static void trunk_record(struct writer *w, struct job *j)
{
	bool evented = false;
	enum store_result rc = STORE(w->st, trunk_status_put, &j->trunk, j->event_data, &evented);
	if (evented)
		event_written(w);
	else if (rc != STORE_OK && rc != STORE_NOT_FOUND)   /* NOT_FOUND: deleted meanwhile */
		log_msg(LOG_ERROR, "trunk_status_lost", "trunk %s: status %s not kept",
			j->trunk.trunk_id, j->trunk.status);
}

/* ---- create / read ---------------------------------------------------------------------- */

/* The call streams its audio to url (NULL or "": none): a copy on c; -1 if out of memory. */
static int set_stream_url(struct call *c, const char *url)
{
	c->stream_url = url && *url ? strdup(url) : NULL;
	return url && *url && !c->stream_url ? -1 : 0;
}

/* The call says the agent's max-duration goodbye when max_duration ends it: a copy on c when
 * it has a max duration and the agent such a goodbye; -1 if out of memory. */
static int set_max_duration_goodbye(struct call *c, const struct agent *agent)
{
	if (!c->max_duration_s || !agent->max_duration_goodbye[0])
		return 0;
	c->max_duration_goodbye = strdup(agent->max_duration_goodbye);
	return c->max_duration_goodbye ? 0 : -1;
}

static bool metadata_valid(const char *text)
{
	if (!text)
		return true;
	if (strlen(text) > CALL_METADATA_MAX)
		return false;
	json_t *m = json_loads(text, 0, NULL);
	bool ok = m && json_is_object(m);
	json_decref(m);
	return ok;
}

static void log_created(const struct call *c, const char *req_id)
{
	json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "call_id", c->id, "agent_id", c->agent_id,
			      "direction", call_direction_name(c->direction), "status",
			      call_status_name(c->status));
	if (c->provider_call_id[0])
		json_object_set_new(f, "provider_call_id", json_string(c->provider_call_id));
	if (req_id && *req_id)
		json_object_set_new(f, "req_id", json_string(req_id));
	log_json(LOG_INFO, "call_created", f);
}

/* A caller ID is a number the tenant owns: its own agent's, or another agent's of the same
 * tenant; a number-scoped key may send only its own number. Anything else (another tenant's
 * agent, a number nobody here holds) is refused with one message, so the refusal does not
 * tell whether the number exists elsewhere. */
static enum cp_err from_check(struct call_service *svc, const struct scope *sc,
			      const struct agent *agent, const char *from, struct cp_error *err)
{
	if (!strcmp(from, agent->number))
		return CP_OK;
	struct agent owner;
	enum store_result rc = STORE_NOT_FOUND;
	if (!sc->number[0])
		rc = STORE(svc->st, agent_by_number, from, &owner);
	if (rc == STORE_OK && !strcmp(owner.tenant_id, agent->tenant_id))
		return CP_OK;
	if (rc != STORE_OK && rc != STORE_NOT_FOUND)
		return store_fail(err, rc, "agent");
	if (sc->number[0])
		return cp_fail(err, CP_ERR_FROM_NOT_ALLOWED, "from must be this key's number, %s",
			       sc->number);
	return cp_fail(err, CP_ERR_FROM_NOT_ALLOWED,
		       "from must be the number of one of the tenant's agents");
}

/* How a new call starts on the engine (dial, or wait for a browser); 0 if the engine took it. */
typedef int start_fn(struct call_service *svc, const struct call *c, void *arg);

/* Gives c (its plain fields set) its metadata (NULL: {}), stream URL and max-duration goodbye
 * from agent, stores it queued, and has the engine start it; a call the engine does not take
 * is recorded failed at once. On CP_OK the call is moved to out; c is cleared either way.
 * unstarted: the 500's message when even that could not be recorded. */
static enum cp_err store_and_start(struct call_service *svc, struct call *c,
				   const struct agent *agent, const char *metadata,
				   const char *stream_url, const char *req_id, start_fn *start,
				   void *arg, const char *unstarted, struct call *out,
				   struct cp_error *err)
{
	c->metadata = strdup(metadata ? metadata : "{}");
	if (!c->metadata || set_stream_url(c, stream_url) || set_max_duration_goodbye(c, agent)) {
		call_clear(c);
		return cp_fail(err, CP_ERR_INTERNAL, "out of memory");
	}
	enum store_result rc = STORE(svc->st, call_insert, c);
	if (rc != STORE_OK) {
		call_clear(c);
		return store_fail(err, rc, "agent %s", agent->id);
	}
	metrics_call_created(false);
	log_created(c, req_id);
	if (start(svc, c, arg) != 0) {
		struct call_update u = {.from_mask = CALL_BIT(CALL_QUEUED), .to = CALL_FAILED,
					.ended_at = cp_now_ms(), .end_reason = "failed"};
		struct writer w = direct(svc);
		if (transition(&w, c->id, &u, req_id, c) != STORE_OK) {
			call_clear(c);   /* stored queued, never started: say so rather than 201 */
			return cp_fail(err, CP_ERR_INTERNAL, "%s", unstarted);
		}
	}
	call_move(out, c);
	return CP_OK;
}

/* start_fn of a phone call: dialled by the engine, if there is one (else it stays queued). */
static int dial(struct call_service *svc, const struct call *c, void *arg)
{
	(void)arg;
	return svc->tel.ops ? svc->tel.ops->dial(svc->tel.engine, c) : 0;
}

enum cp_err call_create(struct call_service *svc, const struct scope *sc,
			const struct call_request *req, const char *req_id, struct call *out,
			struct cp_error *err)
{
	struct agent agent;
	enum cp_err e;
	/* first: another server takes it, whatever the request says */
	if (atomic_load(&svc->draining))
		return cp_fail(err, CP_ERR_UNAVAILABLE,
			       "this server is draining: it takes no new calls");
	if (!req->agent_id || !*req->agent_id)
		return cp_fail(err, CP_ERR_INVALID, "agent_id is required");
	if (!req->to || !call_address_valid(req->to))
		return cp_fail(err, CP_ERR_INVALID,
			       "to must be a sip: URI or an E.164 number of at most %d bytes",
			       CALL_ADDR_MAX);
	if (req->from && !cp_is_e164(req->from))
		return cp_fail(err, CP_ERR_INVALID,
			       "from must be an E.164 number: the number of one of the tenant's agents");
	if (req->max_duration_s < 0 || req->max_duration_s > 86400)
		return cp_fail(err, CP_ERR_INVALID, "max_duration_s must be an integer in 1..86400");
	if (!metadata_valid(req->metadata))
		return cp_fail(err, CP_ERR_INVALID,
			       "metadata must be a JSON object of at most %d bytes", CALL_METADATA_MAX);
	/* the message never repeats the URL: its query string may carry a secret */
	if (req->stream_url && !call_stream_url_valid(req->stream_url))
		return cp_fail(err, CP_ERR_INVALID,
			       "stream_url must be an absolute ws:// or wss:// URL with a host, at"
			       " most %d bytes, without spaces or control characters",
			       CALL_STREAM_URL_MAX);

	enum store_result rc = STORE(svc->st, agent_get, sc, req->agent_id, &agent);
	if (rc != STORE_OK)
		return store_fail(err, rc, "agent %s", req->agent_id);
	const char *from = req->from ? req->from : agent.number;
	if (!*from)
		return cp_fail(err, CP_ERR_INVALID, "from is required: the agent has no number");
	if ((e = from_check(svc, sc, &agent, from, err)) != CP_OK)
		return e;
	/* before anything is stored or sent: a refused destination makes no call */
	struct dial_policy policy;
	if ((rc = STORE(svc->st, tenant_dial, agent.tenant_id, &policy)) != STORE_OK)
		return store_fail(err, rc, "tenant %s", agent.tenant_id);
	if ((e = dial_check(&policy, sc->sip_uris, req->to, err)) != CP_OK)
		return e;

	struct call c = {0};
	if (cp_uuid4(c.id))
		return cp_fail(err, CP_ERR_INTERNAL, "no randomness");
	snprintf(c.tenant_id, sizeof c.tenant_id, "%s", agent.tenant_id);
	snprintf(c.agent_id, sizeof c.agent_id, "%s", agent.id);
	c.direction = CALL_OUTBOUND;
	c.status = CALL_QUEUED;
	snprintf(c.from, sizeof c.from, "%s", from);
	snprintf(c.to, sizeof c.to, "%s", req->to);
	c.max_duration_s = req->max_duration_s ? req->max_duration_s : agent.max_duration_s;
	/* the request's choice wins over the agent's */
	c.record = req->record == CALL_RECORD_AGENT ? agent.record : req->record == CALL_RECORD_YES;
	memcpy(c.trunk_id, agent.trunk_id, sizeof c.trunk_id);
	c.created_at = cp_now_ms();
	if (svc->tel.ops)
		svc->tel.ops->new_call_id(svc->tel.engine, c.provider_call_id,
					  sizeof c.provider_call_id);
	/* the request's URL wins over the agent's */
	return store_and_start(svc, &c, &agent, req->metadata,
			       req->stream_url ? req->stream_url : agent.stream_url, req_id, dial,
			       NULL, "the call could not be dialled", out, err);
}

/* ---- web calls -------------------------------------------------------------------------- */

/* The monotonic clock of web tokens, in ms. */
static int64_t token_now_ms(void)
{
	return cp_mono_us() / 1000;
}

/* start_fn of a web call: it waits for its browser for *(int *)join_ms. */
static int web_open(struct call_service *svc, const struct call *c, void *join_ms)
{
	return svc->tel.ops->web_open(svc->tel.engine, c, *(int *)join_ms);
}

enum cp_err call_web_create(struct call_service *svc, const struct scope *sc,
			    const struct web_call_request *req, const char *req_id, struct call *out,
			    struct web_call_access *access, struct cp_error *err)
{
	struct agent agent;
	if (!req->agent_id || !*req->agent_id)
		return cp_fail(err, CP_ERR_INVALID, "agent_id is required");
	if (!metadata_valid(req->metadata))
		return cp_fail(err, CP_ERR_INVALID,
			       "metadata must be a JSON object of at most %d bytes", CALL_METADATA_MAX);
	if (req->token_ttl_s < 0 || req->token_ttl_s > WEB_TOKEN_TTL_MAX_S)
		return cp_fail(err, CP_ERR_INVALID, "token_ttl_s must be an integer in 1..%d",
			       WEB_TOKEN_TTL_MAX_S);
	enum store_result rc = STORE(svc->st, agent_get, sc, req->agent_id, &agent);
	if (rc != STORE_OK)
		return store_fail(err, rc, "agent %s", req->agent_id);
	if (!svc->tel.ops || !svc->tel.ops->web_open)
		return cp_fail(err, CP_ERR_MEDIA_UNAVAILABLE,
			       "no media engine on this node (--sip none): web calls need one");

	int ttl_s = req->token_ttl_s ? req->token_ttl_s : WEB_TOKEN_TTL_DEFAULT_S;
	struct call c = {0};
	if (cp_uuid4(c.id) ||
	    web_token_issue(svc->tokens, c.id, token_now_ms(), (int64_t)ttl_s * 1000, access->token))
		return cp_fail(err, CP_ERR_INTERNAL, "no randomness");
	snprintf(c.tenant_id, sizeof c.tenant_id, "%s", agent.tenant_id);
	snprintf(c.agent_id, sizeof c.agent_id, "%s", agent.id);
	c.direction = CALL_WEB;
	c.status = CALL_QUEUED;
	c.max_duration_s = agent.max_duration_s;
	c.record = req->record == CALL_RECORD_AGENT ? agent.record : req->record == CALL_RECORD_YES;
	c.created_at = cp_now_ms();
	access->expires_at = c.created_at + (int64_t)ttl_s * 1000;
	int join_ms = ttl_s * 1000;
	return store_and_start(svc, &c, &agent, req->metadata, agent.stream_url, req_id, web_open,
			       &join_ms, "the web call could not be opened", out, err);
}

/* The check of a token, and its use with take; every refusal is one 401. */
static enum cp_err web_token(struct call_service *svc, const char *token, const char *call_id,
			     bool take, char out_call_id[CP_UUID_LEN + 1], struct cp_error *err)
{
	char id[CP_UUID_LEN + 1] = "";
	enum web_token_result r = web_token_check(svc->tokens, token, call_id, token_now_ms(), id);
	const char *why = web_token_result_name(r);
	if (r == WEB_TOKEN_OK) {
		/* a token outlives nothing: the call must still wait for its browser */
		struct call c = {0};
		if (STORE(svc->st, call_get, NULL, id, &c) != STORE_OK || c.status != CALL_QUEUED)
			why = "the call is not waiting for its browser";
		else if (take && web_token_take(svc->tokens, token, call_id, token_now_ms(), id) !=
				 WEB_TOKEN_OK)
			why = "used";            /* another take came first */
		else
			why = NULL;
		call_clear(&c);
	}
	if (why) {
		json_t *f = json_pack("{s:s, s:s}", "why", why, "use", take ? "join" : "page");
		if (call_id && cp_is_uuid(call_id))
			json_object_set_new(f, "call_id", json_string(call_id));
		log_json(LOG_INFO, "web_token_refused", f);
		return cp_fail(err, CP_ERR_UNAUTHORIZED,
			       "this call link is not valid: it expired, was used already, or its call"
			       " has ended");
	}
	if (out_call_id)
		snprintf(out_call_id, CP_UUID_LEN + 1, "%s", id);
	return CP_OK;
}

enum cp_err call_web_check(struct call_service *svc, const char *token, const char *call_id,
			   struct cp_error *err)
{
	return web_token(svc, token, call_id, false, NULL, err);
}

enum cp_err call_web_take(struct call_service *svc, const char *token, const char *call_id,
			  char out_call_id[CP_UUID_LEN + 1], struct cp_error *err)
{
	return web_token(svc, token, call_id, true, out_call_id, err);
}

void call_web_join(struct call_service *svc, const char *call_id, const struct web_socket *ws)
{
	if (svc->tel.ops && svc->tel.ops->web_join)
		svc->tel.ops->web_join(svc->tel.engine, call_id, ws);
	else
		ws->release(ws->ctx);
}

enum cp_err call_get(struct call_service *svc, const struct scope *sc, const char *id,
		     struct call *out, struct cp_error *err)
{
	return store_fail(err, STORE(svc->st, call_get, sc, id, out), "call");
}

enum cp_err call_list(struct call_service *svc, const struct scope *sc,
		      const struct call_filter *f, struct call **out, size_t *n,
		      struct cp_error *err)
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
		return cp_fail(err, CP_ERR_INTERNAL, "the call's recording could not be deleted; retry");
	return CP_OK;
}

enum cp_err call_recording_open(struct call_service *svc, const struct scope *sc,
				const char *id, int *fd, struct call *out_call,
				struct cp_error *err)
{
	struct call c = {0};
	enum cp_err e = call_get(svc, sc, id, &c, err);
	*fd = -1;
	if (e == CP_OK && !call_has_recording(&c))
		e = cp_fail(err, CP_ERR_NOT_FOUND, call_is_redacted(&c) ? "the call was redacted"
				: !c.record ? "the call was not recorded"
				: !c.answered_at ? "the call was never answered"
				: "the call is still up: its recording is served once it ends");
	if (e == CP_OK && svc->recordings_dir) {
		/* the writer finishes the file in the moments after the end: wait out what is left
		 * of that window, no more (a lost recording of an old call answers at once) */
		int64_t left = c.ended_at + RECORDING_FINISH_WAIT_MS - cp_now_ms();
		*fd = recording_open_read(svc->recordings_dir, c.id,
					  left < 0 ? 0 : left > RECORDING_FINISH_WAIT_MS
							 ? RECORDING_FINISH_WAIT_MS : (int)left);
	}
	if (e == CP_OK && *fd < 0 && svc->recordings_dir && errno != ENOENT) {
		log_msg(LOG_ERROR, "recording_unreadable", "call %s: %s", c.id, strerror(errno));
		e = cp_fail(err, CP_ERR_INTERNAL, "the call's recording could not be read");
	} else if (e == CP_OK && *fd < 0) {
		/* lost (the writer failed, logged as recording_failed) or kept elsewhere */
		e = cp_fail(err, CP_ERR_NOT_FOUND, "the call's recording file is missing");
	}
	if (out_call)
		call_move(out_call, &c);    /* empty when the key cannot see it */
	call_clear(&c);
	return e;
}

/* ---- dtmf ------------------------------------------------------------------------------- */

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
		e = cp_fail(err, CP_ERR_MEDIA_UNAVAILABLE, "no media engine on this node: digits"
			    " were not sent");
		goto out;
	}
	if (svc->tel.ops->send_dtmf(svc->tel.engine, &c, digits) != 0) {
		e = cp_fail(err, CP_ERR_MEDIA_UNAVAILABLE, "the call has no media session: digits"
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

/* ---- end -------------------------------------------------------------------------------- */

/* Where an end comes from, which decides how it waits and whom it joins. */
enum end_origin {
	END_API,             /* a route: the pacer's default wait; joins a goodbye under way */
	END_EMERGENCY,       /* call_end_all(): no wait bound; never waits for a goodbye */
	END_ENGINE,          /* the engine's max-duration goodbye: no wait bound; joins */
};

struct end_job {
	struct call_service *svc;
	char id[CP_UUID_LEN + 1];
	char reason[CALL_REASON_MAX + 1];
	char req_id[40];
	enum call_status seen;       /* status when the end was requested */
	int64_t t_start_us;          /* when the end was requested (monotonic) */
	int64_t wire_us;             /* request -> BYE/CANCEL handed to the transport */
	bool claimed;                /* the call's goodbye under way is this end */
	enum end_origin origin;
	enum metrics_dialect dialect;    /* of the API request; none for the engine's own */
	call_end_fn done;
	void *arg;
	/* the outcome, decided by end_apply() and told by end_finish() once it is durable */
	struct cp_error result;
	struct call call;
	bool has_call;
	int goodbye_ms;
};

static void end_result(struct end_job *job, enum cp_err code, const char *msg,
		       const struct call *c)
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
	struct goodbye_waiter *w = job->claimed ? goodbyes_release(job->svc->goodbyes, job->id) :
				   NULL;
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
		struct call_update u = {.from_mask = from, .to = to, .ended_at = cp_now_ms(),
					.end_reason = job->reason};
		struct cause why = {.req_id = job->req_id, .wire_us = job->wire_us,
				    .dialect = job->dialect};
		enum store_result rc = transition_logged(w, job->id, &u, &why, &c);
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

/* Decides (and records) the outcome of an engine's answer; end_finish() tells it. */
static void end_apply(struct writer *w, struct end_job *job, enum cp_err err,
		      enum hangup_kind kind)
{
	if (err == CP_OK) {
		end_record(w, job, kind);
	} else if (err == CP_ERR_NOT_ACTIVE) {
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
	struct job *j = calloc(1, sizeof *j);
	if (!j) {
		struct writer w = direct(end->svc);
		end_apply(&w, end, err, kind);
		end_finish(end);
		return;
	}
	j->type = JOB_HUNG_UP;
	j->end = end;
	j->err = err;
	j->kind = kind;
	post(end->svc, j);
}

/* The agent's --goodbye-text, a copy (the caller frees it); NULL when it has none. */
static char *agent_goodbye(struct call_service *svc, const struct call *c)
{
	struct scope sc = {0};
	snprintf(sc.tenant_id, sizeof sc.tenant_id, "%s", c->tenant_id);
	struct agent *agent = malloc(sizeof *agent);     /* two texts of 4 KiB: not on a stack */
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

static void end_call(struct call_service *svc, const struct scope *sc, const char *id,
		     const struct call_end_options *opt, const char *req_id,
		     enum end_origin origin, call_end_fn done, void *arg)
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
				     opt->has_max_wait ? opt->max_wait_ms : CALL_GOODBYE_WAIT_DEFAULT_MS,
				     wait_ms);
	} else if (svc->tel.ops) {
		svc->tel.ops->hangup(svc->tel.engine, &c, reason, wait_ms, NULL, end_hung_up, job);
	} else {
		struct writer w = direct(svc);
		end_record(&w, job, HANGUP_NONE);
		end_finish(job);
	}
out:
	free(agents);
	call_clear(&c);
}

void call_end(struct call_service *svc, const struct scope *sc, const char *id,
	      const char *reason, const char *req_id, call_end_fn done, void *arg)
{
	struct call_end_options opt = {.reason = reason};
	end_call(svc, sc, id, &opt, req_id, END_API, done, arg);
}

void call_end_with(struct call_service *svc, const struct scope *sc, const char *id,
		   const struct call_end_options *opt, const char *req_id, call_end_fn done,
		   void *arg)
{
	end_call(svc, sc, id, opt, req_id, END_API, done, arg);
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

/* The speaker's work: the goodbye the engine asked for (call_service_post_goodbye). */
static void speak(void *ctx, const char *call_id, const char *reason, const char *text)
{
	struct call_end_options opt = {.reason = reason, .goodbye_text = text};
	end_call(ctx, NULL, call_id, &opt, NULL, END_ENGINE, engine_end_done, NULL);
}

void call_service_post_goodbye(struct call_service *svc, const char *call_id,
			       const char *reason, const char *text)
{
	if (!svc->speaker) {
		speak(svc, call_id, reason, text);
		return;
	}
	if (speaker_post(svc->speaker, call_id, reason, text))
		log_msg(LOG_ERROR, "call_goodbye_lost", "out of memory for call %s's goodbye; the"
			" engine ends it without one", call_id);
}

/* ---- end all ---------------------------------------------------------------------------- */

struct end_all {
	pthread_mutex_t mu;
	size_t pending, ended, not_active, failed;
	bool dispatched;             /* every call_end() issued */
	call_end_all_fn done;
	void *arg;
};

static void end_all_finish_if_done(struct end_all *ea)
{
	/* called with ea->mu held; releases it */
	bool finished = ea->dispatched && ea->pending == 0;
	pthread_mutex_unlock(&ea->mu);
	if (!finished)
		return;
	struct cp_error ok = {.code = CP_OK};
	ea->done(ea->arg, &ok, ea->ended, ea->not_active, ea->failed);
	pthread_mutex_destroy(&ea->mu);
	free(ea);
}

static void end_all_one(void *arg, const struct cp_error *err, const struct call *c,
			int goodbye_ms)
{
	struct end_all *ea = arg;
	(void)c;
	(void)goodbye_ms;
	pthread_mutex_lock(&ea->mu);
	if (err->code == CP_OK)
		ea->ended++;
	else if (err->code == CP_ERR_NOT_ACTIVE)
		ea->not_active++;
	else
		ea->failed++;
	ea->pending--;
	end_all_finish_if_done(ea);
}

void call_end_all(struct call_service *svc, const struct scope *sc, const char *agent_id,
		  const char *reason, const char *req_id, call_end_all_fn done, void *arg)
{
	struct cp_error e = {0};
	if (reason && !call_reason_valid(reason)) {
		cp_fail(&e, CP_ERR_INVALID, "reason must be 1..%d characters of [A-Za-z0-9_.:-]",
			CALL_REASON_MAX);
		done(arg, &e, 0, 0, 0);
		return;
	}
	struct end_all *ea = calloc(1, sizeof *ea);
	if (!ea) {
		cp_fail(&e, CP_ERR_INTERNAL, "out of memory");
		done(arg, &e, 0, 0, 0);
		return;
	}
	pthread_mutex_init(&ea->mu, NULL);
	ea->done = done;
	ea->arg = arg;

	/* Walk the active calls page by page (newest first). Ending a call removes it from the
	 * active set, so the cursor (before_seq) keeps the walk from revisiting anything. */
	struct call_filter f = {.status_mask = CALL_ACTIVE_MASK, .agent_id = agent_id, .limit = 200};
	for (;;) {
		struct call *calls = NULL;
		size_t n = 0;
		if (STORE(svc->st, call_list, sc, &f, &calls, &n) != STORE_OK) {
			pthread_mutex_lock(&ea->mu);
			ea->failed++;
			pthread_mutex_unlock(&ea->mu);
			break;
		}
		for (size_t i = 0; i < n; i++) {
			pthread_mutex_lock(&ea->mu);
			ea->pending++;
			pthread_mutex_unlock(&ea->mu);
			struct call_end_options opt = {.reason = reason};
			end_call(svc, sc, calls[i].id, &opt, req_id, END_EMERGENCY, end_all_one, ea);
		}
		if (n)
			f.before_seq = calls[n - 1].seq;
		call_list_free(calls, n);
		if (n < (size_t)f.limit)
			break;
	}
	pthread_mutex_lock(&ea->mu);
	ea->dispatched = true;
	end_all_finish_if_done(ea);
}

/* ---- inbound ---------------------------------------------------------------------------- */

void call_service_inbound(struct call_service *svc, const struct inbound_call *in,
			  inbound_created_fn created, void *arg)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j) {
		created(arg, CP_ERR_INTERNAL, NULL);
		return;
	}
	j->type = JOB_INBOUND;
	snprintf(j->call_id, sizeof j->call_id, "%s", in->call_id ? in->call_id : "");
	snprintf(j->number, sizeof j->number, "%s", in->number);
	snprintf(j->from, sizeof j->from, "%s", in->from);
	snprintf(j->to, sizeof j->to, "%s", in->to);
	snprintf(j->provider_call_id, sizeof j->provider_call_id, "%s", in->provider_call_id);
	if (in->tenants && !(j->tenants = strdup(in->tenants))) {
		free(j);
		created(arg, CP_ERR_INTERNAL, NULL);
		return;
	}
	j->created = created;
	j->arg = arg;
	post(svc, j);
}

/* Stores an inbound call (apply phase); job_finish() tells the engine. */
static void inbound_create(struct writer *w, struct job *j)
{
	struct agent agent;
	struct call *c = &j->call;
	enum store_result rc = STORE(w->st, agent_by_number, j->number, &agent);
	if (rc != STORE_OK) {
		j->err = store_fail(NULL, rc, "agent %s", j->number);
		return;
	}
	if (j->tenants && !strstr(j->tenants, agent.tenant_id)) {
		/* the trunks that admitted the INVITE are other tenants': as if unknown */
		j->err = CP_ERR_NOT_FOUND;
		return;
	}
	if (j->call_id[0])
		snprintf(c->id, sizeof c->id, "%s", j->call_id);
	else if (cp_uuid4(c->id)) {
		j->err = CP_ERR_INTERNAL;
		return;
	}
	snprintf(c->tenant_id, sizeof c->tenant_id, "%s", agent.tenant_id);
	snprintf(c->agent_id, sizeof c->agent_id, "%s", agent.id);
	c->direction = CALL_INBOUND;
	c->status = CALL_QUEUED;
	snprintf(c->from, sizeof c->from, "%s", j->from);
	snprintf(c->to, sizeof c->to, "%s", j->to);
	snprintf(c->provider_call_id, sizeof c->provider_call_id, "%s", j->provider_call_id);
	c->max_duration_s = agent.max_duration_s;
	c->record = agent.record;
	c->created_at = cp_now_ms();
	c->metadata = strdup("{}");
	if (!c->metadata || set_stream_url(c, agent.stream_url) ||
	    set_max_duration_goodbye(c, &agent) || STORE(w->st, call_insert, c) != STORE_OK) {
		j->err = CP_ERR_INTERNAL;
		return;
	}
	log_created(c, NULL);
	j->err = CP_OK;
}

/* ---- worker ----------------------------------------------------------------------------- */

/* Phase 1, inside the batch's transaction: the store work. */
static void job_apply(struct writer *w, struct job *j)
{
	j->ended.set = false;    /* an earlier try of a batch that did not commit counts nothing */
	w->job = j;
	switch (j->type) {
	case JOB_EVENT:
		transition(w, j->call_id, &j->u, NULL, NULL);
		break;
	case JOB_HUNG_UP:
		end_apply(w, j->end, j->err, j->kind);
		break;
	case JOB_INBOUND:
		inbound_create(w, j);
		break;
	case JOB_DTMF:
		dtmf_record(w, j);
		break;
	case JOB_DIALOG:
		dialog_record(w, j);
		break;
	case JOB_TRUNK:
		trunk_record(w, j);
		break;
	}
}

/* Phase 2, once its store work is durable (run_batch re-applies a batch whose commit failed
 * job by job, so each job's own result is what stands): tell whoever waits. */
static void job_finish(struct job *j)
{
	if (j->ended.set)
		metrics_call_ended(call_status_name(j->ended.status), j->ended.reason,
				   j->ended.dialect);
	if (j->type == JOB_INBOUND && j->err == CP_OK)
		metrics_call_created(true);
	switch (j->type) {
	case JOB_EVENT:
	case JOB_DTMF:
	case JOB_TRUNK:
		break;
	case JOB_HUNG_UP:
		end_finish(j->end);
		break;
	case JOB_INBOUND:
		j->created(j->arg, j->err, j->err == CP_OK ? &j->call : NULL);
		break;
	case JOB_DIALOG:
		if (j->durable)
			j->durable(j->arg);
		break;
	}
	call_clear(&j->call);
	free(j->dialog);
	free(j->event_data);
	free(j->tenants);
	free(j);
}

static void run_job(struct call_service *svc, struct job *j)
{
	struct writer w = direct(svc);
	job_apply(&w, j);
	job_finish(j);
}

/* Applies a list of jobs as one group commit: one transaction, one fsync, then the replies. */
static void run_batch(struct call_service *svc, struct job *list)
{
	struct store batch;
	struct writer w = direct(svc);
	if (store_batch_begin(svc->st, &batch) == STORE_OK) {
		w.st = &batch;
		w.batched = true;
	}
	for (struct job *j = list; j; j = j->next)
		job_apply(&w, j);
	if (w.batched && store_batch_end(&batch, true) != STORE_OK) {
		/* nothing of the batch is durable: apply each job again on its own, so one bad
		 * write costs only its own job and no event is silently lost */
		log_msg(LOG_ERROR, "group_commit_failed", "re-applying the batch one by one");
		w = direct(svc);
		for (struct job *j = list; j; j = j->next) {
			call_clear(&j->call);
			job_apply(&w, j);
		}
	}
	if (w.event_pending && svc->on_event)
		svc->on_event(svc->on_event_arg);
	while (list) {
		struct job *next = list->next;
		job_finish(list);
		list = next;
	}
}

/* ---- recovery --------------------------------------------------------------------------- */

int call_service_recover(struct call_service *svc, bool include_queued)
{
	char (*ids)[CP_UUID_LEN + 1] = NULL;
	size_t n = 0;
	int ended = 0;
	struct writer w = direct(svc);
	if (STORE(svc->st, call_active_ids, &ids, &n) != STORE_OK)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct call c = {0};
		for (int attempt = 0; attempt < 4; attempt++) {
			if (STORE(svc->st, call_get, NULL, ids[i], &c) != STORE_OK ||
			    call_status_is_terminal(c.status) ||
			    (c.status == CALL_QUEUED && !include_queued))
				break;
			struct call_update u = {.from_mask = CALL_BIT(c.status),
						.to = call_end_status(c.status),
						.ended_at = cp_now_ms(), .end_reason = "node_restart"};
			if (transition(&w, ids[i], &u, NULL, NULL) == STORE_OK) {
				ended++;
				break;
			}
		}
		call_clear(&c);
	}
	free(ids);
	if (ended)
		log_json(LOG_WARN, "recovered", json_pack("{s:i}", "calls_ended", ended));
	return ended;
}

/* ---- dialogs left up by a previous run -------------------------------------------------- */

int call_service_left_dialogs(struct call_service *svc, struct left_dialog **out, size_t *n)
{
	struct dialog_row *rows = NULL;
	size_t count = 0;
	*out = NULL;
	*n = 0;
	if (STORE(svc->st, dialog_list, &rows, &count) != STORE_OK)
		return -1;
	if (!count)
		return 0;
	struct left_dialog *left = calloc(count, sizeof *left);
	if (!left) {
		dialog_rows_free(rows, count);
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		snprintf(left[i].call_id, sizeof left[i].call_id, "%s", rows[i].call_id);
		left[i].state = rows[i].state;    /* moved: the array owns it now */
		rows[i].state = NULL;
	}
	dialog_rows_free(rows, count);
	*out = left;
	*n = count;
	return 0;
}

int call_service_left_dialogs_done(struct call_service *svc, struct left_dialog *left, size_t n)
{
	struct writer w = direct(svc);
	int answered = 0;
	for (size_t i = 0; i < n; i++) {
		struct left_dialog *d = &left[i];
		if (d->request) {
			/* the request is one of ours, the status a number: no escaping needed */
			char extra[64], status[16] = "null";
			if (d->status > 0) {
				snprintf(status, sizeof status, "%d", d->status);
				answered++;
			}
			snprintf(extra, sizeof extra, "\"request\":\"%s\",\"sip_status\":%s",
				 d->request, status);
			uint32_t any = CALL_BIT(CALL_STATUS_COUNT) - 1;
			if (STORE(w.st, call_event, d->call_id, "call.restart_hangup", extra, any,
				  NULL) == STORE_OK)
				event_written(&w);
		}
		if (STORE(w.st, dialog_clear, d->call_id) != STORE_OK)
			log_msg(LOG_ERROR, "call_dialog_lost", "call %s: the dialog state could not be"
				" forgotten", d->call_id);
		free(d->state);
	}
	free(left);
	return answered;
}
