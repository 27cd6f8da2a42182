using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using RwSplit.PostgreSql;
using RwSplit.TransferWorkload;

namespace RwSplit.OperationsTests.OpenTelemetry;

/// <summary>
/// RwSplit's instruments through an OpenTelemetry meter provider (<c>AddRwSplitInstrumentation()</c>, in-memory
/// exporter) on real PostgreSQL: names, units (durations in seconds), kinds, semantic-convention tags (host and port
/// apart), no duplicate of the provider's operation duration, and Npgsql's own metrics naming the endpoint's pool.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class MetricsTests
{
    private readonly List<MetricSnapshot> _exported = [];

    private static string Host => new NpgsqlConnectionStringBuilder(OtelCluster.Cluster.PrimaryConnectionString).Host!;

    [Test]
    public async Task Instruments_have_their_names_units_and_tags()
    {
        var bank = new Bank(OtelCluster.Bank1, OtelCluster.Bank2);
        await bank.ResetAsync();
        using var provider = Sdk.CreateMeterProviderBuilder()
            .AddRwSplitInstrumentation()
            .AddMeter("Npgsql")
            .AddInMemoryExporter(_exported)
            .Build();

        await using (var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = OtelCluster.Cluster.PrimaryConnectionString;
            o.Replicas.Add(OtelCluster.Cluster.ReplicaConnectionStrings[0]);
            o.Name = "otel-metrics";
            o.Consistency = ReadConsistency.Eventual;
        }))
        {
            await dataSource.RefreshTopologyAsync();
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var read = connection.CreateCommand();
            read.CommandText = "SELECT 1";
            await read.ExecuteScalarAsync();
            await using var write = connection.CreateCommand();
            write.CommandText = "UPDATE otel_rows SET note = note WHERE id = -1";
            await write.ExecuteNonQueryAsync();

            var (first, second) = bank.CreateDataSources("otel-metrics-2pc");
            await using (first)
            await using (second)
                await Bank.TransferAsync(first, second, 1, 2, 10);

            provider.ForceFlush();
        }

        var rwsplit = _exported.Where(m => m.MeterName == "RwSplit").GroupBy(m => m.Name).ToDictionary(g => g.Key, g => g.Last());
        Assert.That(rwsplit.Keys, Is.All.StartsWith("rwsplit."), "RwSplit adds no db.client.operation.duration of its own: the provider's is the operation duration");

        var duration = rwsplit["rwsplit.transaction.commit.duration"];
        Assert.That((duration.Unit, duration.MetricType), Is.EqualTo(("s", MetricType.Histogram)), "durations in seconds, as the semantic conventions measure them");
        var twoPhase = Points(duration).Single(p => Tag(p, "rwsplit.transaction.kind") as string == "two_phase");
        Assert.That(twoPhase.GetHistogramCount(), Is.EqualTo(1));
        Assert.That(twoPhase.GetHistogramSum(), Is.GreaterThan(0).And.LessThan(30), "seconds: the transfer's scope times out at 30");
        var bounds = new List<double>();
        foreach (var bucket in twoPhase.GetHistogramBuckets())
            bounds.Add(bucket.ExplicitBound);
        Assert.That(bounds, Does.Contain(0.005).And.Contain(10.0), "bucket boundaries made for seconds, not the SDK's millisecond defaults");

        var decisions = rwsplit["rwsplit.routing.decisions"];
        Assert.That((decisions.Unit, decisions.MetricType), Is.EqualTo(("{decision}", MetricType.LongSum)));
        var ours = Points(decisions).Where(p => Tag(p, "rwsplit.data_source") as string == "otel-metrics").ToList();
        Assert.That(ours.Select(p => (Tag(p, "rwsplit.route.target"), Tag(p, "rwsplit.route.reason"))), Is.EquivalentTo(new[] { ((object?)"replica", (object?)"read"), ("primary", "write") }));

        var transactions = rwsplit["rwsplit.transactions"];
        Assert.That((transactions.Unit, transactions.MetricType), Is.EqualTo(("{transaction}", MetricType.LongSum)));

        foreach (var (name, unit, type) in new[] { ("rwsplit.replica.lag", "s", MetricType.DoubleGauge), ("rwsplit.replica.available", "{replica}", MetricType.LongGauge) })
        {
            var gauge = rwsplit[name];
            Assert.That((gauge.Unit, gauge.MetricType), Is.EqualTo((unit, type)), name);
            var replica = Points(gauge).Single(p => Tag(p, "rwsplit.data_source") as string == "otel-metrics");
            Assert.That(Tag(replica, "server.address"), Is.EqualTo(Host), $"{name}: the host alone");
            Assert.That(Tag(replica, "server.port"), Is.EqualTo(OtelCluster.Cluster.Replicas[0].Port), $"{name}: the port apart");
            Assert.That(Tag(replica, "db.namespace"), Is.EqualTo(new NpgsqlConnectionStringBuilder(OtelCluster.Cluster.PrimaryConnectionString).Database));
        }

        Assert.That(Points(rwsplit["rwsplit.replica.available"]).Single(p => Tag(p, "rwsplit.data_source") as string == "otel-metrics").GetGaugeLastValueLong(), Is.EqualTo(1));

        // Npgsql's own metrics: each of RwSplit's per-endpoint pools is named after the data source, role and endpoint.
        var poolNames = _exported.Where(m => m.MeterName == "Npgsql").SelectMany(Points).SelectMany(p => Tags(p)).Where(t => t.Key == "db.client.connection.pool.name").Select(t => t.Value as string).Distinct().ToList();
        var database = new NpgsqlConnectionStringBuilder(OtelCluster.Cluster.PrimaryConnectionString).Database;
        Assert.That(poolNames, Does.Contain($"otel-metrics/primary/{Host}:{OtelCluster.Cluster.Primary.Port}/{database}")
            .And.Contain($"otel-metrics/replica/{Host}:{OtelCluster.Cluster.Replicas[0].Port}/{database}")
            .And.Contain($"otel-metrics/replica/{Host}:{OtelCluster.Cluster.Replicas[0].Port}/{database}/monitor"), string.Join(", ", poolNames));

        var everyTag = _exported.SelectMany(Points).SelectMany(p => Tags(p)).Select(t => t.Value?.ToString() ?? "").ToList();
        Assert.That(everyTag, Has.None.Contains(OtelCluster.Password).And.None.Contains("Password"));
    }

    private static List<MetricPoint> Points(MetricSnapshot metric) => metric.MetricPoints.ToList();

    private static List<KeyValuePair<string, object?>> Tags(MetricPoint point)
    {
        var tags = new List<KeyValuePair<string, object?>>();
        foreach (var tag in point.Tags)
            tags.Add(tag);
        return tags;
    }

    private static object? Tag(MetricPoint point, string key) => Tags(point).Where(t => t.Key == key).Select(t => t.Value).FirstOrDefault();
}
