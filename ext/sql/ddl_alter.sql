-- ALTER TABLE adding and dropping columns, CREATE TABLE AS and SELECT INTO.
TRUNCATE pgcapture.ddl_logs;
CREATE TABLE altered (id int PRIMARY KEY, a text, b text);
ALTER TABLE altered ADD COLUMN c int DEFAULT 0, DROP COLUMN a;
ALTER TABLE altered DROP COLUMN b;
ALTER TABLE altered ALTER COLUMN c SET NOT NULL;
CREATE TABLE copied AS SELECT * FROM altered;
SELECT id INTO selected FROM altered;
SELECT query, tags FROM pgcapture.ddl_logs ORDER BY id;
