using System;
using System.Linq;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PostgreSql;
using RwSplit.TestSupport;
using static RwSplit.IntegrationTests.ClusterSetup;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>Replay of session state on a physical connection opened later, when it cannot be rebuilt there.</summary>
[TestFixture]
[NonParallelizable]
public sealed class SessionReplayTests
{
    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    [Test]
    public async Task A_session_command_that_no_longer_replays_fails_the_open_and_logs_event_2002_without_the_command()
    {
        var role = "rwsplit_replay_" + Guid.NewGuid().ToString("N")[..8];
        await ExecuteAsync(Cluster.PrimaryConnectionString, $"CREATE ROLE {role}");
        await Cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
        using var capture = new TelemetryCapture();
        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = Cluster.PrimaryConnectionString;
            foreach (var replica in Cluster.ReplicaConnectionStrings)
                o.Replicas.Add(replica);
            o.Consistency = ReadConsistency.Eventual;
            o.LoggerFactory = capture.LoggerFactory;
        });
        await using var connection = await dataSource.OpenConnectionAsync();
        await using (var set = connection.CreateCommand())
        {
            set.CommandText = $"SET ROLE {role}"; // runs on the replica the session reads from
            await set.ExecuteNonQueryAsync();
        }

        // The role is dropped meanwhile: the primary, opened now, cannot take the session's state.
        await ExecuteAsync(Cluster.PrimaryConnectionString, $"DROP ROLE {role}");
        await using var write = connection.CreateCommand();
        write.CommandText = "SELECT 1 /* rwsplit:primary */";
        var ex = Assert.ThrowsAsync<PostgresException>(async () => await write.ExecuteScalarAsync());
        Assert.That(ex!.SqlState, Is.EqualTo(PostgresErrorCodes.InvalidParameterValue).Or.EqualTo(PostgresErrorCodes.UndefinedObject), ex.Message);
        var replayFailed = capture.Logged(2002);
        Assert.That(replayFailed, Has.Count.EqualTo(1), "event 2002, ReplayFailed");
        Assert.That(replayFailed[0].Message, Does.Contain(PrimaryPort.ToString(System.Globalization.CultureInfo.InvariantCulture)), "names the server");
        Assert.That(replayFailed[0].Message, Does.Not.Contain(role), "not the command");
    }
}
