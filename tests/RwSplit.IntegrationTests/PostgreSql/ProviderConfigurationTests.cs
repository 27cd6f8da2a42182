using System;
using System.Linq;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PostgreSql;

namespace RwSplit.IntegrationTests.PostgreSql;

public enum TestMood
{
    Calm,
    Stormy,
}

/// <summary>
/// What integrations (EF Core, tools) need from the core: the per-endpoint Npgsql data source configured as the
/// application configures its own (<c>MapEnum</c>), the provider's own connection to the primary, a session reset,
/// a write RwSplit did not see, the pools emptied, and a connection string that neither shows a password nor says
/// <c>Enlist=false</c>.
/// </summary>
[TestFixture]
public sealed class ProviderConfigurationTests
{
    private static string Primary => ClusterSetup.Cluster.PrimaryConnectionString;

    [OneTimeSetUp]
    public async Task CreateEnumAsync()
    {
        await using var connection = new NpgsqlConnection(Primary);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("""
            DROP TABLE IF EXISTS moods; DROP TYPE IF EXISTS test_mood;
            CREATE TYPE test_mood AS ENUM ('calm', 'stormy');
            CREATE TABLE moods (id int PRIMARY KEY, mood test_mood NOT NULL);
            INSERT INTO moods VALUES (1, 'stormy');
            """, connection);
        await command.ExecuteNonQueryAsync();
        await ClusterSetup.Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
    }

    [TearDown]
    public async Task ResumeReplayAsync()
    {
        foreach (var replica in ClusterSetup.Cluster.Replicas)
            await replica.ResumeReplayAsync();
    }

    private static RwSplitDataSource Create(string name, Action<RwSplitOptions>? configure = null, int? onlyReplica = null) => RwSplitDataSource.Create(o =>
    {
        o.UseNpgsql();
        o.Primary = Primary;
        for (var i = 0; i < ClusterSetup.Cluster.ReplicaConnectionStrings.Count; i++)
        {
            if (onlyReplica is null || onlyReplica == i)
                o.Replicas.Add(ClusterSetup.Cluster.ReplicaConnectionStrings[i]);
        }

        o.Name = name;
        o.HealthMonitoring = false;
        o.Consistency = ReadConsistency.Eventual;
        configure?.Invoke(o);
    });

    [Test]
    public async Task A_builder_hook_maps_an_enum_on_the_primary_and_on_every_replica()
    {
        for (var replica = 0; replica < ClusterSetup.Cluster.ReplicaConnectionStrings.Count; replica++)
        {
            await using var dataSource = Create($"mood-{replica}", o => o.UseNpgsql(b => b.MapEnum<TestMood>("test_mood")), replica);
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var read = connection.CreateCommand();
            read.CommandText = "SELECT mood FROM moods WHERE id = 1";
            await using (var reader = await read.ExecuteReaderAsync())
            {
                Assert.That(await reader.ReadAsync(), Is.True);
                Assert.That(reader.GetFieldValue<TestMood>(0), Is.EqualTo(TestMood.Stormy), $"read as the CLR enum on replica {replica}");
            }

            Assert.That(connection.CurrentReplicaConnection, Is.Not.Null, "it ran on the replica");
            Assert.That(connection.CurrentPrimaryConnection, Is.Null);

            await using var write = connection.CreateCommand();
            write.CommandText = "INSERT INTO moods VALUES (@id, @mood) ON CONFLICT (id) DO UPDATE SET mood = excluded.mood";
            write.Parameters.Add(new NpgsqlParameter("id", 10 + replica));
            write.Parameters.Add(new NpgsqlParameter("mood", TestMood.Calm)); // written as the PostgreSQL enum on the primary
            Assert.That(await write.ExecuteNonQueryAsync(), Is.EqualTo(1));
        }

        // The raw provider as the oracle: without the mapping, Npgsql itself cannot read the enum as the CLR type.
        await using var plain = Create("mood-unmapped", onlyReplica: 0);
        await using var unmapped = await plain.OpenConnectionAsync();
        await using var again = unmapped.CreateCommand();
        again.CommandText = "SELECT mood FROM moods WHERE id = 1";
        await using var unmappedReader = await again.ExecuteReaderAsync();
        await unmappedReader.ReadAsync();
        Assert.That(() => unmappedReader.GetFieldValue<TestMood>(0), Throws.InstanceOf<InvalidCastException>());
    }

    /// <summary>
    /// A data source with a builder hook has a dialect instance of its own; commands and batch commands made by the
    /// provider factory (or by another data source) are still of the same provider and run on its connections.
    /// </summary>
    [Test]
    public async Task Commands_from_the_provider_factory_run_on_a_connection_of_a_configured_data_source()
    {
        await using var dataSource = Create("factory-commands", o => o.UseNpgsql(b => b.MapEnum<TestMood>("test_mood")));
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = RwSplitNpgsql.Factory.CreateCommand()!;
        command.CommandText = "SELECT mood FROM moods WHERE id = 1";
        command.Connection = connection;
        await using (var reader = await command.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            Assert.That(reader.GetFieldValue<TestMood>(0), Is.EqualTo(TestMood.Stormy));
        }

        await using var batch = connection.CreateBatch();
        var batchCommand = RwSplitNpgsql.Factory.CreateBatchCommand()!;
        batchCommand.CommandText = "SELECT 1";
        batch.BatchCommands.Add(batchCommand);
        Assert.That(await batch.ExecuteScalarAsync(), Is.EqualTo(1));
    }

