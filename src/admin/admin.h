/*
 * admin.h - managing tenants, agents and API keys: the rules shared by the admin CLI
 * (`callplane tenant|agent|key`) and the admin API (/v1/tenants, /v1/agents, /v1/keys).
 *
 * Both front ends parse their own syntax into the request structs below and hand them here,
 * so a value one accepts the other accepts too. Every check runs before anything is written:
 * a refused request changes nothing.
 *
 * A refused value is named by its field, as the API spells it ("sip_uris"; the CLI shows it
 * as its option, "--sip-uris"), with a rule that reads after the name ("must be ..."):
 * struct admin_bad. The operations fill a struct cp_error with "FIELD RULE" for the API.
 *
 * Who may do what (an operator, a tenant's key, a number-scoped key) is the caller's
 * business except where it is a rule about values: a key minted by another key never widens
 * the minting key's reach (admin_key_create), and a key never revokes itself
 * (admin_key_revoke). The CLI passes no key: it acts with the database's authority.
 */
#ifndef CP_ADMIN_H
#define CP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/auth.h"
#include "core/error.h"
#include "store/store.h"

#define ADMIN_MAX_DURATION_MAX 86400
#define ADMIN_RATE_LIMIT_MAX 1000000
#define ADMIN_TRUNK_HEADERS_MAX 16 /* SIP_TRUNK_HEADERS_MAX: a trunk's extra INVITE headers */

/* The field a check refused, and the rule it broke ("must be ..."). */
struct admin_bad {
	const char *field;
	const char *rule;
};

/* What a text field holds to clear it (compared by address): a given "" is a value, and is
 * refused where a field has no empty value; the API's null and the CLI's --no-X give this. */
extern const char admin_clear[];

/* A tenant's fields. NULL: not given (create: the default; update: unchanged).
 * allow_prefixes / deny_prefixes admin_clear: no list. */
struct admin_tenant_req {
	const char *name;
	const char *sip_uris;
	const char *allow_prefixes;
	const char *deny_prefixes;
};

/* An agent's fields. Texts NULL: not given; admin_clear clears stream_url, goodbye_text,
 * max_duration_goodbye and trunk_id (on create: none, as not given). record -1: not given. tenant_id, name, number and
 * max_duration_s are for create only (max_duration_s 0: none). */
struct admin_agent_req {
	const char *tenant_id;
	const char *name;
	const char *number;
	int max_duration_s;
	const char *stream_url;
	int record;
	const char *goodbye_text;
	const char *max_duration_goodbye;
	const char *trunk_id;
};

/* A key to mint: a tenant's (tenant_id, optionally narrowed to number and sip_uris) or an
 * operator's (is_operator, no tenant, number or sip_uris). rate_limit 0: the server's. */
struct admin_key_req {
	const char *tenant_id;
	const char *number;
	const char *sip_uris;
	bool is_operator;
	long long rate_limit;
};

/* Field checks, no store: true when every given field is valid, else false with *bad set.
 * create: the fields create requires must be given. */
bool admin_tenant_check(const struct admin_tenant_req *req, bool create, struct admin_bad *bad);
bool admin_agent_check(const struct admin_agent_req *req, bool create, struct admin_bad *bad);
bool admin_key_check(const struct admin_key_req *req, struct admin_bad *bad);

/* Each returns CP_OK, or an error with err filled: CP_ERR_INVALID ("FIELD RULE", or what is
 * missing), CP_ERR_NOT_FOUND (an unknown id), CP_ERR_CONFLICT, CP_ERR_FORBIDDEN,
 * CP_ERR_INTERNAL. Lists are heap arrays the caller frees. */

enum cp_err admin_tenant_create(struct store *st, const struct admin_tenant_req *req,
				struct tenant *out, struct cp_error *err);
/* Changes what req gives (at least one field); *out is the tenant afterwards. */
enum cp_err admin_tenant_update(struct store *st, const char *id,
				const struct admin_tenant_req *req, struct tenant *out,
				struct cp_error *err);
enum cp_err admin_tenant_get(struct store *st, const char *id, struct tenant *out,
			     struct cp_error *err);
enum cp_err admin_tenant_list(struct store *st, struct tenant **list, size_t *n,
			      struct cp_error *err);

/* The tenant must exist, the trunk (if any) be one of its, the number free (CP_ERR_CONFLICT). */
enum cp_err admin_agent_create(struct store *st, const struct admin_agent_req *req,
			       struct agent *out, struct cp_error *err);
