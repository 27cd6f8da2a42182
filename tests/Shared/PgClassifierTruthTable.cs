using System.Collections.Generic;
using NUnit.Framework;
using RwSplit.Routing;

namespace RwSplit.TestTables;

/// <summary>
/// The PostgreSQL classifier's truth table: each statement with its expected kind, session effect, hint and called
/// functions. The unit tests check the classifier against it; the integration tests run every statement on a real hot
/// standby, whose verdict (accepted, or refused because of recovery) must agree with it.
/// Cases: (sql, kind, effect, hint, functions).
/// </summary>
public static class PgClassifierTruthTable
{
    private static readonly string[] None = [];

    private static TestCaseData Case(string sql, StatementKind kind, SessionEffect effect = SessionEffect.None, RoutingHint hint = RoutingHint.None, string[]? functions = null)
        => new TestCaseData(sql, kind, effect, hint, functions ?? None).SetArgDisplayNames(sql.Length > 80 ? sql[..80] + "..." : sql);

    public static IEnumerable<TestCaseData> Reads()
    {
        yield return Case("SELECT 1", StatementKind.Read);
        yield return Case("select * from t where id = @id", StatementKind.Read);
        yield return Case("SELECT * FROM t WHERE id = $1", StatementKind.Read);
        yield return Case("SELECT * FROM t WHERE id = :id", StatementKind.Read);
        yield return Case("VALUES (1, 2), (3, 4)", StatementKind.Read);
        yield return Case("TABLE accounts", StatementKind.Read);
        yield return Case("WITH c AS (SELECT 1 AS x) SELECT x FROM c", StatementKind.Read);
        yield return Case("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 5) SELECT n FROM c", StatementKind.Read);
        yield return Case("WITH a(x) AS (SELECT 1), b(y) AS MATERIALIZED (SELECT 2) SELECT * FROM a, b", StatementKind.Read);
        yield return Case("(SELECT 1) UNION (SELECT 2)", StatementKind.Read);
        yield return Case("((SELECT 1)) ORDER BY 1", StatementKind.Read);
        yield return Case("SHOW search_path", StatementKind.Read);
        yield return Case("EXPLAIN SELECT * FROM t", StatementKind.Read);
        yield return Case("EXPLAIN ANALYZE SELECT * FROM t", StatementKind.Read);
        yield return Case("EXPLAIN (ANALYZE, BUFFERS) SELECT lower(name) FROM t", StatementKind.Read, functions: ["lower"]);
        yield return Case("EXPLAIN DELETE FROM t", StatementKind.Read);
        yield return Case("EXPLAIN (ANALYZE false) DELETE FROM t", StatementKind.Read);
        yield return Case("EXPLAIN SELECT nextval('s')", StatementKind.Read);
        yield return Case("COPY (SELECT * FROM t) TO STDOUT", StatementKind.Read);
        yield return Case("COPY t TO STDOUT", StatementKind.Read);
        yield return Case("COPY t (a, b) TO STDOUT WITH (FORMAT csv, FORCE_QUOTE (a))", StatementKind.Read);
        yield return Case("SELECT 1;", StatementKind.Read);
        yield return Case(";; SELECT 1 ;;", StatementKind.Read);
        yield return Case("SELECT 1; SELECT 2", StatementKind.Read);
        yield return Case("SELECT * FROM t WHERE x IN (SELECT y FROM u) AND EXISTS (SELECT 1 FROM v)", StatementKind.Read);
        yield return Case("SELECT CAST(x AS numeric(10, 2)), x::varchar(20), COALESCE(a, b), NULLIF(a, b) FROM t", StatementKind.Read);
        yield return Case("SELECT count(*) FILTER (WHERE x > 0) OVER (PARTITION BY y ORDER BY z) FROM t", StatementKind.Read, functions: ["count"]);
        yield return Case("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM t", StatementKind.Read, functions: ["percentile_cont"]);
        yield return Case("SELECT a, b FROM t GROUP BY ROLLUP (a, b)", StatementKind.Read);
        yield return Case("SELECT ARRAY(SELECT 1), ROW(1, 2), x = ANY(arr), GREATEST(1, 2) FROM t", StatementKind.Read);
        yield return Case("SELECT EXTRACT(YEAR FROM d), TRIM(BOTH ' ' FROM s), POSITION('a' IN s) FROM t", StatementKind.Read);
        yield return Case("SELECT * FROM t ORDER BY id LIMIT 10 OFFSET 20", StatementKind.Read);
        yield return Case("SELECT * FROM t TABLESAMPLE SYSTEM (10)", StatementKind.Read);
        yield return Case("SELECT CURRENT_TIMESTAMP(3), LOCALTIME, CURRENT_USER", StatementKind.Read);
        yield return Case("SELECT x FROM t WHERE a BETWEEN 1 AND 2 AND b LIKE 'x%' AND c IS NOT NULL", StatementKind.Read);
        yield return Case("SELECT * FROM t FOR", StatementKind.Read); // not SQL, but no lock clause either
        yield return Case("SELECT 1 FROM t WHERE \"for\" = 1 AND \"update\" = 2", StatementKind.Read);
        yield return Case("SELECT * FROM pg_temp.session_data", StatementKind.Read);
        yield return Case("SELECT t.update, t.delete FROM t", StatementKind.Read);
        yield return Case("EXPLAIN (FORMAT JSON, ANALYZE off) INSERT INTO t VALUES (1)", StatementKind.Read);
    }

