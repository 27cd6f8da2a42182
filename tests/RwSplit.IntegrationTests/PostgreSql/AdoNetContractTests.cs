using System;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PostgreSql;
using static RwSplit.IntegrationTests.ClusterSetup;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>ADO.NET behaviour where RwSplit must do what the raw provider does: the raw provider is run first, as the oracle.</summary>
[TestFixture]
[NonParallelizable]
public sealed class AdoNetContractTests
{
    private static Exception? Catch(Action action)
    {
        try
        {
            action();
            return null;
        }
#pragma warning disable CA1031 // The oracle's outcome, whatever it is, is what RwSplit must match.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return ex;
        }
    }

    /// <summary>Defect: RwSplitCommand.Connection could be replaced (or cleared) while the command's reader was open.</summary>
    [Test]
    public async Task The_connection_of_a_command_with_an_open_reader_cannot_be_replaced([Values] bool toNull)
    {
        // The oracle: raw Npgsql.
        await using var raw = new NpgsqlConnection(Cluster.PrimaryConnectionString);
        await raw.OpenAsync();
        await using var rawOther = new NpgsqlConnection(Cluster.PrimaryConnectionString);
        await using var rawCommand = new NpgsqlCommand("SELECT generate_series(1, 3)", raw);
        Exception? expected;
        await using (var reader = await rawCommand.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            expected = Catch(() => rawCommand.Connection = toNull ? null : rawOther);
        }

        Assert.That(expected, Is.InstanceOf<InvalidOperationException>(), "what Npgsql does");

        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = Cluster.PrimaryConnectionString;
            foreach (var replica in Cluster.ReplicaConnectionStrings)
                o.Replicas.Add(replica);
            o.Consistency = ReadConsistency.Eventual;
            o.HealthMonitoring = false;
        });
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var other = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT generate_series(1, 3)";
        await using (var reader = await command.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            var actual = Catch(() => command.Connection = toNull ? null : other);
            Assert.That(actual, Is.TypeOf(expected!.GetType()), actual?.ToString() ?? "RwSplit accepted the change");
            Assert.That(command.Connection, Is.SameAs(connection), "the command keeps its connection");
            Assert.That(await reader.ReadAsync(), Is.True, "and the reader goes on");
        }

        // Once the reader is closed, both let the connection change.
        rawCommand.Connection = rawOther;
        command.Connection = other;
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(1));
    }
}
