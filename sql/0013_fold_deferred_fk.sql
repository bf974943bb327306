-- 0013_fold_deferred_fk: the fold checks the foreign keys of `tasks` and `input_requests` at
-- COMMIT, not at each write.
--
-- Why: PostgreSQL checks a row's foreign key again at every UPDATE of a row that its own
-- transaction inserted, even when the key did not change (ri_triggers.c), and a batch inserts a
-- task and then updates it up to three times (dispatched, running, result): `lh-bench
-- materialize` ran 212,773 checks (`SELECT 1 FROM plans ... FOR KEY SHARE`) for 200,000 events,
-- ~4 us per event in pg_stat_statements. A deferred check skips every version of the row that a
-- later update of the same transaction replaced, so one check per row remains.
--
-- The two constraints become DEFERRABLE (still INITIALLY IMMEDIATE for every other writer);
-- lh_mat_begin, which lh-materializer calls first in each batch's transaction, defers them for
-- that transaction. A violation is then raised by COMMIT, with the
-- same SQLSTATE (23503): lh-materializer's writer treats a failed COMMIT like a failed statement
-- (a data error: bisect, dead-letter the one event), and a COMMIT never runs after an error.
ALTER TABLE tasks ALTER CONSTRAINT tasks_plan_id_fkey DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE input_requests ALTER CONSTRAINT input_requests_plan_id_fkey
    DEFERRABLE INITIALLY IMMEDIATE;

-- A batch's transaction: the two checks deferred, the staging table open and empty.
CREATE OR REPLACE FUNCTION lh_mat_begin() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    SET CONSTRAINTS tasks_plan_id_fkey, input_requests_plan_id_fkey DEFERRED;
    PERFORM lh_mat_stage_open();
END
$fn$;
