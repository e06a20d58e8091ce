/*
 * event_hub.h - the live-event hub: the open event streams of GET /v1/events, fed from the
 * outbox.
 *
 * The hub lists the open streams. Whoever commits an outbox event calls event_hub_wake()
 * afterwards, and every stream then reads what is new for its scope from the store, in commit
 * order; a ticker thread (cp-events) also wakes them every second, so that an idle stream
 * sends its keepalive on time. Streams never hold events of their own: the outbox is the
 * only copy, which is what lets a client resume after a reconnect without a gap.
 */
#ifndef CP_EVENT_HUB_H
#define CP_EVENT_HUB_H

#include <stdint.h>

#include "http/http.h"
#include "store/store.h"

/* event_hub_open()'s "after" for a stream that starts with the next event committed */
#define EVENT_HUB_FROM_NOW (-1)

struct event_hub;

/* Starts the hub and its ticker thread; NULL when out of memory or threads. The store must
 * outlive the hub. A key may hold at most max_per_key streams at once (more: 429). */
struct event_hub *event_hub_create(struct store *st, int max_per_key);
/* Stops the ticker and frees the hub. After the HTTP server has stopped: a stream's end
 * still unlists it from the hub. NULL is a no-op. */
void event_hub_destroy(struct event_hub *hub);
/* Any thread, after an outbox event was committed: every open stream looks for new events.
 * NULL is a no-op. */
void event_hub_wake(void *hub);

/* Replies to r with a stream of the events visible to who's scope, from the one after
 * sequence number "after" (EVENT_HUB_FROM_NOW: from the next one committed), or with an error
 * (429 when who's key holds max_per_key streams already). */
struct principal;
void event_hub_open(struct event_hub *hub, struct http_request *r, const struct principal *who,
		    int64_t after);

#endif
