#include "log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct {
	const char *daemon;
	lh_log_level_t min;
	int debug;
	FILE *out;
	pthread_mutex_t lock;
} L = {"longhaul", LH_LOG_INFO, 0, NULL, PTHREAD_MUTEX_INITIALIZER};

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void lh_log_init(const char *daemon, lh_log_level_t min, FILE *out)
{
	L.daemon = daemon ? daemon : "longhaul";
	L.min = min;
	L.out = out;
}

int lh_log_level_parse(const char *s)
{
	for (int i = 0; i <= LH_LOG_OFF; i++)
		if (s && strcmp(s, level_names[i]) == 0)
			return i;
	if (s && strcmp(s, "warning") == 0)
		return LH_LOG_WARN;
	return -1;
}

int lh_log_debug_parse(const char *s)
{
	static const struct {
		const char *name;
		int bit;
	} cats[] = {{"kafka", LH_DBG_KAFKA}, {"pg", LH_DBG_PG},	    {"http", LH_DBG_HTTP},
		    {"fold", LH_DBG_FOLD},   {"codec", LH_DBG_CODEC}, {"all", LH_DBG_ALL}};
	int mask = 0;
	const char *p = s;
	if (!s || !*s)
		return 0;
	while (*p) {
		size_t n = strcspn(p, ",");
		bool found = false;
		for (size_t i = 0; i < sizeof(cats) / sizeof(cats[0]); i++) {
			if (strlen(cats[i].name) == n && strncmp(p, cats[i].name, n) == 0) {
				mask |= cats[i].bit;
				found = true;
			}
		}
		if (!found && n > 0)
			return -1;
		p += n;
		if (*p == ',')
			p++;
	}
	return mask;
}

void lh_log_set_level(lh_log_level_t min) { L.min = min; }
void lh_log_set_debug(int mask) { L.debug = mask; }
bool lh_log_enabled(lh_log_level_t level) { return level >= L.min && level < LH_LOG_OFF; }
bool lh_log_debug_on(int category) { return (L.debug & category) && L.min <= LH_LOG_DEBUG; }

const char *lh_log_i64(char buf[24], long long v)
{
	snprintf(buf, 24, "%lld", v);
	return buf;
}

void lh_log(lh_log_level_t level, const char *event, const char *msg, ...)
{
	struct timeval tv;
	struct tm tm;
	char ts[40];
	va_list ap;
	json_t *o;
	char *line;

	if (!lh_log_enabled(level))
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec);
	o = json_object();
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "level", json_string(level_names[level]));
	json_object_set_new(o, "daemon", json_string(L.daemon));
	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "event", json_string(event ? event : "log"));
	if (msg)
		json_object_set_new(o, "msg", json_stringn(msg, strlen(msg)));
	va_start(ap, msg);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		const char *v;
		if (!k)
			break;
		v = va_arg(ap, const char *);
		json_object_set_new(o, k, v ? json_stringn(v, strlen(v)) : json_null());
	}
	va_end(ap);
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	json_decref(o);
	if (!line)
		return;
	pthread_mutex_lock(&L.lock);
	fprintf(L.out ? L.out : stderr, "%s\n", line);
	fflush(L.out ? L.out : stderr);
	pthread_mutex_unlock(&L.lock);
	free(line);
}
