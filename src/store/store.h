/*
 * store.h - the persistence boundary. All SQL in callplane lives behind this interface.
 *
 * A backend is one struct of callbacks (struct store_backend), the way Janus documents its
 * transports: SQLite (sqlite/) is the embedded default; a PostgreSQL backend implements
 * the same struct later. Callers use the store_*() wrappers below and never see SQL.
 *
 * Contract every backend keeps:
 *   - every call is thread-safe; a write that returns STORE_OK is durable (on disk per the
 *     configured sync mode) before the function returns;
 *   - call_update() is a single conditional update: it applies only if the call's current
 *     status is in u->from_mask, so among concurrent updates of one call exactly one wins
 *     (the others get STORE_CONFLICT and the current row);
 *   - scoped reads (struct scope) never return rows of another tenant, or of another number
 *     for a number-scoped key: not found and not visible are indistinguishable.
 *
 * Call a backend through STORE(st, fn, args...), e.g. STORE(st, call_get, &sc, id, &call).
 */
#ifndef CP_STORE_H
#define CP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/call.h"
#include "core/error.h"
#include "core/util.h"

enum store_result {
	STORE_OK = 0,
	STORE_NOT_FOUND = 1,
	STORE_CONFLICT = 2, /* condition failed / unique key taken */
	STORE_ERROR = -1,
};

#define STORE_NUMBER_MAX 16 /* "+" and up to 15 digits */
#define STORE_NAME_MAX 128

#define DIAL_HOSTS_MAX 255    /* "none", "any" or HOST[,HOST...] (call/dial.h) */
#define DIAL_PREFIXES_MAX 255 /* +DIGITS[,+DIGITS...] */

/* What an API key may see: a tenant, optionally narrowed to one agent number, or, for an
 * operator key, every tenant (all: tenant_id and number are then "" and ignored); and what
 * it may dial beyond its tenant's dial policy. */
struct scope {
	char tenant_id[CP_UUID_LEN + 1];
	char number[STORE_NUMBER_MAX + 1]; /* "" = tenant-wide */
	bool all;                          /* an operator's: every tenant */
	char sip_uris[DIAL_HOSTS_MAX + 1]; /* the key's narrowing of the tenant's sip: policy;
					      * "" = none (the tenant's alone) */
};

/* What a tenant's keys may dial (call/dial.c has the rules). */
struct dial_policy {
	char sip_uris[DIAL_HOSTS_MAX + 1];          /* "none" (or ""), "any", or HOST[,HOST...] */
	char allow_prefixes[DIAL_PREFIXES_MAX + 1]; /* "" = every E.164 number */
	char deny_prefixes[DIAL_PREFIXES_MAX + 1];  /* "" = none */
};

struct tenant {
	char id[CP_UUID_LEN + 1];
	char name[STORE_NAME_MAX + 1];
	int64_t created_at;
	struct dial_policy dial;
};

struct agent {
	char id[CP_UUID_LEN + 1];
	char tenant_id[CP_UUID_LEN + 1];
	char name[STORE_NAME_MAX + 1];
	char number[STORE_NUMBER_MAX + 1]; /* "" = none */
	int max_duration_s;                /* 0 = none */
	int64_t created_at;
	char stream_url[CALL_STREAM_URL_MAX +
			1]; /* "" = none; validated by call_stream_url_valid */
	bool record;        /* its calls are recorded unless a call says no */
	/* what callplane says before the BYE of a vendor dialect's end, and of a max_duration
	 * end; "" = none (an immediate end); validated by call_goodbye_text_valid */
	char goodbye_text[CALL_GOODBYE_TEXT_BYTES + 1];
	char max_duration_goodbye[CALL_GOODBYE_TEXT_BYTES + 1];
	char trunk_id[CP_UUID_LEN + 1]; /* its calls to numbers go through it; "" = the
					      * server's default trunk (--trunk) */
};

#define TRUNK_HOST_MAX 253 /* a host name or an IP address */
#define TRUNK_TEXT_MAX 128 /* user names, an environment variable's name */
#define TRUNK_PATH_MAX 1024
#define TRUNK_URI_MAX 256
#define TRUNK_CIDRS_MAX 1024   /* the inbound CIDR list, as text */
#define TRUNK_HEADERS_MAX 2048 /* the extra INVITE headers, as text */

