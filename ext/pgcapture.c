/* The C part of the pgcapture extension: which single statement is running (for
 * pgcapture.ddl_logs.query) and the command tags of a SQL string.
 *
 * A ProcessUtility hook keeps a stack of the utility statements being executed, each with
 * its own query string and location: the top is exactly the DDL that fired the event
 * trigger, whether it came in a multi-statement string or nested in a function, DO block
 * or EXECUTE. The hook only sees statements that start after this library is loaded, so
 * preloading it (shared_preload_libraries or session_preload_libraries) makes even the
 * first DDL of a session exact; otherwise that one falls back to the active portal. */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/parser.h"
#include "parser/scansup.h"
#include "tcop/cmdtag.h"
#include "tcop/deparse_utility.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/aclchk_internal.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/portal.h"

PG_MODULE_MAGIC;

#define MAX_DEPTH 64

typedef struct running_stmt {
    const char *query; /* borrowed: valid while the statement runs */
    int location;      /* -1: unknown, use the whole string */
    int len;           /* 0: to the end of the string */
    char *search_path; /* the caller's, copied when the statement started */
} running_stmt;

static running_stmt stack[MAX_DEPTH];
static int depth;
static ProcessUtility_hook_type prev_utility_hook;

void _PG_init(void);
PG_FUNCTION_INFO_V1(pgcapture_current_query);
PG_FUNCTION_INFO_V1(pgcapture_sql_command_tags);
PG_FUNCTION_INFO_V1(pgcapture_command_is_temporary);
PG_FUNCTION_INFO_V1(pgcapture_current_search_path);

static void pgcapture_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
                              ProcessUtilityContext context, ParamListInfo params,
                              QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
    int my_depth = depth;

    /* Deeper than the stack: the entry stays unrecorded and the caller's is reported. */
    if (my_depth < MAX_DEPTH) {
        stack[my_depth].query = queryString;
        stack[my_depth].location = pstmt->stmt_location;
        stack[my_depth].len = pstmt->stmt_len;
        /* The event trigger functions run with their own SET search_path: what the DDL
         * was resolved with (and a replica must replay it with) is only visible here. */
        stack[my_depth].search_path = namespace_search_path ? pstrdup(namespace_search_path) : NULL;
    }
    depth++;
    PG_TRY();
    {
        if (prev_utility_hook)
            prev_utility_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest,
                              qc);
        else
            standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
                                    dest, qc);
    }
    PG_FINALLY();
    {
        depth = my_depth;
    }
    PG_END_TRY();
}

void _PG_init(void)
{
    prev_utility_hook = ProcessUtility_hook;
    ProcessUtility_hook = pgcapture_utility;
}

/* The statement text at [location, location + len) of query, trimmed of blanks and a
 * trailing semicolon. */
static text *statement_text(const char *query, int location, int len)
{
    int qlen = (int)strlen(query);
    int start = location >= 0 && location <= qlen ? location : 0;
    int end = len > 0 && start + len <= qlen ? start + len : qlen;

    while (start < end && scanner_isspace(query[start]))
        start++;
    while (end > start && (scanner_isspace(query[end - 1]) || query[end - 1] == ';'))
        end--;
    return cstring_to_text_with_len(query + start, end - start);
}

Datum pgcapture_current_query(PG_FUNCTION_ARGS)
{
    /* Our own call is not a utility statement, so the top is the DDL being run. */
    if (depth > 0 && depth <= MAX_DEPTH && stack[depth - 1].query)
        PG_RETURN_TEXT_P(statement_text(stack[depth - 1].query, stack[depth - 1].location,
                                        stack[depth - 1].len));
    if (ActivePortal && ActivePortal->sourceText && list_length(ActivePortal->stmts) == 1) {
        PlannedStmt *p = linitial_node(PlannedStmt, ActivePortal->stmts);
        PG_RETURN_TEXT_P(statement_text(ActivePortal->sourceText, p->stmt_location, p->stmt_len));
    }
    if (debug_query_string)
        PG_RETURN_TEXT_P(statement_text(debug_query_string, -1, 0));
    PG_RETURN_NULL();
}

Datum pgcapture_current_search_path(PG_FUNCTION_ARGS)
{
    if (depth > 0 && depth <= MAX_DEPTH && stack[depth - 1].query && stack[depth - 1].search_path)
        PG_RETURN_TEXT_P(cstring_to_text(stack[depth - 1].search_path));
    PG_RETURN_NULL();
}

Datum pgcapture_sql_command_tags(PG_FUNCTION_ARGS)
{
    char *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
    List *stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
    int n = list_length(stmts), i = 0;
    Datum *tags = palloc(sizeof(Datum) * (n > 0 ? n : 1));
    ListCell *lc;

    foreach (lc, stmts) {
        RawStmt *raw = lfirst_node(RawStmt, lc);
        CommandTag tag = CreateCommandTag(raw->stmt);

        /* Only analysis turns SELECT ... INTO into its own statement: tag it as that. */
        if (IsA(raw->stmt, SelectStmt) && ((SelectStmt *)raw->stmt)->intoClause)
            tag = CMDTAG_SELECT_INTO;
        tags[i++] = CStringGetTextDatum(GetCommandTagName(tag));
    }
    PG_RETURN_ARRAYTYPE_P(construct_array(tags, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* Whether a collected DDL command touches only temporary relations where the event
 * trigger's columns cannot tell: GRANT and REVOKE carry no schema name. */
Datum pgcapture_command_is_temporary(PG_FUNCTION_ARGS)
{
    CollectedCommand *cmd = (CollectedCommand *)PG_GETARG_POINTER(0);
    InternalGrant *istmt;
    ListCell *lc;
    bool any = false;

    if (cmd->type != SCT_Grant)
        PG_RETURN_BOOL(false);
    istmt = cmd->d.grant.istmt;
    if (istmt->objtype != OBJECT_TABLE && istmt->objtype != OBJECT_SEQUENCE)
        PG_RETURN_BOOL(false);
    foreach (lc, istmt->objects) {
        if (get_rel_persistence(lfirst_oid(lc)) != RELPERSISTENCE_TEMP)
            PG_RETURN_BOOL(false);
        any = true;
    }
    PG_RETURN_BOOL(any);
}
