using System;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.Extensions.Options;
using Npgsql;
using NUnit.Framework;
using RwSplit.PostgreSql;
using static RwSplit.IntegrationTests.ClusterSetup;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>Bad configuration and unreachable servers: clear errors that name the server and never the password.</summary>
public sealed class ErrorTests
{
    private const string Secret = "s3cret-pa55word";

    [Test]
    public async Task Unreachable_replica_does_not_fail_reads([Values] bool async)
    {
        var dead = new NpgsqlConnectionStringBuilder(Cluster.PrimaryConnectionString) { Port = 1, Timeout = 2, Password = Secret }.ConnectionString;
        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = Cluster.PrimaryConnectionString;
            o.Replicas.Add(dead);
            o.Replicas.Add(Cluster.ReplicaConnectionStrings[0]);
        });

        for (var i = 0; i < 4; i++)
        {
            await using var connection = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT inet_server_port()";
            var port = (int)(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar())!;
            Assert.That(port, Is.EqualTo(ReplicaPorts[0]), "the read moved to the reachable replica");
        }
    }

    [Test]
    public async Task Unreachable_primary_names_the_server_but_not_the_password([Values] bool async)
    {
        var dead = new NpgsqlConnectionStringBuilder(Cluster.PrimaryConnectionString) { Port = 1, Timeout = 2, Password = Secret }.ConnectionString;
        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = dead;
        });
        await using var connection = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO audit(note) VALUES ('never')";
        var ex = Assert.ThrowsAsync<RwSplitException>(async () => await (async ? command.ExecuteNonQueryAsync() : Task.FromResult(command.ExecuteNonQuery())));
        Assert.That(ex!.Error, Is.EqualTo(RwSplitError.EndpointUnreachable));
        Assert.That(ex.Message, Does.Contain("primary 127.0.0.1:1/rwsplit"));
        Assert.That(ex.Message, Does.Not.Contain(Secret));
        Assert.That(ex.InnerException, Is.InstanceOf<NpgsqlException>());
        Assert.That(dataSource.ConnectionString, Does.Not.Contain(Secret));
    }

    [Test]
    public async Task After_terminated_sessions_one_write_fails_and_the_pool_is_emptied_so_the_next_one_works([Values] bool async)
    {
        var application = "rwsplit-pool-clear-" + async;
        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = new NpgsqlConnectionStringBuilder(Cluster.PrimaryConnectionString) { ApplicationName = application }.ConnectionString;
            o.HealthMonitoring = false;
        });

        // Three physical connections to the primary, idle in RwSplit's pool.
        var open = new RwSplitConnection[3];
        for (var i = 0; i < open.Length; i++)
        {
            open[i] = await dataSource.OpenConnectionAsync();
            await using var command = open[i].CreateCommand();
            command.CommandText = "INSERT INTO audit(note) VALUES ('pool')";
            await command.ExecuteNonQueryAsync();
        }

        foreach (var connection in open)
            await connection.DisposeAsync();

        await using (var admin = new NpgsqlConnection(Cluster.PrimaryConnectionString))
        {
            await admin.OpenAsync();
            await using var terminate = new NpgsqlCommand("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = @app", admin);
            terminate.Parameters.AddWithValue("app", application);
            Assert.That(await terminate.ExecuteScalarAsync(), Is.EqualTo(3L));
        }

        async Task<int> WriteAsync()
        {
            await using var connection = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
            await using var command = connection.CreateCommand();
            command.CommandText = "INSERT INTO audit(note) VALUES ('after')";
            return async ? await command.ExecuteNonQueryAsync() : command.ExecuteNonQuery();
        }

        // A write is never replayed: the first one meets a dead pooled session and fails. The pool is then emptied (by
        // Npgsql for this error, and by RwSplit for any connection failure), so the next write dials anew instead of
        // meeting the two other dead sessions.
        Assert.CatchAsync<Exception>(WriteAsync);
        Assert.That(await WriteAsync(), Is.EqualTo(1));
        Assert.That(await WriteAsync(), Is.EqualTo(1));
    }

    [Test]
    public void Invalid_options_list_every_problem_with_its_fix()
    {
        var ex = Assert.Throws<OptionsValidationException>(() => RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = Cluster.PrimaryConnectionString + $";Password={Secret}";
            o.Replicas.Add(Cluster.PrimaryConnectionString + $";Password={Secret}");
            o.Replicas.Add($"Host=127.0.0.1;Bogus Keyword=1;Password={Secret}");
            o.StatementCacheSize = 0;
        }));
        Assert.That(ex!.Failures.Count(), Is.EqualTo(3));
        Assert.That(ex.Message, Does.Contain("replica 0 (127.0.0.1:"));
        Assert.That(ex.Message, Does.Contain("is the primary itself"));
        Assert.That(ex.Message, Does.Contain("replica 1 is malformed").Or.Contain("replica 1 is malformed"));
        Assert.That(ex.Message, Does.Contain("bogus keyword").IgnoreCase);
        Assert.That(ex.Message, Does.Contain("StatementCacheSize"));
        Assert.That(ex.Message, Does.Not.Contain(Secret));
    }

    [Test]
    public async Task Drop_in_connection_string_for_npgsql_routes_reads_to_the_named_replica([Values] bool async)
    {
        var replica = new NpgsqlConnectionStringBuilder(Cluster.ReplicaConnectionStrings[1]);
        var cs = Cluster.PrimaryConnectionString + $";Replicas={replica.Host}:{replica.Port};Read Consistency=Eventual";
        await using var connection = RwSplitNpgsql.Factory.CreateConnection(cs);
        if (async)
            await connection.OpenAsync();
        else
            connection.Open();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT inet_server_port()";
        Assert.That(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar(), Is.EqualTo(ReplicaPorts[1]));
        Assert.That(connection.Consistency, Is.EqualTo(ReadConsistency.Eventual));
    }
}