/* A trunk's registration as the serving process last reported it (trunk_status_put). */
struct trunk_status {
	char trunk_id[CP_UUID_LEN + 1];
	char tenant_id[CP_UUID_LEN + 1]; /* the trunk's: its event goes to that tenant */
	char status[16];                 /* registering | registered | failed | unregistered;
					      * "" = never reported */
	int sip_status;                  /* the last final answer to its REGISTER; 0 = none */
	char reason[128];                /* why it failed; "" = none */
	int64_t expires_at;              /* registered: when the registrar forgets it; 0 */
	int64_t updated_at;
};

/* A carrier or PBX a tenant reaches numbers through (and is reached from). The password is
 * never stored: only where the server finds it (an environment variable, or a file), read
 * when it loads the trunk. */
struct trunk {
	char id[CP_UUID_LEN + 1];
	char tenant_id[CP_UUID_LEN + 1];
	char host[TRUNK_HOST_MAX + 1];
	int port;                                /* 0 = the transport's default */
	char transport[4];                       /* udp | tcp | tls */
	char user[TRUNK_TEXT_MAX + 1];           /* digest user; "" = no credentials */
	char password_env[TRUNK_TEXT_MAX + 1];   /* "" = none */
	char password_file[TRUNK_PATH_MAX + 1];  /* "" = none */
	bool do_register;                        /* REGISTER with the host (its registrar) */
	char outbound_proxy[TRUNK_URI_MAX + 1];  /* "sip:..." every request goes through; "" */
	char from_user[TRUNK_TEXT_MAX + 1];      /* the From user of our INVITEs; "" = the caller */
	char from_domain[TRUNK_HOST_MAX + 1];    /* the From host; "" = the trunk's host */
	char caller_id_header[8];                /* pai | rpid | none */
	char srtp[9];                            /* off | optional | required (docs/CARRIERS.md) */
	char inbound_cidrs[TRUNK_CIDRS_MAX + 1]; /* "CIDR,CIDR..."; "" = none */
	char headers[TRUNK_HEADERS_MAX + 1];     /* "Name: value" lines joined by CRLF; "" */
	int64_t created_at;
	struct trunk_status reg; /* trunk_get/trunk_list: the last one reported */
};

struct api_key {
	char id[CP_UUID_LEN + 1];
	char tenant_id[CP_UUID_LEN + 1];   /* "" for an operator key */
	char number[STORE_NUMBER_MAX + 1]; /* "" = tenant-scoped */
	bool is_operator;                  /* bound to no tenant: sees every tenant */
	char hash[CP_SHA256_HEX_LEN + 1];  /* SHA-256 of the secret; the secret is never stored */
	char prefix[16];                   /* first characters of the secret, for listings */
	int64_t created_at, revoked_at;    /* revoked_at 0 = live */
	unsigned rate_limit;               /* requests per second; 0 = the server's default */
	char sip_uris[DIAL_HOSTS_MAX + 1]; /* narrows the tenant's sip: policy; "" = does not */
};

/* One conditional step of a call. Fields left 0/NULL keep their stored value. */
struct call_update {
	uint32_t from_mask; /* apply only if status is in this mask */
	enum call_status to;
	const char *event; /* outbox event type ("call.ended"), NULL = none:
						written in the same transaction as the step */
	int64_t answered_at, ended_at;
	const char *end_reason;
	int sip_status;
	const char *provider_call_id;
};

struct call_filter {
	uint32_t status_mask; /* 0 = any */
	const char *agent_id; /* NULL = any */
	int64_t before_seq;   /* 0 = from the newest */
	/* non-zero: only calls newer than this one, listed oldest first (paging backwards);
	 * before_seq must then be 0 */
	int64_t after_seq;
	int limit;
};

/* A stored idempotent request. status 0 = still being processed. */
struct idem_record {
	char request_hash[CP_SHA256_HEX_LEN + 1];
	unsigned status;
	char *body; /* heap, may be NULL */
	int64_t created_at;
};

#define WEBHOOK_URL_MAX 1024
#define WEBHOOK_SECRET_MAX 128

