/* Unit tests of the settings tables (common/config.c): precedence default < file < env < flags,
 * validation before anything is applied, clear errors, positional arguments left to the caller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "t.h"

typedef struct tcfg {
	lh_common_cfg_t common;
	int64_t n;
	double d;
	bool b;
	char *mode;
} tcfg_t;

static const lh_cfg_def_t table[] = {
	{"t.n", LH_CFG_INT, "5", 1, 10, NULL, "LH_T_N", "n", false, false, "a number", offsetof(tcfg_t, n)},
	{"t.d", LH_CFG_DOUBLE, "0.5", 0, 1, NULL, "LH_T_D", "d", false, false, "a ratio", offsetof(tcfg_t, d)},
	{"t.b", LH_CFG_BOOL, "false", 0, 0, NULL, "LH_T_B", "b", false, false, "a switch", offsetof(tcfg_t, b)},
	{"t.mode", LH_CFG_ENUM, "fast", 0, 0, "fast|slow", "LH_T_MODE", "mode", false, false, "a word",
	 offsetof(tcfg_t, mode)},
	LH_CFG_END,
};

static const lh_cfg_spec_t spec = {.prog = "t", .summary = "test",
				   .tables = {lh_config_common_table, table, NULL}};

static lh_err_t load(tcfg_t *c, int argc, char **argv, lh_error_t *err, char ***rest, int *nrest)
{
	memset(c, 0, sizeof(*c));
	return lh_config_load(&spec, c, argc, argv, rest, nrest, err);
}

static void t_defaults(void)
{
	tcfg_t c;
	char *argv[] = {"t", NULL};
	T_EQ_INT(load(&c, 1, argv, NULL, NULL, NULL), LH_OK);
	T_EQ_INT(c.n, 5);
	T_CHECK(c.d == 0.5);
	T_CHECK(!c.b);
	T_EQ_STR(c.mode, "fast");
	T_EQ_STR(c.common.topic_prefix, "lh.");
	T_EQ_STR(c.common.tiers, "fast,standard,frontier");
	lh_config_finish(&spec, &c);
}

static void t_precedence(void)
{
	tcfg_t c;
	char path[] = "/tmp/lh-test-config-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	char *argv[] = {"t", "--config", path, "--n", "9", "goal text", NULL};
	char **rest;
	int nrest;
	fprintf(f, "{\"t.n\": 7, \"t.mode\": \"slow\", \"t.d\": 0.25, \"kafka.brokers\": \"file:1\"}");
	fclose(f);
	setenv("LH_T_D", "0.75", 1);
	T_EQ_INT(load(&c, 6, argv, NULL, &rest, &nrest), LH_OK);
	T_EQ_INT(c.n, 9);		       /* flag beats file */
	T_CHECK(c.d == 0.75);		       /* env beats file */
	T_EQ_STR(c.mode, "slow");	       /* file beats default */
	T_EQ_STR(c.common.brokers, "file:1");
	T_EQ_INT(nrest, 1);
	T_EQ_STR(rest[0], "goal text");
	free(rest);
	unsetenv("LH_T_D");
	lh_config_finish(&spec, &c);
	unlink(path);
}

static void t_errors_name_the_setting(void)
{
	static const struct {
		char *args[4];
		const char *want;
	} cases[] = {
		{{"t", "--n", "11", NULL}, "t.n (from flags): 11 is out of range [1, 10]"},
		{{"t", "--n", "x", NULL}, "\"x\" is not an integer"},
		{{"t", "--mode", "medium", NULL}, "\"medium\" is not one of fast|slow"},
		{{"t", "--nope", NULL}, "unknown option \"--nope\""},
		{{"t", "--n", NULL}, "option \"--n\" needs a value"},
		{{"t", "--b=maybe", NULL}, "is not a boolean"},
		{{"t", "--config", "/nonexistent/x.json", NULL}, "could not read config file"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tcfg_t c;
		lh_error_t err = {0};
		int argc = 0;
		while (cases[i].args[argc])
			argc++;
		T_EQ_INT(load(&c, argc, (char **)cases[i].args, &err, NULL, NULL), LH_ERR_CONFIG);
		if (!strstr(err.msg, cases[i].want)) {
			fprintf(stderr, "case %zu: \"%s\" lacks \"%s\"\n", i, err.msg, cases[i].want);
			T_CHECK(0);
		}
		T_CHECK(c.common.brokers == NULL); /* nothing applied */
	}
}

static void t_env_validated(void)
{
	tcfg_t c;
	lh_error_t err = {0};
	char *argv[] = {"t", NULL};
	setenv("LH_T_N", "0", 1);
	T_EQ_INT(load(&c, 1, argv, &err, NULL, NULL), LH_ERR_CONFIG);
	T_CHECK(strstr(err.msg, "t.n (from LH_T_N)") != NULL);
	unsetenv("LH_T_N");
}

static void t_split(void)
{
	char buf[64];
	const char *w[4];
	T_EQ_INT(lh_config_split(" a, b ,,c ", buf, sizeof(buf), w, 4), 3);
	T_EQ_STR(w[1], "b");
	T_EQ_INT(lh_config_split("a,b,c,d,e", buf, sizeof(buf), w, 4), -1);
}

int main(void)
{
	/* the tests set what they need: settings from the caller's environment must not leak in */
	for (const lh_cfg_def_t *d = lh_config_common_table; d->name; d++)
		if (d->env)
			unsetenv(d->env);
	unsetenv("LH_CONFIG");
	T_RUN(t_defaults);
	T_RUN(t_precedence);
	T_RUN(t_errors_name_the_setting);
	T_RUN(t_env_validated);
	T_RUN(t_split);
	return t_done();
}