    [Test]
    public async Task The_reported_connection_string_shows_no_password_and_no_Enlist()
    {
        await using var dataSource = Create("strings", o => o.Primary = new NpgsqlConnectionStringBuilder(Primary) { Password = "not-shown", Enlist = true }.ConnectionString);
        await using var connection = dataSource.CreateConnection();
        foreach (var reported in new[] { dataSource.ConnectionString, connection.ConnectionString })
        {
            Assert.That(reported, Does.Not.Contain("not-shown"));
            Assert.That(reported, Does.Not.Contain("Enlist").IgnoreCase, "the logical connection enlists; EF Core's PostgreSQL provider reads Enlist=false as 'ignore the ambient transaction'");
        }
    }

    [Test]
    public async Task ResetSession_forgets_writes_and_consistency_and_is_refused_while_open()
    {
        await using var dataSource = Create("reset");
        await using var connection = await dataSource.OpenConnectionAsync();
        connection.Consistency = ReadConsistency.Strong;
        await using (var write = connection.CreateCommand())
        {
            write.CommandText = "UPDATE moods SET mood = 'stormy' WHERE id = 1";
            await write.ExecuteNonQueryAsync();
        }

        Assert.That(() => connection.ResetSession(), Throws.InvalidOperationException.With.Message.Contains("close it"));
        await connection.CloseAsync();
        Assert.That(connection.HasWritten, Is.True, "closing keeps read-your-writes");
        connection.ResetSession();
        Assert.That(connection.HasWritten, Is.False);
        Assert.That(connection.Consistency, Is.EqualTo(ReadConsistency.Eventual), "the data source's again");
    }

    [Test]
    public async Task MarkWritten_makes_reads_see_a_write_made_on_the_providers_own_connection()
    {
        await using var dataSource = Create("mark", o => o.Consistency = ReadConsistency.ReadYourWrites);
        foreach (var replica in ClusterSetup.Cluster.Replicas)
            await replica.PauseReplayAsync();
        await using (var raw = dataSource.CreatePrimaryConnection())
        {
            Assert.That(raw, Is.TypeOf<NpgsqlConnection>());
            await raw.OpenAsync();
            await using var write = new NpgsqlCommand("INSERT INTO moods VALUES (99, 'calm') ON CONFLICT (id) DO UPDATE SET mood = 'calm'", (NpgsqlConnection)raw);
            await write.ExecuteNonQueryAsync();
        }

        await using var connection = await dataSource.OpenConnectionAsync();
        async Task<long> CountAsync()
        {
            await using var read = connection.CreateCommand();
            read.CommandText = "SELECT count(*) FROM moods WHERE id = 99";
            return (long)(await read.ExecuteScalarAsync())!;
        }

        await using (var clear = connection.CreateCommand())
        {
            clear.CommandText = "SELECT 1";
            await clear.ExecuteScalarAsync();
        }

        Assert.That(connection.HasWritten, Is.False);
        connection.MarkWritten();
        Assert.That(await CountAsync(), Is.EqualTo(1L), "after MarkWritten the read waits for the write (replay is paused: the primary answers)");

        await using var unaware = await dataSource.OpenConnectionAsync();
        await using var stale = unaware.CreateCommand();
        stale.CommandText = "SELECT count(*) FROM moods WHERE id = 99";
        await stale.ExecuteScalarAsync();
        Assert.That(unaware.CurrentReplicaConnection, Is.Not.Null, "a connection that was not told reads a replica");

        await using var cleanup = new NpgsqlConnection(Primary);
        await cleanup.OpenAsync();
        await using var delete = new NpgsqlCommand("DELETE FROM moods WHERE id = 99", cleanup);
        await delete.ExecuteNonQueryAsync();
    }

    [Test]
    public async Task A_primary_connection_to_another_database_has_the_primarys_credentials_outside_the_pool()
    {
        await using var dataSource = Create("admin");
        await using var admin = (NpgsqlConnection)dataSource.CreatePrimaryConnection("template1");
        Assert.That(new NpgsqlConnectionStringBuilder(admin.ConnectionString).Pooling, Is.False);
        await admin.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT current_database() || ':' || inet_server_port()", admin);
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo($"template1:{ClusterSetup.PrimaryPort}"));
    }

    [Test]
    public async Task ClearPools_closes_every_idle_pooled_connection()
    {
        var application = "rwsplit-clear-pools";
        await using var dataSource = Create("clear", o =>
        {
            o.Primary = new NpgsqlConnectionStringBuilder(Primary) { ApplicationName = application }.ConnectionString;
            o.Replicas.Clear();
            o.Replicas.Add(new NpgsqlConnectionStringBuilder(ClusterSetup.Cluster.ReplicaConnectionStrings[0]) { ApplicationName = application }.ConnectionString);
        });
        await using (var connection = await dataSource.OpenConnectionAsync())
        {
            await using var read = connection.CreateCommand();
            read.CommandText = "SELECT 1";
            await read.ExecuteScalarAsync();
            await using var write = connection.CreateCommand();
            write.CommandText = "UPDATE moods SET mood = mood WHERE id = 1";
            await write.ExecuteNonQueryAsync();
        }

        async Task<long> SessionsAsync(string cs)
        {
            await using var probe = new NpgsqlConnection(cs);
            await probe.OpenAsync();
            await using var count = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE application_name = @app", probe);
            count.Parameters.AddWithValue("app", application);
            return (long)(await count.ExecuteScalarAsync())!;
        }

        Assert.That(await SessionsAsync(Primary), Is.EqualTo(1L), "the primary's idle pooled connection");
        Assert.That(await SessionsAsync(ClusterSetup.Cluster.ReplicaConnectionStrings[0]), Is.EqualTo(1L), "the replica's");
        dataSource.ClearPools();
        await Task.Delay(200);
        Assert.That(await SessionsAsync(Primary), Is.Zero);
        Assert.That(await SessionsAsync(ClusterSetup.Cluster.ReplicaConnectionStrings[0]), Is.Zero);
    }
}
