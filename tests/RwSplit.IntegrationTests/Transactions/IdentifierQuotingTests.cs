using System;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.TransferWorkload;

namespace RwSplit.IntegrationTests.Transactions;

/// <summary>
/// Names that reach SQL RwSplit builds or hands on: a database whose name holds quotes, brackets, a semicolon and a
/// comment opener, on real PostgreSQL — an atomic commit across it (branch ids, the decision table, recovery's lookups
/// by <c>current_database()</c>), <c>ChangeDatabase</c> into it on a logical connection, and reads on its replicas.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class IdentifierQuotingTests
{
    private const string OddDatabase = "rwsplit \"odd\" 'name' [x];--";

    [Test]
    [CancelAfter(120_000)]
    public async Task A_database_named_with_quotes_and_brackets_commits_atomically_and_is_switched_to_and_read()
    {
        var cluster = ClusterSetup.Cluster;
        await using (var admin = new NpgsqlConnection(cluster.PrimaryConnectionString))
        {
            await admin.OpenAsync();
            await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @name", admin);
            exists.Parameters.AddWithValue("name", OddDatabase);
            if (await exists.ExecuteScalarAsync() is null)
            {
                await using var create = new NpgsqlCommand($"CREATE DATABASE \"{OddDatabase.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", admin);
                await create.ExecuteNonQueryAsync();
            }
        }

        var odd = new NpgsqlConnectionStringBuilder(cluster.PrimaryConnectionString) { Database = OddDatabase }.ConnectionString;
        var bank = new Bank(cluster.PrimaryConnectionString, odd);
        await bank.ResetAsync();
        var (first, second) = bank.CreateDataSources("rwsplit-odd-names");
        using (first)
        using (second)
        {
            await Bank.TransferAsync(first, second, 1, 1, 10);
            await Bank.TransferAsync(second, first, 2, 2, 3);
            Assert.That(await bank.TotalAsync(), Is.EqualTo(Bank.ExpectedTotal), "no money lost or created");
            Assert.That(await bank.PreparedAsync(), Is.Empty, "every branch committed: the prepared ids and the decision table worked in that database");
            Assert.That(await Bank.BalanceAsync(odd, 1), Is.EqualTo(Bank.InitialBalance + 10));
        }

        await cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            RwSplit.PostgreSql.RwSplitNpgsqlExtensions.UseNpgsql(o);
            o.Primary = cluster.PrimaryConnectionString;
            foreach (var replica in cluster.ReplicaConnectionStrings)
                o.Replicas.Add(replica);
            o.Consistency = ReadConsistency.Eventual;
        });
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var read = connection.CreateCommand();
        read.CommandText = "SELECT current_database()";
        await read.ExecuteScalarAsync(); // a replica's connection is open before the switch
        await connection.ChangeDatabaseAsync(OddDatabase);
        Assert.That(connection.Database, Is.EqualTo(OddDatabase));
        Assert.That(await read.ExecuteScalarAsync(), Is.EqualTo(OddDatabase));
        Assert.That(read.LastDecision?.Target, Is.EqualTo(Routing.RouteTarget.Replica), "on a replica, switched too");
        await using var write = connection.CreateCommand();
        write.CommandText = "SELECT current_database() FROM bank_accounts LIMIT 1 FOR UPDATE";
        Assert.That(await write.ExecuteScalarAsync(), Is.EqualTo(OddDatabase));
        Assert.That(write.LastDecision?.Target, Is.EqualTo(Routing.RouteTarget.Primary));
    }
}
