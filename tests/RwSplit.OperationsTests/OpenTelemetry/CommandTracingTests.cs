using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PostgreSql;

namespace RwSplit.OperationsTests.OpenTelemetry;

/// <summary>
/// The command span (<c>rwsplit.route</c>) through an OpenTelemetry tracer provider on real PostgreSQL: it is the parent
/// of Npgsql's own client span, and what RwSplit does before the statement leaves — the physical open, the
/// read-your-writes wait — happens inside it. Its tags follow the database semantic conventions and carry no SQL
/// literal and no password.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class CommandTracingTests
{
    private static long _nextId = DateTime.UtcNow.Ticks;
    private TraceCapture _traces = null!;

    [SetUp]
    public void StartTracing() => _traces = new TraceCapture();

    [TearDown]
    public void StopTracing() => _traces.Dispose();

    private static int PrimaryPort => OtelCluster.Cluster.Primary.Port;

    private static int ReplicaPort => OtelCluster.Cluster.Replicas[0].Port;

    private static RwSplitDataSource Create(string name, Action<RwSplitOptions>? configure = null) => RwSplitDataSource.Create(o =>
    {
        o.UseNpgsql();
        o.Primary = OtelCluster.Cluster.PrimaryConnectionString;
        o.Replicas.Add(OtelCluster.Cluster.ReplicaConnectionStrings[0]);
        o.Name = name;
        o.HealthMonitoring = false;
        o.Consistency = ReadConsistency.Eventual;
        configure?.Invoke(o);
    });

    [Test]
    public async Task The_command_span_parents_Npgsql_client_span_and_holds_the_physical_open([Values] bool async)
    {
        const string Literal = "otel-secret-literal-7d3f";
        await using var dataSource = Create("otel-parentage");
        Activity root;
        using (root = TraceCapture.TestSource.StartActivity("test request")!)
        {
            await using var connection = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
            await using var read = connection.CreateCommand();
            read.CommandText = $"SELECT '{Literal}', inet_server_port()";
            if (async)
                await read.ExecuteScalarAsync();
            else
                read.ExecuteScalar();
            await using var write = connection.CreateCommand();
            write.CommandText = $"INSERT INTO otel_rows VALUES ({Interlocked.Increment(ref _nextId)}, '{Literal}')";
            if (async)
                await write.ExecuteNonQueryAsync();
            else
                write.ExecuteNonQuery();
        }

        var spans = _traces.Trace(root);
        var commands = TraceCapture.ChildrenOf(spans, root).Where(s => s.OperationName == "rwsplit.route").ToList();
        Assert.That(commands, Has.Count.EqualTo(2), "one span per command, under the application's span");
        var (onReplica, onPrimary) = (commands[0], commands[1]);
        Assert.That(commands.Select(c => c.Kind), Is.All.EqualTo(ActivityKind.Internal), "the provider's span is the client span, RwSplit's is internal");
        Assert.Multiple(() =>
        {
            Assert.That(onReplica.GetTagItem("rwsplit.route.target"), Is.EqualTo("replica"));
            Assert.That(onReplica.GetTagItem("server.port"), Is.EqualTo(ReplicaPort));
            Assert.That(onPrimary.GetTagItem("rwsplit.route.target"), Is.EqualTo("primary"));
            Assert.That(onPrimary.GetTagItem("rwsplit.route.reason"), Is.EqualTo("write"));
            Assert.That(onPrimary.GetTagItem("server.port"), Is.EqualTo(PrimaryPort));
            foreach (var command in commands)
            {
                Assert.That(command.GetTagItem("db.system.name"), Is.EqualTo("postgresql"));
                Assert.That(command.GetTagItem("server.address"), Is.EqualTo(new NpgsqlConnectionStringBuilder(OtelCluster.Cluster.PrimaryConnectionString).Host));
                Assert.That(command.GetTagItem("db.namespace"), Is.EqualTo(new NpgsqlConnectionStringBuilder(OtelCluster.Cluster.PrimaryConnectionString).Database));
                Assert.That(command.GetTagItem("rwsplit.data_source"), Is.EqualTo("otel-parentage"));
            }
        });

        foreach (var command in commands)
        {
            // The logical connection opened each server's physical connection for the command that first needed it.
            var children = TraceCapture.ChildrenOf(spans, command);
            var open = children.Single(s => s.OperationName == "rwsplit.connection.open");
            Assert.That(open.GetTagItem("server.port"), Is.EqualTo(command.GetTagItem("server.port")));
            Assert.That(open.GetTagItem("rwsplit.endpoint.role"), Is.EqualTo(command.GetTagItem("rwsplit.route.target")));

            // The statement is Npgsql's client span, a child of RwSplit's, sent after the open.
            var statement = children.Where(s => s.Source.Name == "Npgsql" && s.Kind == ActivityKind.Client && s.StartTimeUtc >= open.StartTimeUtc + open.Duration).ToList();
            Assert.That(statement, Has.Count.EqualTo(1), () => $"one client span of Npgsql's under RwSplit's after the open; children: {string.Join(", ", children.Select(c => c.Source.Name + ":" + c.OperationName))}");
            Assert.That(statement[0].GetTagItem("server.port"), Is.EqualTo(command.GetTagItem("server.port")));

            // Npgsql's own span of the new physical connection is inside too (under the open, or under what RwSplit
            // loaded first on that server, such as the replica's function catalog), and its pool names the endpoint.
            var connect = TraceCapture.DescendantsOf(spans, command).Where(s => s.Source.Name == "Npgsql" && s.OperationName.StartsWith("CONNECT", StringComparison.Ordinal)).ToList();
            Assert.That(connect, Has.Count.EqualTo(1), "the new data source's one physical connection was opened inside the command's span");
            Assert.That(connect[0].GetTagItem("server.port"), Is.EqualTo(command.GetTagItem("server.port")));
            var role = command.GetTagItem("rwsplit.route.target");
            Assert.That(connect[0].GetTagItem("db.npgsql.data_source"), Is.EqualTo($"otel-parentage/{role}/{command.GetTagItem("server.address")}:{command.GetTagItem("server.port")}/{command.GetTagItem("db.namespace")}"));
            if (Equals(role, "primary"))
                Assert.That(connect[0].ParentSpanId, Is.EqualTo(open.SpanId), "the primary's physical open is RwSplit's open span's child");
        }

        Assert.That(TraceCapture.RwSplitTagValues(spans), Has.None.Contains(Literal).And.None.Contains(OtelCluster.Password).And.None.Contains("INSERT").And.None.Contains("SELECT"));
    }

    /// <summary>
    /// A read after a write, with the replica replaying one second behind (<c>recovery_min_apply_delay</c>): RwSplit waits
    /// for it to catch up, and that wait is a child span of the read's span, which then runs on the replica.
    /// </summary>
    [Test]
    public async Task The_read_your_writes_wait_is_inside_the_reads_span()
    {
        var replica = OtelCluster.Cluster.Replicas[0];
        await replica.SetConfigAsync("recovery_min_apply_delay", "1s");
        try
        {
            await using var dataSource = Create("otel-ryw", o =>
            {
                o.HealthMonitoring = true;
                o.Consistency = ReadConsistency.ReadYourWrites;
                o.ReadYourWritesTimeout = TimeSpan.FromSeconds(30);
                o.ReadAfterWrite = ReadAfterWrite.WaitForReplica; // the default would read the open primary at once, without a wait
                o.MaxReplicaLag = TimeSpan.FromSeconds(60);
            });
            await dataSource.RefreshTopologyAsync();
            await using var connection = await dataSource.OpenConnectionAsync();
            var id = Interlocked.Increment(ref _nextId);
            await using (var write = connection.CreateCommand())
            {
                write.CommandText = $"INSERT INTO otel_rows VALUES ({id}, 'ryw')";
                await write.ExecuteNonQueryAsync();
            }

            Activity root;
            object? seen;
            using (root = TraceCapture.TestSource.StartActivity("test read")!)
            {
                await using var read = connection.CreateCommand();
                read.CommandText = $"SELECT count(*) FROM otel_rows WHERE id = {id}";
                seen = await read.ExecuteScalarAsync();
                Assert.That(read.LastDecision?.Target, Is.EqualTo(Routing.RouteTarget.Replica), "the replica caught up within the wait");
            }

            Assert.That(seen, Is.EqualTo(1L), "the read saw the session's write");
            var spans = _traces.Trace(root);
            var command = TraceCapture.Named(TraceCapture.ChildrenOf(spans, root), "rwsplit.route").Single();
            Assert.That(command.GetTagItem("server.port"), Is.EqualTo(ReplicaPort));
            var wait = TraceCapture.ChildrenOf(spans, command).Single(s => s.OperationName == "rwsplit.wait.read_your_writes");
            Assert.That(wait.GetTagItem("rwsplit.wait.outcome"), Is.EqualTo("ready"));
            Assert.That(wait.Duration, Is.GreaterThan(TimeSpan.FromMilliseconds(300)), "it waited for the delayed replay");
            Assert.That(wait.StartTimeUtc + wait.Duration, Is.LessThanOrEqualTo(command.StartTimeUtc + command.Duration));
            var client = TraceCapture.ChildrenOf(spans, command).Where(s => s.Source.Name == "Npgsql" && s.Kind == ActivityKind.Client).ToList();
            Assert.That(client, Is.Not.Empty, "the read itself is Npgsql's span under RwSplit's");
            Assert.That(client.Max(c => c.StartTimeUtc), Is.GreaterThanOrEqualTo(wait.StartTimeUtc + wait.Duration), "the read was sent after the wait");
        }
        finally
        {
            await replica.ResetConfigAsync("recovery_min_apply_delay");
        }
    }
    /// <summary>
    /// The only replica is unreachable (a port no server listens on): the first read's failed open of it is inside its
    /// span, marked failed, and the read falls back to the primary. With <c>FallbackReadLimit</c> 1 held by that slow
    /// read, a second read waits for the slot, and that wait is a child span of the second read's.
    /// </summary>
    [Test]
    public async Task A_failed_open_and_the_fallback_wait_are_inside_the_reads_spans()
    {
        const int NoServerPort = 25486;
        await using var dataSource = Create("otel-fallback", o =>
        {
            o.Replicas.Clear();
            o.Replicas.Add(new NpgsqlConnectionStringBuilder(OtelCluster.Cluster.ReplicaConnectionStrings[0]) { Port = NoServerPort }.ConnectionString);
            o.FallbackReadLimit = 1;
            o.FallbackOverflow = FallbackOverflow.Wait;
            o.FallbackWaitTimeout = TimeSpan.FromSeconds(30);
            o.ReplicaRetryDelay = TimeSpan.FromMinutes(5);
        });
        const string Sleep = "SELECT pg_sleep(2) /* otel-fallback */";
        Activity first, second;
        await using (var slow = await dataSource.OpenConnectionAsync())
        await using (var quick = await dataSource.OpenConnectionAsync())
        {
            await using var sleep = slow.CreateCommand();
            sleep.CommandText = Sleep;
            Task<object?> running;
            using (first = TraceCapture.TestSource.StartActivity("slow read")!)
                running = sleep.ExecuteScalarAsync();

            // The slow read holds the one fallback slot once its statement runs on the primary.
            await using (var observer = new NpgsqlConnection(OtelCluster.Cluster.PrimaryConnectionString))
            {
                await observer.OpenAsync();
                await using var active = new NpgsqlCommand($"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '{Sleep}'", observer);
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
                while ((long)(await active.ExecuteScalarAsync())! == 0)
                {
                    Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the slow read never reached the primary");
                    await Task.Delay(20);
                }
            }

            using (second = TraceCapture.TestSource.StartActivity("read behind it")!)
            {
                await using var read = quick.CreateCommand();
                read.CommandText = "SELECT 1";
                Assert.That(await read.ExecuteScalarAsync(), Is.EqualTo(1));
                Assert.That(running.IsCompleted, Is.True, "the second read ran once the slow one gave its slot back");
            }

            await running;
        }

        var slowSpan = TraceCapture.Named(TraceCapture.ChildrenOf(_traces.Trace(first), first), "rwsplit.route").Single();
        Assert.That(slowSpan.GetTagItem("rwsplit.route.reason"), Is.EqualTo("no_replica_available"));
        var failedOpen = TraceCapture.ChildrenOf(_traces.Trace(first), slowSpan).Single(s => s.OperationName == "rwsplit.connection.open" && Equals(s.GetTagItem("server.port"), NoServerPort));
        Assert.That(failedOpen.Status, Is.EqualTo(ActivityStatusCode.Error));
        Assert.That(failedOpen.GetTagItem("error.type"), Is.Not.Null.And.Not.Empty);
        Assert.That(failedOpen.GetTagItem("rwsplit.endpoint.role"), Is.EqualTo("replica"));

        var quickSpan = TraceCapture.Named(TraceCapture.ChildrenOf(_traces.Trace(second), second), "rwsplit.route").Single();
        Assert.That(quickSpan.GetTagItem("rwsplit.route.target"), Is.EqualTo("primary"));
        var wait = TraceCapture.ChildrenOf(_traces.Trace(second), quickSpan).Single(s => s.OperationName == "rwsplit.wait.fallback_slot");
        Assert.That(wait.GetTagItem("rwsplit.wait.outcome"), Is.EqualTo("ready"));
        var statement = TraceCapture.ChildrenOf(_traces.Trace(second), quickSpan).Where(s => s.Source.Name == "Npgsql" && s.Kind == ActivityKind.Client).ToList();
        Assert.That(statement.Max(s => s.StartTimeUtc), Is.GreaterThanOrEqualTo(wait.StartTimeUtc + wait.Duration), "the read was sent after the wait");
        Assert.That(TraceCapture.RwSplitTagValues(_traces.Spans), Has.None.Contains("pg_sleep"));
    }
}
