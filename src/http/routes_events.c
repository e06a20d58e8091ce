/*
 * routes_events.c - GET /v1/events: the outbox as a live Server-Sent Events stream.
 *
 * Each event is "id: SEQ\nevent: TYPE\ndata: {canonical event}\n\n", in commit order, scoped
 * like the key (tenant, or one number). A client that reconnects with Last-Event-ID (header,
 * or ?last_event_id=) resumes right after that event from the outbox, so nothing committed in
 * between is missed; without it the stream starts with the next event. A comment line every
 * 15 s keeps idle connections (and proxies) alive and notices clients that went away.
 *
 * The streams themselves are the event hub's (event_hub.c); this route only reads where the
 * client wants to start.
 */
#include "routes.h"
#include "event_hub.h"

#include <stdint.h>

static void stream_events(struct http_request *r)
{
	struct event_hub *hub = ((struct app *)http_app(r))->events;
	const char *last = http_header(r, "Last-Event-ID");
	if (!last)
		last = http_query(r, "last_event_id");
	long long seq = 0;
	if (last && !cp_parse_int(last, 0, INT64_MAX, &seq)) {
		http_reply_fail(r, CP_ERR_INVALID,
				"Last-Event-ID must be an event id from this stream");
		return;
	}
	event_hub_open(hub, r, http_principal(r), last ? seq : EVENT_HUB_FROM_NOW);
}

const struct route event_routes[] = {
	{"GET", "/v1/events", stream_events, &canonical_dialect, 0},
	{0},
};