    public static IEnumerable<TestCaseData> Lexing()
    {
        yield return Case("SELECT 'DELETE FROM x'", StatementKind.Read);
        yield return Case("SELECT 'it''s; DROP TABLE x'", StatementKind.Read);
        yield return Case("SELECT $$ ; INSERT $$", StatementKind.Read);
        yield return Case("SELECT $fn$ ; DELETE FROM t; $$ still inside $fn$", StatementKind.Read);
        yield return Case("SELECT \"update\" FROM t", StatementKind.Read);
        yield return Case("SELECT \"a\"\"; DELETE\" FROM t", StatementKind.Read);
        yield return Case("SELECT 1 -- ; DROP TABLE x", StatementKind.Read);
        yield return Case("/* nested /* comment */ still */ SELECT 1", StatementKind.Read);
        yield return Case("/* a /* b /* c */ ; DELETE FROM t */ */ SELECT 1", StatementKind.Read);
        yield return Case("SELECT E'it\\'s'", StatementKind.Read);
        yield return Case("SELECT E'\\\\'; DELETE FROM t", StatementKind.Write);
        yield return Case("SELECT 'a\\'; DELETE FROM t", StatementKind.Write); // standard strings: the backslash is a character
        yield return Case("SELECT U&'d\\0061t' , U&\"d\\0061t\" FROM t", StatementKind.Read);
        yield return Case("SELECT B'1010', X'FF', N'text'", StatementKind.Read);
        yield return Case("SELECT 1.5e-3, .5, 0xFF, 1_000", StatementKind.Read);
        yield return Case("SELECT a$b FROM t", StatementKind.Read);
        yield return Case("SELECT x::text, y::int[] FROM t", StatementKind.Read);
        yield return Case("SELECT data->>'k', data @> '{}'::jsonb FROM t", StatementKind.Read);
        yield return Case("SELECT 1 FROM t WHERE id = 1FOR UPDATE", StatementKind.Write);
        yield return Case("SELECT 'unterminated", StatementKind.Unknown);
        yield return Case("SELECT \"unterminated", StatementKind.Unknown);
        yield return Case("SELECT 1 /* unterminated", StatementKind.Unknown);
        yield return Case("SELECT 1 /* nested /* only once closed */", StatementKind.Unknown);
        yield return Case("SELECT $tag$ unterminated $$", StatementKind.Unknown);
        yield return Case("SELECT E'unterminated\\'", StatementKind.Unknown);
        yield return Case("SELECT (1", StatementKind.Unknown);
        yield return Case("SELECT 1)", StatementKind.Unknown);
        yield return Case("", StatementKind.Unknown);
        yield return Case("   \n\t ", StatementKind.Unknown);
        yield return Case("-- just a comment", StatementKind.Unknown);
        yield return Case(";", StatementKind.Unknown);
        yield return Case("FROBNICATE t", StatementKind.Unknown);
        yield return Case("42", StatementKind.Unknown);
    }

