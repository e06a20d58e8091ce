/*
 * call_service.h - the canonical call service: every way of touching a call goes through here.
 *
 * HTTP routes (canonical and every vendor dialect) parse a request into these calls and render
 * what comes back; the telephony engine reports progress through call_service_post_event(). The
 * service enforces the rules (scope, validation, the state machine) and performs each state
 * change as one conditional store update, so a transition happens exactly once whoever races.
 * It is built from the files of src/call/service/, one concern each (service_internal.h lists
 * them).
 */
#ifndef CP_CALL_SERVICE_H
#define CP_CALL_SERVICE_H

#include "model/call.h"
#include "call/telephony.h"
#include "call/web_token.h"
#include "core/error.h"
#include "metrics/metrics.h"
#include "store/store.h"

struct call_service;

/* Whether a new call is recorded: as its agent says, or as the request says. */
enum call_record_choice { CALL_RECORD_AGENT = 0, CALL_RECORD_YES, CALL_RECORD_NO };

struct call_request {
	const char *agent_id;
	const char *to;
	const char *from;       /* NULL: the agent's number */
	const char *metadata;   /* JSON object text or NULL */
	int max_duration_s;     /* 0: the agent's default */
	const char *stream_url; /* NULL: the agent's (if any) */
	enum call_record_choice record;
};

struct call_service *call_service_create(struct store *st);
/* Starts the worker thread that applies engine events in order. Without it (unit tests) they
 * are applied on the caller's thread. */
int call_service_start(struct call_service *svc);
/* Drains the worker's queue and joins it. */
void call_service_stop(struct call_service *svc);
void call_service_destroy(struct call_service *svc);
/* Called (on the committing thread) after every transition whose outbox event committed:
 * wakes the webhook worker and the live event streams. Set before starting. */
void call_service_on_event(struct call_service *svc, void (*fn)(void *arg), void *arg);
/* Attaches (or with NULL detaches) the telephony engine. Without one, calls stay queued. */
void call_service_set_telephony(struct call_service *svc, const struct telephony *tel);

/* Draining (docs/OPERATIONS.md, "Drain"): from call_service_drain() on, the service takes no
 * new call (call_create: CP_ERR_UNAVAILABLE; the engine refuses INVITEs when
 * call_service_accepting() says no) while the calls it has go on. For ever: a drain ends with
 * the process. Any thread. */
void call_service_drain(struct call_service *svc);
bool call_service_accepting(const struct call_service *svc);
/* How many calls are live: active in the store (queued, ringing, in progress) when an engine
 * is attached; none without one (--sip none: nothing is on the wire, and queued calls stay
 * queued across restarts). A real read of the store. -1 on a store error. */
int call_service_live_calls(struct call_service *svc, size_t *n);

/* What /readyz and the service manager's watchdog see: each part checked for real. */
struct call_service_health {
	bool store_ok;  /* a read through the store's pool succeeded */
	bool engine_ok; /* the engine answered its ping in time (true with none) */
	bool has_engine;
	bool draining; /* call_service_drain() was called */
};
/* Checks the store (a read) and the engine (its ping, waited for at most engine_timeout_ms).
 * Any thread; blocks up to engine_timeout_ms. */
void call_service_health(struct call_service *svc, int engine_timeout_ms,
			 struct call_service_health *out);

/* Stores and dials a new call. CP_ERR_UNAVAILABLE while the service drains. */
enum cp_err call_create(struct call_service *svc, const struct scope *sc,
			const struct call_request *req, const char *req_id, struct call *out,
			struct cp_error *err);
enum cp_err call_get(struct call_service *svc, const struct scope *sc, const char *id,
		     struct call *out, struct cp_error *err);
enum cp_err call_list(struct call_service *svc, const struct scope *sc, const struct call_filter *f,
		      struct call **out, size_t *n, struct cp_error *err);
/* Drops from, to and metadata of an ended call, and deletes its recording. Repeatable.
 * CP_ERR_NOT_ACTIVE: the call is still active; CP_ERR_INTERNAL: the recording could not be
 * deleted (the rest is done; retry). */
enum cp_err call_redact(struct call_service *svc, const struct scope *sc, const char *id,
			const char *req_id, struct call *out, struct cp_error *err);

/* Where recordings are (a copy is kept; NULL: none are served or deleted). Set before the
 * service is used. */
int call_service_set_recordings(struct call_service *svc, const char *dir);

/* A call's recording, opened for reading: the caller owns fd (closes it). out_call (may be
 * NULL) receives the call whenever the key can see it, with or without a recording (it is
 * left empty otherwise). CP_ERR_NOT_FOUND when the key cannot see the call, or the call has
 * no recording: not recorded, never answered, not ended yet, redacted, or its file is gone.
 * May wait briefly for the file of a call that has just ended. */
