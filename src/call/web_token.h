/*
 * web_token.h - the access tokens of web calls: short-lived, single-use, scoped to one call.
 *
 * POST /v1/web-calls hands the client one token; the browser presents it twice: to load the
 * page (GET /web/call, a check that uses nothing up) and to open the call's WebSocket
 * (GET /web/ws, which takes it: from then on it is used). A token is 32 random bytes from
 * OpenSSL's CSPRNG, written as 43 characters of base64url. The table keeps only each token's
 * SHA-256 (looked up by it, compared in constant time), its call, when it expires and whether
 * it was used: nothing in memory can be replayed as a token. It lives in memory only, so a
 * restart invalidates every token not yet used (their calls are ended node_restart then
 * anyway). Entries are forgotten one lifetime after they expire; until then a refusal can say
 * why (expired, used), which only the log shows: the client always gets 401.
 *
 * Every function takes the monotonic time in milliseconds (cp_mono_us() / 1000), so tests
 * drive the clock. Thread-safe: one mutex.
 */
#ifndef CP_WEB_TOKEN_H
#define CP_WEB_TOKEN_H

#include <stdint.h>

#include "core/util.h"

#define WEB_TOKEN_LEN 43 /* base64url of 32 bytes, no padding */
#define WEB_TOKEN_TTL_DEFAULT_S 60
#define WEB_TOKEN_TTL_MAX_S 600

enum web_token_result {
	WEB_TOKEN_OK,
	WEB_TOKEN_UNKNOWN, /* never issued here (forged, or issued before a restart) */
	WEB_TOKEN_EXPIRED,
	WEB_TOKEN_USED,    /* taken already */
	WEB_TOKEN_FOREIGN, /* issued for another call than the one named */
};

struct web_tokens;

struct web_tokens *web_tokens_create(void);
void web_tokens_destroy(struct web_tokens *t);

/* Issues a token for call_id that expires ttl_ms after now_ms; writes it NUL-terminated into
 * out. 0, or -1 (no randomness, out of memory: nothing issued). */
int web_token_issue(struct web_tokens *t, const char *call_id, int64_t now_ms, int64_t ttl_ms,
		    char out[WEB_TOKEN_LEN + 1]);
/* Whether token is valid now: issued, not expired, not used and, when call_id is not NULL,
 * issued for that call. Its call id goes to out_call (may be NULL) on WEB_TOKEN_OK. Uses
 * nothing up. */
enum web_token_result web_token_check(struct web_tokens *t, const char *token, const char *call_id,
				      int64_t now_ms, char out_call[CP_UUID_LEN + 1]);
/* web_token_check() that, when the token is valid, uses it: every later check or take of it
 * answers WEB_TOKEN_USED. */
enum web_token_result web_token_take(struct web_tokens *t, const char *token, const char *call_id,
				     int64_t now_ms, char out_call[CP_UUID_LEN + 1]);
/* What a refusal is called in the log ("unknown", "expired", "used", "foreign"; "ok"). */
const char *web_token_result_name(enum web_token_result r);

#endif
