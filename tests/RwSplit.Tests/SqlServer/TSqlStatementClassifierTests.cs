using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.SqlServer;

namespace RwSplit.Tests.SqlServer;

[TestFixture]
public sealed class TSqlStatementClassifierTests
{
    private const StatementKind Read = StatementKind.Read;
    private const StatementKind Write = StatementKind.Write;
    private const StatementKind Unknown = StatementKind.Unknown;
    private const SessionEffect None = SessionEffect.None;
    private const SessionEffect Replay = SessionEffect.Replay;
    private const SessionEffect Pin = SessionEffect.Pin;

    private static readonly string[] ReadOnlyProcedures = ["dbo.GetOrders", "ReportTotals", "[reports].[Monthly Sales]"];

    private readonly TSqlStatementClassifier _classifier = new(ReadOnlyProcedures);

    private static TestCaseData Text(string sql, StatementKind kind, SessionEffect effect = SessionEffect.None, RoutingHint hint = RoutingHint.None)
        => new TestCaseData(sql, kind, effect, hint).SetArgDisplayNames(sql.Replace("\n", "\\n", StringComparison.Ordinal), kind + "+" + effect + "+" + hint);

    private static IEnumerable<TestCaseData> TextCases()
    {
        // Plain reads: joins, functions, literals and identifiers that look like writes.
        yield return Text("SELECT o.id, UPPER(c.name), COUNT(*) FROM dbo.orders o JOIN dbo.customers c ON c.id = o.customer_id WHERE o.created > DATEADD(day, -1, GETUTCDATE()) GROUP BY o.id, c.name", Read);
        yield return Text("SELECT 1", Read);
        yield return Text("SELECT a FROM t LEFT JOIN u ON t.id = u.id ORDER BY a OFFSET 10 ROWS FETCH NEXT 10 ROWS ONLY", Read);
        yield return Text("SELECT 'DELETE FROM t'", Read);
        yield return Text("SELECT N'UPDATE t SET a = 1; DROP TABLE t'", Read);
        yield return Text("SELECT [update], [delete] FROM t", Read);
        yield return Text("SELECT \"insert\" FROM t", Read);
        yield return Text("-- DELETE\nSELECT 1", Read);
        yield return Text("/* UPDATE t SET a = 1 */ SELECT 1", Read);
        yield return Text("SELECT * FROM dbo.fn_orders(1) f", Read);
        yield return Text("SELECT value FROM STRING_SPLIT('a,b', ',')", Read);
        yield return Text("SELECT j.[key] FROM t CROSS APPLY OPENJSON(t.doc) j", Read);
        yield return Text("SELECT a FROM t FOR JSON PATH", Read);
        yield return Text("SELECT a FROM t UNION ALL SELECT b FROM u", Read);
        yield return Text("SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE EXISTS (SELECT 1 FROM v))", Read);

        // Table hints.
        yield return Text("SELECT * FROM t WITH (NOLOCK)", Read);
        yield return Text("SELECT * FROM t WITH (READPAST)", Read);
        yield return Text("SELECT * FROM t WITH (INDEX(ix_t_a))", Read);
        yield return Text("SELECT * FROM t WITH (UPDLOCK)", Write);
        yield return Text("SELECT * FROM t WITH (ROWLOCK, UPDLOCK) WHERE id = 1", Write);
        yield return Text("SELECT * FROM t WITH (XLOCK)", Write);
        yield return Text("SELECT * FROM t WITH (HOLDLOCK)", Write);
        yield return Text("SELECT * FROM t WITH (TABLOCKX)", Write);
        yield return Text("SELECT * FROM t WITH (SERIALIZABLE)", Write);
        yield return Text("SELECT * FROM t WITH (REPEATABLEREAD)", Write);
        yield return Text("SELECT * FROM t (UPDLOCK)", Write);
        yield return Text("SELECT * FROM t JOIN u WITH (UPDLOCK) ON t.id = u.id", Write);
        yield return Text("SELECT 1 FROM t OPTION (TABLE HINT(t, UPDLOCK))", Write);

        // SELECT INTO, OUTPUT, sequences.
        yield return Text("SELECT a INTO b FROM t", Write);
        yield return Text("SELECT a INTO #b FROM t", Write, Pin);
        yield return Text("SELECT a INTO ##b FROM t", Write, Pin);
        yield return Text("INSERT INTO t (a) OUTPUT inserted.id VALUES (1)", Write);
        yield return Text("DELETE FROM t OUTPUT deleted.id WHERE id = 1", Write);
        yield return Text("UPDATE t SET a = 1 OUTPUT inserted.a INTO @log WHERE id = 2", Write);
        yield return Text("SELECT NEXT VALUE FOR dbo.seq", Write);
        yield return Text("DECLARE @id int = NEXT VALUE FOR dbo.seq", Write);
        yield return Text("SET @id = NEXT VALUE FOR dbo.seq", Write);

        // DML.
        yield return Text("INSERT INTO t (a) VALUES (1)", Write);
        yield return Text("INSERT INTO t (a) SELECT a FROM u", Write);
        yield return Text("UPDATE t SET a = 1 WHERE id = 2", Write);
        yield return Text("DELETE FROM t WHERE id = 2", Write);
        yield return Text("DELETE t", Write);
        yield return Text("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET t.a = s.a WHEN NOT MATCHED THEN INSERT (id, a) VALUES (s.id, s.a);", Write);
        yield return Text("TRUNCATE TABLE t", Write);
        yield return Text("BULK INSERT t FROM 'data.csv'", Write);

        // CTEs.
        yield return Text("WITH c AS (SELECT id FROM t) SELECT * FROM c", Read);
        yield return Text("WITH c AS (SELECT id FROM t), d AS (SELECT id FROM c) SELECT * FROM d", Read);
        yield return Text("WITH c AS (SELECT id FROM t) UPDATE t SET a = 1 WHERE id IN (SELECT id FROM c)", Write);
        yield return Text("WITH c AS (SELECT TOP 10 * FROM t ORDER BY id) DELETE FROM c", Write);

        // Batches: the worst statement wins.
        yield return Text("SELECT 1; DELETE FROM t", Write);
        yield return Text("SELECT 1; SELECT 2", Read);
        yield return Text("SELECT 1\nGO\nSELECT 2", Read);
        yield return Text("SELECT 1\nGO\nDELETE FROM t", Write);
        yield return Text("DBCC CHECKDB; DELETE FROM t", Write);
        yield return Text("SELECT 1; BEGIN TRAN", Unknown, Pin);
        yield return Text("INSERT INTO t (a) VALUES (1); SELECT SCOPE_IDENTITY()", Write);

        // Variables and control flow.
        yield return Text("DECLARE @x int", Read);
        yield return Text("DECLARE @x int = (SELECT MAX(id) FROM t); SET @x = @x + 1; SELECT @x = MIN(id) FROM t; PRINT @x", Read);
        yield return Text("DECLARE @t TABLE (id int)", Read);
        yield return Text("DECLARE @t TABLE (id int); INSERT INTO @t (id) SELECT id FROM t; SELECT * FROM @t", Read);
        yield return Text("DECLARE @t TABLE (id int); INSERT INTO @t (id) EXEC dbo.UpdateOrders", Write);
        yield return Text("DECLARE @t TABLE (id int); INSERT INTO @t (id) EXEC dbo.GetOrders", Read);
        yield return Text("IF EXISTS (SELECT 1 FROM t WHERE id = 1) SELECT a FROM t ELSE SELECT 0", Read);
        yield return Text("IF EXISTS (SELECT 1 FROM t WHERE id = 1) UPDATE t SET a = 1 WHERE id = 1", Write);
        yield return Text("IF @x = 1 SELECT 1 ELSE DELETE FROM t", Write);
        yield return Text("IF (SELECT COUNT(*) FROM t WITH (UPDLOCK)) > 0 SELECT 1", Write);
        yield return Text("IF @x = 1 BEGIN SELECT 1; PRINT 'one' END", Read);
        yield return Text("DECLARE @i int = 0; WHILE @i < 10 BEGIN SET @i = @i + 1 END", Read);
        yield return Text("WHILE 1 = 1 BEGIN DELETE TOP (100) FROM t; IF @@ROWCOUNT = 0 BREAK END", Write);
        yield return Text("BEGIN TRY SELECT 1 END TRY BEGIN CATCH THROW; END CATCH", Read);
        yield return Text("BEGIN TRY INSERT INTO t VALUES (1) END TRY BEGIN CATCH SELECT ERROR_MESSAGE() END CATCH", Write);
        yield return Text("RAISERROR('failed', 16, 1)", Read);
        yield return Text("THROW 50000, 'failed', 1", Read);
        yield return Text("PRINT 'hello'", Read);
        yield return Text("WAITFOR DELAY '00:00:01'", Read);
        yield return Text("WAITFOR TIME '22:00'", Read);
        yield return Text("WAITFOR (RECEIVE TOP (1) * FROM dbo.q), TIMEOUT 1000", Write);

        // DDL and permissions.
        yield return Text("CREATE TABLE dbo.t (id int)", Write);
        yield return Text("ALTER TABLE t ADD c int NULL", Write);
        yield return Text("DROP VIEW dbo.v", Write);
        yield return Text("CREATE INDEX ix_t_a ON t (a)", Write);
        yield return Text("CREATE OR ALTER PROCEDURE dbo.p AS SELECT 1", Write);
        yield return Text("CREATE SEQUENCE dbo.seq START WITH 1", Write);
        yield return Text("GRANT SELECT ON t TO app", Write);
        yield return Text("DENY SELECT ON t TO app", Write);
        yield return Text("REVOKE SELECT ON t FROM app", Write);
        yield return Text("EXEC sp_rename 't.a', 'b', 'COLUMN'", Write);

        // Stored procedures.
        yield return Text("EXEC dbo.UpdateOrders", Write);
        yield return Text("EXECUTE UpdateOrders @id = 1", Write);
        yield return Text("EXEC dbo.GetOrders", Read);
        yield return Text("EXEC GetOrders @customer = 5", Read);
        yield return Text("EXEC [dbo].[GetOrders]", Read);
        yield return Text("exec DBO.GETORDERS", Read);
        yield return Text("DECLARE @rc int; EXEC @rc = dbo.GetOrders", Read);
        yield return Text("EXEC sales.GetOrders", Write);
        yield return Text("EXEC reports.ReportTotals", Read);
        yield return Text("EXEC [reports].[Monthly Sales]", Read);
        yield return Text("EXEC [Monthly Sales]", Read);
        yield return Text("EXEC remote.db.dbo.GetOrders", Write);
        yield return Text("EXEC dbo.GetOrders; EXEC dbo.UpdateOrders", Write);
        yield return Text("EXEC @procedure", Unknown);

        // Dynamic SQL: the literal text decides.
        yield return Text("EXEC sp_executesql N'SELECT * FROM t WHERE id=@id', N'@id int', @id=1", Read);
        yield return Text("EXEC sp_executesql N'UPDATE t SET a = @a WHERE id=@id', N'@a int, @id int', @a=2, @id=1", Write);
        yield return Text("EXEC sys.sp_executesql @stmt = N'SELECT 1'", Read);
        yield return Text("exec sp_executesql N'SELECT * FROM t WITH (UPDLOCK)'", Write);
        yield return Text("EXEC sp_executesql N'SELECT * FROM #t'", Read, Pin);
        yield return Text("EXEC sp_executesql N'SET NOCOUNT ON'", Read);
        yield return Text("EXEC sp_executesql N'EXEC sp_executesql N''SELECT 1'''", Read);
        yield return Text("EXEC sp_executesql N'SELEC * FROM t'", Unknown);
        yield return Text("DECLARE @sql nvarchar(max) = N'SELECT 1'; EXEC sp_executesql @sql", Unknown);
        yield return Text("EXEC ('SELECT 1')", Read);
        yield return Text("EXEC ('DELETE FROM t')", Write);
        yield return Text("EXEC ('SELECT ' + '1')", Read);
        yield return Text("EXEC (@sql)", Unknown);
        yield return Text("EXEC ('SELECT 1') AT linked", Unknown);

        // Application locks.
        yield return Text("EXEC sp_getapplock @Resource = N'orders', @LockMode = N'Exclusive'", Write, Pin);
        yield return Text("DECLARE @r int; EXEC @r = sp_getapplock N'orders', N'Shared'; SELECT @r", Write, Pin);
        yield return Text("EXEC sp_releaseapplock @Resource = N'orders'", Write, Pin);

        // Temporary tables.
        yield return Text("CREATE TABLE #t (id int)", Write, Pin);
        yield return Text("CREATE TABLE ##t (id int)", Write, Pin);
        yield return Text("INSERT INTO #t (id) VALUES (1)", Write, Pin);
        yield return Text("SELECT * FROM #t", Read, Pin);
        yield return Text("SELECT t.a FROM t JOIN #ids i ON i.id = t.id", Read, Pin);
        yield return Text("DROP TABLE #t", Write, Pin);
        yield return Text("IF OBJECT_ID('tempdb..#t') IS NOT NULL DROP TABLE #t", Write, Pin);

        // Session commands.
        yield return Text("SET NOCOUNT ON", Read, Replay);
        yield return Text("SET XACT_ABORT ON", Read, Replay);
        yield return Text("SET ANSI_NULLS OFF", Read, Replay);
        yield return Text("SET QUOTED_IDENTIFIER ON", Read, Replay);
        yield return Text("SET ARITHABORT ON", Read, Replay);
        yield return Text("SET DATEFORMAT dmy", Read, Replay);
        yield return Text("SET LANGUAGE us_english", Read, Replay);
        yield return Text("SET DEADLOCK_PRIORITY LOW", Read, Replay);
        yield return Text("SET LOCK_TIMEOUT 1000", Read, Replay);
        yield return Text("SET CONTEXT_INFO 0x01", Read, Replay);
        yield return Text("SET ROWCOUNT 10", Read, Replay);
        yield return Text("SET NOCOUNT ON; SET XACT_ABORT ON", Read, Replay);
        yield return Text("SET IMPLICIT_TRANSACTIONS OFF", Read, Replay);
        yield return Text("USE orders", Read, Replay);
        yield return Text("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", Read, Replay);
        yield return Text("SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED", Read, Replay);
        yield return Text("SET TRANSACTION ISOLATION LEVEL SNAPSHOT", Read, Replay);
        yield return Text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", Unknown, Pin);
        yield return Text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", Unknown, Pin);
        yield return Text("SET IDENTITY_INSERT dbo.t ON", Write, Pin);
        yield return Text("SET IMPLICIT_TRANSACTIONS ON", Unknown, Pin);
        // SET NOCOUNT and SET IMPLICIT_TRANSACTIONS OFF mixed with other statements (every EF Core SaveChanges batch
        // starts with both): they take effect where the batch runs and change no result a later statement elsewhere
        // reads, so they neither pin nor replay. Other options mixed with statements still pin.
        yield return Text("SET NOCOUNT ON; SELECT * FROM t", Read);
        yield return Text("SET NOCOUNT ON; INSERT INTO t (a) VALUES (1)", Write);
        yield return Text("SET IMPLICIT_TRANSACTIONS OFF;\r\nSET NOCOUNT ON;\r\nINSERT INTO [orders] ([reference]) OUTPUT INSERTED.[id] VALUES (@p0);\r\n", Write);
        yield return Text("SET IMPLICIT_TRANSACTIONS OFF; SET NOCOUNT ON; UPDATE [orders] SET [reference] = @p0 OUTPUT 1 WHERE [id] = @p1;", Write);
        yield return Text("SET NOCOUNT OFF; SELECT * FROM t", Read);
        yield return Text("SET IMPLICIT_TRANSACTIONS ON; INSERT INTO t (a) VALUES (1)", Write, Pin);
        yield return Text("SET NOCOUNT ON; SET XACT_ABORT ON; SELECT * FROM t", Read, Pin);
        yield return Text("SET NOCOUNT, XACT_ABORT ON; SELECT * FROM t", Read, Pin);
        yield return Text("SET NOCOUNT ON; SELECT * FROM #t", Read, Pin);
        yield return Text("SET ANSI_NULLS OFF; SELECT * FROM t", Read, Pin);
        yield return Text("IF @x = 1 SET NOCOUNT ON", Read); // NOCOUNT under a condition: no pin either, for the same reason
        yield return Text("IF @x = 1 SET XACT_ABORT ON", Read, Pin);
        yield return Text("EXECUTE AS USER = 'auditor'", Unknown, Pin);
        yield return Text("REVERT", Unknown, Pin);
        yield return Text("EXEC sp_set_session_context @key = N'tenant', @value = 5", Unknown, Pin);

        // Transaction control.
        yield return Text("BEGIN TRAN", Unknown, Pin);
        yield return Text("BEGIN TRANSACTION t1", Unknown, Pin);
        yield return Text("BEGIN DISTRIBUTED TRANSACTION", Unknown, Pin);
        yield return Text("COMMIT", Unknown, Pin);
        yield return Text("COMMIT TRANSACTION", Unknown, Pin);
        yield return Text("ROLLBACK", Unknown, Pin);
        yield return Text("SAVE TRANSACTION sp1", Unknown, Pin);
        yield return Text("BEGIN TRAN; UPDATE t SET a = 1; COMMIT", Write, Pin);

        // Cursors.
        yield return Text("DECLARE c CURSOR FOR SELECT id FROM t", Unknown, Pin);
        yield return Text("OPEN c", Unknown, Pin);
        yield return Text("FETCH NEXT FROM c INTO @id", Unknown, Pin);
        yield return Text("CLOSE c", Unknown, Pin);
        yield return Text("DEALLOCATE c", Unknown, Pin);
        yield return Text("DECLARE @c CURSOR; SET @c = CURSOR FOR SELECT id FROM t", Unknown, Pin);

        // Not provably reads.
        yield return Text("DBCC CHECKDB", Unknown);
        yield return Text("SELECT SCOPE_IDENTITY()", Unknown);
        yield return Text("SELECT @@IDENTITY", Unknown);
        yield return Text("SELECT * FROM OPENQUERY(linked, 'SELECT 1')", Unknown);
        yield return Text("SELECT * FROM OPENROWSET('SQLNCLI', 'Server=other', 'SELECT 1') r", Unknown);

        // Parse errors and empty texts.
        yield return Text("SELEC * FROM t", Unknown);
        yield return Text("SELECT * FROM", Unknown);
        yield return Text("SELECT 'unterminated", Unknown);
        yield return Text("SELECT * FROM t WITH (UPDLOCK", Unknown);
        yield return Text("", Unknown);
        yield return Text("   \n\t ", Unknown);
        yield return Text("-- only a comment", Unknown);
        yield return Text(";", Unknown);

        // A batch may start with a bare procedure name: this is EXEC SELEC, not a typo of SELECT.
        yield return Text("SELEC", Write);

        // Hints.
        yield return Text("/* rwsplit:primary */ SELECT 1", Read, None, RoutingHint.Primary);
        yield return Text("-- rwsplit:replica\nSELECT 1", Read, None, RoutingHint.Replica);
        yield return Text("SELECT 1 -- RwSplit:Replica", Read, None, RoutingHint.Replica);
        yield return Text("/* RWSPLIT:REPLICA */ EXEC dbo.UpdateOrders", Write, None, RoutingHint.Replica);
        yield return Text("/* rwsplit:replica */ DBCC CHECKDB", Unknown, None, RoutingHint.Replica);
        yield return Text("/* rwsplit:replica */ SELECT 1 -- rwsplit:primary", Read, None, RoutingHint.Primary);
        yield return Text("SELECT '/* rwsplit:primary */'", Read);
        yield return Text("SELECT 1 AS [rwsplit:replica]", Read);
        yield return Text("/* rwsplit:primary */ SELEC * FROM t", Unknown, None, RoutingHint.Primary);
        yield return Text("EXEC sp_executesql N'/* rwsplit:primary */ SELECT 1'", Read, None, RoutingHint.Primary);
    }