enum cp_err call_recording_open(struct call_service *svc, const struct scope *sc, const char *id,
				int *fd, struct call *out_call, struct cp_error *err);

/* ---- web calls (docs/API.md, "Web calls") ---------------------------------------------- */

struct web_call_request {
	const char *agent_id;
	const char *metadata; /* JSON object text or NULL */
	enum call_record_choice record;
	int token_ttl_s; /* 0: WEB_TOKEN_TTL_DEFAULT_S */
};

/* What lets one browser join a web call. */
struct web_call_access {
	char token[WEB_TOKEN_LEN + 1];
	int64_t expires_at; /* ms since epoch */
};

/* Creates a web call: stored queued (direction web, no addresses), waiting for its browser
 * (the engine ends it no_answer, "token_expired", if none joins in time), and the access
 * token its browser joins with. CP_ERR_INVALID (agent_id missing, metadata not an object of
 * at most CALL_METADATA_MAX bytes, token_ttl_s not in 1..WEB_TOKEN_TTL_MAX_S),
 * CP_ERR_NOT_FOUND (an agent the key cannot see), CP_ERR_MEDIA_UNAVAILABLE (no engine that
 * carries web calls: nothing is stored). */
enum cp_err call_web_create(struct call_service *svc, const struct scope *sc,
			    const struct web_call_request *req, const char *req_id,
			    struct call *out, struct web_call_access *access, struct cp_error *err);
/* Whether token lets a browser open its call's page now: issued here, not expired, not used,
 * for call_id when that is not NULL, and its call still waits for its browser. CP_OK, or
 * CP_ERR_UNAUTHORIZED for any of those (the log says which). Uses nothing up. */
enum cp_err call_web_check(struct call_service *svc, const char *token, const char *call_id,
			   struct cp_error *err);
/* The same check, and on CP_OK the token is used: the call's id goes to out_call_id, and no
 * later check or take of the token passes. */
enum cp_err call_web_take(struct call_service *svc, const char *token, const char *call_id,
			  char out_call_id[CP_UUID_LEN + 1], struct cp_error *err);
/* The browser of call_id (a token taken) is connected: ws goes to the engine, which answers
 * the call; ws is released at once when there is no engine. */
void call_web_join(struct call_service *svc, const char *call_id, const struct web_socket *ws);

/* Sends DTMF digits to the far end of an answered call (RFC 4733, through the engine).
 * CP_ERR_INVALID: digits are not 1..CALL_DTMF_MAX of [0-9*#A-D]; CP_ERR_NOT_FOUND: not in the
 * scope; CP_ERR_NOT_IN_PROGRESS: the call is not in_progress (queued, ringing or ended);
 * CP_ERR_MEDIA_UNAVAILABLE: no engine, an engine without DTMF, or it could not take them.
 * On CP_OK the engine took the digits; out (may be NULL) receives the call. Nothing is
 * stored. */
enum cp_err call_send_dtmf(struct call_service *svc, const struct scope *sc, const char *id,
			   const char *digits, const char *req_id, struct call *out,
			   struct cp_error *err);

/* How an end went: done(arg, err, call, goodbye_ms) runs exactly once, possibly on another
 * thread, possibly before call_end_with() returns. On CP_OK `call` is the ended call; on
 * CP_ERR_NOT_ACTIVE the current one; otherwise NULL. err->message explains failures.
 * goodbye_ms: the audio played between the request and the BYE (a goodbye), 0 for an
 * immediate end. */
typedef void (*call_end_fn)(void *arg, const struct cp_error *err, const struct call *call,
			    int goodbye_ms);

/* What an end asks for: a reason, the narrower lookups some dialects need, a goodbye. */
struct call_end_options {
	const char *reason;   /* NULL: "ended_by_api" */
	const char *agent_id; /* non-NULL: the call must belong to this agent, else 404 */
	/* A goodbye (docs/API.md): the BYE of an answered call waits until the audio the agent
	 * queued before the request has been played (after_playout), then goodbye_text, spoken
	 * by callplane (1..CALL_GOODBYE_TEXT_MAX characters), or with agent_goodbye the agent's
	 * --goodbye-text when it has one (none: an immediate end); max_wait_ms
	 * (0..CALL_GOODBYE_WAIT_MAX_MS, only with after_playout or goodbye_text) bounds the wait
	 * when has_max_wait, else CALL_GOODBYE_WAIT_DEFAULT_MS does. A call not answered yet
	 * ends at once. Any end of a call (but call_end_all) while its goodbye is under way joins
	 * that goodbye: the same result, one transition, one BYE. */
	bool after_playout;
	const char *goodbye_text;
	bool agent_goodbye;
	bool has_max_wait;
	int max_wait_ms;
	/* The API dialect of the request, for the metrics of calls ended (0: canonical). */
	enum metrics_dialect dialect;
};
/* Ends a call: BYE if answered, CANCEL if ringing, straight to canceled if not dialled yet
 * (after its goodbye, when opt asks for one); done tells how it went. */
