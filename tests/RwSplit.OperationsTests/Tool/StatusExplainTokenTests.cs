using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using NUnit.Framework;
using RwSplit.HealthChecks;
using RwSplit.PgCluster;
using RwSplit.PostgreSql;
using RwSplit.Topology;

namespace RwSplit.OperationsTests.Tool;

/// <summary>
/// <c>rwsplit status</c>, <c>explain</c> and <c>token decode</c> run as processes against a primary and one streaming
/// replica (ports 25487–25488); nothing listens on 25490 (the unreachable case). Connection strings reach the tool through
/// RWSPLIT_PRIMARY / RWSPLIT_REPLICAS or a settings file, each with a password that must never be printed.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class StatusExplainTokenTests
{
    private LocalPgCluster _cluster = null!;
    private Dictionary<string, string> _environment = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _cluster = await ToolCluster.StartAsync(25487, replicas: 1);
        await using (var connection = new NpgsqlConnection(_cluster.PrimaryConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("DROP TABLE IF EXISTS tool_accounts; CREATE TABLE tool_accounts (id int PRIMARY KEY, name text NOT NULL); INSERT INTO tool_accounts VALUES (1, 'one');", connection);
            await command.ExecuteNonQueryAsync();
        }

        await _cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
        _environment = new Dictionary<string, string>
        {
            ["RWSPLIT_PRIMARY"] = ToolCluster.WithPassword(_cluster.PrimaryConnectionString),
            ["RWSPLIT_REPLICAS"] = ToolCluster.WithPassword(_cluster.ReplicaConnectionStrings[0]),
        };
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_cluster is not null)
            await _cluster.DisposeAsync();
    }

    private Task<ToolResult> RunAsync(params string[] args) => ToolProcess.RunAsync(_environment, args);

    /// <summary>
    /// Runs RwSplit's health check in this process over a data source configured as the tool's was, after one completed
    /// round, and asserts that the tool's status, exit code and reasons are the check's (figures in seconds aside, which
    /// move between the two runs). Returns the data source's health snapshot for more assertions.
    /// </summary>
    private async Task<DataSourceHealth> AssertSameVerdictAsTheHealthCheckAsync(ToolResult tool, string? replica = null, double? maxLagSeconds = null, bool firstReasonOnly = false)
    {
        var maxLag = maxLagSeconds is { } s ? TimeSpan.FromSeconds(s) : new RwSplitOptions().MaxReplicaLag;
        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = _environment["RWSPLIT_PRIMARY"];
            o.Replicas.Add(replica ?? _environment["RWSPLIT_REPLICAS"]);
            o.HealthMonitoring = true;
            o.MaxReplicaLag = maxLag;
        });
        await dataSource.RefreshTopologyAsync();
        var check = new RwSplitHealthCheck(dataSource, new RwSplitHealthCheckOptions { MaxReplicaLag = maxLag });
        var result = await check.CheckHealthAsync(new HealthCheckContext { Registration = new HealthCheckRegistration("rwsplit", check, HealthStatus.Unhealthy, null) });
        var expected = ((IReadOnlyList<string>)result.Data["reasons"]).Select(WithoutFigures).ToList();
        var printed = tool.Json.GetProperty("reasons").EnumerateArray().Select(r => WithoutFigures(r.GetString()!)).ToList();
        var (status, exitCode) = result.Status switch
        {
            HealthStatus.Healthy => ("healthy", 0),
            HealthStatus.Degraded => ("degraded", 1),
            _ => ("unhealthy", 2),
        };
        Assert.Multiple(() =>
        {
            Assert.That(tool.ExitCode, Is.EqualTo(exitCode), tool.ToString);
            Assert.That(tool.Json.GetProperty("status").GetString(), Is.EqualTo(status));
            if (firstReasonOnly)
                Assert.That(printed.FirstOrDefault(), Is.EqualTo(expected.FirstOrDefault()), "the worst reason is the health check's");
            else
                Assert.That(printed, Is.EqualTo(expected), "the reasons are the health check's");
        });
        return dataSource.GetHealth();
    }

    private static string WithoutFigures(string reason) => Regex.Replace(reason, @"\d+(\.\d+)? s\b", "# s");

    [Test]
    [Order(1)]
    public async Task Status_is_healthy_in_json_and_table_with_exit_code_0()
    {
        var json = await RunAsync("status", "--output", "json");
        ToolCluster.AssertNoPassword(json);
        Assert.That(json.ExitCode, Is.EqualTo(0), json.ToString);
        var root = json.Json;
        Assert.That(root.GetProperty("status").GetString(), Is.EqualTo("healthy"));
        Assert.That(root.GetProperty("exitCode").GetInt32(), Is.EqualTo(0));
        Assert.That(root.GetProperty("reasons").GetArrayLength(), Is.Zero);
        var endpoints = root.GetProperty("endpoints").EnumerateArray().ToList();
        Assert.That(endpoints, Has.Count.EqualTo(2));
        var (primary, replica) = (endpoints[0], endpoints[1]);
        Assert.Multiple(() =>
        {
            Assert.That(primary.GetProperty("port").GetInt32(), Is.EqualTo(_cluster.Primary.Port));
            Assert.That(primary.GetProperty("configuredRole").GetString(), Is.EqualTo("primary"));
            Assert.That(primary.GetProperty("observedRole").GetString(), Is.EqualTo("primary"));
            Assert.That(primary.GetProperty("current").GetBoolean(), Is.True);
            Assert.That(primary.GetProperty("available").GetBoolean(), Is.True);
            Assert.That(primary.GetProperty("latencyMs").ValueKind, Is.EqualTo(JsonValueKind.Number));
            Assert.That(replica.GetProperty("port").GetInt32(), Is.EqualTo(_cluster.Replicas[0].Port));
            Assert.That(replica.GetProperty("configuredRole").GetString(), Is.EqualTo("replica"));
            Assert.That(replica.GetProperty("observedRole").GetString(), Is.EqualTo("replica"));
            Assert.That(replica.GetProperty("available").GetBoolean(), Is.True);
            Assert.That(replica.GetProperty("lagSeconds").GetDouble(), Is.GreaterThanOrEqualTo(0).And.LessThan(10));
            Assert.That(replica.GetProperty("lagPosition").GetInt64(), Is.GreaterThanOrEqualTo(0));
            Assert.That(replica.GetProperty("ejectionReason").ValueKind, Is.EqualTo(JsonValueKind.Null));
            Assert.That(primary.GetProperty("lastErrorKind").ValueKind, Is.EqualTo(JsonValueKind.Null));
            Assert.That(replica.GetProperty("lastErrorKind").ValueKind, Is.EqualTo(JsonValueKind.Null));
        });
        await AssertSameVerdictAsTheHealthCheckAsync(json);

        // The table, from a settings file this time.
        var settings = Path.Combine(Path.GetTempPath(), $"rwsplit-tool-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(settings, JsonSerializer.Serialize(new { provider = "postgresql", primary = _environment["RWSPLIT_PRIMARY"], replicas = new[] { _environment["RWSPLIT_REPLICAS"] } }));
        try
        {
            var table = await ToolProcess.RunAsync("status", "--settings", settings);
            ToolCluster.AssertNoPassword(table);
            Assert.That(table.ExitCode, Is.EqualTo(0), table.ToString);
            Assert.That(table.StandardOutput, Does.Contain($"127.0.0.1:{_cluster.Primary.Port}/rwsplit *").And.Contain($"127.0.0.1:{_cluster.Replicas[0].Port}/rwsplit"));
            Assert.That(table.StandardOutput, Does.Contain("primary/primary").And.Contain("replica/replica").And.Contain("Status: healthy"));
        }
        finally
        {
            File.Delete(settings);
        }
    }

    [Test]
    [Order(2)]
    public async Task Explain_says_where_a_read_a_write_and_a_pinning_statement_go_without_running_them()
    {
        const string Literal = "literal-never-printed-51";
        var read = await RunAsync("explain", $"SELECT name FROM tool_accounts WHERE name = '{Literal}'", "--output", "json");
        var strong = await RunAsync("explain", $"SELECT name FROM tool_accounts WHERE name = '{Literal}'", "--consistency", "strong", "--output", "json");
        var write = await RunAsync("explain", $"UPDATE tool_accounts SET name = '{Literal}' WHERE id = 1", "--output", "json");
        var pinned = await RunAsync("explain", "CREATE TEMP TABLE tool_scratch (id int)", "--output", "json");
        var table = await RunAsync("explain", $"UPDATE tool_accounts SET name = '{Literal}' WHERE id = 1");
        foreach (var result in new[] { read, strong, write, pinned, table })
        {
            ToolCluster.AssertNoPassword(result);
            Assert.That(result.ExitCode, Is.EqualTo(0), result.ToString);
            Assert.That(result.StandardOutput, Does.Not.Contain(Literal), "the statement's text is not printed");
        }

        Assert.Multiple(() =>
        {
            Assert.That(read.Json.GetProperty("classification").GetProperty("kind").GetString(), Is.EqualTo("read"));
            Assert.That(read.Json.GetProperty("consistency").GetString(), Is.EqualTo("read_your_writes"));
            Assert.That(read.Json.GetProperty("target").GetString(), Is.EqualTo("replica"));
            Assert.That(read.Json.GetProperty("replicaIndex").GetInt32(), Is.EqualTo(0));
            Assert.That(read.Json.GetProperty("endpoint").GetString(), Is.EqualTo($"127.0.0.1:{_cluster.Replicas[0].Port}/rwsplit"));
            Assert.That(read.Json.GetProperty("reason").GetString(), Is.EqualTo("read"));

            Assert.That(strong.Json.GetProperty("target").GetString(), Is.EqualTo("primary"));
            Assert.That(strong.Json.GetProperty("reason").GetString(), Is.EqualTo("strong_consistency"));

            Assert.That(write.Json.GetProperty("classification").GetProperty("kind").GetString(), Is.EqualTo("write"));
            Assert.That(write.Json.GetProperty("target").GetString(), Is.EqualTo("primary"));
            Assert.That(write.Json.GetProperty("endpoint").GetString(), Is.EqualTo($"127.0.0.1:{_cluster.Primary.Port}/rwsplit"));
            Assert.That(write.Json.GetProperty("reason").GetString(), Is.EqualTo("write"));

            Assert.That(pinned.Json.GetProperty("classification").GetProperty("sessionEffect").GetString(), Is.EqualTo("pin"));
            Assert.That(pinned.Json.GetProperty("target").GetString(), Is.EqualTo("primary"));
            Assert.That(pinned.Json.GetProperty("reason").GetString(), Is.EqualTo("session_state"));

            Assert.That(table.StandardOutput, Does.Contain("Routed as").And.Contain("write: the statement writes"));
        });

        // Explaining ran nothing: the row the UPDATE would change is unchanged, and no temporary table exists.
        await using var connection = new NpgsqlConnection(_cluster.PrimaryConnectionString);
        await connection.OpenAsync();
        await using var check = new NpgsqlCommand("SELECT name FROM tool_accounts WHERE id = 1", connection);
        Assert.That(await check.ExecuteScalarAsync(), Is.EqualTo("one"));
    }

    [Test]
    [Order(3)]
    public async Task Token_decode_shows_the_fields_and_verifies_only_with_the_right_key()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        string token;
        await using (var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = _cluster.PrimaryConnectionString;
            o.Replicas.Add(_cluster.ReplicaConnectionStrings[0]);
            o.ConsistencyTokenKeys.Add(key);
        }))
        {
            await dataSource.RefreshTopologyAsync();
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "UPDATE tool_accounts SET name = name WHERE id = 1";
            await command.ExecuteNonQueryAsync();
            token = connection.GetConsistencyToken() ?? throw new AssertionException("no token after a write");
        }

        var parsed = Routing.ConsistencyToken.Parse(token);
        var keyText = Convert.ToBase64String(key);
        var good = await ToolProcess.RunAsync(new Dictionary<string, string> { ["RWSPLIT_TOKEN_KEYS"] = keyText }, "token", "decode", token, "-o", "json");
        var other = await ToolProcess.RunAsync(new Dictionary<string, string> { ["RWSPLIT_TOKEN_KEYS"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) }, "token", "decode", token, "-o", "json");
        var unchecked_ = await ToolProcess.RunAsync("token", "decode", token, "-o", "json");
        var altered = token[..^1] + (token[^1] == 'A' ? 'B' : 'A');
        var forged = await ToolProcess.RunAsync(new Dictionary<string, string> { ["RWSPLIT_TOKEN_KEYS"] = keyText }, "token", "decode", altered, "-o", "json");
        var table = await ToolProcess.RunAsync(new Dictionary<string, string> { ["RWSPLIT_TOKEN_KEYS"] = keyText }, "token", "decode", token);
        var malformed = await ToolProcess.RunAsync("token", "decode", "rws2.not-a-token");

        foreach (var result in new[] { good, other, unchecked_, forged, table, malformed })
        {
            Assert.That(result.StandardOutput + result.StandardError, Does.Not.Contain(keyText), "the key is never printed");
        }

        Assert.Multiple(() =>
        {
            Assert.That(good.ExitCode, Is.EqualTo(0), good.ToString);
            Assert.That(good.Json.GetProperty("signature").GetString(), Is.EqualTo("valid"));
            Assert.That(good.Json.GetProperty("position").GetInt64(), Is.EqualTo(parsed.Position).And.GreaterThan(0));
            Assert.That(good.Json.GetProperty("identityHash").GetString(), Is.EqualTo(parsed.IdentityHash.ToString("x16", System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(good.Json.GetProperty("writtenAt").GetDateTimeOffset(), Is.EqualTo(parsed.WrittenAt));
            Assert.That(good.Json.GetProperty("keyId").GetString(), Is.EqualTo(parsed.KeyId.ToString("x8", System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(other.ExitCode, Is.EqualTo(1), other.ToString);
            Assert.That(other.Json.GetProperty("signature").GetString(), Is.EqualTo("unknown_key"));
            Assert.That(unchecked_.ExitCode, Is.EqualTo(0), unchecked_.ToString);
            Assert.That(unchecked_.Json.GetProperty("signature").GetString(), Is.EqualTo("not_checked"));
            Assert.That(forged.ExitCode, Is.EqualTo(1), forged.ToString);
            Assert.That(forged.Json.GetProperty("signature").GetString(), Is.EqualTo("invalid"));
            Assert.That(table.ExitCode, Is.EqualTo(0), table.ToString);
            Assert.That(table.StandardOutput, Does.Contain("valid: signed by one of the keys given"));
            Assert.That(malformed.ExitCode, Is.EqualTo(3), malformed.ToString);
            Assert.That(malformed.StandardError, Does.Contain("Invalid consistency token"));
        });
    }

    [Test]
    [Order(4)]
    public async Task Usage_errors_and_an_unreachable_primary_exit_with_3()
    {
        var noPrimary = await ToolProcess.RunAsync("status");
        var badFormat = await RunAsync("status", "--output", "xml");
        var noSql = await RunAsync("explain");
        var noCommand = await RunAsync();
        var unreachableEnvironment = new Dictionary<string, string> { ["RWSPLIT_PRIMARY"] = ToolCluster.WithPassword(_cluster.PrimaryConnectionString.Replace($"Port={_cluster.Primary.Port}", "Port=25490", StringComparison.Ordinal)) };
        var unreachable = await ToolProcess.RunAsync(unreachableEnvironment, "status", "-o", "json");
        var unreachableTable = await ToolProcess.RunAsync(unreachableEnvironment, "status");
        var unreachableTx = await ToolProcess.RunAsync(unreachableEnvironment, "tx", "list");
        foreach (var result in new[] { noPrimary, badFormat, noSql, noCommand, unreachable, unreachableTable, unreachableTx })
        {
            ToolCluster.AssertNoPassword(result);
            Assert.That(result.ExitCode, Is.EqualTo(3), result.ToString);
        }

        Assert.Multiple(() =>
        {
            Assert.That(noPrimary.StandardError, Does.Contain("No primary"));
            Assert.That(unreachable.Json.GetProperty("status").GetString(), Is.EqualTo("unreachable"));
            Assert.That(unreachable.Json.GetProperty("reasons")[0].GetString(), Is.EqualTo("no endpoint answered"));
            Assert.That(unreachable.Json.GetProperty("endpoints")[0].GetProperty("reachable").GetBoolean(), Is.False);
            Assert.That(unreachable.Json.GetProperty("endpoints")[0].GetProperty("lastErrorKind").GetString(), Is.EqualTo("socket:ConnectionRefused"));
            Assert.That(unreachable.Json.GetProperty("endpoints")[0].GetProperty("ejectionReason").GetString(), Is.EqualTo("unreachable (socket:ConnectionRefused)"));
            Assert.That(unreachableTable.StandardOutput, Does.Contain("unreachable (socket:ConnectionRefused)"));

            // The provider's message ("Failed to connect to 127.0.0.1:25490") was printed raw before: it is not now.
            Assert.That(unreachable.StandardOutput + unreachableTable.StandardOutput, Does.Not.Contain("Failed to connect"));
            Assert.That(unreachableTx.StandardError, Does.Contain("127.0.0.1:25490"));
        });
    }

    [Test]
    [Order(5)]
    public async Task Status_is_degraded_with_exit_code_1_while_the_replica_is_stopped()
    {
        var replica = _cluster.Replicas[0];
        await replica.StopAsync();
        try
        {
            var json = await RunAsync("status", "-o", "json");
            var table = await RunAsync("status");
            ToolCluster.AssertNoPassword(json);
            ToolCluster.AssertNoPassword(table);
            Assert.That(json.ExitCode, Is.EqualTo(1), json.ToString);
            Assert.That(table.ExitCode, Is.EqualTo(1), table.ToString);
            var endpoint = json.Json.GetProperty("endpoints")[1];
            Assert.Multiple(() =>
            {
                Assert.That(json.Json.GetProperty("status").GetString(), Is.EqualTo("degraded"));
                Assert.That(endpoint.GetProperty("available").GetBoolean(), Is.False);
                Assert.That(endpoint.GetProperty("reachable").GetBoolean(), Is.False);
                Assert.That(endpoint.GetProperty("ejectionReason").GetString(), Does.StartWith("unreachable (socket:"));
                Assert.That(endpoint.GetProperty("lastErrorKind").GetString(), Does.StartWith("socket:"));
                Assert.That(json.Json.GetProperty("reasons")[0].GetString(), Does.StartWith($"replica 127.0.0.1:{replica.Port}/rwsplit is ejected: unreachable (socket:"));
                Assert.That(table.StandardOutput, Does.Contain("Status: degraded").And.Contain($"  - replica 127.0.0.1:{replica.Port}/rwsplit is ejected"));
            });
            await AssertSameVerdictAsTheHealthCheckAsync(json);
        }
        finally
        {
            await replica.StartAsync();
            await _cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(60));
        }

        var back = await RunAsync("status", "-o", "json");
        Assert.That(back.ExitCode, Is.EqualTo(0), back.ToString);
    }

    [Test]
    [Order(6)]
    public async Task Status_is_degraded_while_the_replica_replays_behind_the_lag_limit()
    {
        var replica = _cluster.Replicas[0];
        await replica.PauseReplayAsync();
        try
        {
            await using (var connection = new NpgsqlConnection(_cluster.PrimaryConnectionString))
            {
                await connection.OpenAsync();
                await using var write = new NpgsqlCommand("UPDATE tool_accounts SET name = name WHERE id = 1", connection);
                await write.ExecuteNonQueryAsync();
            }

            // The replica now misses a commit; its lag (time since its last replayed commit) passes 1 s soon if not already.
            ToolResult json = null!;
            for (var attempt = 0; attempt < 20; attempt++)
            {
                json = await RunAsync("status", "--max-lag", "1", "-o", "json");
                if (json.ExitCode != 0)
                    break;
                await Task.Delay(500);
            }

            ToolCluster.AssertNoPassword(json);
            Assert.That(json.ExitCode, Is.EqualTo(1), json.ToString);
            var endpoint = json.Json.GetProperty("endpoints")[1];
            Assert.Multiple(() =>
            {
                Assert.That(json.Json.GetProperty("status").GetString(), Is.EqualTo("degraded"));
                Assert.That(endpoint.GetProperty("reachable").GetBoolean(), Is.True);
                Assert.That(endpoint.GetProperty("available").GetBoolean(), Is.False, "ejected for its lag");
                Assert.That(endpoint.GetProperty("lagSeconds").GetDouble(), Is.GreaterThan(1));
                Assert.That(endpoint.GetProperty("lagPosition").GetInt64(), Is.GreaterThan(0), "behind in WAL bytes too");
                Assert.That(endpoint.GetProperty("ejectionReason").GetString(), Does.Contain("lag"));
                Assert.That(json.Json.GetProperty("reasons")[0].GetString(), Does.Contain("(limit 1 s)"), "--max-lag is the health check's threshold");
            });
            await AssertSameVerdictAsTheHealthCheckAsync(json, maxLagSeconds: 1);
        }
        finally
        {
            await replica.ResumeReplayAsync();
            await _cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(60));
        }
    }

    [Test]
    [Order(7)]
    public async Task Status_prints_a_server_error_as_its_kind_never_the_providers_message()
    {
        const string Missing = "tool_no_such_db";
        var replica = ToolCluster.WithPassword(_cluster.ReplicaConnectionStrings[0], database: Missing);
        var environment = new Dictionary<string, string>(_environment) { ["RWSPLIT_REPLICAS"] = replica };
        var json = await ToolProcess.RunAsync(environment, "status", "-o", "json");
        var table = await ToolProcess.RunAsync(environment, "status");
        ToolCluster.AssertNoPassword(json);
        ToolCluster.AssertNoPassword(table);
        var health = await AssertSameVerdictAsTheHealthCheckAsync(json, replica);
        var endpoint = json.Json.GetProperty("endpoints")[1];
        Assert.Multiple(() =>
        {
            Assert.That(health.Endpoints[1].LastError, Does.Contain("does not exist").And.Contain(Missing), "the raw message names the database");
            Assert.That(json.ExitCode, Is.EqualTo(1), json.ToString);
            Assert.That(table.ExitCode, Is.EqualTo(1), table.ToString);
            Assert.That(endpoint.GetProperty("lastErrorKind").GetString(), Is.EqualTo("sqlstate:3D000"));
            Assert.That(endpoint.GetProperty("ejectionReason").GetString(), Is.EqualTo("unreachable (sqlstate:3D000)"));
            Assert.That(json.Json.GetProperty("reasons")[0].GetString(), Does.EndWith("is ejected: unreachable (sqlstate:3D000)"));
            Assert.That(table.StandardOutput, Does.Contain("unreachable (sqlstate:3D000)"));

            // Printed raw before (as the ejection reason and in the reasons): the provider's message is not printed now.
            Assert.That(json.StandardOutput, Does.Not.Contain("does not exist"));
            Assert.That(table.StandardOutput, Does.Not.Contain("does not exist"));
        });
    }

    [Test]
    [Order(8)]
    public async Task Status_is_unhealthy_with_exit_code_2_while_the_primary_is_stopped()
    {
        await _cluster.Primary.StopAsync();
        try
        {
            var json = await RunAsync("status", "-o", "json");
            ToolCluster.AssertNoPassword(json);
            Assert.That(json.ExitCode, Is.EqualTo(2), json.ToString);
            Assert.Multiple(() =>
            {
                Assert.That(json.Json.GetProperty("status").GetString(), Is.EqualTo("unhealthy"));
                Assert.That(json.Json.GetProperty("endpoints")[0].GetProperty("available").GetBoolean(), Is.False);
                Assert.That(json.Json.GetProperty("endpoints")[1].GetProperty("reachable").GetBoolean(), Is.True, "the replica still answers");
                Assert.That(json.Json.GetProperty("reasons")[0].GetString(), Does.StartWith($"no writable primary: 127.0.0.1:{_cluster.Primary.Port}/rwsplit is unreachable (socket:"));
                Assert.That(json.Json.GetProperty("endpoints")[0].GetProperty("lastErrorKind").GetString(), Does.StartWith("socket:"));
            });

            // The replica's lag (time since its last replay) grows while the primary is down: only the worst reason is stable.
            await AssertSameVerdictAsTheHealthCheckAsync(json, firstReasonOnly: true);
        }
        finally
        {
            await _cluster.Primary.StartAsync();
            await _cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(60));
        }
    }
}