struct webhook {
	char id[CP_UUID_LEN + 1];
	char tenant_id[CP_UUID_LEN + 1];
	char agent_id[CP_UUID_LEN + 1]; /* "" = every agent of the tenant */
	char url[WEBHOOK_URL_MAX + 1];
	char secret[WEBHOOK_SECRET_MAX + 1];
	char format[16];  /* canonical | talkover | pilotstatus */
	char signing[16]; /* callplane | standard; "" is stored as callplane */
	int64_t created_at;
};

/* What the webhook worker does with a due delivery that delivery_lease() offers it. */
enum delivery_pick {
	DELIVERY_LEAVE = 0, /* not now: it stays due */
	DELIVERY_TAKE,      /* leased until lease_until: the worker attempts it */
	DELIVERY_HOLD,      /* next attempt moved to hold_until, none counted */
	DELIVERY_GIVE_UP,   /* failed without an attempt */
	DELIVERY_GONE,      /* set by the store: a TAKE it could not lease */
};

/* A due delivery offered to the webhook worker, with what it needs to send it. */
struct delivery {
	int64_t id;
	char event_id[CP_UUID_LEN + 1];
	char type[32];
	char *payload; /* canonical event JSON, heap */
	char webhook_id[CP_UUID_LEN + 1];
	char tenant_id[CP_UUID_LEN + 1];
	char url[WEBHOOK_URL_MAX + 1];
	char secret[WEBHOOK_SECRET_MAX + 1];
	char format[16];
	char signing[16]; /* callplane | standard */
	int attempts;     /* before this one */
	int64_t created_at;
	/* set by the picker */
	enum delivery_pick pick;
	int64_t hold_until; /* DELIVERY_HOLD */
	const char *why;    /* DELIVERY_GIVE_UP: last_error if it has none */
};

/* Decides each of n offered deliveries (sets pick, and hold_until or why). */
typedef void delivery_picker(void *arg, struct delivery *d, size_t n);

/* A delivery as an operator lists it. */
struct delivery_row {
	int64_t id;
	char event_id[CP_UUID_LEN + 1];
	char event_type[32];
	char call_id[CP_UUID_LEN + 1];
	char webhook_id[CP_UUID_LEN + 1];
	char status[16]; /* pending | delivered | failed */
	int attempts;
	int64_t next_attempt_at, created_at;
	int64_t delivered_at; /* 0 = not delivered */
	int last_status;      /* HTTP status of the last attempt; 0 = none */
	char *last_error;     /* heap; NULL = no attempt recorded yet */
};

/* An outbox event, for the live stream. */
struct stored_event {
	int64_t seq;
	char type[32];
	char *payload; /* heap */
};

/* What the telephony engine keeps about a call's dialog so that a later run can end it on the
 * wire: its own text, which the store never reads. */
struct dialog_row {
	char call_id[CP_UUID_LEN + 1];
	char *state; /* heap */
};

struct store_options {
	bool sync_full; /* synchronous=FULL (default) vs NORMAL */
	/* The serving process: takes the database's server lock (a second server fails to open)
	 * and, being then the only writer of calls, caches call rows. The admin CLI opens
	 * without it. */
	bool server;
};

struct store_backend {
	enum store_result (*open)(const char *location, const struct store_options *opt,
				  void **ctx);
	void (*close)(void *ctx);

	enum store_result (*tenant_create)(void *ctx, const struct tenant *t);
	enum store_result (*tenant_exists)(void *ctx, const char *id);
	/* The tenant's dial policy; STORE_NOT_FOUND for an unknown tenant. */
	enum store_result (*tenant_dial)(void *ctx, const char *id, struct dial_policy *out);
	/* Sets each part of the policy given (NULL keeps it); STORE_NOT_FOUND for an unknown
	 * tenant. */
	enum store_result (*tenant_set_dial)(void *ctx, const char *id, const char *sip_uris,
					     const char *allow_prefixes, const char *deny_prefixes);
	/* STORE_NOT_FOUND for an unknown tenant. */
	enum store_result (*tenant_set_name)(void *ctx, const char *id, const char *name);
	/* Listings hand back a heap array of rows (*out, free() it; NULL when empty) and its
	 * length, oldest first unless said otherwise. tenant_id NULL = every tenant. */
	enum store_result (*tenant_list)(void *ctx, struct tenant **out, size_t *n);