void call_end_with(struct call_service *svc, const struct scope *sc, const char *id,
		   const struct call_end_options *opt, const char *req_id, call_end_fn done,
		   void *arg);

/* Ends every active call in the scope (optionally one agent's): an emergency stop. It never
 * waits for a goodbye: one under way is cut short by an immediate BYE. done runs once all
 * hang-ups are recorded, with how many calls were ended, had already ended meanwhile, or could
 * not be hung up. */
typedef void (*call_end_all_fn)(void *arg, const struct cp_error *err, size_t ended,
				size_t not_active, size_t failed);
void call_end_all(struct call_service *svc, const struct scope *sc, const char *agent_id,
		  const char *reason, const char *req_id, call_end_all_fn done, void *arg);

/* Applies u as one conditional transition and logs it; returns the store result
 * (STORE_CONFLICT if the call had already moved on). Synchronous. */
enum store_result call_service_event(struct call_service *svc, const char *call_id,
				     const struct call_update *u, struct call *out);
/* Engine -> service: the same, queued to the worker so the engine never waits on the store.
 * Events are applied in the order they were posted. */
void call_service_post_event(struct call_service *svc, const char *call_id,
			     const struct call_update *u);

/* Engine -> service: what the engine needs to end call_id's dialog on the wire after a crash
 * (its own text; NULL forgets it: the dialog is over), kept durably by the worker. With u (may
 * be NULL), the transition u is applied in the same job, so both share one group commit: a
 * call recorded answered has its dialog kept. durable(arg) (may be NULL) runs on the worker
 * once the write is committed, or has failed: the engine acknowledges an answer only then.
 * Applied in order with the events posted before and after it. */
typedef void (*dialog_durable_fn)(void *arg);
void call_service_post_dialog(struct call_service *svc, const char *call_id,
			      const struct call_update *u, const char *state,
			      dialog_durable_fn durable, void *arg);

/* Engine -> service: end the call with reason after saying text (the max-duration goodbye
 * the call was created with): rendered off the engine's thread (the speaker, goodbye.h),
 * then hung up with a goodbye as call_end_with() does. A call no longer in progress is left
 * alone. */
void call_service_post_goodbye(struct call_service *svc, const char *call_id, const char *reason,
			       const char *text);

/* Engine -> service: the far end pressed a key (RFC 4733). Queued to the worker, which
 * writes a call.dtmf event (SSE and webhooks) and nothing else: the digit is not stored on
 * the call. digit is one of 0-9 * # A-D. */
void call_service_post_dtmf(struct call_service *svc, const char *call_id, char digit);

/* Engine -> service: a trunk's registration status changed (or was refreshed): queued to the
 * worker, which keeps it (trunk list shows it) and, when a registration is gained, lost or
 * regained, writes a trunk.registration event to the trunk's tenant (docs/API.md) whose data
 * is event_data (JSON text, copied; the engine renders it as trunk list shows the status). */
void call_service_post_trunk_status(struct call_service *svc, const struct trunk_status *s,
				    const char *event_data);

/* Engine -> service: an INVITE reached an agent's number. The worker stores the inbound call
 * (status queued) and calls created(arg, err, call) on its thread. */
struct inbound_call {
	const char *call_id; /* the id the call will have (chosen by the engine) */
	const char *number;  /* the agent number dialled */
	const char *from, *to;
	const char *provider_call_id;
	/* the tenants whose agents it may reach, comma-separated ids (those of the trunks that
	 * admitted it); NULL = any. Another tenant's number is answered CP_ERR_NOT_FOUND. */
	const char *tenants;
};
typedef void (*inbound_created_fn)(void *arg, enum cp_err err, const struct call *c);
void call_service_inbound(struct call_service *svc, const struct inbound_call *in,
			  inbound_created_fn created, void *arg);

/* At start-up, before the engine runs: calls a previous run left ringing or in progress have
 * no dialog any more; end them with end_reason "node_restart". Queued calls are ended too when
 * include_queued (a telephony engine runs: they may have been dialled); without an engine they
 * were never dialled and stay queued. Returns how many were ended, or -1. */
int call_service_recover(struct call_service *svc, bool include_queued);

/* At start-up, before the engine runs: the dialogs a previous run left up on the wire (an
 * array of *n in *out, NULL if none; the engine hangs them up as it starts). -1 on a store
 * error. */
int call_service_left_dialogs(struct call_service *svc, struct left_dialog **out, size_t *n);
/* Once the engine has tried them: records what each far end answered as a
 * call.restart_hangup event on its call ({"request", "sip_status"} beside "data"; sip_status
 * null when no answer came in time), forgets every dialog tried, and frees left. Returns how
 * many got a final answer. */
int call_service_left_dialogs_done(struct call_service *svc, struct left_dialog *left, size_t n);

#endif
