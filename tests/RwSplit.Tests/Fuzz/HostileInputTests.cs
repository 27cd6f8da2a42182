using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text;
using NUnit.Framework;
using RwSplit.PostgreSql;
using RwSplit.Routing;
using RwSplit.SqlServer;
using RwSplit.Tests.Fakes;

namespace RwSplit.Tests.Fuzz;

/// <summary>
/// Hostile input against the three parsers that read what callers send: the statement classifiers, the drop-in
/// connection string and the consistency token. Generated with fixed seeds (a failure names its input and repeats):
/// never an unexpected exception type, never super-linear time, and the classifiers fail closed (a write after any
/// well-formed read is never taken for a read, whatever quoting the read uses).
/// </summary>
public sealed class HostileInputTests
{
    private static readonly string[] Fragments =
    [
        "SELECT", "select", "INSERT", "UPDATE", "DELETE", "WITH", "INTO", "FROM", "t", "(", ")", "'", "''", "\"", "$$", "$tag$",
        "$a$", "--", "/*", "*/", ";", " ", "\n", "\0", "\uD800", "\uDC00", "é", "1", "E'\\''", "N'", "[", "]", "`", "BEGIN",
        "EXEC", "FOR UPDATE", "nextval(", "\\", ",", "=", "CALL", "DO", "COPY", "SET", "GO", "::", "@p", "$1", "U&'", "COMMIT",
    ];

    private static IEnumerable<string> Garbage(int seed, int count, int maxFragments)
    {
        var random = new Random(seed);
        for (var i = 0; i < count; i++)
        {
            var text = new StringBuilder();
            var n = random.Next(1, maxFragments);
            for (var k = 0; k < n; k++)
                text.Append(Fragments[random.Next(Fragments.Length)]).Append(random.Next(4) == 0 ? " " : "");
            yield return text.ToString();
        }
    }

    private static string Describe(string text) => text.Length > 200 ? $"{text[..200]}… ({text.Length} chars)" : text;

    private static readonly TSqlStatementClassifier TSql = new(new HashSet<string>(StringComparer.OrdinalIgnoreCase));

    [Test]
    public void The_classifiers_answer_every_generated_text_and_say_why_when_they_cannot_read_it()
    {
        foreach (var text in Garbage(seed: 1, count: 20_000, maxFragments: 40))
        {
            foreach (var classify in new Func<string, StatementClassification>[] { PgStatementClassifier.Classify, TSql.Classify })
            {
                StatementClassification verdict = null!;
                Assert.DoesNotThrow(() => verdict = classify(text), Describe(text));
                Assert.That(Enum.IsDefined(verdict.Kind), Is.True, Describe(text));
                if (verdict.Kind == StatementKind.Unknown)
                    Assert.That(verdict.Detail, Is.Not.Null.And.Not.Empty, $"an unreadable text goes to the primary with a reason: {Describe(text)}");
            }
        }
    }

    /// <summary>Inputs built to make a careless lexer quadratic or recursive: each must be read in linear time.</summary>
    private static IEnumerable<(string Name, Func<int, string> Build)> Pathological()
    {
        yield return ("nested parentheses", n => "SELECT " + new string('(', n) + "1" + new string(')', n));
        yield return ("unclosed parentheses", n => "SELECT " + new string('(', n));
        yield return ("nested block comments", n => "SELECT 1 " + string.Concat(Enumerable.Repeat("/*", n)));
        yield return ("unterminated string", n => "SELECT '" + new string('x', n));
        yield return ("doubled quotes", n => "SELECT '" + string.Concat(Enumerable.Repeat("''", n)) + "'");
        yield return ("dollar tags", n => "SELECT " + string.Concat(Enumerable.Repeat("$a$ $b$", n)));
        yield return ("semicolons", n => string.Concat(Enumerable.Repeat("SELECT 1;", n)));
        yield return ("line comments", n => string.Concat(Enumerable.Repeat("--\n", n)) + "SELECT 1");
        yield return ("identifiers", n => "SELECT " + string.Join(",", Enumerable.Range(0, n).Select(i => "c" + i)) + " FROM t");
        yield return ("brackets", n => "SELECT " + new string('[', n));
    }

