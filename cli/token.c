/* token.c — lhctl token create|revoke|list: the gateway's bearer tokens, in PostgreSQL.
 *
 * A token is "lh_" + 64 hex digits from libcrypto's RAND_bytes; api_tokens keeps only its
 * sha256, so `create` prints the token once (stdout, nothing else there: scripts capture it) and
 * nobody can show it again. `list` shows names, roles, tenants and dates, never a hash. The same
 * format and table as `lh-gateway --create-token` (gateway/auth.c), which these replace for
 * people: lhctl finds the database the way every lhctl command does. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "ids.h"
#include "pg.h"

#define TOKEN_BYTES 32
#define TOKEN_NAME_MAX 127

typedef struct token_cfg {
	lh_common_cfg_t common;
	char *role;
	bool all;
} token_cfg_t;

#define T(f) offsetof(token_cfg_t, f)
static const lh_cfg_def_t token_table[] = {
	{"cli.token_role", LH_CFG_ENUM, "viewer", 0, 0, "viewer|responder|admin", NULL, "role", false,
	 false,
	 "create: viewer reads; responder also approves and answers; admin does everything",
	 T(role)},
	{"cli.token_all", LH_CFG_BOOL, "false", 0, 0, NULL, NULL, "all", false, false,
	 "list: revoked tokens too", T(all)},
	LH_CFG_END,
};

static const lh_cfg_spec_t token_spec = {
	.prog = "lhctl token",
	.usage = "create NAME [--role viewer|responder|admin] [--tenant T] | revoke NAME | list "
		 "[--all]",
	.summary = "Bearer tokens of lh-gateway (the REST API and the dashboard). create prints a new "
		   "token once — only its sha256 is stored; revoke revokes every live token of that "
		   "name (from the gateway's next request on); list shows names, roles, tenants and "
		   "dates. A token sees only its tenant's plans.",
	.tables = {lh_config_common_table, token_table, NULL},
};

static int connect_db(token_cfg_t *cfg, lh_pg_t **ret_pg)
{
	lh_error_t err = {0};
	if (lhctl_resolve(&cfg->common, false, true, NULL, &err) ||
	    lh_pg_connect(cfg->common.pg_url, ret_pg, &err) || lh_pg_migrate(*ret_pg, NULL, &err))
		return lhctl_fail(LHCTL_EXIT_FAIL, "%s", err.msg);
	return LHCTL_EXIT_OK;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > TOKEN_NAME_MAX || !lhctl_utf8_valid(name, n))
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static int token_create(token_cfg_t *cfg, const char *name)
{
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	uint8_t raw[TOKEN_BYTES];
	char token[3 + 2 * TOKEN_BYTES + 1], hash[65];
	const char *params[4] = {hash, name, cfg->role, cfg->common.tenant};
	int rc;
	if (!name_ok(name))
		return lhctl_fail(LHCTL_EXIT_USAGE,
				  "a token name has 1 to %d bytes of UTF-8 without control "
				  "characters",
				  TOKEN_NAME_MAX);
	if (!*cfg->common.tenant)
		return lhctl_fail(LHCTL_EXIT_USAGE, "--tenant must not be empty");
	if ((rc = connect_db(cfg, &pg)))
		goto out_free;
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not get random bytes from libcrypto");
		goto out_free;
	}
	memcpy(token, "lh_", 3);
	lh_hex(raw, sizeof(raw), token + 3);
	lh_sha256_hex(token, strlen(token), hash);
	if (lh_pg_query(pg, "api_token_create", 4, params, NULL, NULL, NULL, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not store the token: %s", err.msg);
		goto out_free;
	}
	/* The only time the token exists outside the caller's hands. */
	printf("%s\n", token);
	fflush(stdout);
	fprintf(stderr,
		"lhctl: token \"%s\" (%s, tenant %s) created; it is shown only this once\n",
		name, cfg->role, cfg->common.tenant);
out_free:
	lh_pg_free(pg);
	return rc;
}

static int token_revoke(token_cfg_t *cfg, const char *name)
{
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	lh_pg_res_t *res = NULL;
	const char *params[1] = {name};
	int rc;
	if ((rc = connect_db(cfg, &pg)))
		goto out_free;
	if (lh_pg_query(pg, "api_token_revoke", 1, params, NULL, NULL, &res, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not revoke the token: %s", err.msg);
		goto out_free;
	}
	if (lh_pg_nrows(res) == 0)
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "no live token named \"%.128s\"", name);
	else
		printf("revoked %d token(s) named %s\n", lh_pg_nrows(res), name);
out_free:
	lh_pg_res_free(res);
	lh_pg_free(pg);
	return rc;
}

static int token_list(token_cfg_t *cfg)
{
	lh_error_t err = {0};
	lh_pg_t *pg = NULL;
	lh_pg_res_t *res = NULL;
	const char *params[1] = {cfg->all ? "t" : "f"};
	int rc, n;
	if ((rc = connect_db(cfg, &pg)))
		goto out_free;
	if (lh_pg_query(pg, "api_token_list", 1, params, NULL, NULL, &res, &err)) {
		rc = lhctl_fail(LHCTL_EXIT_FAIL, "could not list the tokens: %s", err.msg);
		goto out_free;
	}
	n = lh_pg_nrows(res);
	if (n == 0) {
		printf(cfg->all ? "no tokens\n" : "no live tokens\n");
		goto out_free;
	}
	printf("%-32s %-9s %-20s %-19s %s\n", "NAME", "ROLE", "TENANT", "CREATED", "REVOKED");
	for (int i = 0; i < n; i++) {
		char *name = lhctl_one_line(lh_pg_get(res, i, 0), 64);
		printf("%-32s %-9s %-20s %-19s %s\n", name, lh_pg_get(res, i, 1),
		       lh_pg_get(res, i, 2), lh_pg_get(res, i, 3),
		       lh_pg_isnull(res, i, 4) ? "-" : lh_pg_get(res, i, 4));
		free(name);
	}
out_free:
	lh_pg_res_free(res);
	lh_pg_free(pg);
	return rc;
}

int lhctl_cmd_token(int argc, char **argv)
{
	token_cfg_t cfg = {0};
	char **rest = NULL;
	int nrest = 0, rc;
	if ((rc = lhctl_load(&token_spec, &cfg, argc, argv, &rest, &nrest)) >= 0)
		return rc;
	if (nrest == 2 && !strcmp(rest[0], "create"))
		rc = token_create(&cfg, rest[1]);
	else if (nrest == 2 && !strcmp(rest[0], "revoke"))
		rc = token_revoke(&cfg, rest[1]);
	else if (nrest == 1 && !strcmp(rest[0], "list"))
		rc = token_list(&cfg);
	else
		rc = lhctl_fail(LHCTL_EXIT_USAGE,
				"usage: lhctl token create NAME [--role R] [--tenant T] | revoke "
				"NAME | list [--all]");
	free(rest);
	lh_config_finish(&token_spec, &cfg);
	return rc;
}
