using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using NUnit.Framework;
using RwSplit.Diagnostics;

namespace RwSplit.Tests.Diagnostics;

/// <summary>The statement shapes RwSplit may log: no literal value, no comment, identifiers and parameters kept.</summary>
public sealed class SqlRedactionTests
{
    private static IEnumerable<TestCaseData> Shapes()
    {
        static TestCaseData Case(string sql, string shape) => new TestCaseData(sql, shape).SetArgDisplayNames(sql.Length > 60 ? sql[..60] : sql);
        yield return Case("SELECT * FROM users WHERE password = 'hunter2'", "SELECT * FROM users WHERE password = ?");
        yield return Case("SELECT 'it''s' || 'x'", "SELECT ? || ?");
        yield return Case("SELECT E'a\\'b', N'unicode', X'ff', B'1010'", "SELECT ?, ?, ?, ?");
        yield return Case("SELECT $$secret$$, $tag$in $$ side$tag$", "SELECT ?, ?");
        yield return Case("SELECT f($1, $2) FROM t1 WHERE id = @id AND c2 = 42 AND r = 3.5e10", "SELECT f($1, $2) FROM t1 WHERE id = @id AND c2 = ? AND r = ?");
        yield return Case("SELECT 1 -- card 4111111111111111\nFROM t", "SELECT ?   FROM t");
        yield return Case("SELECT /* token abc /* nested */ still */ 1", "SELECT   ?");
        yield return Case("SELECT \"Name\", [Order] FROM \"T\"", "SELECT \"Name\", [Order] FROM \"T\"");
        yield return Case("SELECT 'unterminated secret", "SELECT ?");
        yield return Case("SELECT /* unterminated secret", "SELECT  ");
        yield return Case("SELECT $x$ unterminated secret", "SELECT ?");
        yield return Case("SELECT '\uD800'\u0000", "SELECT ? ");
        yield return Case("", "");
    }

    [TestCaseSource(nameof(Shapes))]
    public void Literals_and_comments_are_masked(string sql, string shape)
        => Assert.That(SqlRedaction.Shape(sql), Is.EqualTo(shape));

    [Test]
    public void The_shape_is_bounded_and_linear_in_the_text()
    {
        var huge = "SELECT " + string.Concat(Enumerable.Repeat("'secret', ", 200_000)) + "1";
        var watch = Stopwatch.StartNew();
        var shape = SqlRedaction.Shape(huge);
        Assert.That(shape.Length, Is.LessThanOrEqualTo(SqlRedaction.MaxLength + 1));
        Assert.That(shape, Does.Not.Contain("secret").And.EndWith("…"));
        var unterminated = SqlRedaction.Shape("SELECT '" + new string('x', 2_000_000));
        Assert.That(unterminated, Is.EqualTo("SELECT ?"));
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "no super-linear scan");
    }
}
