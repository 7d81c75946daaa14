-- The search_path a DDL statement ran with is recorded (a replica replays it with that),
-- not the event trigger function's own.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgcapture;
RESET client_min_messages;
TRUNCATE pgcapture.ddl_logs;
CREATE SCHEMA sp_app;
SET search_path = sp_app, public;
CREATE TABLE in_app (id int);
DO $$ BEGIN EXECUTE 'CREATE TABLE nested_in_app (id int)'; END $$;
RESET search_path;
SELECT query, activity->>'search_path' AS search_path FROM pgcapture.ddl_logs ORDER BY id;
SET client_min_messages = warning;
DROP SCHEMA sp_app CASCADE;
RESET client_min_messages;