	enum store_result (*agent_create)(void *ctx, const struct agent *a);
	enum store_result (*agent_get)(void *ctx, const struct scope *sc, const char *id,
				       struct agent *out);
	enum store_result (*agent_by_number)(void *ctx, const char *number, struct agent *out);
	enum store_result (*agent_list)(void *ctx, const char *tenant_id, struct agent **out,
					size_t *n);
	/* url NULL or "" clears it. STORE_NOT_FOUND for an unknown agent. */
	enum store_result (*agent_set_stream_url)(void *ctx, const char *id, const char *url);
	/* STORE_NOT_FOUND for an unknown agent. */
	enum store_result (*agent_set_record)(void *ctx, const char *id, bool record);
	/* Each text NULL keeps it, "" clears it. STORE_NOT_FOUND for an unknown agent. */
	enum store_result (*agent_set_goodbye)(void *ctx, const char *id, const char *goodbye_text,
					       const char *max_duration_goodbye);
	/* trunk_id "" clears it. STORE_NOT_FOUND for an unknown agent, or a trunk that is not
	 * one of the agent's tenant's (agent_create likewise refuses such a trunk_id). */
	enum store_result (*agent_set_trunk)(void *ctx, const char *id, const char *trunk_id);

	/* Trunks. tenant_id NULL = any tenant (the admin CLI, the server). create: STORE_NOT_FOUND
	 * for an unknown tenant. delete: STORE_CONFLICT while an agent uses it; its status goes
	 * with it. get and list fill in each trunk's reg. */
	enum store_result (*trunk_create)(void *ctx, const struct trunk *t);
	enum store_result (*trunk_get)(void *ctx, const char *tenant_id, const char *id,
				       struct trunk *out);
	enum store_result (*trunk_list)(void *ctx, const char *tenant_id, struct trunk **out,
					size_t *n);
	enum store_result (*trunk_delete)(void *ctx, const char *tenant_id, const char *id);
	/* A number that changes whenever a trunk is created, changed or deleted, by any
	 * process: the server polls it to reload its trunks. */
	enum store_result (*trunk_generation)(void *ctx, int64_t *out);
	/* Keeps s as its trunk's registration status. When s->status is registered or failed
	 * and is not what the last trunk.registration event said, writes that event too, in
	 * the same transaction: {"id","type","created_at","data": event_data} to the trunk's
	 * tenant (canonical webhooks of the whole tenant, the tenant's live streams), and sets
	 * *evented. STORE_NOT_FOUND for a trunk that no longer exists. */
	enum store_result (*trunk_status_put)(void *ctx, const struct trunk_status *s,
					      const char *event_data, bool *evented);

	enum store_result (*key_create)(void *ctx, const struct api_key *k);
	enum store_result (*key_by_hash)(void *ctx, const char *hash, struct api_key *out);
	/* Without their hashes. */
	enum store_result (*key_list)(void *ctx, const char *tenant_id, struct api_key **out,
				      size_t *n);
	enum store_result (*key_revoke)(void *ctx, const char *id, int64_t now);

	enum store_result (*call_insert)(void *ctx, struct call *c); /* sets c->seq */
	/* By call id or provider call id, within the scope (sc NULL = unscoped, for the engine). */
	enum store_result (*call_get)(void *ctx, const struct scope *sc, const char *id,
				      struct call *out);
	enum store_result (*call_list)(void *ctx, const struct scope *sc,
				       const struct call_filter *f, struct call **out, size_t *n);
	/* out (may be NULL) receives the row after the update, or the current row on CONFLICT;
	 * prev (may be NULL) receives the status the update moved the call from. */
	enum store_result (*call_update)(void *ctx, const char *id, const struct call_update *u,
					 struct call *out, enum call_status *prev);
	enum store_result (*call_redact)(void *ctx, const char *id, int64_t now, struct call *out);
	/* Writes an outbox event about a call without changing it (call.dtmf), if the call's
	 * status is in status_mask: STORE_OK; else STORE_CONFLICT; STORE_NOT_FOUND for an unknown
	 * call id. extra: JSON object members put in the envelope beside "data" (e.g.
	 * "\"digit\":\"5\""; "" none), already escaped. out (may be NULL) receives the row.
	 * Events that are not transitions go to webhooks of the canonical format only: the
	 * vendor formats have no such events. */
	enum store_result (*call_event)(void *ctx, const char *id, const char *type,
					const char *extra, uint32_t status_mask, struct call *out);
	/* Ids of every active call (for restart recovery). */
	enum store_result (*call_active_ids)(void *ctx, char (**ids)[CP_UUID_LEN + 1], size_t *n);
	/* How many calls are in each active status (counts[CALL_QUEUED], [CALL_RINGING],
	 * [CALL_IN_PROGRESS]; the other entries are set to 0), for the metrics. */
	enum store_result (*call_count_active)(void *ctx, int64_t counts[CALL_STATUS_COUNT]);

