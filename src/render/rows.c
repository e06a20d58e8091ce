/*
 * rows.c - the public JSON of tenants, agents, keys, trunks, webhooks and deliveries. See
 * rows.h.
 *
 * Members are set in the order clients have always read them; a value a row does not have is
 * null, never "" or 0, so that a reader can tell "none" from a value.
 */
#include "rows.h"
#include "core/util.h"

#include <string.h>

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
	json_object_set_new(o, "sip_uris",
			    json_string(t->dial.sip_uris[0] ? t->dial.sip_uris : "none"));
	json_object_set_new(o, "allow_prefixes", text_or_null(t->dial.allow_prefixes));
	json_object_set_new(o, "deny_prefixes", text_or_null(t->dial.deny_prefixes));
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
	json_object_set_new(o, "trunk_id", text_or_null(a->trunk_id));
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
	json_object_set_new(o, "sip_uris", text_or_null(k->sip_uris));
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
	json_object_set_new(o, "signing", json_string(w->signing[0] ? w->signing : "callplane"));
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
	json_object_set_new(o, "call_id", text_or_null(d->call_id)); /* null: a trunk's event */
	json_object_set_new(o, "webhook_id", json_string(d->webhook_id));
	json_object_set_new(o, "status", json_string(d->status));
	json_object_set_new(o, "attempts", json_integer(d->attempts));
	json_object_set_new(o, "next_attempt_at", time_or_null(d->next_attempt_at));
	json_object_set_new(o, "last_status", int_or_null(d->last_status));
	/* "" is an attempt that recorded no error (a 2xx); NULL, no attempt yet */
	json_object_set_new(o, "last_error",
			    d->last_error ? json_string(d->last_error) : json_null());
	json_object_set_new(o, "created_at", time_or_null(d->created_at));
	json_object_set_new(o, "delivered_at", time_or_null(d->delivered_at));
	return o;
}

/* The parts of s between separators (sep, a string), as an array of strings; "" is []. */
static json_t *split_to_json(const char *s, const char *sep)
{
	json_t *arr = json_array();
	size_t seplen = strlen(sep);
	while (arr && *s) {
		const char *end = strstr(s, sep);
		size_t len = end ? (size_t)(end - s) : strlen(s);
		json_array_append_new(arr, json_stringn(s, len));
		s += len + (end ? seplen : 0);
	}
	return arr;
}

json_t *trunk_status_to_json(const struct trunk_status *s, bool with_trunk)
{
	json_t *o = json_object();
	if (with_trunk) {
		json_object_set_new(o, "trunk_id", json_string(s->trunk_id));
		json_object_set_new(o, "tenant_id", json_string(s->tenant_id));
	}
	json_object_set_new(o, "status", json_string(s->status));
	json_object_set_new(o, "sip_status", int_or_null(s->sip_status));
	json_object_set_new(o, "reason", text_or_null(s->reason));
	json_object_set_new(o, "expires_at", time_or_null(s->expires_at));
	json_object_set_new(o, "updated_at", time_or_null(s->updated_at));
	return o;
}

json_t *trunk_to_json(const struct trunk *t)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(t->id));
	json_object_set_new(o, "tenant_id", json_string(t->tenant_id));
	json_object_set_new(o, "host", json_string(t->host));
	json_object_set_new(o, "port", int_or_null(t->port));
	json_object_set_new(o, "transport", json_string(t->transport));
	json_object_set_new(o, "user", text_or_null(t->user));
	json_object_set_new(o, "password_env", text_or_null(t->password_env));
	json_object_set_new(o, "password_file", text_or_null(t->password_file));
	json_object_set_new(o, "register", json_boolean(t->do_register));
	json_object_set_new(o, "outbound_proxy", text_or_null(t->outbound_proxy));
	json_object_set_new(o, "from_user", text_or_null(t->from_user));
	json_object_set_new(o, "from_domain", text_or_null(t->from_domain));
	json_object_set_new(o, "caller_id_header", json_string(t->caller_id_header));
	json_object_set_new(o, "srtp", json_string(t->srtp[0] ? t->srtp : "off"));
	json_object_set_new(o, "inbound_cidrs", split_to_json(t->inbound_cidrs, ","));
	json_object_set_new(o, "headers", split_to_json(t->headers, "\r\n"));
	json_object_set_new(o, "created_at", time_or_null(t->created_at));
	json_object_set_new(o, "registration",
			    t->reg.status[0] ? trunk_status_to_json(&t->reg, false) : json_null());
	return o;
}

#define LIST_TO_JSON(fn, type, one)                      \
	json_t *fn(const type *rows, size_t n)           \
	{                                                \
		json_t *arr = json_array();              \
		for (size_t i = 0; arr && i < n; i++)    \
			json_array_append_new(arr, one); \
		return arr;                              \
	}

LIST_TO_JSON(tenants_to_json, struct tenant, tenant_to_json(&rows[i]))
LIST_TO_JSON(agents_to_json, struct agent, agent_to_json(&rows[i]))
LIST_TO_JSON(api_keys_to_json, struct api_key, api_key_to_json(&rows[i]))
LIST_TO_JSON(webhooks_to_json, struct webhook, webhook_to_json(&rows[i], false))
LIST_TO_JSON(trunks_to_json, struct trunk, trunk_to_json(&rows[i]))
LIST_TO_JSON(deliveries_to_json, struct delivery_row, delivery_to_json(&rows[i]))