/* Within scope sc (NULL: every tenant): an agent outside it is CP_ERR_NOT_FOUND. A trunk must
 * be one of the agent's tenant's. At least one of the update fields must be given. */
enum cp_err admin_agent_update(struct store *st, const struct scope *sc, const char *id,
			       const struct admin_agent_req *req, struct agent *out,
			       struct cp_error *err);
enum cp_err admin_agent_get(struct store *st, const struct scope *sc, const char *id,
			    struct agent *out, struct cp_error *err);
/* tenant_id NULL: every tenant; number NULL: every agent, else only those with that number. */
enum cp_err admin_agent_list(struct store *st, const char *tenant_id, const char *number,
			     struct agent **list, size_t *n, struct cp_error *err);

/* Mints req's key: *out, and the secret (shown once, stored only as a hash). by NULL: the
 * CLI, anything valid. by a key's principal: an operator's may mint any key; a tenant's only
 * its own tenant's (CP_ERR_FORBIDDEN otherwise), never an operator key, and never one that
 * dials raw sip: URIs beyond its own sip_uris; a number-scoped key mints none. */
enum cp_err admin_key_create(struct store *st, const struct principal *by,
			     const struct admin_key_req *req, struct api_key *out,
			     char secret[AUTH_SECRET_LEN + 1], struct cp_error *err);
/* Keys of tenant_id (NULL: every key), without hashes. */
enum cp_err admin_key_list(struct store *st, const char *tenant_id, struct api_key **list,
			   size_t *n, struct cp_error *err);
/* Revokes key id of tenant_id (NULL: any key); *out is the key afterwards. self_id (NULL:
 * none) is the revoking key: revoking it is CP_ERR_CONFLICT, so a client cannot lock itself
 * out by mistake (another key, or the CLI, revokes it). Revoking a revoked key keeps its
 * first revoked_at. */
enum cp_err admin_key_revoke(struct store *st, const char *tenant_id, const char *id,
			     const char *self_id, struct api_key *out, struct cp_error *err);

/* A trunk to create (trunk.c), as `callplane trunk create` and POST /v1/trunks give it. Texts
 * NULL: not given. password_file must be absolute (the CLI makes a relative one so first). The
 * password itself is never here: only where the server reads it. */
struct admin_trunk_req {
	const char *tenant_id;
	const char *host;      /* HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address */
	const char *transport; /* udp (default), tcp or tls */
	const char *user, *password_env, *password_file;
	bool do_register;
	const char *outbound_proxy, *from_user, *from_domain, *caller_id_header;
	const char *inbound_cidrs;  /* "CIDR[,CIDR...]" */
	const char *srtp;           /* off (default), optional or required */
	const char *const *headers; /* n_headers "Name: value" lines */
	size_t n_headers;
};

/* How a refusal names a field (its API name, "password_env"), for the front end's spelling
 * ("--password-env"): returns the text to show. */
typedef const char *(*admin_namer)(const char *field);

/* Checks req into *t (its id, tenant and created_at are the caller's): true, or false with
 * why (size bytes) saying what is wrong, fields named by name(). */
bool admin_trunk_check(const struct admin_trunk_req *req, admin_namer name, struct trunk *t,
		       char *why, size_t size);
/* Checks (fields named as the API names them) and creates req's trunk for its tenant:
 * CP_ERR_NOT_FOUND for an unknown tenant. */
enum cp_err admin_trunk_create(struct store *st, const struct admin_trunk_req *req,
			       struct trunk *out, struct cp_error *err);
/* tenant_id NULL: any tenant. */
enum cp_err admin_trunk_get(struct store *st, const char *tenant_id, const char *id,
			    struct trunk *out, struct cp_error *err);
enum cp_err admin_trunk_list(struct store *st, const char *tenant_id, struct trunk **list,
			     size_t *n, struct cp_error *err);
/* CP_ERR_CONFLICT while an agent uses it. */
enum cp_err admin_trunk_delete(struct store *st, const char *tenant_id, const char *id,
			       struct cp_error *err);

/* Whether a key narrowed to `inner` dials no raw sip: URI a key narrowed to `outer` may not
 * (both as struct api_key.sip_uris: "" = the tenant's policy, "none", "any", HOST,...). */
bool admin_sip_uris_within(const char *inner, const char *outer);

#endif