	/* The engine's dialog state of a call (struct dialog_row): put keeps state for call_id,
	 * replacing what was kept; clear forgets it (STORE_OK also when nothing was kept); list
	 * hands back every one kept, oldest first (free the rows with dialog_rows_free()). Rows
	 * live from a call's answer (or first ring) until its dialog is over on the wire, so the
	 * ones a start-up finds are the dialogs a previous run left up. */
	enum store_result (*dialog_put)(void *ctx, const char *call_id, const char *state,
					int64_t now);
	enum store_result (*dialog_clear)(void *ctx, const char *call_id);
	enum store_result (*dialog_list)(void *ctx, struct dialog_row **out, size_t *n);

	/* Claims (key_id, idem_key) for a request: STORE_OK if claimed now, STORE_CONFLICT with
	 * *existing filled if a live record exists (records older than expire_before are replaced). */
	enum store_result (*idem_claim)(void *ctx, const char *key_id, const char *idem_key,
					const char *hash, int64_t now, int64_t expire_before,
					struct idem_record *existing);
	enum store_result (*idem_complete)(void *ctx, const char *key_id, const char *idem_key,
					   unsigned status, const char *body);
	enum store_result (*idem_release)(void *ctx, const char *key_id, const char *idem_key);
	enum store_result (*idem_purge)(void *ctx, int64_t expire_before);

	/* STORE_CONFLICT when the tenant already has max_per_tenant webhooks; STORE_NOT_FOUND
	 * for an unknown tenant. The count and the insert are one statement: concurrent creations
	 * (the API, the CLI in another process) never pass the cap together. */
	enum store_result (*webhook_create)(void *ctx, const struct webhook *w, int max_per_tenant);
	/* Without their secrets. */
	enum store_result (*webhook_list)(void *ctx, const char *tenant_id, struct webhook **out,
					  size_t *n);
	/* tenant_id NULL = any tenant (admin CLI). Pending deliveries of it are dropped. */
	/* Sets w's agent_id ("" = every agent), url, format, signing, and its secret unless ""
	 * (kept), where id and tenant_id are w's; STORE_NOT_FOUND when none is. */
	enum store_result (*webhook_update)(void *ctx, const struct webhook *w);
	enum store_result (*webhook_delete)(void *ctx, const char *tenant_id, const char *id);