    [Test]
    public void Pathological_texts_are_classified_in_linear_time_without_throwing()
    {
        foreach (var (name, build) in Pathological())
        {
            foreach (var (classifier, classify) in new (string, Func<string, StatementClassification>)[] { ("PostgreSQL", PgStatementClassifier.Classify), ("T-SQL", TSql.Classify) })
            {
                var small = build(20_000);
                var large = build(80_000);
                classify(small); // warm
                var smallTime = Time(() => classify(small));
                var largeTime = Time(() => classify(large));
                TestContext.Out.WriteLine($"{classifier}, {name}: {small.Length} chars {smallTime.TotalMilliseconds:0.0} ms, {large.Length} chars {largeTime.TotalMilliseconds:0.0} ms");
                Assert.That(largeTime, Is.LessThan(TimeSpan.FromSeconds(2)), $"{classifier}, {name}");
                Assert.That(largeTime.TotalMilliseconds, Is.LessThan(Math.Max(50, smallTime.TotalMilliseconds * 16)), $"{classifier}, {name}: 4× the input took more than 16× the time");
            }
        }
    }

    /// <summary>The fastest of three runs: a pause of the machine (GC, another test project) is not the classifier's.</summary>
    private static TimeSpan Time(Action action)
    {
        var best = TimeSpan.MaxValue;
        for (var i = 0; i < 3; i++)
        {
            var watch = Stopwatch.StartNew();
            action();
            if (watch.Elapsed < best)
                best = watch.Elapsed;
        }

        return best;
    }

    /// <summary>Well-formed reads whose literals and comments contain everything a lexer might trip on.</summary>
    private static IEnumerable<string> PostgreSqlReads(int seed, int count)
    {
        string[] items =
        [
            "1", "'plain'", "'it''s'", "'back\\'", "E'esc\\'aped'", "E'two\\\\'", "$$ dollar ' \" -- /* $$", "$tag$ $$ inner $tag$",
            "$a$ $b$ $a$", "\"quoted \"\" ident\"", "'-- not a comment'", "'/* not a comment'", "/* comment /* nested */ ; DELETE */ 2",
            "-- line ; DELETE FROM t\n3", "'; DELETE FROM t; '", "U&'d\\0061t'", "B'1010'", "X'ff'", "'é\uD83D\uDE00'", "ARRAY[1, 2]", "(SELECT 4)",
        ];
        return Reads(seed, count, items);
    }

    /// <summary><c>SELECT</c> of one to five <paramref name="items"/>, with or without a <c>FROM</c>.</summary>
    private static IEnumerable<string> Reads(int seed, int count, string[] items)
    {
        var random = new Random(seed);
        for (var i = 0; i < count; i++)
        {
            var n = random.Next(1, 6);
            yield return "SELECT " + string.Join(", ", Enumerable.Range(0, n).Select(_ => items[random.Next(items.Length)])) + (random.Next(2) == 0 ? " FROM t" : "");
        }
    }

    private static IEnumerable<string> TSqlReads(int seed, int count)
    {
        string[] items =
        [
            "1", "'plain'", "N'it''s'", "'back\\'", "[bracket ]] ident]", "\"dq ident\"", "'-- not a comment'", "/* c /* nested */ ; DELETE */ 2",
            "-- line ; DELETE FROM t\n3", "'; DELETE FROM t; '", "N'é\uD83D\uDE00'", "0x0f", "(SELECT 4)",
        ];
        return Reads(seed, count, items);
    }

    [Test]
    public void A_write_after_any_well_formed_PostgreSQL_read_is_never_taken_for_a_read()
        => AssertWritesAfterReadsFailClosed(PgStatementClassifier.Classify, PostgreSqlReads(seed: 2, count: 3_000),
            ["DELETE FROM t", "INSERT INTO t VALUES (1)", "UPDATE t SET a = 1", "SELECT nextval('s')", "CALL p()", "COPY t FROM STDIN", "SELECT 1 FOR UPDATE"]);

    [Test]
    public void A_write_after_any_well_formed_TSql_read_is_never_taken_for_a_read()
        => AssertWritesAfterReadsFailClosed(TSql.Classify, TSqlReads(seed: 3, count: 3_000),
            ["DELETE FROM t", "INSERT INTO t VALUES (1)", "UPDATE t SET a = 1", "EXEC dbo.p", "SELECT 1 INTO #t"]);

