using System;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PostgreSql;
using RwSplit.TestSupport;
using static RwSplit.IntegrationTests.ClusterSetup;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>
/// No password, SSL key password or statement value leaves through a connection string, a log line or a trace. Raw
/// Npgsql is the oracle for what an opened connection's string shows.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class SecretsTests
{
    private const string SslSecret = "ssl-key-secret-7731";

    [Test]
    public async Task An_opened_drop_in_connection_hides_the_password_as_Npgsql_does([Values] bool persistSecurityInfo)
    {
        var primary = new NpgsqlConnectionStringBuilder(Cluster.PrimaryConnectionString) { Password = "pw-secret-4242", PersistSecurityInfo = persistSecurityInfo };
        var replica = new NpgsqlConnectionStringBuilder(Cluster.ReplicaConnectionStrings[0]);
        await using var raw = new NpgsqlConnection(primary.ConnectionString);
        await raw.OpenAsync();
        var rawShows = raw.ConnectionString.Contains("pw-secret-4242", StringComparison.Ordinal);
        Assert.That(rawShows, Is.EqualTo(persistSecurityInfo), "the oracle: Npgsql shows the password after Open only with Persist Security Info");

        await using var connection = RwSplitNpgsql.Factory.CreateConnection(primary.ConnectionString + $";Replicas={replica.Host}:{replica.Port}");
        Assert.That(connection.ConnectionString, Does.Contain("pw-secret-4242"), "before Open the string is the caller's");
        await connection.OpenAsync();
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT 1";
            await command.ExecuteScalarAsync();
        }

        Assert.That(connection.ConnectionString.Contains("pw-secret-4242", StringComparison.Ordinal), Is.EqualTo(rawShows), connection.ConnectionString.Replace("pw-secret-4242", "***", StringComparison.Ordinal));
        await connection.CloseAsync();
        Assert.That(connection.ConnectionString.Contains("pw-secret-4242", StringComparison.Ordinal), Is.EqualTo(rawShows), "nor after Close");
        Assert.That(connection.ConnectionString, Does.Contain("Replicas").IgnoreCase, "the rest of the string stays");
    }

    [Test]
    public void The_data_source_string_hides_the_ssl_key_password()
    {
        var primary = new NpgsqlConnectionStringBuilder(Cluster.PrimaryConnectionString) { SslPassword = SslSecret };
        using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = primary.ConnectionString;
            o.HealthMonitoring = false;
        });
        Assert.That(dataSource.ConnectionString, Does.Not.Contain(SslSecret));
        Assert.That(dataSource.ConnectionString, Does.Not.Contain(primary.Password ?? "no password"));
    }

    /// <summary>Defect: the span's status carried the provider's message, which quotes the statement's values.</summary>
    [Test]
    public async Task A_failed_command_leaves_no_value_in_its_trace([Values] bool async)
    {
        using var capture = new TelemetryCapture("secrets-trace");
        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Name = "secrets-trace";
            o.Primary = Cluster.PrimaryConnectionString;
            foreach (var replica in Cluster.ReplicaConnectionStrings)
                o.Replicas.Add(replica);
            o.Consistency = ReadConsistency.Eventual;
            o.LoggerFactory = capture.LoggerFactory;
        });
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 'card-4111-1111'::int";
        var error = async ? Assert.CatchAsync<PostgresException>(async () => await command.ExecuteScalarAsync()) : Assert.Catch<PostgresException>(() => command.ExecuteScalar());
        Assert.That(error!.MessageText, Does.Contain("card-4111-1111"), "the provider's own message quotes the value (the caller gets it unchanged)");

        var span = capture.Activities.Single(a => a.OperationName == "rwsplit.route");
        Assert.That(span.Status, Is.EqualTo(ActivityStatusCode.Error));
        Assert.That(span.GetTagItem("error.type"), Is.EqualTo("22P02"), "the SQLSTATE names the error");
        capture.AssertNothingContains("card-4111-1111", new NpgsqlConnectionStringBuilder(Cluster.PrimaryConnectionString).Password ?? "no password");
    }
}
