/* reconcile.h — extract, then reconcile: new candidate facts against the nearest existing
 * memories (DESIGN.md §5).
 *
 * After a task succeeds, a cheap model extracts candidate facts. Before a model sees them:
 *   - lh_reconcile_filter drops candidates that only repeat the system prompt or a memory that
 *     was recalled into the conversation (never re-ingested), and empty or repeated candidates.
 * Then for the kept candidates the caller searches the nearest live memories and asks the model
 * (LH_RECONCILE_SYSTEM + lh_reconcile_prompt) which shows facts as F1..Fn and memories as
 * M1..Mm — small integers, never database ids, so a model cannot touch a memory it was not shown.
 * The model answers {"decisions": [{"fact": 1, "op": "ADD"},
 *                                  {"fact": 2, "op": "UPDATE", "memory": 1, "text": "..."},
 *                                  {"fact": 3, "op": "DELETE", "memory": 2},
 *                                  {"fact": 4, "op": "NONE", "memory": 3}]}
 *   ADD     the fact is new: written as a memory (exact and near duplicates still refused)
 *   UPDATE  memory M is refined by the fact: "text" (default: the fact) replaces it — written,
 *           and M superseded by it (kept, linked through superseded_by)
 *   DELETE  the fact contradicts memory M: the fact is written and M superseded by it
 *   NONE    nothing to store (already known, or not worth it)
 * lh_reconcile_parse checks the answer strictly; lh_reconcile_apply carries it out through
 * memory.c. A fact the model leaves out is ADDed (the write's duplicate checks still apply). */
#ifndef LH_RECONCILE_H
#define LH_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include "embedder.h"
#include "err.h"
#include "memory.h"
#include "pg.h"

typedef enum lh_reconcile_op {
	LH_RECONCILE_ADD,
	LH_RECONCILE_UPDATE,
	LH_RECONCILE_DELETE,
	LH_RECONCILE_NONE
} lh_reconcile_op_t;

typedef struct lh_reconcile_decision {
	int fact;   /* 0-based index into the candidates */
	lh_reconcile_op_t op;
	int memory; /* 0-based index into the memories shown; -1 = none */
	char *text; /* UPDATE's replacement text (owned), NULL = the fact itself */
} lh_reconcile_decision_t;

/* The system prompt of a reconcile call (static). */
extern const char LH_RECONCILE_SYSTEM[];

/* Which of the n candidates to keep: keep[i] = 0 for a candidate that is empty, repeats an
 * earlier candidate, or (compared as lower-case words) equals or lies inside the system prompt or
 * one of the recalled memories. All borrowed; system and recalled may be NULL. Returns the number
 * kept. */
size_t lh_reconcile_filter(const char *const *candidates, size_t n, const char *system,
			   const char *const *recalled, size_t n_recalled, int *keep);

/* The user message: facts numbered F1.., memories M1.. (new, free()). */
char *lh_reconcile_prompt(const char *const *facts, size_t n_facts, const char *const *memories,
			  size_t n_memories);

/* Parse the model's answer (JSON text, len bytes; a ```json fence around it is tolerated) for
 * n_facts facts and n_memories memories. Refused (LH_ERR_DECODE, nothing written): not an object
 * with a "decisions" array, unknown keys or ops (case-insensitive names accepted), fact numbers
 * outside 1..n_facts or decided twice, UPDATE/DELETE without a memory in 1..n_memories, two
 * UPDATE/DELETE of one memory, a "text" that is not a non-empty string or given to another op.
 * Facts not decided are appended as ADD. On success *ret is new (n_facts entries in fact order;
 * free with lh_reconcile_decisions_free). Pure; fuzzed by tests/fuzz/fuzz_reconcile.c. */
lh_err_t lh_reconcile_parse(const char *text, size_t len, size_t n_facts, size_t n_memories,
			    lh_reconcile_decision_t **ret, lh_error_t *err);
void lh_reconcile_decisions_free(lh_reconcile_decision_t *d, size_t n);

typedef struct lh_reconcile_outcome {
	lh_reconcile_op_t op;
	int64_t memory_id;     /* the memory written (ADD, UPDATE, DELETE), 0 when none */
	int64_t superseded_id; /* the memory superseded (UPDATE, DELETE), 0 when none */
	int64_t duplicate_of;  /* a write refused as a duplicate of this memory, 0 when not */
} lh_reconcile_outcome_t;

/* Carry out decisions[0..n) for facts[] against memory_ids[] (the database ids of M1..Mm, in the
 * order shown). New memories take tenant, scope, plan, kind, provenance and embedder from tmpl
 * (its content is ignored). A write refused as an exact or near duplicate is not an error: the
 * outcome names the existing memory; an UPDATE or DELETE whose text already exists as memory X
 * supersedes M by X (or does nothing when X is M). Each write is its own transaction, so a
 * crash between a write and its supersede leaves both live; applying the same decisions again
 * finishes the job (the write is then an exact duplicate). ret_outcomes[n] (may be NULL) is
 * filled. Stops at the first database error. */
lh_err_t lh_reconcile_apply(lh_pg_t *pg, const lh_memory_t *tmpl, const char *const *facts,
			    size_t n_facts, const int64_t *memory_ids, size_t n_memories,
			    const lh_reconcile_decision_t *decisions, size_t n,
			    lh_reconcile_outcome_t *ret_outcomes, lh_error_t *err);

#endif
