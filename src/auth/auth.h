/*
 * auth.h - API keys: minting, hashing, and turning a presented secret into a scope.
 *
 * A secret is "cp_" followed by 48 hex digits (192 random bits from OpenSSL). Only its SHA-256
 * is stored; a plain hash suffices because the secret has full entropy (nothing to brute-force
 * with a dictionary), and it keeps authentication to one indexed lookup. The stored hash is
 * compared with CRYPTO_memcmp so the comparison takes the same time whatever matches.
 *
 * A key's scope is its tenant, optionally narrowed to one agent number; an operator key has no
 * tenant and its scope is every tenant (scope.all). The store applies scopes, so a route that
 * passes the principal's scope gets the same rows for either.
 */
#ifndef CP_AUTH_H
#define CP_AUTH_H

#include "core/error.h"
#include "store/store.h"

#define AUTH_SECRET_PREFIX "cp_"
#define AUTH_SECRET_LEN (3 + 48)

struct principal {
	struct api_key key;
	struct scope scope;
};

/* Mints a key for a tenant (optionally number-scoped), or with tenant_id NULL an operator key,
 * bound to no tenant (number must then be NULL): fills *k and writes the secret. */
int auth_key_mint(const char *tenant_id, const char *number, struct api_key *k,
		  char secret[AUTH_SECRET_LEN + 1]);

/* Extracts the presented secret from the header values (either may be NULL):
 * "Authorization: Bearer X" or "x-api-key: X". Returns NULL if none is usable. */
const char *auth_secret_from_headers(const char *authorization, const char *x_api_key);

/* Whether a presented token (NULL: none) is the expected one, compared in a time that tells
 * neither where they differ nor the expected length (their SHA-256 digests are compared). */
bool auth_token_matches(const char *given, const char *want);

/* Authenticates a secret: CP_OK and *who filled, or CP_ERR_UNAUTHORIZED / CP_ERR_INTERNAL. */
enum cp_err auth_check(struct store *st, const char *secret, struct principal *who);

#endif
