-- GRANT and REVOKE are logged; on a temporary table they are not.
TRUNCATE pgcapture.ddl_logs;
DROP ROLE IF EXISTS pgcapture_reader;
CREATE ROLE pgcapture_reader;
CREATE TABLE granted (id int);
GRANT SELECT ON granted TO pgcapture_reader;
REVOKE SELECT ON granted FROM pgcapture_reader;
GRANT USAGE ON SCHEMA public TO pgcapture_reader;
CREATE TEMP TABLE tmp_granted (id int);
GRANT SELECT ON tmp_granted TO pgcapture_reader;
SELECT query, tags FROM pgcapture.ddl_logs ORDER BY id;
REVOKE USAGE ON SCHEMA public FROM pgcapture_reader;
DROP TABLE granted, tmp_granted;
DROP ROLE pgcapture_reader;
