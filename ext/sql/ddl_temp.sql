-- DDL on temporary objects cannot be replayed and is not logged; a statement that drops
-- a temporary and a regular table is.
TRUNCATE pgcapture.ddl_logs;
CREATE TEMP TABLE scratch (id int);
CREATE INDEX ON scratch (id);
ALTER TABLE scratch ADD COLUMN v int;
COMMENT ON TABLE scratch IS 'temporary';
DROP TABLE scratch;
CREATE TEMP TABLE scratch2 (id int);
CREATE TABLE keeper (id int);
DROP TABLE scratch2, keeper;
SELECT query, tags FROM pgcapture.ddl_logs ORDER BY id;
