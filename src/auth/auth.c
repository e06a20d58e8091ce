/*
 * auth.c - API key minting and verification. See auth.h.
 */
#include "auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

int auth_key_mint(const char *tenant_id, const char *number, struct api_key *k,
		  char secret[AUTH_SECRET_LEN + 1])
{
	unsigned char raw[24];
	char hex[2 * sizeof raw + 1];
	memset(k, 0, sizeof *k);
	if (cp_random(raw, sizeof raw) || cp_uuid4(k->id))
		return -1;
	cp_hex(raw, sizeof raw, hex);
	snprintf(secret, AUTH_SECRET_LEN + 1, AUTH_SECRET_PREFIX "%s", hex);
	cp_sha256_hex(secret, strlen(secret), k->hash);
	snprintf(k->prefix, sizeof k->prefix, "%.10s", secret);
	snprintf(k->tenant_id, sizeof k->tenant_id, "%s", tenant_id ? tenant_id : "");
	k->is_operator = !tenant_id;
	snprintf(k->number, sizeof k->number, "%s", number ? number : "");
	k->created_at = cp_now_ms();
	return 0;
}

const char *auth_secret_from_headers(const char *authorization, const char *x_api_key)
{
	if (authorization) {
		if (strncasecmp(authorization, "Bearer ", 7))
			return NULL;
		const char *p = authorization + 7;
		while (*p == ' ')
			p++;
		return *p ? p : NULL;
	}
	return x_api_key && *x_api_key ? x_api_key : NULL;
}

enum cp_err auth_check(struct store *st, const char *secret, struct principal *who)
{
	if (!secret || strlen(secret) > 512)
		return CP_ERR_UNAUTHORIZED;
	char hash[CP_SHA256_HEX_LEN + 1];
	cp_sha256_hex(secret, strlen(secret), hash);
	memset(who, 0, sizeof *who);
	enum store_result rc = STORE(st, key_by_hash, hash, &who->key);
	if (rc == STORE_NOT_FOUND)
		return CP_ERR_UNAUTHORIZED;
	if (rc != STORE_OK)
		return CP_ERR_INTERNAL;
	if (CRYPTO_memcmp(hash, who->key.hash, CP_SHA256_HEX_LEN) != 0 || who->key.revoked_at)
		return CP_ERR_UNAUTHORIZED;
	if (who->key.is_operator) {
		who->scope.all = true;
		return CP_OK;
	}
	snprintf(who->scope.tenant_id, sizeof who->scope.tenant_id, "%s", who->key.tenant_id);
	snprintf(who->scope.number, sizeof who->scope.number, "%s", who->key.number);
	snprintf(who->scope.sip_uris, sizeof who->scope.sip_uris, "%s", who->key.sip_uris);
	return CP_OK;
}

bool auth_token_matches(const char *given, const char *want)
{
	char a[CP_SHA256_HEX_LEN + 1], b[CP_SHA256_HEX_LEN + 1];
	if (!given || !want)
		return false;
	cp_sha256_hex(given, strlen(given), a);
	cp_sha256_hex(want, strlen(want), b);
	return CRYPTO_memcmp(a, b, CP_SHA256_HEX_LEN) == 0;
}
