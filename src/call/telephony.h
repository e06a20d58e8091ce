/*
 * telephony.h - the boundary between the call service and a telephony engine (SIP today).
 *
 * The call service owns call *state* (in the store); the engine owns *dialogs* (on the wire).
 * Service -> engine goes through this struct of callbacks; engine -> service goes through
 * call_service_post_event() and call_service_inbound() in call_service.h, which only enqueue:
 * the engine's thread never waits on the store. Neither side reaches into the other's data.
 */
#ifndef CP_TELEPHONY_H
#define CP_TELEPHONY_H

#include <stddef.h>
#include <stdint.h>

#include "model/call.h"
#include "core/error.h"

/* How a hang-up left the wire: a BYE on an answered dialog, a CANCEL of a ringing one, or
 * nothing at all because no dialog existed (a call that was never dialled). */
enum hangup_kind { HANGUP_BYE, HANGUP_CANCEL, HANGUP_NONE };

/* Called exactly once per hangup(), from the engine's thread:
 *   CP_OK                 the BYE/CANCEL was handed to the transport (kind says which);
 *   CP_ERR_NOT_ACTIVE     the dialog is already ending or gone (another end cut a goodbye);
 *   CP_ERR_UNDELIVERABLE  the engine could not take the request; nothing changed.
 * goodbye_ms: the audio played to the far end between the request and the BYE (a goodbye);
 * 0 for an end without one. */
typedef void (*hangup_done_fn)(void *arg, enum cp_err err, enum hangup_kind kind, int goodbye_ms);

/* A goodbye: what an answered call plays before its BYE. The BYE goes out once everything the
 * agent queued before the request and then `audio` have been played, or after max_wait_ms,
 * whichever comes first. A call without media (not answered, no media session) gets its BYE or
 * CANCEL at once. */
struct hangup_goodbye {
	const uint8_t *audio; /* 8 kHz mu-law to say after the queued audio (copied by the
				      * engine); NULL/0: none, the BYE follows the queued audio */
	size_t len;
	int max_wait_ms; /* 0..CALL_GOODBYE_WAIT_MAX_MS */
};

/* A dialog a previous run left up on the wire (its far end may still be in the call), as that
 * run's engine described it (its own text, which the call service keeps without reading).
 * The engine of the next run fills in what it sent and what the far end answered. */
struct left_dialog {
	char call_id[CP_UUID_LEN + 1];
	char *state;         /* heap, owned by the array (call_service_left_dialogs) */
	const char *request; /* "BYE" or "CANCEL"; NULL: nothing could be sent */
	int status;          /* the far end's final answer; 0: none came in time */
};

/* A browser's WebSocket, upgraded by the HTTP server for a web call: that call's far end.
 * Whoever holds it never close()s fd: release(ctx), called exactly once by the last holder
 * (from any thread), gives it back to the HTTP server, which closes it. */
struct web_socket {
	int fd;
	const uint8_t *pending; /* bytes read past the handshake, to be read before fd */
	size_t pending_len;
	void (*release)(void *ctx);
	void *ctx;
};

struct telephony_ops {
	/* Writes the provider call id (SIP Call-ID) a new outbound call will use, so the call is
	 * stored with it before anything goes on the wire. */
	void (*new_call_id)(void *engine, char *buf, size_t size);
	/* Starts dialling a call stored as queued. 0 if the engine took the job. */
	int (*dial)(void *engine, const struct call *c);
	/* Hangs up a call; reason goes into an RFC 3326 Reason header. wait_ms bounds how long
	 * the request may wait for its turn before it is answered CP_ERR_UNDELIVERABLE:
	 * -1 = the engine's default (API ends), 0 = no bound (an emergency stop of every call).
	 * goodbye (NULL = none) delays the BYE as struct hangup_goodbye says; done() comes when
	 * the BYE is on the wire. A hang-up without a goodbye that meets a goodbye under way
	 * cuts it: its BYE goes out now, and the goodbye's hang-up is answered
	 * CP_ERR_NOT_ACTIVE. */
	void (*hangup)(void *engine, const struct call *c, const char *reason, int wait_ms,
		       const struct hangup_goodbye *goodbye, hangup_done_fn done, void *arg);
	/* Sends RFC 4733 digits ([0-9*#A-D], already validated) to the far end of an answered
	 * call; they play out one after another. 0 if the engine took them, -1 if it cannot
	 * (no media session: the call is not up). */
	int (*send_dtmf)(void *engine, const struct call *c, const char *digits);
	/* A web call stored queued waits for its browser; nobody joined within join_ms, the
	 * engine ends it no_answer ("token_expired"). 0 if the engine took it. */
	int (*web_open)(void *engine, const struct call *c, int join_ms);
	/* The browser of web call call_id connected: ws is the call's far end from now on, the
	 * engine's (released once, also when it cannot take it: the call ended or was joined
	 * already, the engine is gone). The call is answered (in_progress) by the engine. */
	void (*web_join)(void *engine, const char *call_id, const struct web_socket *ws);
	/* Whether the engine is alive: a round trip through the queue its thread serves, waited
	 * for at most timeout_ms. 0 if the thread ran it in time; -1 if not (stuck, stopped).
	 * NULL: the engine has no such check (counted alive). */
	int (*ping)(void *engine, int timeout_ms);
};

struct telephony {
	const struct telephony_ops *ops;
	void *engine;
};

#endif
