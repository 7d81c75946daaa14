-- Plain DDL: one row per statement, with the statement's text and command tags.
CREATE EXTENSION pgcapture;
-- Installing the extension logs nothing.
SELECT count(*) FROM pgcapture.ddl_logs;
CREATE SCHEMA app;
CREATE TABLE app.items (id serial PRIMARY KEY, name text NOT NULL);
CREATE INDEX items_name ON app.items (name);
CREATE VIEW app.item_names AS SELECT name FROM app.items;
CREATE SEQUENCE app.counter;
CREATE FUNCTION app.double(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 2';
COMMENT ON TABLE app.items IS 'things';
ALTER TABLE app.items RENAME COLUMN name TO title;
DROP VIEW app.item_names;
DROP SEQUENCE app.counter;
-- DML is not logged.
INSERT INTO app.items (title) VALUES ('one');
SELECT id, query, tags FROM pgcapture.ddl_logs ORDER BY id;
-- Who ran it: every key is there (values vary from run to run).
SELECT array_agg(k ORDER BY k) FROM (SELECT jsonb_object_keys(activity) k FROM pgcapture.ddl_logs WHERE id = 1) s;
SELECT activity->>'database' = current_database() AS database_ok,
       activity->>'user' = session_user AS user_ok,
       (activity->>'backend_pid')::int = pg_backend_pid() AS pid_ok
  FROM pgcapture.ddl_logs WHERE id = 1;
