using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Linq;
using NUnit.Framework;
using RwSplit.Diagnostics;
using RwSplit.TestSupport;
using RwSplit.Tests.Fakes;

namespace RwSplit.Tests.Diagnostics;

[NonParallelizable]
public sealed class TelemetryTests
{
    [Test]
    public void Routing_decisions_are_counted_traced_and_logged_with_target_and_reason_and_no_secrets()
    {
        var primary = FakeServer.Create("tel-primary");
        var replica = FakeServer.Create("tel-replica");
        using var capture = new TelemetryCapture("telemetry-test");
        using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(FakeDialect.Instance);
            o.Primary = $"Server={primary.Name};Password=hunter2";
            o.Replicas.Add($"Server={replica.Name};Password=hunter2");
            o.Name = "telemetry-test";
            o.HealthMonitoring = false;
            o.LoggerFactory = capture.LoggerFactory;
        });
        using var connection = dataSource.OpenConnection();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT 'secret-literal'";
        command.ExecuteScalar();
        command.CommandText = "DELETE FROM t WHERE name = 'secret-literal'";
        command.ExecuteScalar();

        var decisions = capture.Measured("rwsplit.routing.decisions");
        Assert.That(decisions.Select(d => (d.Tags[TagNames.RouteTarget], d.Tags[TagNames.RouteReason])),
            Is.EqualTo(new[] { ((object?)"replica", (object?)"read"), ("primary", "write") }));

        var all = capture.Activities.ToList();
        var traced = all.Where(a => a.OperationName == "rwsplit.route").ToList();
        Assert.That(traced, Has.Count.EqualTo(2));
        Assert.That(traced.Select(a => a.Kind), Is.All.EqualTo(ActivityKind.Internal), "the provider's span is the client span");
        Assert.That(traced[0].GetTagItem(TagNames.ServerAddress), Is.EqualTo(replica.Name));
        Assert.That(traced[0].GetTagItem(TagNames.DbSystem), Is.EqualTo(FakeDialect.Instance.SystemName));
        Assert.That(traced[1].GetTagItem(TagNames.RouteTarget), Is.EqualTo("primary"));
        var opens = all.Where(a => a.OperationName == "rwsplit.connection.open").ToList();
        Assert.That(opens.Select(a => a.GetTagItem(TagNames.Role)), Is.EqualTo(new[] { "replica", "primary" }));
        Assert.That(opens.Select(a => a.ParentSpanId), Is.EqualTo(traced.Select(a => a.SpanId)), "each physical open is inside the span of the command that needed it");
        Assert.That(all.SelectMany(a => a.TagObjects).Select(t => t.Value?.ToString()), Has.None.Contains("hunter2").And.None.Contains("secret-literal"));
        Assert.That(capture.Measured("rwsplit.connection.physical_opens").Sum(m => m.Value), Is.GreaterThanOrEqualTo(2));
        Assert.That(capture.Logged(1000).Select(e => (e.Level, e.Message)), Is.EqualTo(new[]
        {
            (Microsoft.Extensions.Logging.LogLevel.Debug, $"Routed command to Replica {replica.Name}/db (Read) in data source telemetry-test"),
            (Microsoft.Extensions.Logging.LogLevel.Debug, $"Routed command to Primary {primary.Name}/db (Write) in data source telemetry-test"),
        }));
        Assert.That(capture.Logged(2001).Select(e => e.Message), Is.EqualTo(new[] { $"Opened a physical connection to Replica {replica.Name}/db", $"Opened a physical connection to Primary {primary.Name}/db" }));
        Assert.That(decisions, Has.Count.EqualTo(2));
        Assert.That(capture.Measured("rwsplit.connection.physical_opens").Select(m => m.Tags[TagNames.Role]), Is.EqualTo(new object?[] { "replica", "primary" }));
        capture.AssertNothingContains("hunter2", "secret-literal");
    }
}
