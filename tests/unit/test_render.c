/*
 * test_render.c - render/rows.c: the public JSON of tenants, agents, keys, trunks, webhooks
 * and deliveries, byte for byte (member order, null for what a row does not have, RFC 3339 times).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "render/rows.h"

#define T1 1700000000123LL /* 2023-11-14T22:13:20.123Z */
#define T2 1700000009000LL /* 2023-11-14T22:13:29.000Z */
#define ID_A "11111111-1111-4111-8111-111111111111"
#define ID_B "22222222-2222-4222-8222-222222222222"

/* Compares the compact text of v (consumed) with want. */
static void assert_json(json_t *v, const char *want)
{
	assert_non_null(v);
	char *got = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(v);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_tenant(void **state)
{
	(void)state;
	struct tenant t = {.id = ID_A, .name = "Tenant \xc3\xa9", .created_at = T1};
	assert_json(tenant_to_json(&t),
		    "{\"id\":\"" ID_A "\",\"name\":\"Tenant \xc3\xa9\","
		    "\"created_at\":\"2023-11-14T22:13:20.123Z\",\"sip_uris\":\"none\","
		    "\"allow_prefixes\":null,\"deny_prefixes\":null}");
	struct tenant p = {.id = ID_B,
			   .name = "p",
			   .created_at = T1,
			   .dial = {.sip_uris = "pbx.example",
				    .allow_prefixes = "+1",
				    .deny_prefixes = "+1900"}};
	assert_json(tenant_to_json(&p),
		    "{\"id\":\"" ID_B "\",\"name\":\"p\","
		    "\"created_at\":\"2023-11-14T22:13:20.123Z\",\"sip_uris\":\"pbx.example\","
		    "\"allow_prefixes\":\"+1\",\"deny_prefixes\":\"+1900\"}");
}

static void test_agent_with_and_without_optionals(void **state)
{
	(void)state;
	struct agent full = {.id = ID_A,
			     .tenant_id = ID_B,
			     .name = "alice",
			     .number = "+15550001111",
			     .max_duration_s = 120,
			     .created_at = T1,
			     .stream_url = "wss://x.example/a?k=1",
			     .record = true,
			     .goodbye_text = "Bye \"now\".",
			     .max_duration_goodbye = "Time is up.",
			     .trunk_id = ID_A};
	struct agent bare = {.id = ID_B, .tenant_id = ID_B, .name = "bob", .created_at = T2};
	assert_json(
		agent_to_json(&full),
		"{\"id\":\"" ID_A "\",\"tenant_id\":\"" ID_B "\",\"name\":\"alice\","
		"\"number\":\"+15550001111\",\"max_duration_s\":120,"
		"\"created_at\":\"2023-11-14T22:13:20.123Z\","
		"\"stream_url\":\"wss://x.example/a?k=1\",\"record\":true,"
		"\"goodbye_text\":\"Bye \\\"now\\\".\",\"max_duration_goodbye\":\"Time is up.\","
		"\"trunk_id\":\"" ID_A "\"}");
	assert_json(agent_to_json(&bare),
		    "{\"id\":\"" ID_B "\",\"tenant_id\":\"" ID_B "\",\"name\":\"bob\","
		    "\"number\":null,\"max_duration_s\":null,"
		    "\"created_at\":\"2023-11-14T22:13:29.000Z\",\"stream_url\":null,"
		    "\"record\":false,\"goodbye_text\":null,\"max_duration_goodbye\":null,"
		    "\"trunk_id\":null}");
}

static void test_trunk_lists_and_registration(void **state)
{
	/* the CIDR and header lists as arrays, null for what it has not, the registration
	 * once the server reported one; a trunk.registration event's data with its ids */
	(void)state;
	struct trunk t = {.id = ID_A,
			  .tenant_id = ID_B,
			  .host = "sip.example",
			  .port = 5080,
			  .transport = "tcp",
			  .user = "u",
			  .password_env = "PW",
			  .do_register = true,
			  .caller_id_header = "pai",
			  .srtp = "optional",
			  .inbound_cidrs = "10.0.0.0/8,::1/128",
			  .headers = "X-A: 1\r\nX-B: two words",
			  .created_at = T1};
	const char *head =
		"{\"id\":\"" ID_A "\",\"tenant_id\":\"" ID_B "\",\"host\":\"sip.example\","
		"\"port\":5080,\"transport\":\"tcp\",\"user\":\"u\",\"password_env\":\"PW\","
		"\"password_file\":null,\"register\":true,\"outbound_proxy\":null,"
		"\"from_user\":null,\"from_domain\":null,\"caller_id_header\":\"pai\","
		"\"srtp\":\"optional\","
		"\"inbound_cidrs\":[\"10.0.0.0/8\",\"::1/128\"],"
		"\"headers\":[\"X-A: 1\",\"X-B: two words\"],"
		"\"created_at\":\"2023-11-14T22:13:20.123Z\",\"registration\":";
	char want[1024];
	snprintf(want, sizeof want, "%snull}", head);
	assert_json(trunk_to_json(&t), want);
	t.reg = (struct trunk_status){.trunk_id = ID_A,
				      .tenant_id = ID_B,
				      .status = "registered",
				      .sip_status = 200,
				      .expires_at = T2,
				      .updated_at = T1};
	snprintf(want, sizeof want,
		 "%s{\"status\":\"registered\",\"sip_status\":200,"
		 "\"reason\":null,\"expires_at\":\"2023-11-14T22:13:29.000Z\","
		 "\"updated_at\":\"2023-11-14T22:13:20.123Z\"}}",
		 head);
	assert_json(trunk_to_json(&t), want);
	struct trunk_status failed = {.trunk_id = ID_A,
				      .tenant_id = ID_B,
				      .status = "failed",
				      .sip_status = 403,
				      .reason = "Forbidden",
				      .updated_at = T2};
	assert_json(trunk_status_to_json(&failed, true),
		    "{\"trunk_id\":\"" ID_A "\",\"tenant_id\":\"" ID_B "\",\"status\":\"failed\","
		    "\"sip_status\":403,\"reason\":\"Forbidden\",\"expires_at\":null,"
		    "\"updated_at\":\"2023-11-14T22:13:29.000Z\"}");
	struct trunk bare = {.id = ID_B,
			     .tenant_id = ID_B,
			     .host = "192.0.2.1",
			     .transport = "udp",
			     .caller_id_header = "none",
			     .created_at = T2};
	json_t *list = trunks_to_json(&bare, 1);
	json_t *b = json_array_get(list, 0);
	assert_int_equal(json_array_size(json_object_get(b, "inbound_cidrs")), 0);
	assert_int_equal(json_array_size(json_object_get(b, "headers")), 0);
	assert_true(json_is_null(json_object_get(b, "port")));
	assert_true(json_is_null(json_object_get(b, "registration")));
	/* a trunk read before it had the column (no value) shows what it does: off */
	assert_string_equal(json_string_value(json_object_get(b, "srtp")), "off");
	json_decref(list);
	/* a delivery of a trunk's event has no call */
	struct delivery_row d = {.id = 1,
				 .event_id = ID_A,
				 .event_type = "trunk.registration",
				 .webhook_id = ID_A,
				 .status = "pending",
				 .created_at = T1};
	json_t *dj = delivery_to_json(&d);
	assert_true(json_is_null(json_object_get(dj, "call_id")));
	json_decref(dj);
}

static void test_key_never_shows_its_hash(void **state)
{
	(void)state;
	struct api_key live = {.id = ID_A,
			       .tenant_id = ID_B,
			       .hash = "secret-hash",
			       .prefix = "cp_3062234",
			       .created_at = T1};
	struct api_key revoked = {.id = ID_B,
				  .tenant_id = ID_B,
				  .number = "+15550001111",
				  .prefix = "cp_3ce3d8e",
				  .created_at = T1,
				  .revoked_at = T2,
				  .rate_limit = 7,
				  .sip_uris = "pbx.example"};
	assert_json(api_key_to_json(&live),
		    "{\"id\":\"" ID_A "\",\"tenant_id\":\"" ID_B "\",\"number\":null,"
		    "\"operator\":false,\"prefix\":\"cp_3062234\",\"created_at\":\"2023-11-14T22:"
		    "13:20.123Z\","
		    "\"revoked_at\":null,\"rate_limit\":null,\"sip_uris\":null}");
	assert_json(api_key_to_json(&revoked),
		    "{\"id\":\"" ID_B "\",\"tenant_id\":\"" ID_B "\",\"number\":\"+15550001111\","
		    "\"operator\":false,\"prefix\":\"cp_3ce3d8e\",\"created_at\":\"2023-11-14T22:"
		    "13:20.123Z\","
		    "\"revoked_at\":\"2023-11-14T22:13:29.000Z\",\"rate_limit\":7,"
		    "\"sip_uris\":\"pbx.example\"}");
	/* an operator key: no tenant, no number */
	struct api_key op = {.id = ID_A,
			     .is_operator = true,
			     .hash = "secret-hash",
			     .prefix = "cp_0a1b2c3",
			     .created_at = T1};
	assert_json(api_key_to_json(&op),
		    "{\"id\":\"" ID_A "\",\"tenant_id\":null,\"number\":null,\"operator\":true,"
		    "\"prefix\":\"cp_0a1b2c3\",\"created_at\":\"2023-11-14T22:13:20.123Z\","
		    "\"revoked_at\":null,\"rate_limit\":null,\"sip_uris\":null}");
}

static void test_webhook_secret_only_when_asked(void **state)
{
	(void)state;
	struct webhook w = {.id = ID_A,
			    .tenant_id = ID_B,
			    .url = "http://127.0.0.1:9/a",
			    .secret = "whsec_x",
			    .format = "canonical",
			    .created_at = T1};
	const char *listed =
		"{\"id\":\"" ID_A "\",\"tenant_id\":\"" ID_B "\",\"agent_id\":null,"
		"\"url\":\"http://127.0.0.1:9/a\",\"format\":\"canonical\","
		"\"signing\":\"callplane\",\"created_at\":\"2023-11-14T22:13:20.123Z\"";
	char want[512];
	snprintf(want, sizeof want, "%s}", listed);
	assert_json(webhook_to_json(&w, false), want);
	snprintf(want, sizeof want, "%s,\"secret\":\"whsec_x\"}", listed);
	assert_json(webhook_to_json(&w, true), want);
	snprintf(w.agent_id, sizeof w.agent_id, "%s", ID_A);
	snprintf(w.signing, sizeof w.signing, "standard");
	json_t *list = webhooks_to_json(&w, 1);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "agent_id")),
			    ID_A);
	assert_null(json_object_get(json_array_get(list, 0), "secret"));
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "signing")),
			    "standard");
	json_decref(list);
}

