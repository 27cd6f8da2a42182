using System;
using System.Data;
using System.Threading.Tasks;
using NUnit.Framework;

namespace RwSplit.ConformanceTests;

[EveryProvider]
public sealed class TransactionConformance(Provider provider) : Conformance(provider)
{
    private static int _nextId = 1000 + (Environment.ProcessId % 1000) * 100;

    [Test]
    public async Task Commit_keeps_rollback_discards_and_savepoints_roll_back_part()
    {
        await using var connection = await OpenAsync();
        var kept = System.Threading.Interlocked.Increment(ref _nextId) + (Provider == Provider.RwSplit ? 50_000 : 0);
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            Assert.That(transaction.Connection, Is.SameAs(connection));
            Assert.That(transaction.IsolationLevel, Is.EqualTo(IsolationLevel.ReadCommitted));
            await using var insert = Command(connection, $"INSERT INTO conformance (id, name) VALUES ({kept}, 'kept'), ({kept + 1}, 'undone')", transaction);
            Assert.That(await insert.ExecuteNonQueryAsync(), Is.EqualTo(2));
            await transaction.SaveAsync("before_delete");
            await using var delete = Command(connection, $"DELETE FROM conformance WHERE id = {kept}", transaction);
            await delete.ExecuteNonQueryAsync();
            await transaction.RollbackAsync("before_delete");
            await using var undo = Command(connection, $"DELETE FROM conformance WHERE id = {kept + 1}", transaction);
            await undo.ExecuteNonQueryAsync();
            await transaction.CommitAsync();
            Assert.Throws<InvalidOperationException>(() => transaction.Commit(), "a completed transaction cannot commit again");
        }

        await using var count = Command(connection, $"SELECT count(*) FROM conformance WHERE id IN ({kept}, {kept + 1})");
        Assert.That(await count.ExecuteScalarAsync(), Is.EqualTo(1L));

        await using (var rolledBack = await connection.BeginTransactionAsync(IsolationLevel.Serializable))
        {
            Assert.That(rolledBack.IsolationLevel, Is.EqualTo(IsolationLevel.Serializable));
            await using var delete = Command(connection, $"DELETE FROM conformance WHERE id = {kept}", rolledBack);
            await delete.ExecuteNonQueryAsync();
            await rolledBack.RollbackAsync();
        }

        Assert.That(await count.ExecuteScalarAsync(), Is.EqualTo(1L), "the rollback kept the row");
        await using var cleanup = Command(connection, $"DELETE FROM conformance WHERE id = {kept}");
        await cleanup.ExecuteNonQueryAsync();
    }

    [Test]
    public async Task A_second_transaction_on_the_same_connection_throws_InvalidOperationException()
    {
        await using var connection = await OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        Assert.Throws<InvalidOperationException>(() => connection.BeginTransaction());
    }

    [Test]
    public async Task Disposing_an_uncommitted_transaction_rolls_it_back()
    {
        await using var connection = await OpenAsync();
        var id = System.Threading.Interlocked.Increment(ref _nextId) + (Provider == Provider.RwSplit ? 60_000 : 10_000);
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await using var insert = Command(connection, $"INSERT INTO conformance (id, name) VALUES ({id}, 'lost')", transaction);
            await insert.ExecuteNonQueryAsync();
        }

        await using var count = Command(connection, $"SELECT count(*) FROM conformance WHERE id = {id}");
        Assert.That(await count.ExecuteScalarAsync(), Is.EqualTo(0L));
    }
}
