using System;
using NUnit.Framework;
using RwSplit.Routing;

namespace RwSplit.Tests.Routing;

/// <summary>
/// <see cref="StatementFacts.MayWrite"/> and the rule that combines a batch's statements (<see cref="StatementFacts.Combine"/>),
/// as truth tables: every row names the statements and the facts the batch is routed on.
/// </summary>
public sealed class StatementFactsTests
{
    private static readonly StatementFacts Read = StatementFacts.Read;
    private static readonly StatementFacts Write = StatementFacts.Write;
    private static readonly StatementFacts Unknown = new(StatementKind.Unknown, RoutingReason.UnknownStatement);
    private static readonly StatementFacts UnknownHintedReplica = new(StatementKind.Unknown, RoutingReason.UnknownStatement, hint: RoutingHint.Replica);
    private static readonly StatementFacts ReadHintedPrimary = new(StatementKind.Read, RoutingReason.Read, hint: RoutingHint.Primary);
    private static readonly StatementFacts ReadReplay = new(StatementKind.Read, RoutingReason.Read, SessionEffect.Replay);
    private static readonly StatementFacts ReadPin = new(StatementKind.Read, RoutingReason.Read, SessionEffect.Pin);
    private static readonly StatementFacts Procedure = new(StatementKind.Write, RoutingReason.StoredProcedure);

    [TestCase(StatementKind.Read, RoutingHint.None, false)]
    [TestCase(StatementKind.Read, RoutingHint.Primary, false)]
    [TestCase(StatementKind.Read, RoutingHint.Replica, false)]
    [TestCase(StatementKind.Write, RoutingHint.None, true)]
    [TestCase(StatementKind.Write, RoutingHint.Replica, true)]
    [TestCase(StatementKind.Unknown, RoutingHint.None, true)]
    [TestCase(StatementKind.Unknown, RoutingHint.Primary, true)]
    [TestCase(StatementKind.Unknown, RoutingHint.Replica, false)]
    public void May_write_unless_proven_or_declared_a_read(StatementKind kind, RoutingHint hint, bool mayWrite)
        => Assert.That(new StatementFacts(kind, RoutingReason.Read, hint: hint).MayWrite, Is.EqualTo(mayWrite));

    private static StatementFacts Named(string name) => name switch
    {
        "read" => Read,
        "write" => Write,
        "unknown" => Unknown,
        "unknown+replica" => UnknownHintedReplica,
        "read+primary" => ReadHintedPrimary,
        "set" => ReadReplay,
        "pin" => ReadPin,
        "procedure" => Procedure,
        "write+pin" => new StatementFacts(StatementKind.Write, RoutingReason.Write, SessionEffect.Pin),
        _ => throw new ArgumentException(name),
    };

    // The statements of the batch (comma-separated), the facts it is routed on, and the statement that decided.
    [TestCase("read", "read", 0)]
    [TestCase("read,read", "read", 0)]
    [TestCase("read,write", "write", 1)]
    [TestCase("write,read", "write", 0)]
    [TestCase("read,unknown", "unknown", 1)]
    [TestCase("read,unknown+replica", "read", 0)]
    [TestCase("read,read+primary", "read+primary", 1)]
    [TestCase("read+primary,write", "write", 1)]
    [TestCase("write,procedure", "write", 0)]
    [TestCase("procedure,write", "procedure", 0)]
    [TestCase("read,set", "pin", 1)]
    [TestCase("set,write", "write+pin", 1)]
    [TestCase("write,set", "write+pin", 0)]
    [TestCase("pin,read", "pin", 0)]
    public void A_batch_runs_on_the_facts_of_its_most_demanding_statement(string statements, string expected, int deciding)
    {
        var facts = Array.ConvertAll(statements.Split(','), Named);
        var combined = StatementFacts.Combine(facts, out var index);
        Assert.That(combined.ToString(), Is.EqualTo(Named(expected).ToString()));
        Assert.That(index, Is.EqualTo(deciding));
    }
}