static void test_delivery_tells_no_attempt_from_an_empty_error(void **state)
{
	(void)state;
	struct delivery_row d[2] = {
		{.id = 1,
		 .event_id = ID_A,
		 .event_type = "call.ringing",
		 .call_id = ID_B,
		 .webhook_id = ID_A,
		 .status = "pending",
		 .next_attempt_at = T1,
		 .created_at = T1},
		{.id = 3,
		 .event_id = ID_B,
		 .event_type = "call.ended",
		 .call_id = ID_B,
		 .webhook_id = ID_A,
		 .status = "delivered",
		 .attempts = 1,
		 .next_attempt_at = T1,
		 .created_at = T1,
		 .delivered_at = T2,
		 .last_status = 204,
		 .last_error = ""},
	};
	assert_json(deliveries_to_json(d, 2),
		    "[{\"id\":1,\"event_id\":\"" ID_A "\",\"event_type\":\"call.ringing\","
		    "\"call_id\":\"" ID_B "\",\"webhook_id\":\"" ID_A "\",\"status\":\"pending\","
		    "\"attempts\":0,\"next_attempt_at\":\"2023-11-14T22:13:20.123Z\","
		    "\"last_status\":null,\"last_error\":null,"
		    "\"created_at\":\"2023-11-14T22:13:20.123Z\",\"delivered_at\":null},"
		    "{\"id\":3,\"event_id\":\"" ID_B "\",\"event_type\":\"call.ended\","
		    "\"call_id\":\"" ID_B "\",\"webhook_id\":\"" ID_A "\",\"status\":\"delivered\","
		    "\"attempts\":1,\"next_attempt_at\":\"2023-11-14T22:13:20.123Z\","
		    "\"last_status\":204,\"last_error\":\"\","
		    "\"created_at\":\"2023-11-14T22:13:20.123Z\","
		    "\"delivered_at\":\"2023-11-14T22:13:29.000Z\"}]");
}

static void test_empty_listings_are_empty_arrays(void **state)
{
	(void)state;
	assert_json(tenants_to_json(NULL, 0), "[]");
	assert_json(agents_to_json(NULL, 0), "[]");
	assert_json(api_keys_to_json(NULL, 0), "[]");
	assert_json(webhooks_to_json(NULL, 0), "[]");
	assert_json(deliveries_to_json(NULL, 0), "[]");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tenant),
		cmocka_unit_test(test_agent_with_and_without_optionals),
		cmocka_unit_test(test_trunk_lists_and_registration),
		cmocka_unit_test(test_key_never_shows_its_hash),
		cmocka_unit_test(test_webhook_secret_only_when_asked),
		cmocka_unit_test(test_delivery_tells_no_attempt_from_an_empty_error),
		cmocka_unit_test(test_empty_listings_are_empty_arrays),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
