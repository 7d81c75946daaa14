-- IF EXISTS on a missing object succeeds exactly as without the extension.
TRUNCATE pgcapture.ddl_logs;
DROP TABLE IF EXISTS missing_table;
DROP INDEX IF EXISTS missing_index;
DROP VIEW IF EXISTS missing_view;
DROP SEQUENCE IF EXISTS missing_sequence;
ALTER TABLE IF EXISTS missing_table ADD COLUMN x int;
DROP TABLE IF EXISTS missing_a, missing_b;
SELECT query, tags FROM pgcapture.ddl_logs ORDER BY id;
