-- DDL run inside functions, DO blocks and EXECUTE is logged once per statement, with the
-- statement's own text, never the enclosing call.
TRUNCATE pgcapture.ddl_logs;
CREATE FUNCTION make_tables(suffix text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TABLE nested_%s (id int)', suffix);
    EXECUTE format('CREATE INDEX ON nested_%s (id)', suffix);
END
$$;
SELECT make_tables('a');
SELECT make_tables('b');
DO $$
BEGIN
    CREATE TABLE nested_static (id int);
    ALTER TABLE nested_static ADD COLUMN v text;
    INSERT INTO nested_static VALUES (1, 'x');
END
$$;
SELECT query, tags FROM pgcapture.ddl_logs ORDER BY id;
