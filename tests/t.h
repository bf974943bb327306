/* t.h — the tiny test harness every C test uses.
 *
 *   T_CHECK(cond)               fails the test (and goes on) when cond is false
 *   T_EQ_INT(a, b) / T_EQ_STR(a, b)
 *   T_RUN(fn)                   runs `static void fn(void)` as one case
 *   return t_done();            in main: prints "N passed, N failed" for this file, exit status
 *
 * A case passes when it records no failure. Output is one line per failure with file:line. */
#ifndef LH_T_H
#define LH_T_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int t_case_failed, t_passed, t_failed;
static const char *t_case_name;

#define T_CHECK(cond)                                                                         \
	do {                                                                                  \
		if (!(cond)) {                                                                \
			fprintf(stderr, "FAIL %s: %s:%d: %s\n", t_case_name, __FILE__, __LINE__,  \
				#cond);                                                       \
			t_case_failed = 1;                                                    \
		}                                                                             \
	} while (0)

#define T_EQ_INT(a, b)                                                                        \
	do {                                                                                  \
		long long t_a_ = (long long)(a), t_b_ = (long long)(b);                       \
		if (t_a_ != t_b_) {                                                           \
			fprintf(stderr, "FAIL %s: %s:%d: %s == %s (%lld != %lld)\n", t_case_name, \
				__FILE__, __LINE__, #a, #b, t_a_, t_b_);                      \
			t_case_failed = 1;                                                    \
		}                                                                             \
	} while (0)

#define T_EQ_STR(a, b)                                                                        \
	do {                                                                                  \
		const char *t_a_ = (a), *t_b_ = (b);                                          \
		if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0) {                              \
			fprintf(stderr, "FAIL %s: %s:%d: %s == %s (\"%s\" != \"%s\")\n",        \
				t_case_name, __FILE__, __LINE__, #a, #b, t_a_ ? t_a_ : "(null)", \
				t_b_ ? t_b_ : "(null)");                                      \
			t_case_failed = 1;                                                    \
		}                                                                             \
	} while (0)

#define T_RUN(fn)                                                                             \
	do {                                                                                  \
		t_case_name = #fn;                                                            \
		t_case_failed = 0;                                                            \
		fn();                                                                         \
		if (t_case_failed)                                                            \
			t_failed++;                                                           \
		else                                                                          \
			t_passed++;                                                           \
		fprintf(stderr, "%s %s\n", t_case_failed ? "not ok" : "ok", #fn);            \
	} while (0)

static inline int t_done(void)
{
	printf("%d passed, %d failed\n", t_passed, t_failed);
	return t_failed ? 1 : 0;
}

#endif
