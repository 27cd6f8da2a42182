using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.SqlClient;
using NUnit.Framework;
using RwSplit.SqlServer;
using RwSplit.Tds;

namespace RwSplit.OperationsTests.OpenTelemetry;

/// <summary>
/// The command span (<c>rwsplit.route</c>) over the real Microsoft.Data.SqlClient against scripted TDS servers (a
/// primary and a readable secondary): with the OpenTelemetry SqlClient instrumentation (<c>AddSqlClientInstrumentation()</c>,
/// which turns SqlClient's DiagnosticListener events into client spans), SqlClient's span of each statement is a child
/// of RwSplit's, and RwSplit's span names the server that ran it and carries no SQL literal and no password.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class SqlClientTracingTests
{
    private const string SqlClientSource = "OpenTelemetry.Instrumentation.SqlClient";
    private static int s_tests;
    private TraceCapture _traces = null!;
    private TdsServer _primary = null!;
    private TdsServer _replica = null!;

    [SetUp]
    public void Start()
    {
        _traces = new TraceCapture(sqlClient: true);
        _primary = TdsServer.Start("sql-primary");
        _replica = TdsServer.Start("sql-replica-1", TdsServerRole.Secondary);
    }

    [TearDown]
    public async Task StopAsync()
    {
        _traces.Dispose();
        SqlConnection.ClearAllPools();
        var errors = _primary.ProtocolErrors.Concat(_replica.ProtocolErrors).ToArray();
        await _primary.DisposeAsync();
        await _replica.DisposeAsync();
        Assert.That(errors, Is.Empty, "the TDS servers reported protocol errors");
    }

    [Test]
    public async Task The_command_span_parents_SqlClient_client_span([Values] bool async)
    {
        var literal = $"otel-sql-literal-{Interlocked.Increment(ref s_tests)}-9c41";
        var read = $"SELECT N'{literal}' AS note";
        var write = $"UPDATE dbo.customers SET name = N'{literal}' WHERE id = 1";
        _replica.OnText(read, TdsReply.Scalar(TdsType.NVarChar(128), _replica.Name));
        _primary.OnText(write, TdsReply.Affected(1));
        var application = $";Application Name=rwsplit-otel-sql-{s_tests}";
        var password = new SqlConnectionStringBuilder(_primary.ConnectionString()).Password;
        Assert.That(password, Is.Not.Empty, "the check that no password leaks needs one");

        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseSqlServer();
            o.Primary = _primary.ConnectionString() + application;
            o.Replicas.Add(_replica.ConnectionString() + application);
            o.Name = "otel-sqlclient";
            o.HealthMonitoring = false;
            o.Consistency = ReadConsistency.Eventual;
        });

        Activity root;
        using (root = TraceCapture.TestSource.StartActivity("test request")!)
        {
            await using var connection = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
            await using var select = connection.CreateCommand();
            select.CommandText = read;
            Assert.That(async ? await select.ExecuteScalarAsync() : select.ExecuteScalar(), Is.EqualTo(_replica.Name));
            await using var update = connection.CreateCommand();
            update.CommandText = write;
            Assert.That(async ? await update.ExecuteNonQueryAsync() : update.ExecuteNonQuery(), Is.EqualTo(1));
        }

        Assert.That(_replica.Statements, Is.EqualTo(new[] { read }), "the read ran on the secondary");
        Assert.That(_primary.Statements, Is.EqualTo(new[] { write }), "the write ran on the primary");

        var spans = _traces.Trace(root);
        var commands = TraceCapture.Named(TraceCapture.ChildrenOf(spans, root), "rwsplit.route");
        Assert.That(commands, Has.Count.EqualTo(2), "one span per command, under the application's span");
        var (onReplica, onPrimary) = (commands[0], commands[1]);
        Assert.Multiple(() =>
        {
            Assert.That(onReplica.GetTagItem("rwsplit.route.target"), Is.EqualTo("replica"));
            Assert.That(onReplica.GetTagItem("server.port"), Is.EqualTo(_replica.Port));
            Assert.That(onPrimary.GetTagItem("rwsplit.route.target"), Is.EqualTo("primary"));
            Assert.That(onPrimary.GetTagItem("rwsplit.route.reason"), Is.EqualTo("write"));
            Assert.That(onPrimary.GetTagItem("server.port"), Is.EqualTo(_primary.Port));
            foreach (var command in commands)
            {
                Assert.That(command.Kind, Is.EqualTo(ActivityKind.Internal));
                Assert.That(command.GetTagItem("db.system.name"), Is.EqualTo("microsoft.sql_server"));
                Assert.That(command.GetTagItem("server.address"), Is.EqualTo("127.0.0.1"));
                Assert.That(command.GetTagItem("rwsplit.data_source"), Is.EqualTo("otel-sqlclient"));
            }
        });

        var clients = spans.Where(s => s.Source.Name == SqlClientSource && s.Kind == ActivityKind.Client).ToList();
        Assert.That(clients, Has.Count.EqualTo(2), () => $"one SqlClient span per statement; spans: {string.Join(", ", spans.Select(s => s.Source.Name + ":" + s.OperationName))}");
        foreach (var command in commands)
        {
            var client = TraceCapture.ChildrenOf(spans, command).Where(s => s.Source.Name == SqlClientSource && s.Kind == ActivityKind.Client).ToList();
            Assert.That(client, Has.Count.EqualTo(1), () => $"SqlClient's span is a child of RwSplit's; children: {string.Join(", ", TraceCapture.ChildrenOf(spans, command).Select(c => c.Source.Name + ":" + c.OperationName))}");
            Assert.That(client[0].StartTimeUtc, Is.GreaterThanOrEqualTo(command.StartTimeUtc));
            Assert.That(client[0].StartTimeUtc + client[0].Duration, Is.LessThanOrEqualTo(command.StartTimeUtc + command.Duration));
        }

        Assert.That(TraceCapture.TagValues(spans), Has.None.Contains(literal).And.None.Contains(password));
        Assert.That(TraceCapture.RwSplitTagValues(spans), Has.None.Contains("UPDATE").And.None.Contains("SELECT"));
    }
}
