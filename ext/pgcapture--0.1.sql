-- pgcapture 0.1: DDL capture and replica bookkeeping for pgcapture-c.
\echo Use "CREATE EXTENSION pgcapture" to load this file. \quit

-- One row per DDL statement, written inside the DDL's own transaction so that it
-- replicates in order with the DML around it.
CREATE TABLE pgcapture.ddl_logs (
    id serial PRIMARY KEY,
    query text,
    tags text[],
    activity jsonb
);

-- The applied position of a replica (written by `pgcapture replica`). Column order as in
-- replicas set up by the Go pgcapture, so those keep working.
CREATE TABLE pgcapture.sources (
    id text PRIMARY KEY,
    commit pg_lsn,
    seq int,
    commit_ts timestamptz,
    mid bytea,
    apply_ts timestamptz DEFAULT current_timestamp
);

CREATE FUNCTION pgcapture.current_query() RETURNS text
    AS 'MODULE_PATHNAME', 'pgcapture_current_query' LANGUAGE C VOLATILE;

-- The search_path the running DDL statement was started with (NULL when unknown: the
-- library was not loaded when it started).
CREATE FUNCTION pgcapture.current_search_path() RETURNS text
    AS 'MODULE_PATHNAME', 'pgcapture_current_search_path' LANGUAGE C VOLATILE;

CREATE FUNCTION pgcapture.sql_command_tags(text) RETURNS text[]
    AS 'MODULE_PATHNAME', 'pgcapture_sql_command_tags' LANGUAGE C IMMUTABLE STRICT;

CREATE FUNCTION pgcapture.command_is_temporary(pg_ddl_command) RETURNS bool
    AS 'MODULE_PATHNAME', 'pgcapture_command_is_temporary' LANGUAGE C STABLE STRICT;

-- Who ran a statement: enough to replay it in the same context and to audit it.
CREATE FUNCTION pgcapture.activity() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'database', current_database(),
        'user', session_user,
        'application_name', current_setting('application_name'),
        'client_addr', inet_client_addr(),
        'client_port', inet_client_port(),
        'backend_pid', pg_backend_pid(),
        'backend_start', (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()),
        'xact_start', now(),
        'search_path', coalesce(pgcapture.current_search_path(), current_setting('search_path')))
$$;

-- sql_drop fires before ddl_command_end for the same statement: it notes whether the
-- statement dropped only temporary objects (not replayable, so not logged).
CREATE FUNCTION pgcapture.note_drop() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgcapture AS $$
BEGIN
    PERFORM set_config('pgcapture.drop_temp_only',
        CASE WHEN bool_and(is_temporary) THEN 'on' ELSE 'off' END, true)
    FROM pg_event_trigger_dropped_objects();
END
$$;

CREATE FUNCTION pgcapture.log_ddl() RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgcapture AS $$
DECLARE
    n_cmds int;
    n_replayable int;
    cmd_tags text[];
    q text;
    drop_temp_only text := current_setting('pgcapture.drop_temp_only', true);
BEGIN
    PERFORM set_config('pgcapture.drop_temp_only', '', true);
    -- The extension's own objects are not user DDL; replicas install it themselves.
    IF tg_tag IN ('CREATE EXTENSION', 'ALTER EXTENSION', 'DROP EXTENSION') THEN
        q := pgcapture.current_query();
        IF q ~* '^\s*(create|alter|drop)\s+extension\s+(if\s+(not\s+)?exists\s+)?"?pgcapture"?(\s|;|$)' THEN
            RETURN;
        END IF;
    END IF;
    -- Objects created by an extension's script come with its CREATE EXTENSION (logged),
    -- and objects in temporary schemas cannot be replayed.
    SELECT count(*),
           count(*) FILTER (WHERE NOT in_extension
                            AND coalesce(schema_name !~ '^pg_temp', true)
                            AND NOT pgcapture.command_is_temporary(command))
      INTO n_cmds, n_replayable
      FROM pg_event_trigger_ddl_commands();
    IF n_cmds > 0 AND n_replayable = 0 THEN
        RETURN;
    END IF;
    IF n_cmds = 0 AND drop_temp_only = 'on' THEN
        RETURN;
    END IF;
    q := coalesce(q, pgcapture.current_query());
    cmd_tags := pgcapture.sql_command_tags(q);
    -- Without the library preloaded, the first DDL of a session nested in a function or
    -- DO block can only be seen as its enclosing statement: say so rather than guess.
    IF NOT tg_tag = ANY (cmd_tags) THEN
        RAISE WARNING 'pgcapture: logged the enclosing statement of a nested %', tg_tag
            USING HINT = 'Set session_preload_libraries = ''pgcapture'' (or shared_preload_libraries) so nested DDL is logged statement by statement.';
    END IF;
    INSERT INTO pgcapture.ddl_logs (query, tags, activity)
    VALUES (q, cmd_tags, pgcapture.activity());
END
$$;

CREATE EVENT TRIGGER pgcapture_ddl_drop ON sql_drop EXECUTE FUNCTION pgcapture.note_drop();
CREATE EVENT TRIGGER pgcapture_ddl_end ON ddl_command_end EXECUTE FUNCTION pgcapture.log_ddl();
