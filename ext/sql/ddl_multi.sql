-- Several statements in one query string (psql's \; sends them as one string): one row
-- each, each with only its own text.
TRUNCATE pgcapture.ddl_logs;
CREATE TABLE multi_a (id int) \; CREATE TABLE multi_b (id int) \; INSERT INTO multi_a VALUES (1) \; ALTER TABLE multi_b ADD COLUMN v int;
SELECT query, tags FROM pgcapture.ddl_logs ORDER BY id;
SELECT count(*) FROM multi_a;