    [TestCaseSource(nameof(TextCases))]
    public void Classify_text(string sql, StatementKind kind, SessionEffect effect, RoutingHint hint)
    {
        StatementClassification result = _classifier.Classify(sql);

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(kind), result.ToString());
            Assert.That(result.SessionEffect, Is.EqualTo(effect), result.ToString());
            Assert.That(result.Hint, Is.EqualTo(hint), result.ToString());
            Assert.That(result.Functions, Is.Empty, "T-SQL functions cannot write, so none are listed");
        });
    }

    private static IEnumerable<TestCaseData> ProcedureCases()
    {
        yield return new TestCaseData("dbo.GetOrders", Read, None);
        yield return new TestCaseData("GetOrders", Read, None);
        yield return new TestCaseData("[dbo].[GetOrders]", Read, None);
        yield return new TestCaseData("DBO.GETORDERS", Read, None);
        yield return new TestCaseData("sales.GetOrders", Write, None);
        yield return new TestCaseData("reports.ReportTotals", Read, None);
        yield return new TestCaseData("ReportTotals", Read, None);
        yield return new TestCaseData("[reports].[Monthly Sales]", Read, None);
        yield return new TestCaseData("dbo.UpdateOrders", Write, None);
        yield return new TestCaseData("sp_getapplock", Write, Pin);
        yield return new TestCaseData("sys.sp_releaseapplock", Write, Pin);
        yield return new TestCaseData("sp_set_session_context", Unknown, Pin);
        yield return new TestCaseData("sp_executesql", Write, None);
        yield return new TestCaseData("", Write, None);
        yield return new TestCaseData("not [a name", Write, None);
    }

    [TestCaseSource(nameof(ProcedureCases))]
    public void Classify_procedure(string procedureName, StatementKind kind, SessionEffect effect)
    {
        StatementClassification result = _classifier.ClassifyProcedure(procedureName);

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(kind), result.ToString());
            Assert.That(result.SessionEffect, Is.EqualTo(effect), result.ToString());
            Assert.That(result.Hint, Is.EqualTo(RoutingHint.None));
        });
    }

    [Test]
    public void Unknown_procedure_says_stored_procedure()
    {
        Assert.That(_classifier.ClassifyProcedure("dbo.UpdateOrders").Detail, Is.EqualTo("stored procedure"));
        Assert.That(_classifier.Classify("EXEC dbo.UpdateOrders").Detail, Is.EqualTo("stored procedure"));
    }

    private static IEnumerable<TestCaseData> DetailCases()
    {
        yield return new TestCaseData("EXEC sp_getapplock @Resource = N'r', @LockMode = N'Exclusive'", "application lock");
        yield return new TestCaseData("CREATE TABLE #t (id int)", "temporary table");
        yield return new TestCaseData("SELECT * FROM #t", "temporary table");
        yield return new TestCaseData("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "isolation stronger than read committed");
        yield return new TestCaseData("BEGIN TRAN", "transaction control");
        yield return new TestCaseData("DECLARE c CURSOR FOR SELECT 1", "cursor");
        yield return new TestCaseData("SELECT NEXT VALUE FOR dbo.seq", "sequence");
        yield return new TestCaseData("SELECT * FROM t WITH (UPDLOCK)", "locking hint");
        yield return new TestCaseData("INSERT INTO t OUTPUT inserted.id DEFAULT VALUES", "INSERT");
        yield return new TestCaseData("CREATE VIEW dbo.v AS SELECT 1 AS a", "CREATE VIEW");
        yield return new TestCaseData("SELECT a INTO b FROM t", "SELECT INTO");
    }

    [TestCaseSource(nameof(DetailCases))]
    public void Detail_names_the_reason(string sql, string reason)
        => Assert.That(_classifier.Classify(sql).Detail, Does.Contain(reason));

    [Test]
    public void Plain_read_is_the_shared_instance()
        => Assert.That(_classifier.Classify("SELECT a FROM t WHERE id = @id"), Is.SameAs(StatementClassification.PlainRead));

    [Test]
    public void Parse_error_gives_the_line_and_no_literal_value()
    {
        StatementClassification result = _classifier.Classify("SELECT 1\nSELECT * FROM t WHERE secret = 'hunter2' 'again'");

        Assert.Multiple(() =>
        {
            Assert.That(result.Kind, Is.EqualTo(Unknown));
            Assert.That(result.Detail, Does.StartWith("T-SQL parse error at line 2: "));
            Assert.That(result.Detail, Does.Not.Contain("hunter2").And.Not.Contain("again"));
        });
    }

    [Test]
    public void Unterminated_string_error_hides_the_string()
    {
        StatementClassification result = _classifier.Classify("SELECT 'hunter2");

        Assert.That(result.Detail, Does.StartWith("T-SQL parse error at line 1: ").And.Not.Contain("hunter2"));
    }

    [Test]
    public void Parse_error_keeps_the_offending_keyword()
    {
        StatementClassification result = _classifier.Classify("SELECT * FROM t WHERE");

        Assert.That(result.Detail, Does.StartWith("T-SQL parse error at line 1: "));
    }

    [Test]
    public void Null_text_is_unknown()
        => Assert.That(_classifier.Classify(null!).Kind, Is.EqualTo(Unknown));

    private static IEnumerable<TestCaseData> HugeTexts()
    {
        // Shapes that make a recursive-descent parser or a visitor recurse deeply: deep nesting overflows a small stack
        // after a few hundred levels, long operator chains after some ten thousand operands.
        yield return new TestCaseData("SELECT " + new string('(', 600) + "1" + new string(')', 600), Read).SetArgDisplayNames("600 parentheses");
        yield return new TestCaseData("SELECT " + new string('(', 5000) + "1" + new string(')', 5000), Unknown).SetArgDisplayNames("5000 parentheses");
        yield return new TestCaseData("SELECT " + string.Concat(Enumerable.Repeat("CASE WHEN 1 = 1 THEN ", 300)) + "1" + string.Concat(Enumerable.Repeat(" END", 300)), Read).SetArgDisplayNames("300 nested CASE");
        yield return new TestCaseData("SELECT a FROM t WHERE " + string.Join(" OR ", Enumerable.Range(0, 20000).Select(i => "a = " + i)), Read).SetArgDisplayNames("20000 OR terms");
        yield return new TestCaseData(string.Join(" UNION ALL ", Enumerable.Repeat("SELECT 1", 20000)) + "; DELETE FROM t", Write).SetArgDisplayNames("20000 UNION ALL then DELETE");
        yield return new TestCaseData("SELECT " + new string('(', 2_000_000), Unknown).SetArgDisplayNames("2M open parentheses");
        yield return new TestCaseData(new string('x', 5_000_000), Unknown).SetArgDisplayNames("5M characters");
    }

    [TestCaseSource(nameof(HugeTexts))]
    public void Huge_or_deep_text_is_classified_without_crashing(string sql, StatementKind kind)
        => Assert.That(_classifier.Classify(sql).Kind, Is.EqualTo(kind));

    [Test]
    public void Deep_dynamic_sql_is_classified_without_crashing()
    {
        string inner = "SELECT " + new string('(', 600) + "1" + new string(')', 600);
        string sql = "EXEC sp_executesql N'" + inner + "'";

        Assert.That(_classifier.Classify(sql).Kind, Is.EqualTo(Read));
    }

    [Test]
    public void Concurrent_classification_gives_the_same_results()
    {
        string[] texts = ["SELECT * FROM t", "DELETE FROM t", "SET NOCOUNT ON", "EXEC sp_executesql N'SELECT 1'", "SELECT * FROM #t"];
        StatementClassification[] expected = texts.Select(_classifier.Classify).ToArray();

        var results = new StatementClassification[400];
        Parallel.For(0, results.Length, i => results[i] = _classifier.Classify(texts[i % texts.Length]));

        for (int i = 0; i < results.Length; i++)
        {
            StatementClassification want = expected[i % texts.Length];
            Assert.That(results[i].ToString(), Is.EqualTo(want.ToString()));
        }
    }

    [Test]
    public void Constructor_rejects_a_name_that_is_not_a_procedure()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => new TSqlStatementClassifier([""]), Throws.ArgumentException);
            Assert.That(() => new TSqlStatementClassifier(["server.db.dbo.GetOrders"]), Throws.ArgumentException);
            Assert.That(() => new TSqlStatementClassifier(["dbo.[Get"]), Throws.ArgumentException.With.Message.Contains("schema.name"));
            Assert.That(() => new TSqlStatementClassifier(null!), Throws.ArgumentNullException);
        });
    }

    [Test]
    public void Classifier_without_read_only_procedures_treats_every_procedure_as_a_write()
    {
        var classifier = new TSqlStatementClassifier([]);

        Assert.That(classifier.Classify("EXEC dbo.GetOrders").Kind, Is.EqualTo(Write));
    }

    /// <summary>
    /// Defect (found by HostileInputTests): ScriptDom's lexer recurses once per nested <c>/*</c>, and 20 000 of them
    /// overflowed the stack — a crash of the whole process, which no catch can stop, from one command's text.
    /// </summary>
    [Test]
    public void Deeply_nested_comments_are_refused_unread_instead_of_overflowing_the_stack()
    {
        var hostile = _classifier.Classify("SELECT 1 " + string.Concat(System.Linq.Enumerable.Repeat("/*", 20_000)));
        Assert.That(hostile.Kind, Is.EqualTo(StatementKind.Unknown), "fails closed: the primary");
        Assert.That(hostile.Detail, Does.Contain("nested too deeply"));
        Assert.That(_classifier.Classify("SELECT 1 /* a /* b /* c */ */ */").Kind, Is.EqualTo(StatementKind.Read), "ordinary nesting is read as before");
        Assert.That(TSqlStatementClassifier.BlockCommentNesting("/* a /* b */ */ /* c */"), Is.EqualTo(2));
    }
}