	/* Offers up to max due deliveries (pending, next attempt <= now) to pick(), fairest
	 * first: every tenant's oldest due delivery before any tenant's second, each tenant's in
	 * the order they fell due. Then applies what pick() decided, in one transaction and only
	 * to deliveries still due: TAKE leases until lease_until (so a crash mid-delivery only
	 * delays it), HOLD moves the next attempt, GIVE_UP fails it (keeping its last error, else
	 * `why`), LEAVE nothing. A TAKE that could not be leased (its webhook was deleted since
	 * the offer; every TAKE, on STORE_ERROR) comes back as GONE. pick() runs outside any
	 * transaction. *out receives the offered deliveries with their picks, on STORE_ERROR too
	 * once pick() ran (free with delivery_list_free()). */
	enum store_result (*delivery_lease)(void *ctx, int64_t now, int64_t lease_until, int max,
					    delivery_picker *pick, void *arg, struct delivery **out,
					    size_t *n);
	/* Makes leased deliveries due at next_at again without counting an attempt (attempts
	 * abandoned at shutdown); those no longer pending are left alone. One transaction. */
	enum store_result (*delivery_release)(void *ctx, const int64_t *ids, size_t n,
					      int64_t next_at);
	/* Makes every leased delivery due at now, without counting an attempt: at start-up the
	 * leases in the database are a dead run's (one server per database), whose attempts
	 * never ended. */
	enum store_result (*delivery_release_leased)(void *ctx, int64_t now);
	/* Records an attempt: status "delivered", "pending" (retry at next_at) or "failed". */
	enum store_result (*delivery_record)(void *ctx, int64_t id, const char *status,
					     int64_t next_at, int http_status, const char *error,
					     int64_t now);
	/* The backlog, for the metrics: deliveries pending, and of those the ones due at now. */
	enum store_result (*delivery_backlog)(void *ctx, int64_t now, int64_t *pending,
					      int64_t *due);
	/* status NULL = pending and failed; newest first, at most limit. Free the rows with
	 * delivery_rows_free(). */
	enum store_result (*delivery_list)(void *ctx, const char *tenant_id, const char *status,
					   int limit, struct delivery_row **out, size_t *n);
	/* Makes a failed delivery (id > 0) or every failed one (id 0) pending again, due now. */
	enum store_result (*delivery_replay)(void *ctx, const char *tenant_id, int64_t id,
					     int64_t now, int *count);

	/* Events after after_seq that the scope may see, oldest first. */
	enum store_result (*events_since)(void *ctx, const struct scope *sc, int64_t after_seq,
					  int limit, struct stored_event **out, size_t *n);
	/* The newest event's sequence number (0 if none). */
	enum store_result (*events_last_seq)(void *ctx, int64_t *out);

	/* Group commit: batch_begin() opens a batch and hands back *batch, a context for these
	 * same callbacks. Operations through it share one transaction, and nothing of it is
	 * durable before batch_end(batch, commit) returns STORE_OK. If a step failed half-way
	 * the batch is rolled back and batch_end() says STORE_ERROR: re-apply the steps one by
	 * one. Writes through ctx wait meanwhile, so the batch's owner uses only the batch until
	 * it ends it (a write of its own through ctx would wait for itself); batch_begin() on a
	 * batch is STORE_ERROR. Use through store_batch_begin/end(). */
	enum store_result (*batch_begin)(void *ctx, void **batch);
	enum store_result (*batch_end)(void *batch, bool commit);
};

struct store {
	const struct store_backend *be;
	void *ctx;
};

#define STORE(st, fn, ...) ((st)->be->fn((st)->ctx __VA_OPT__(, ) __VA_ARGS__))

extern const struct store_backend store_sqlite_backend;

/* Opens the backend for a location (a file path: SQLite). NULL on failure (logged). */
struct store *store_open(const char *location, const struct store_options *opt);
void store_close(struct store *st);

/* Opens a group commit on st (see batch_begin above): on STORE_OK, *batch is a store whose
 * operations share one transaction until store_batch_end(batch) ends it, committed or rolled
 * back. STORE_ERROR also when the backend has no batches: then use st itself. */
enum store_result store_batch_begin(struct store *st, struct store *batch);
enum store_result store_batch_end(struct store *batch, bool commit);

/* The caller's error for a store result, the one place a store result becomes a cp_err:
 * CP_OK for STORE_OK; CP_ERR_NOT_FOUND, "<what> not found", for STORE_NOT_FOUND (what: a
 * printf format naming the thing, as "agent %s"); CP_ERR_INTERNAL, "store error", for the
 * rest (a conflict the caller did not handle is a write the store should have taken).
 * Fills *e (may be NULL) and returns the code, as cp_fail() does. A caller with its own words
 * for a result (a CLI's "no such agent: ...") tests for it first. */
enum cp_err store_fail(struct cp_error *e, enum store_result rc, const char *what, ...)
	__attribute__((format(printf, 3, 4)));

void call_list_free(struct call *calls, size_t n);
void delivery_list_free(struct delivery *d, size_t n);
void delivery_rows_free(struct delivery_row *d, size_t n);
void event_list_free(struct stored_event *e, size_t n);
void dialog_rows_free(struct dialog_row *d, size_t n);
void idem_record_clear(struct idem_record *r);

#endif
