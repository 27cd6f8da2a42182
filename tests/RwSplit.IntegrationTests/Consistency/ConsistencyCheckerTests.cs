using System.Linq;
using NUnit.Framework;

namespace RwSplit.IntegrationTests.Consistency;

/// <summary>The checker itself, on histories written by hand: it finds each kind of violation, and none in a correct history.</summary>
public sealed class ConsistencyCheckerTests
{
    private static History Record(params (int Connection, OperationKind Kind, int Key, long? Value, int Token)[] operations)
    {
        var history = new History();
        foreach (var (connection, kind, key, value, token) in operations)
            history.Add(connection, kind, key, value, token, "test");
        return history;
    }

    [Test]
    public void A_correct_history_has_no_violation()
    {
        var history = Record(
            (1, OperationKind.Write, 1, 1, 0),
            (1, OperationKind.Read, 1, 1, 0),
            (2, OperationKind.Read, 1, null, 0), // another connection may read stale (no token)
            (1, OperationKind.Write, 1, 2, 0),
            (1, OperationKind.ExportToken, 0, null, 7),
            (2, OperationKind.ApplyToken, 0, null, 7),
            (2, OperationKind.Read, 1, 3, 0),
            (2, OperationKind.Read, 1, 3, 0));
        Assert.That(ConsistencyChecker.Check(history.Operations), Is.Empty);
    }

    [Test]
    public void A_read_older_than_the_connections_own_write_is_a_read_your_writes_violation()
    {
        var violations = ConsistencyChecker.Check(Record((1, OperationKind.Write, 1, 5, 0), (1, OperationKind.Read, 1, 4, 0)).Operations);
        Assert.That(violations.Single().Guarantee, Is.EqualTo("read-your-writes"));
    }

    [Test]
    public void A_missing_row_after_the_write_is_a_violation()
    {
        var violations = ConsistencyChecker.Check(Record((1, OperationKind.Write, 1, 1, 0), (1, OperationKind.Read, 1, null, 0)).Operations);
        Assert.That(violations, Has.Count.EqualTo(1));
    }

    [Test]
    public void A_read_after_a_token_older_than_the_token_is_a_token_violation()
    {
        var violations = ConsistencyChecker.Check(Record(
            (1, OperationKind.Write, 1, 9, 0),
            (1, OperationKind.ExportToken, 0, null, 3),
            (2, OperationKind.ApplyToken, 0, null, 3),
            (2, OperationKind.Read, 1, 8, 0)).Operations);
        Assert.That(violations.Single().Guarantee, Is.EqualTo("consistency token"));
    }

    [Test]
    public void A_token_covers_only_what_was_written_before_it_was_exported()
    {
        var violations = ConsistencyChecker.Check(Record(
            (1, OperationKind.Write, 1, 1, 0),
            (1, OperationKind.ExportToken, 0, null, 3),
            (1, OperationKind.Write, 1, 2, 0),
            (2, OperationKind.ApplyToken, 0, null, 3),
            (2, OperationKind.Read, 1, 1, 0)).Operations);
        Assert.That(violations, Is.Empty);
    }

    [Test]
    public void Reads_that_go_back_in_time_are_a_monotonic_reads_violation()
    {
        var violations = ConsistencyChecker.Check(Record(
            (2, OperationKind.Read, 1, 6, 0),
            (2, OperationKind.Read, 1, 6, 0),
            (2, OperationKind.Read, 1, 5, 0),
            (3, OperationKind.Read, 1, 4, 0)).Operations); // another connection: no promise
        Assert.That(violations.Single().Guarantee, Is.EqualTo("monotonic reads"));
    }
}
