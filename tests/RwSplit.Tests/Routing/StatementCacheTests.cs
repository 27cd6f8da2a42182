using System;
using System.Collections.Generic;
using System.Data;
using Moq;
using NUnit.Framework;
using RwSplit.Providers;
using RwSplit.Routing;

namespace RwSplit.Tests.Routing;

/// <summary>The statement cache: one classification per distinct text, whether a text comes as the same instance or not.</summary>
public sealed class StatementCacheTests
{
    private static readonly IReadOnlySet<string> NoProcedures = new HashSet<string>();

    private static (StatementCache Cache, Func<int> Classified) Create(int capacity = 100)
    {
        var calls = 0;
        var classifier = new Mock<StatementClassifier>(NoProcedures) { CallBase = true };
        classifier.Setup(c => c.Classify(It.IsAny<string>()))
            .Returns((string text) =>
            {
                calls++;
                return text.StartsWith("SELECT", StringComparison.Ordinal)
                    ? new StatementClassification(StatementKind.Read, functions: text.Contains("f(", StringComparison.Ordinal) ? new[] { "f" } : null)
                    : new StatementClassification(StatementKind.Write);
            });
        return (new StatementCache(classifier.Object, capacity), () => calls);
    }

    [Test]
    public void A_text_is_classified_once_whether_it_comes_as_the_same_instance_or_as_a_copy()
    {
        var (cache, classified) = Create();
        const string literal = "SELECT a FROM t WHERE id = $1";
        var first = cache.Classify(literal);
        Assert.That(cache.Classify(literal), Is.SameAs(first));
        Assert.That(cache.Classify(literal), Is.SameAs(first), "found by reference now");
        var copy = new string(literal.AsSpan());
        Assert.That(copy, Is.Not.SameAs(literal));
        Assert.That(cache.Classify(copy), Is.SameAs(first), "a text built at run time finds the same entry by value");
        Assert.That(cache.Classify(copy), Is.SameAs(first));
        Assert.That(classified(), Is.EqualTo(1));
    }

    [Test]
    public void A_full_cache_is_cleared_with_its_reference_front_and_refills()
    {
        var (cache, classified) = Create(capacity: 2);
        const string a = "SELECT a";
        const string b = "SELECT b";
        cache.Classify(a);
        cache.Classify(a); // promoted
        cache.Classify(b);
        Assert.That(classified(), Is.EqualTo(2));
        cache.Classify("UPDATE c"); // full: cleared, then c added
        Assert.That(cache.Count, Is.EqualTo(1));
        cache.Classify(a);
        Assert.That(classified(), Is.EqualTo(4), "a was classified again: the reference front was cleared too");
    }

    [Test]
    public void Facts_without_io_except_for_reads_that_call_functions()
    {
        var (cache, _) = Create();
        Assert.That(cache.TryResolveFacts("SELECT a", CommandType.Text, out var read), Is.True);
        Assert.That((read.Kind, read.Cause), Is.EqualTo((StatementKind.Read, RoutingReason.Read)));
        Assert.That(cache.TryResolveFacts("UPDATE t", CommandType.Text, out var write), Is.True);
        Assert.That((write.Kind, write.Cause), Is.EqualTo((StatementKind.Write, RoutingReason.Write)));
        Assert.That(cache.TryResolveFacts("SELECT f(1)", CommandType.Text, out _), Is.False, "the function catalog may have to be loaded");
        Assert.That(cache.TryResolveFacts("t", CommandType.TableDirect, out var table), Is.True);
        Assert.That(table.Kind, Is.EqualTo(StatementKind.Read));

        cache.LearnWrite("SELECT a");
        Assert.That(cache.TryResolveFacts("SELECT a", CommandType.Text, out var learned), Is.True);
        Assert.That((learned.Kind, learned.Cause), Is.EqualTo((StatementKind.Write, RoutingReason.LearnedWrite)));
    }
}