    public static IEnumerable<TestCaseData> Writes()
    {
        yield return Case("INSERT INTO t (a, b) VALUES (1, 2)", StatementKind.Write);
        yield return Case("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = excluded.a", StatementKind.Write);
        yield return Case("UPDATE t SET a = 1 WHERE id = 2", StatementKind.Write);
        yield return Case("DELETE FROM t WHERE id = 1", StatementKind.Write);
        yield return Case("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT (id, a) VALUES (s.id, s.a)", StatementKind.Write);
        yield return Case("TRUNCATE t", StatementKind.Write);
        yield return Case("COPY t FROM STDIN", StatementKind.Write);
        yield return Case("COPY t (a, b) FROM STDIN WITH (FORMAT binary)", StatementKind.Write);
        yield return Case("COPY t TO '/tmp/out.csv'", StatementKind.Write);
        yield return Case("COPY (SELECT 1) TO PROGRAM 'gzip > /tmp/x.gz'", StatementKind.Write);
        yield return Case("COPY (DELETE FROM t RETURNING *) TO STDOUT", StatementKind.Write);
        yield return Case("CREATE TABLE t (id int)", StatementKind.Write);
        yield return Case("CREATE UNLOGGED TABLE t (id int)", StatementKind.Write);
        yield return Case("CREATE TABLE t AS SELECT * FROM u", StatementKind.Write);
        yield return Case("CREATE OR REPLACE VIEW v AS SELECT 1", StatementKind.Write);
        yield return Case("ALTER TABLE t ADD COLUMN c int", StatementKind.Write);
        yield return Case("DROP TABLE t", StatementKind.Write);
        yield return Case("COMMENT ON TABLE t IS 'x'", StatementKind.Write);
        yield return Case("GRANT SELECT ON t TO r", StatementKind.Write);
        yield return Case("REVOKE SELECT ON t FROM r", StatementKind.Write);
        yield return Case("REINDEX TABLE t", StatementKind.Write);
        yield return Case("CLUSTER t USING t_pkey", StatementKind.Write);
        yield return Case("VACUUM (ANALYZE) t", StatementKind.Write);
        yield return Case("ANALYZE t", StatementKind.Write);
        yield return Case("REFRESH MATERIALIZED VIEW mv", StatementKind.Write);
        yield return Case("SECURITY LABEL ON TABLE t IS 'x'", StatementKind.Write);
        yield return Case("IMPORT FOREIGN SCHEMA s FROM SERVER f INTO l", StatementKind.Write);
        yield return Case("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", StatementKind.Write);
        yield return Case("CALL do_things(1)", StatementKind.Write, functions: ["do_things"]);
        yield return Case("DO $$ BEGIN PERFORM 1; END $$", StatementKind.Write);
        yield return Case("NOTIFY channel, 'payload'", StatementKind.Write);
        yield return Case("CHECKPOINT", StatementKind.Write);
        yield return Case("SELECT 1; DELETE FROM t", StatementKind.Write);
        yield return Case("WITH x AS (INSERT INTO t (a) VALUES (1) RETURNING *) SELECT * FROM x", StatementKind.Write);
        yield return Case("WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x", StatementKind.Write);
        yield return Case("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", StatementKind.Write);
        yield return Case("WITH x AS NOT MATERIALIZED (MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE RETURNING *) SELECT * FROM x", StatementKind.Write);
        yield return Case("WITH s AS (SELECT 1 AS id) INSERT INTO t SELECT id FROM s", StatementKind.Write);
        yield return Case("WITH x AS (INSERT INTO pg_temp.audit VALUES (1) RETURNING *) SELECT * FROM x", StatementKind.Write);
        yield return Case("SELECT * INTO new_table FROM t", StatementKind.Write);
        yield return Case("SELECT * INTO UNLOGGED TABLE new_table FROM t", StatementKind.Write);
        yield return Case("select * from t for update", StatementKind.Write);
        yield return Case("SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED", StatementKind.Write);
        yield return Case("SELECT * FROM t FOR SHARE OF t NOWAIT", StatementKind.Write);
        yield return Case("SELECT * FROM t FOR KEY SHARE", StatementKind.Write);
        yield return Case("SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)", StatementKind.Write);
        yield return Case("SELECT nextval('s')", StatementKind.Write, functions: ["nextval"]);
        yield return Case("SELECT pg_catalog.setval('s', 10)", StatementKind.Write, functions: ["setval"]);
        yield return Case("SELECT pg_advisory_xact_lock(42)", StatementKind.Write, functions: ["pg_advisory_xact_lock"]);
        yield return Case("SELECT pg_try_advisory_xact_lock_shared(42)", StatementKind.Write, functions: ["pg_try_advisory_xact_lock_shared"]);
        yield return Case("EXPLAIN ANALYZE DELETE FROM t", StatementKind.Write);
        yield return Case("EXPLAIN (ANALYZE true, VERBOSE) UPDATE t SET a = 1", StatementKind.Write);
        yield return Case("EXPLAIN ANALYSE VERBOSE INSERT INTO t VALUES (1)", StatementKind.Write);
        yield return Case("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; SELECT 1", StatementKind.Write);
        yield return Case("CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))", StatementKind.Write);
    }