    private static void AssertWritesAfterReadsFailClosed(Func<string, StatementClassification> classify, IEnumerable<string> reads, string[] writes)
    {
        foreach (var read in reads)
        {
            Assert.That(classify(read).Kind, Is.EqualTo(StatementKind.Read), $"counter-check, the generated read alone: {read}");
            foreach (var write in writes)
                Assert.That(classify(read + "; " + write).Kind, Is.Not.EqualTo(StatementKind.Read), $"{read}; {write}");
        }
    }

    [Test]
    public void A_generated_drop_in_connection_string_is_accepted_or_refused_with_ArgumentException_and_never_quoted()
    {
        string[] parts =
        [
            "Host=", "Server=", "127.0.0.1", ";", "=", "'", "\"", "Replicas=", "|", ":", ",", "Password=secret-xyz", "Pwd=secret-xyz",
            "Port=", "99999", "-1", "Read Consistency=", "Strong", "Sideways", "\0", " ", "==", ";;", "Database=", "é", "\uD800",
        ];
        var random = new Random(4);
        foreach (var factory in new[] { RwSplitNpgsql.Factory, RwSplitSqlServer.Factory })
        {
            for (var i = 0; i < 5_000; i++)
            {
                var text = string.Concat(Enumerable.Range(0, random.Next(1, 14)).Select(_ => parts[random.Next(parts.Length)]));
                using var connection = factory.CreateConnection();
                try
                {
                    connection.ConnectionString = text;
                }
                catch (ArgumentException ex)
                {
                    Assert.That(ex.Message, Does.Not.Contain("secret-xyz"), $"the password leaked for: {Describe(text)}");
                }
                catch (Exception ex)
                {
                    Assert.Fail($"{ex.GetType().Name} (not ArgumentException) for: {Describe(text)}: {ex.Message}");
                }
            }
        }
    }

    [Test]
    public void Generated_and_mutated_tokens_are_refused_with_InvalidConsistencyToken_only()
    {
        using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(FakeDialect.Instance);
            o.Primary = "Server=fuzz-primary";
            o.HealthMonitoring = false;
        });
        var genuine = dataSource.CreateToken(7, 1234, DateTimeOffset.UtcNow).ToString();
        var payload = Convert.FromBase64String(genuine[5..].Replace('-', '+').Replace('_', '/')); // 45 bytes: 60 characters, no padding
        var random = new Random(5);
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.!\0é";
        var accepted = 0;
        for (var i = 0; i < 20_000; i++)
        {
            string text;
            if (i % 2 == 0)
            {
                var mutated = (byte[])payload.Clone();
                var flips = random.Next(1, 4);
                for (var k = 0; k < flips; k++)
                    mutated[random.Next(mutated.Length)] ^= (byte)(1 << random.Next(8));
                if (mutated.AsSpan().SequenceEqual(payload))
                    continue; // two flips of the same bit: the genuine token again
                text = "rws2." + Convert.ToBase64String(mutated).TrimEnd('=').Replace('+', '-').Replace('/', '_');
            }
            else
            {
                var prefix = new[] { "rws2.", "rws1.", "rws", "", "rws2" }[random.Next(5)];
                text = prefix + new string(Enumerable.Range(0, random.Next(0, 90)).Select(_ => alphabet[random.Next(alphabet.Length)]).ToArray());
            }

            Assert.DoesNotThrow(() => ConsistencyToken.TryParse(text, out _), Describe(text));
            try
            {
                dataSource.ApplyConsistencyToken(text);
                accepted++;
            }
            catch (RwSplitException ex) when (ex.Error == RwSplitError.InvalidConsistencyToken)
            {
            }
            catch (Exception ex)
            {
                Assert.Fail($"{ex.GetType().Name} for: {Describe(text)}: {ex.Message}");
            }
        }

        Assert.That(accepted, Is.Zero, "no mutated or generated token passes the signature");
        Assert.DoesNotThrow(() => dataSource.ApplyConsistencyToken(genuine), "counter-check: the genuine one does");
    }
}
