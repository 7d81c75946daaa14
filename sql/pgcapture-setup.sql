-- pgcapture without its C extension: schema pgcapture, pgcapture.ddl_logs,
-- pgcapture.sources and the DDL event triggers, in SQL and PL/pgSQL only, for servers the
-- extension cannot be installed on (managed services, other majors). `pgcapture setup
-- --source CONNINFO` runs this file; `psql -1 -f sql/pgcapture-setup.sql` does the same.
-- Running it again updates the functions and keeps the tables. Creating event triggers
-- needs a superuser, or a managed service's administrator role (see docs/operations.md).
--
-- What the C extension reads from the server's parser, this reads from two places:
--   * a DDL statement run at the top level: the client's query string (current_query()).
--     When the string holds several statements, they are split here (quotes, comments,
--     dollar quotes, parentheses and BEGIN ATOMIC bodies respected) and the n-th DDL
--     event of the string is matched to the n-th statement that can fire it.
--   * a DDL statement nested in PL/pgSQL (functions, DO blocks, EXECUTE): the statement
--     text the error context stack (PG_CONTEXT) names.
-- Where neither gives the one statement (DDL in an SQL-language function, a nested
-- string of several statements, a statement that does not match its event), the row holds
-- the whole query string and activity->>'inexact' says why: replaying that string could
-- run its DML a second time, so `pgcapture replica` stops there and says what to do.

DO $check$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pgcapture') THEN
        RAISE EXCEPTION 'the pgcapture extension is installed in this database; it already captures DDL';
    END IF;
END
$check$;

-- Installed again: this script's own DDL is not user DDL to log (recreated at the end, in
-- the same transaction, so no other session's DDL goes unlogged).
DROP EVENT TRIGGER IF EXISTS pgcapture_ddl_drop;
DROP EVENT TRIGGER IF EXISTS pgcapture_ddl_end;

CREATE SCHEMA IF NOT EXISTS pgcapture;
REVOKE CREATE ON SCHEMA pgcapture FROM PUBLIC;

-- The same tables as the extension's, so agents and appliers work with either.
CREATE TABLE IF NOT EXISTS pgcapture.ddl_logs (
    id serial PRIMARY KEY,
    query text,
    tags text[],
    activity jsonb
);
CREATE TABLE IF NOT EXISTS pgcapture.sources (
    id text PRIMARY KEY,
    commit pg_lsn,
    seq int,
    commit_ts timestamptz,
    mid bytea,
    apply_ts timestamptz DEFAULT current_timestamp
);

-- The multi-statement query string each session is running DDL from: its statements, split
-- once, and how many of them DDL events have matched so far. A table of our own (not a
-- setting), so no user can forge what record_ddl logs; unlogged, so it is neither
-- published nor replicated.
CREATE UNLOGGED TABLE IF NOT EXISTS pgcapture.ddl_strings (
    backend int PRIMARY KEY,
    string_key text NOT NULL,
    statements text[] NOT NULL,
    matched int NOT NULL
);

-- The statements of a query string, in order, as the server's parser delimits them (the
-- text from after the previous semicolon, comments included), trimmed of blanks and the
-- semicolon; empty ones left out. NULL when the string ends inside a quote or
-- comment (it then cannot be split with confidence).
CREATE OR REPLACE FUNCTION pgcapture.split_statements(q text) RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog AS $$
DECLARE
    out text[] := '{}';
    ch text;
    prev text := '';
    st text := 'code';      -- code, squote, equote, dquote, dollar, line, block
    cur text := '';         -- the statement so far (comments inside it kept)
    word text := '';        -- the word being read
    lastw text := '';       -- the word just read, when nothing came after it yet
    words text[] := '{}';   -- the statement's first words, upper-cased
    tag text;               -- the dollar quote tag being read, or the open one
    tail text;              -- the last characters inside a dollar quote
    paren int := 0;
    atomic int := 0;        -- BEGIN ... END depth in CREATE FUNCTION/PROCEDURE bodies
    depth int := 0;         -- block comment nesting
    routine boolean := false;
    esc boolean := false;
    sc_on boolean := current_setting('standard_conforming_strings') = 'on';
