using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Linq;
using NUnit.Framework;
using RwSplit.Diagnostics;
using RwSplit.Tests.Fakes;

namespace RwSplit.Tests.Core;

[NonParallelizable]
public sealed class TelemetryTests
{
    [Test]
    public void Routing_decisions_are_counted_and_traced_with_target_and_reason_and_no_secrets()
    {
        var primary = FakeServer.Create("tel-primary");
        var replica = FakeServer.Create("tel-replica");
        var measurements = new List<(string Instrument, long Value, Dictionary<string, object?> Tags)>();
        using var meterListener = new MeterListener();
        meterListener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == RwSplitTelemetry.Name)
                l.EnableMeasurementEvents(instrument);
        };
        meterListener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var dict = new Dictionary<string, object?>();
            foreach (var tag in tags)
                dict[tag.Key] = tag.Value;
            lock (measurements)
                measurements.Add((instrument.Name, value, dict));
        });
        meterListener.Start();

        var activities = new List<Activity>();
        using var activityListener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == RwSplitTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (activities) activities.Add(a); },
        };
        ActivitySource.AddActivityListener(activityListener);

        using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(FakeDialect.Instance);
            o.Primary = $"Server={primary.Name};Password=hunter2";
            o.Replicas.Add($"Server={replica.Name};Password=hunter2");
            o.Name = "telemetry-test";
            o.HealthMonitoring = false;
        });
        using var connection = dataSource.OpenConnection();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        command.ExecuteScalar();
        command.CommandText = "DELETE FROM t";
        command.ExecuteScalar();

        var decisions = measurements.Where(m => m.Instrument == "rwsplit.routing.decisions" && Equals(m.Tags[TagNames.DataSource], "telemetry-test")).ToList();
        Assert.That(decisions.Select(d => (d.Tags[TagNames.RouteTarget], d.Tags[TagNames.RouteReason])),
            Is.EqualTo(new[] { ((object?)"replica", (object?)"read"), ("primary", "write") }));

        var traced = activities.Where(a => Equals(a.GetTagItem(TagNames.DataSource), "telemetry-test")).ToList();
        Assert.That(traced, Has.Count.EqualTo(2));
        Assert.That(traced[0].OperationName, Is.EqualTo("rwsplit.route"));
        Assert.That(traced[0].GetTagItem(TagNames.ServerAddress), Is.EqualTo(replica.Name));
        Assert.That(traced[1].GetTagItem(TagNames.RouteTarget), Is.EqualTo("primary"));
        Assert.That(traced.SelectMany(a => a.TagObjects).Select(t => t.Value?.ToString()), Has.None.Contains("hunter2"));
        Assert.That(measurements.Where(m => m.Instrument == "rwsplit.connection.physical_opens").Sum(m => m.Value), Is.GreaterThanOrEqualTo(2));
    }
}
