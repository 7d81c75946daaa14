-- The helper functions on their own.
SELECT pgcapture.current_query();
SELECT 1 AS one \; SELECT pgcapture.current_query();
SELECT pgcapture.sql_command_tags('CREATE TABLE t (); SELECT 1; GRANT SELECT ON t TO PUBLIC');
SELECT pgcapture.sql_command_tags('ALTER TABLE t ADD COLUMN x int; DROP TABLE t; COMMENT ON TABLE t IS ''x''');
SELECT pgcapture.sql_command_tags('');
SELECT pgcapture.sql_command_tags('CREATE TABLE (');
-- Bookkeeping table of replicas: the column order pgcapture's Go replicas expect.
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'pgcapture.sources'::regclass AND attnum > 0 ORDER BY attnum;