BEGIN
    -- One pass over the characters (FOREACH walks an array in linear time). A trailing
    -- newline ends a final line comment.
    FOREACH ch IN ARRAY string_to_array(q || E'\n', NULL) LOOP
        IF st = 'code' THEN
            IF ch ~ '[[:alnum:]_$]' AND NOT (ch = '$' AND word = '') THEN
                word := word || ch;
                cur := cur || ch;
                prev := ch;
                CONTINUE;
            END IF;
            lastw := '';
            IF word <> '' THEN
                lastw := upper(word);
                IF cardinality(words) < 5 THEN
                    words := words || lastw;
                    routine := words[1] = 'CREATE' AND
                        (words[2] IN ('FUNCTION', 'PROCEDURE') OR
                         (words[2] = 'OR' AND words[3] = 'REPLACE' AND words[4] IN ('FUNCTION', 'PROCEDURE')));
                END IF;
                IF routine THEN
                    IF lastw = 'BEGIN' THEN atomic := atomic + 1;
                    ELSIF lastw = 'CASE' AND atomic > 0 THEN atomic := atomic + 1;
                    ELSIF lastw = 'END' AND atomic > 0 THEN atomic := atomic - 1;
                    END IF;
                END IF;
                word := '';
            END IF;
            IF ch = ';' AND paren = 0 AND atomic = 0 THEN
                cur := btrim(cur, E' \t\r\n\f');
                IF cur <> '' THEN out := out || cur; END IF;
                cur := ''; words := '{}'; routine := false; prev := '';
                CONTINUE;
            END IF;
            cur := cur || ch;
            IF (ch = '-' AND prev = '-') OR (ch = '*' AND prev = '/') THEN
                st := CASE WHEN ch = '-' THEN 'line' ELSE 'block' END;
                depth := 1;
                prev := '';
                CONTINUE;
            ELSIF ch = '''' THEN
                -- E'...' (the E read as a word of its own) takes backslash escapes.
                st := CASE WHEN lastw = 'E' OR NOT sc_on THEN 'equote' ELSE 'squote' END;
            ELSIF ch = '"' THEN
                st := 'dquote';
            ELSIF ch = '$' THEN
                st := 'dollar'; tag := '$'; tail := NULL;
            ELSIF ch = '(' THEN
                paren := paren + 1;
            ELSIF ch = ')' AND paren > 0 THEN
                paren := paren - 1;
            END IF;
            prev := ch;
        ELSIF st = 'line' OR st = 'block' THEN
            cur := cur || ch;
            IF st = 'line' THEN
                IF ch = E'\n' THEN st := 'code'; END IF;
            ELSIF ch = '/' AND prev = '*' THEN
                depth := depth - 1;
                IF depth = 0 THEN st := 'code'; END IF;
                ch := '';
            ELSIF ch = '*' AND prev = '/' THEN
                depth := depth + 1;
                ch := '';
            END IF;
            prev := ch;
        ELSIF st = 'squote' OR st = 'equote' THEN
            cur := cur || ch;
            IF esc THEN
                esc := false;
            ELSIF st = 'equote' AND ch = '\' THEN
                esc := true;
            ELSIF ch = '''' THEN
                -- '' inside a literal reads as closing and reopening: the same result.
                st := 'code'; prev := ''; lastw := '';
            END IF;
        ELSIF st = 'dquote' THEN
            cur := cur || ch;
            IF ch = '"' THEN st := 'code'; prev := ''; lastw := ''; END IF;
        ELSIF tail IS NULL THEN
            -- Reading a dollar quote's opening tag, a name (or none) between two dollars;
            -- anything else (a parameter such as $1) is code: that character is read again.
            IF ch = '$' THEN
                cur := cur || ch; tag := tag || '$'; tail := '';
            ELSIF ch ~ '[[:alpha:]_]' OR (ch ~ '[[:digit:]]' AND tag <> '$') THEN
                cur := cur || ch; tag := tag || ch;
            ELSE
                st := 'code'; prev := '$';
                IF ch = ';' AND paren = 0 AND atomic = 0 THEN
                    cur := btrim(cur, E' \t\r\n\f');
                    IF cur <> '' THEN out := out || cur; END IF;
                    cur := ''; words := '{}'; routine := false; prev := '';
                    CONTINUE;
                END IF;
                cur := cur || ch;
                IF ch = '''' THEN st := CASE WHEN sc_on THEN 'squote' ELSE 'equote' END;
                ELSIF ch = '"' THEN st := 'dquote';
                ELSIF ch = '(' THEN paren := paren + 1;
                ELSIF ch = ')' AND paren > 0 THEN paren := paren - 1;
                END IF;
                prev := ch;
            END IF;
        ELSE
            cur := cur || ch;
            tail := right(tail || ch, length(tag));
            IF tail = tag THEN st := 'code'; prev := ''; lastw := ''; END IF;
        END IF;
    END LOOP;
    IF st NOT IN ('code', 'line') THEN
        RETURN NULL;
    END IF;
    cur := btrim(cur, E' \t\r\n\f');
    IF cur <> '' THEN out := out || cur; END IF;
    RETURN out;
END
$$;

-- Whether statement `stmt` can be the one that fired a DDL event with command tag `tag`:
-- its leading keywords (after CREATE's modifiers) are the tag's, and it is not one of the
-- commands on databases, tablespaces, roles or parameters that fire no event trigger.
CREATE OR REPLACE FUNCTION pgcapture.statement_fires(stmt text, tag text) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog AS $$
DECLARE
    -- Its first words, after the comments before it.
    w text[] := regexp_split_to_array(upper(btrim(left(regexp_replace(stmt,
        '^(\s|/\*([^*]|\*+[^*/])*\*+/|--[^\n]*(\n|$))+', ''), 400), E' \t\r\n\f(')), '[^A-Z0-9_]+');
    t text[] := string_to_array(tag, ' ');
    i int := 2;
BEGIN
    IF tag = 'SELECT INTO' THEN
        -- SELECT ... INTO: the keyword can be anywhere; only a statement of one SELECT
        -- whose words include INTO qualifies.
        RETURN w[1] IN ('SELECT', 'WITH') AND 'INTO' = ANY (w);
    END IF;
    IF w[1] IS DISTINCT FROM t[1] THEN
        RETURN false;
    END IF;
    IF w[1] = 'CREATE' THEN
        WHILE w[i] IN ('OR', 'REPLACE', 'TEMP', 'TEMPORARY', 'UNLOGGED', 'GLOBAL', 'LOCAL',
                       'UNIQUE', 'RECURSIVE', 'TRUSTED', 'PROCEDURAL', 'DEFAULT', 'CONSTRAINT') LOOP
            i := i + 1;
        END LOOP;
    END IF;
    IF tag = 'CREATE TABLE AS' THEN
        RETURN w[i] = 'TABLE' AND 'AS' = ANY (w[i + 1:]);
    END IF;
    FOR j IN 2 .. cardinality(t) LOOP
        IF w[i] IS DISTINCT FROM t[j] THEN
            RETURN false;
        END IF;
        i := i + 1;
    END LOOP;
    IF w[1] IN ('GRANT', 'REVOKE', 'COMMENT', 'SECURITY') THEN
        RETURN stmt !~* '\mON\s+(DATABASE|TABLESPACE|ROLE|PARAMETER)\M';
    END IF;
    RETURN true;
END
$$;

-- Whether a GRANT or REVOKE names only temporary tables or sequences (nothing to replay).
CREATE OR REPLACE FUNCTION pgcapture.grant_is_temporary(stmt text) RETURNS boolean
    LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog AS $$
DECLARE
    m text[] := regexp_match(stmt, '\mON\s+(.*)\s(TO|FROM)\s', 'i');
    name text;
    any_temp boolean := false;
BEGIN
    IF m IS NULL THEN
        RETURN false;
    END IF;
    FOREACH name IN ARRAY string_to_array(regexp_replace(m[1], '^\s*(TABLE|SEQUENCE)\s+', '', 'i'), ',') LOOP
        IF (SELECT c.relpersistence FROM pg_class c WHERE c.oid = to_regclass(btrim(name)))
           IS DISTINCT FROM 't' THEN
            RETURN false;
        END IF;
        any_temp := true;
    END LOOP;
    RETURN any_temp;
END
$$;

-- sql_drop fires before ddl_command_end for the same statement: it notes whether the
-- statement dropped only temporary objects (not replayable, so not logged).
CREATE OR REPLACE FUNCTION pgcapture.note_drop() RETURNS event_trigger
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM set_config('pgcapture.drop_temp_only',
        CASE WHEN bool_and(is_temporary) THEN 'on' ELSE 'off' END, true)
    FROM pg_event_trigger_dropped_objects();
END
$$;

-- The event trigger runs as the user who ran the DDL with that user's search_path, which
-- is what the replica must replay it with; it hands both to record_ddl, which runs as the
-- owner of pgcapture (ddl_logs is writable by no one else). Every name here is qualified.
CREATE OR REPLACE FUNCTION pgcapture.log_ddl() RETURNS event_trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgcapture.record_ddl(tg_tag, pg_catalog.current_setting('search_path'));
END
$$;

-- Records the DDL statement that fired log_ddl. Only callable while an event trigger runs
-- (pg_event_trigger_ddl_commands() refuses otherwise).
CREATE OR REPLACE FUNCTION pgcapture.record_ddl(tag text, caller_search_path text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgcapture AS $$
DECLARE
    n_cmds int;
    n_replayable int;
    objects text[];
    drop_temp_only text := current_setting('pgcapture.drop_temp_only', true);
    ctx text;
    nested text;
    top text := current_query();
    stmts text[];
    key text;
    start int := 1;
    q text;
    inexact text;
BEGIN
    PERFORM set_config('pgcapture.drop_temp_only', '', true);
    SELECT count(*),
           count(*) FILTER (WHERE NOT in_extension AND coalesce(schema_name !~ '^pg_temp', true)),
           array_agg(coalesce(object_identity, object_type))
      INTO n_cmds, n_replayable, objects
      FROM pg_event_trigger_ddl_commands();
    -- Objects created by an extension's script come with its CREATE EXTENSION, and objects
    -- in temporary schemas cannot be replayed.
    IF n_cmds > 0 AND n_replayable = 0 THEN
        RETURN;
    END IF;
    IF n_cmds = 0 AND drop_temp_only = 'on' THEN
        RETURN;
    END IF;

    -- The error context stack below our own two frames: empty for a statement the client
    -- sent, else starting with the PL/pgSQL statement that ran the DDL.
    GET DIAGNOSTICS ctx = PG_CONTEXT;
    ctx := substr(ctx, strpos(ctx, E'\nPL/pgSQL function pgcapture.log_ddl() line ') + 1);
    ctx := CASE WHEN strpos(ctx, E'\n') = 0 THEN '' ELSE substr(ctx, strpos(ctx, E'\n') + 1) END;

    IF ctx = '' THEN
        -- Most strings are one statement without comments: no need to split those. A
        -- string is split once, for its first DDL event (the same string may COMMIT between
        -- its statements: the row outlives each transaction that matched one).
        key := statement_timestamp()::text || ' ' || md5(top);
        IF top !~ '(;|--|/\*)\s*\S' THEN
            stmts := ARRAY[btrim(top, E' \t\r\n\f;')];
        ELSE
            SELECT d.statements, d.matched INTO stmts, start
              FROM pgcapture.ddl_strings d
             WHERE d.backend = pg_backend_pid() AND d.string_key = key;
            IF NOT FOUND THEN
                stmts := pgcapture.split_statements(top);
                start := 0;
            END IF;
            start := start + 1;
        END IF;
        IF stmts IS NULL THEN
            inexact := 'its query string could not be split into statements';
        ELSIF cardinality(stmts) = 1 THEN
            IF pgcapture.statement_fires(stmts[1], tag) THEN
                q := stmts[1];
            ELSE
                inexact := format('its query string is not a %s statement', tag);
            END IF;
        ELSE
            -- The n-th event of this string is its n-th statement that can fire it.
            FOR i IN start .. cardinality(stmts) LOOP
                IF pgcapture.statement_fires(stmts[i], tag) THEN
                    q := stmts[i];
                    INSERT INTO pgcapture.ddl_strings AS d VALUES (pg_backend_pid(), key, stmts, i)
                        ON CONFLICT (backend) DO UPDATE
                        SET string_key = EXCLUDED.string_key, statements = EXCLUDED.statements,
                            matched = EXCLUDED.matched;
                    EXIT;
                END IF;
            END LOOP;
            IF q IS NULL THEN
                inexact := format('no statement of its %s-statement query string matches this %s',
                                  cardinality(stmts), tag);
            END IF;
        END IF;
    ELSIF starts_with(ctx, 'SQL statement "') AND strpos(ctx, E'"\nPL/pgSQL function ') > 0 THEN
        nested := substr(ctx, 16, strpos(ctx, E'"\nPL/pgSQL function ') - 16);
        stmts := pgcapture.split_statements(nested);
        IF cardinality(stmts) = 1 AND pgcapture.statement_fires(stmts[1], tag) THEN
            q := stmts[1];
        ELSE
            inexact := 'it ran nested in PL/pgSQL as part of a string of several statements';
        END IF;
    ELSE
        inexact := format('it ran inside %s', split_part(ctx, E'\n', 1));
    END IF;

    IF q IS NOT NULL AND tag IN ('GRANT', 'REVOKE') AND pgcapture.grant_is_temporary(q) THEN
        RETURN;
    END IF;
    INSERT INTO pgcapture.ddl_logs (query, tags, activity)
    VALUES (coalesce(q, top), ARRAY[tag],
            jsonb_build_object(
                'database', current_database(),
                'user', session_user,
                'application_name', current_setting('application_name'),
                'client_addr', inet_client_addr(),
                'client_port', inet_client_port(),
                'backend_pid', pg_backend_pid(),
                'backend_start', (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()),
                'xact_start', now(),
                'search_path', caller_search_path)
            || CASE WHEN inexact IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('inexact', inexact, 'objects', to_jsonb(objects)) END);
END
$$;

-- log_ddl runs as whoever ran the DDL and calls record_ddl by name.
GRANT USAGE ON SCHEMA pgcapture TO PUBLIC;

CREATE EVENT TRIGGER pgcapture_ddl_drop ON sql_drop EXECUTE FUNCTION pgcapture.note_drop();
CREATE EVENT TRIGGER pgcapture_ddl_end ON ddl_command_end EXECUTE FUNCTION pgcapture.log_ddl();
