-- 0009_materialize_hot: cheaper rows for the materializer's fold (lh_materialize), measured with
-- `lh-bench materialize` (pg_cpu_us_per_event: PostgreSQL CPU per event, backends of the
-- materializer): 99 -> 72..87 us in the same sitting (materializer/README.md, "Throughput").
--
-- A task row is written four times (plan.created, then dispatched, started, result) and every
-- write changed `status`, a column of tasks_status_idx: each was a new tuple plus an entry in both
-- of the table's indexes. No query needs that index (every read of tasks names the plan, and the
-- primary key (plan_id, task_no) serves "a plan's tasks" with the status as a filter), so it goes:
-- updates of tasks that keep plan_id and task_no can now be HOT (heap-only: no index entry at all).
-- HOT needs room on the row's page, hence a fill factor for the three tables the fold updates
-- over and over (pages written from now on keep 30% free; a VACUUM FULL or CLUSTER would apply it
-- to old pages, none is needed).
--
-- events_type_idx (type, ts) is dropped too: no named query, no daemon and no tool reads events by
-- type first (sql/queries.sql: events are read by plan_id, by id, or by topic), and each event
-- paid one more B-tree insert for it. An audit over one type across plans scans, or adds its own
-- index: `CREATE INDEX CONCURRENTLY ... ON events (type, ts)`.
DROP INDEX IF EXISTS tasks_status_idx;
DROP INDEX IF EXISTS events_type_idx;
ALTER TABLE tasks SET (fillfactor = 70);
ALTER TABLE task_attempts SET (fillfactor = 70);
ALTER TABLE plans SET (fillfactor = 70);
