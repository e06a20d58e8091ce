/*
 * rows.c - the public JSON of tenants, agents, keys, webhooks and deliveries. See rows.h.
 *
 * Members are set in the order clients have always read them; a value a row does not have is
 * null, never "" or 0, so that a reader can tell "none" from a value.
 */
#include "rows.h"
#include "core/util.h"

static json_t *time_or_null(int64_t ms)
{
	if (!ms)
		return json_null();
	char buf[CP_RFC3339_LEN + 1];
	cp_rfc3339(ms, buf);
	return json_string(buf);
}

static json_t *text_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *int_or_null(long long v)
{
	return v ? json_integer(v) : json_null();
}

json_t *tenant_to_json(const struct tenant *t)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(t->id));
	json_object_set_new(o, "name", json_string(t->name));
	json_object_set_new(o, "created_at", time_or_null(t->created_at));
	return o;
}

json_t *agent_to_json(const struct agent *a)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(a->id));
	json_object_set_new(o, "tenant_id", json_string(a->tenant_id));
	json_object_set_new(o, "name", json_string(a->name));
	json_object_set_new(o, "number", text_or_null(a->number));
	json_object_set_new(o, "max_duration_s", int_or_null(a->max_duration_s));
	json_object_set_new(o, "created_at", time_or_null(a->created_at));
	json_object_set_new(o, "stream_url", text_or_null(a->stream_url));
	json_object_set_new(o, "record", json_boolean(a->record));
	json_object_set_new(o, "goodbye_text", text_or_null(a->goodbye_text));
	json_object_set_new(o, "max_duration_goodbye", text_or_null(a->max_duration_goodbye));
	return o;
}

json_t *api_key_to_json(const struct api_key *k)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(k->id));
	json_object_set_new(o, "tenant_id", text_or_null(k->tenant_id));
	json_object_set_new(o, "number", text_or_null(k->number));
	json_object_set_new(o, "operator", json_boolean(k->is_operator));
	json_object_set_new(o, "prefix", json_string(k->prefix));
	json_object_set_new(o, "created_at", time_or_null(k->created_at));
	json_object_set_new(o, "revoked_at", time_or_null(k->revoked_at));
	json_object_set_new(o, "rate_limit", int_or_null(k->rate_limit));
	return o;
}

json_t *webhook_to_json(const struct webhook *w, bool with_secret)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(w->id));
	json_object_set_new(o, "tenant_id", json_string(w->tenant_id));
	json_object_set_new(o, "agent_id", text_or_null(w->agent_id));
	json_object_set_new(o, "url", json_string(w->url));
	json_object_set_new(o, "format", json_string(w->format));
	json_object_set_new(o, "created_at", time_or_null(w->created_at));
	if (with_secret)
		json_object_set_new(o, "secret", json_string(w->secret));
	return o;
}

json_t *delivery_to_json(const struct delivery_row *d)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(d->id));
	json_object_set_new(o, "event_id", json_string(d->event_id));
	json_object_set_new(o, "event_type", json_string(d->event_type));
	json_object_set_new(o, "call_id", json_string(d->call_id));
	json_object_set_new(o, "webhook_id", json_string(d->webhook_id));
	json_object_set_new(o, "status", json_string(d->status));
	json_object_set_new(o, "attempts", json_integer(d->attempts));
	json_object_set_new(o, "next_attempt_at", time_or_null(d->next_attempt_at));
	json_object_set_new(o, "last_status", int_or_null(d->last_status));
	/* "" is an attempt that recorded no error (a 2xx); NULL, no attempt yet */
	json_object_set_new(o, "last_error", d->last_error ? json_string(d->last_error)
							   : json_null());
	json_object_set_new(o, "created_at", time_or_null(d->created_at));
	json_object_set_new(o, "delivered_at", time_or_null(d->delivered_at));
	return o;
}

#define LIST_TO_JSON(fn, type, one)                             \
	json_t *fn(const type *rows, size_t n)                  \
	{                                                       \
		json_t *arr = json_array();                     \
		for (size_t i = 0; arr && i < n; i++)           \
			json_array_append_new(arr, one);        \
		return arr;                                     \
	}

LIST_TO_JSON(tenants_to_json, struct tenant, tenant_to_json(&rows[i]))
LIST_TO_JSON(agents_to_json, struct agent, agent_to_json(&rows[i]))
LIST_TO_JSON(api_keys_to_json, struct api_key, api_key_to_json(&rows[i]))
LIST_TO_JSON(webhooks_to_json, struct webhook, webhook_to_json(&rows[i], false))
LIST_TO_JSON(deliveries_to_json, struct delivery_row, delivery_to_json(&rows[i]))
