using System;
using System.Linq;
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

    /// <summary>
    /// Defect: the drop-in factory returned null/false for CreateDataAdapter, CreateCommandBuilder and their Can… members,
    /// so DbDataAdapter/DbCommandBuilder code got nothing from it. Now the same code runs through Npgsql's factory (the
    /// oracle) and RwSplit's: the same answers, the same generated SQL, the same rows after Fill and Update — and the
    /// generated writes run on the primary (a hot standby would refuse them).
    /// </summary>
    [Test]
    public void The_factory_s_data_adapter_and_command_builder_fill_and_update_as_the_provider_s_do()
    {
        var replica = new NpgsqlConnectionStringBuilder(Cluster.ReplicaConnectionStrings[0]);
        var dropIn = Cluster.PrimaryConnectionString + $";Replicas={replica.Host}:{replica.Port}";
        var raw = Run(NpgsqlFactory.Instance, Cluster.PrimaryConnectionString, "rwsplit_adapter_raw");
        var rw = Run(RwSplitNpgsql.Factory, dropIn, "rwsplit_adapter_rw");
        Assert.That(rw.Can, Is.EqualTo(raw.Can), "CanCreateDataAdapter, CanCreateCommandBuilder");
        Assert.That(rw.Types, Is.EqualTo(("RwSplitDataAdapter", "RwSplitCommandBuilder")));
        Assert.That(rw.Sql, Is.EqualTo(raw.Sql.Select(text => text.Replace("rwsplit_adapter_raw", "rwsplit_adapter_rw", StringComparison.Ordinal))), "the same generated INSERT, UPDATE and DELETE");
        Assert.That(rw.Updated, Is.EqualTo(raw.Updated).And.EqualTo(3));
        Assert.That(rw.Rows, Is.EqualTo(raw.Rows).And.EqualTo(new[] { "1:changed", "3:added" }));
        Assert.That(rw.QuotedName, Is.EqualTo(raw.QuotedName));
    }

    private static ((bool, bool) Can, (string, string) Types, string[] Sql, int Updated, string[] Rows, string QuotedName) Run(System.Data.Common.DbProviderFactory factory, string connectionString, string table)
    {
        using (var setup = new NpgsqlConnection(Cluster.PrimaryConnectionString))
        {
            setup.Open();
            using var create = new NpgsqlCommand($"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL); INSERT INTO {table} VALUES (1, 'one'), (2, 'two')", setup);
            create.ExecuteNonQuery();
        }

        using var connection = factory.CreateConnection()!;
        connection.ConnectionString = connectionString;
        using var adapter = factory.CreateDataAdapter()!;
        using var select = connection.CreateCommand();
        select.CommandText = $"SELECT id, name FROM {table} ORDER BY id";
        adapter.SelectCommand = select;
        using var builder = factory.CreateCommandBuilder()!;
        builder.DataAdapter = adapter;
        var quoted = builder.QuoteIdentifier("we\"ird");
        var sql = new[] { builder.GetInsertCommand().CommandText, builder.GetUpdateCommand().CommandText, builder.GetDeleteCommand().CommandText };

        var data = new System.Data.DataTable();
        adapter.Fill(data);
        data.Rows[0]["name"] = "changed";
        data.Rows[1].Delete();
        data.Rows.Add(3, "added");
        var updated = adapter.Update(data);

        // Read back on the same connection: its writes must be visible wherever the read goes (read-your-writes). A new
        // connection carries no watermark and may read a replica that has not replayed them yet.
        var after = new System.Data.DataTable();
        using (var reread = connection.CreateCommand())
        {
            reread.CommandText = select.CommandText;
            using var again = factory.CreateDataAdapter()!;
            again.SelectCommand = reread;
            again.Fill(after);
        }

        var rows = after.Rows.Cast<System.Data.DataRow>().Select(r => $"{r["id"]}:{r["name"]}").ToArray();
        return ((factory.CanCreateDataAdapter, factory.CanCreateCommandBuilder), (adapter.GetType().Name, builder.GetType().Name), sql, updated, rows, quoted);
    }
}