    public static IEnumerable<TestCaseData> Sessions()
    {
        yield return Case("CREATE TEMP TABLE x (id int)", StatementKind.Write, SessionEffect.Pin);
        yield return Case("CREATE TEMPORARY TABLE x AS SELECT 1", StatementKind.Write, SessionEffect.Pin);
        yield return Case("CREATE LOCAL TEMP TABLE x (id int)", StatementKind.Write, SessionEffect.Pin);
        yield return Case("CREATE GLOBAL TEMPORARY UNLOGGED TABLE x (id int)", StatementKind.Write, SessionEffect.Pin);
        yield return Case("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", StatementKind.Write, SessionEffect.Pin);
        yield return Case("CREATE TABLE pg_temp.x (id int)", StatementKind.Write, SessionEffect.Pin);
        yield return Case("SELECT * INTO TEMP x FROM t", StatementKind.Write, SessionEffect.Pin);
        yield return Case("SELECT * INTO TEMPORARY TABLE x FROM t", StatementKind.Write, SessionEffect.Pin);
        yield return Case("SELECT * INTO pg_temp.x FROM t", StatementKind.Write, SessionEffect.Pin);
        yield return Case("SELECT pg_advisory_lock(42)", StatementKind.Write, SessionEffect.Pin, functions: ["pg_advisory_lock"]);
        yield return Case("SELECT pg_try_advisory_lock_shared(1, 2)", StatementKind.Write, SessionEffect.Pin, functions: ["pg_try_advisory_lock_shared"]);
        yield return Case("SELECT pg_advisory_unlock(42)", StatementKind.Write, SessionEffect.Pin, functions: ["pg_advisory_unlock"]);
        yield return Case("SELECT pg_advisory_unlock_all()", StatementKind.Write, SessionEffect.Pin, functions: ["pg_advisory_unlock_all"]);
        yield return Case("UPDATE t SET locked = pg_advisory_lock(id)", StatementKind.Write, SessionEffect.Pin, functions: ["pg_advisory_lock"]);
        yield return Case("SELECT set_config('app.tenant', '7', false)", StatementKind.Unknown, SessionEffect.Pin, functions: ["set_config"]);
        yield return Case("DECLARE c CURSOR FOR SELECT * FROM t", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("FETCH NEXT FROM c", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("MOVE 5 IN c", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("CLOSE c", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("BEGIN", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("begin isolation level serializable", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("START TRANSACTION READ ONLY", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("COMMIT", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("END", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("ROLLBACK TO SAVEPOINT s", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("ABORT", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("SAVEPOINT s", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("RELEASE SAVEPOINT s", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("PREPARE TRANSACTION 'gid'", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("COMMIT PREPARED 'gid'", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("ROLLBACK PREPARED 'gid'", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("BEGIN; INSERT INTO t VALUES (1); COMMIT", StatementKind.Write, SessionEffect.Pin);
        yield return Case("SET search_path TO app, public", StatementKind.Read, SessionEffect.Replay);
        yield return Case("SET SESSION statement_timeout = 5000", StatementKind.Read, SessionEffect.Replay);
        yield return Case("SET TIME ZONE 'UTC'", StatementKind.Read, SessionEffect.Replay);
        yield return Case("SET ROLE reporting", StatementKind.Read, SessionEffect.Replay);
        yield return Case("SET SESSION AUTHORIZATION app", StatementKind.Read, SessionEffect.Replay);
        yield return Case("RESET search_path", StatementKind.Read, SessionEffect.Replay);
        yield return Case("RESET ALL", StatementKind.Read, SessionEffect.Replay);
        yield return Case("SET a = 1; SET b = 2", StatementKind.Read, SessionEffect.Replay);
        yield return Case("SET search_path = app; SELECT 1", StatementKind.Read, SessionEffect.Pin);
        yield return Case("SET LOCAL statement_timeout = 1000", StatementKind.Read);
        yield return Case("SET CONSTRAINTS ALL DEFERRED", StatementKind.Read);
        yield return Case("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", StatementKind.Read);
        yield return Case("SET TRANSACTION READ ONLY", StatementKind.Read);
        yield return Case("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED", StatementKind.Read, SessionEffect.Replay);
        yield return Case("SET default_transaction_isolation = 'repeatable read'", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("SET default_transaction_isolation TO 'read committed'", StatementKind.Read, SessionEffect.Replay);
        yield return Case("LISTEN jobs", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("UNLISTEN *", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("PREPARE q (int) AS SELECT $1", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("EXECUTE q(1)", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("DEALLOCATE ALL", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("DISCARD ALL", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("EXPLAIN EXECUTE q(1)", StatementKind.Unknown, SessionEffect.Pin);
        yield return Case("EXPLAIN CREATE TEMP TABLE x AS SELECT 1", StatementKind.Write); // the planner creates the temporary schema: a standby refuses it
    }

    public static IEnumerable<TestCaseData> Functions()
    {
        yield return Case("SELECT count(*), lower(name), now() FROM t", StatementKind.Read, functions: ["count", "lower", "now"]);
        yield return Case("SELECT my_schema.calc(1)", StatementKind.Read, functions: ["calc"]);
        yield return Case("SELECT pg_catalog.now(), public.foo(1)", StatementKind.Read, functions: ["now", "foo"]);
        yield return Case("SELECT \"MyFunc\"(1), \"my\"\"q\"(2)", StatementKind.Read, functions: ["MyFunc", "my\"q"]);
        yield return Case("SELECT UPPER(a), Upper(b), upper(c), \"upper\"(d)", StatementKind.Read, functions: ["upper"]);
        yield return Case("SELECT substring(x from 1 for 2) FROM t", StatementKind.Read);
        yield return Case("SELECT overlay(x placing 'y' from 1 for 2) FROM t", StatementKind.Read);
        yield return Case("SELECT * FROM generate_series(1, 3) AS g(i)", StatementKind.Read, functions: ["generate_series"]);
        yield return Case("SELECT * FROM generate_series(1, 3) g(i)", StatementKind.Read, functions: ["generate_series"]);
        yield return Case("SELECT * FROM (SELECT 1, 2) s(a, b)", StatementKind.Read);
        yield return Case("SELECT * FROM (VALUES (1, 2)) v(a, b)", StatementKind.Read);
        yield return Case("SELECT * FROM t JOIN LATERAL unnest(t.arr) AS u(x) ON true", StatementKind.Read, functions: ["unnest"]);
        yield return Case("WITH c(a, b) AS (SELECT 1, 2), d(x) AS (SELECT 3) SELECT f(a), g(x) FROM c, d", StatementKind.Read, functions: ["f", "g"]);
        yield return Case("SELECT a, f(b) AS c FROM t", StatementKind.Read, functions: ["f"]);
        yield return Case("SELECT DISTINCT ON (a) f(b) FROM t", StatementKind.Read, functions: ["f"]);
        yield return Case("SELECT x AT TIME ZONE current_setting('TimeZone') FROM t", StatementKind.Read, functions: ["current_setting"]);
        yield return Case("SELECT f(g(h(1)))", StatementKind.Read, functions: ["f", "g", "h"]);
        yield return Case("SELECT f(1); SELECT g(2), f(3)", StatementKind.Read, functions: ["f", "g"]);
        yield return Case("SELECT left(s, 2), right(s, 2), replace(s, 'a', 'b') FROM t", StatementKind.Read, functions: ["left", "right", "replace"]);
        yield return Case("SELECT * FROM t WHERE id = @id AND f(:p)", StatementKind.Read, functions: ["f"]);
        yield return Case("INSERT INTO t (a) VALUES (gen_random_uuid())", StatementKind.Write, functions: ["gen_random_uuid"]);
        yield return Case("SELECT * FROM t WHERE x > random() LIMIT 1", StatementKind.Read, functions: ["random"]);
    }

    public static IEnumerable<TestCaseData> Hints()
    {
        yield return Case("/* rwsplit:primary */ SELECT 1", StatementKind.Read, hint: RoutingHint.Primary);
        yield return Case("SELECT 1 -- rwsplit:replica", StatementKind.Read, hint: RoutingHint.Replica);
        yield return Case("SELECT my_func(1) /* RWSPLIT:REPLICA */", StatementKind.Read, hint: RoutingHint.Replica, functions: ["my_func"]);
        yield return Case("/* rwsplit:replica */ SELECT 1 -- rwsplit:primary", StatementKind.Read, hint: RoutingHint.Primary);
        yield return Case("/* rwsplit:replica */ DELETE FROM t", StatementKind.Write, hint: RoutingHint.Replica);
        yield return Case("SELECT 'rwsplit:primary'", StatementKind.Read);
        yield return Case("SELECT \"rwsplit:primary\" FROM t", StatementKind.Read);
        yield return Case("/* outer /* rwsplit:primary */ still outer */ SELECT 1", StatementKind.Read, hint: RoutingHint.Primary);
    }

    /// <summary>
    /// Statements from real SQL that a hot standby refuses, or that were sent to the primary although a standby accepts
    /// them. Reads whose functions the catalog judges (volatile, or understated like <c>txid_current()</c>) list them.
    /// </summary>
    public static IEnumerable<TestCaseData> RecoveryTraps()
    {
        yield return Case("SELECT txid_current()", StatementKind.Read, functions: ["txid_current"]);
        yield return Case("SELECT pg_current_xact_id()", StatementKind.Read, functions: ["pg_current_xact_id"]);
        yield return Case("SELECT xid FROM txid_view", StatementKind.Read); // txid_current() inside a view: misroute recovery
        yield return Case("SELECT set('t')", StatementKind.Read, functions: ["set"]);
        yield return Case("SET TRANSACTION READ WRITE", StatementKind.Write);
        yield return Case("SET TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE", StatementKind.Write);
        yield return Case("SET TRANSACTION READ ONLY, ISOLATION LEVEL READ COMMITTED", StatementKind.Read);
        yield return Case("UPDATE t SET (a, b) = (1, 2)", StatementKind.Write, functions: ["set"]);
        yield return Case("SELECT p, q FROM t x(p, q)", StatementKind.Read);
        yield return Case("SELECT a, b FROM t AS x(a, b), u y(p, q)", StatementKind.Read);
        yield return Case("SELECT regclass('t')::text", StatementKind.Read, functions: ["regclass"]);
        yield return Case("SELECT interval '1.2345' second(2)", StatementKind.Read);
        yield return Case("SELECT id FROM t TABLESAMPLE BERNOULLI (50) REPEATABLE (7)", StatementKind.Read);
        yield return Case("SELECT f(x) FROM t WHERE x BETWEEN SYMMETRIC g(1) AND 2", StatementKind.Read, functions: ["f", "g"]);
    }

    /// <summary>
    /// Statements the table sends to the primary although a standby accepts them, and why: what user code does (CALL,
    /// DO) cannot be judged without running it, so it may write; a checkpoint and an advisory lock act on the server
    /// they run on, and the primary is the one meant.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> PrimaryByIntent = new Dictionary<string, string>(System.StringComparer.Ordinal)
    {
        ["CALL do_things(1)"] = "a procedure may write",
        ["DO $$ BEGIN PERFORM 1; END $$"] = "an anonymous block may write",
        ["CHECKPOINT"] = "the primary's checkpoint is meant",
        ["SELECT pg_advisory_xact_lock(42)"] = "an advisory lock coordinates writers, on the primary",
        ["SELECT pg_try_advisory_xact_lock_shared(42)"] = "an advisory lock coordinates writers, on the primary",
    };

    /// <summary>
    /// Reads of the table that a standby refuses, where RwSplit does not rely on the table: the function catalog sends
    /// them to the primary up front (volatile or understated functions), or misroute recovery re-runs them there.
    /// </summary>
    public static readonly IReadOnlySet<string> ReadsTheCatalogSendsToThePrimary = new HashSet<string>(System.StringComparer.Ordinal)
    {
        "SELECT txid_current()",
        "SELECT pg_current_xact_id()",
        "SELECT xid FROM txid_view",
        "SELECT set('t')",
    };
}
