using System;
using System.Net;
using System.Net.Sockets;
using System.Threading.Tasks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using NUnit.Framework;
using RwSplit.HealthChecks;
using RwSplit.PostgreSql;

namespace RwSplit.OperationsTests.HealthChecks;

/// <summary>
/// The check over data sources whose servers do not exist (port 25483: nothing listens there): registration, derived
/// thresholds, monitoring off, an unreachable primary, and what the data never contains.
/// </summary>
public sealed class HealthCheckWithoutServersTests
{
    private const string Password = "hc-secret-Pa55word";
    private const string Nowhere = "Host=127.0.0.1;Port=25483;Database=app;Username=hc_user;Password=" + Password + ";Timeout=2";

    private static void Configure(RwSplitOptions o, bool monitoring, TimeSpan interval)
    {
        o.UseNpgsql();
        o.Primary = Nowhere;
        o.Replicas.Add(Nowhere.Replace("Database=app", "Database=app_replica", StringComparison.Ordinal));
        o.HealthMonitoring = monitoring;
        o.HealthCheckInterval = interval;
        o.MaxReplicaLag = TimeSpan.FromSeconds(7);
        o.DistributedTransactions = false;
    }

    [Test]
    public async Task Thresholds_left_unset_derive_from_the_data_source_options()
    {
        await using var slow = RwSplitDataSource.Create(o => Configure(o, monitoring: false, TimeSpan.FromSeconds(1)));
        await using var fast = RwSplitDataSource.Create(o => Configure(o, monitoring: false, TimeSpan.FromMilliseconds(250)));
        await using var monitored = RwSplitDataSource.Create(o => Configure(o, monitoring: true, TimeSpan.FromSeconds(3)));

        var atOneSecond = HealthThresholds.Resolve(new RwSplitHealthCheckOptions(), slow.GetHealth());
        var atQuarter = HealthThresholds.Resolve(new RwSplitHealthCheckOptions(), fast.GetHealth());
        var atThree = HealthThresholds.Resolve(new RwSplitHealthCheckOptions(), monitored.GetHealth());
        var set = HealthThresholds.Resolve(
            new RwSplitHealthCheckOptions { StaleAfter = TimeSpan.FromSeconds(4), MaxReplicaLag = TimeSpan.FromSeconds(2), RecentFailover = TimeSpan.FromSeconds(5), RecentFallbackRead = TimeSpan.FromSeconds(6), MonitoringDisabledStatus = HealthStatus.Healthy },
            slow.GetHealth());

        Assert.Multiple(() =>
        {
            Assert.That(atOneSecond, Is.EqualTo(new HealthThresholds(TimeSpan.FromSeconds(9), TimeSpan.FromSeconds(7), TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(10), HealthStatus.Degraded)));
            Assert.That(atQuarter.StaleAfter, Is.EqualTo(TimeSpan.FromSeconds(6.75)), "3 × (0.25 s + the 2 s minimum probe timeout)");
            Assert.That(monitored.GetHealth().ProbeTimeout, Is.EqualTo(TimeSpan.FromSeconds(6)), "the monitor's own probe timeout: twice the interval");
            Assert.That(atThree, Is.EqualTo(new HealthThresholds(TimeSpan.FromSeconds(27), TimeSpan.FromSeconds(7), TimeSpan.FromMinutes(3), TimeSpan.FromSeconds(30), HealthStatus.Degraded)));
            Assert.That(set, Is.EqualTo(new HealthThresholds(TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(6), HealthStatus.Healthy)));
        });
    }

    [Test]
    public async Task Monitoring_off_is_Degraded_by_default_or_what_the_options_say()
    {
        await using var harness = new HealthHarness(s =>
        {
            s.AddReadWriteSplit(o => Configure(o, monitoring: false, TimeSpan.FromSeconds(1)));
            s.AddHealthChecks()
                .AddRwSplit()
                .AddRwSplit("rwsplit-tolerant", configure: o => o.MonitoringDisabledStatus = HealthStatus.Healthy);
        });

        var report = await harness.CheckAsync();

        Assert.Multiple(() =>
        {
            Assert.That(report.Entries["rwsplit"].Status, Is.EqualTo(HealthStatus.Degraded));
            Assert.That(report.Entries["rwsplit"].Description, Does.Contain("health monitoring is off"));
            Assert.That(report.Entries["rwsplit"].Data["monitoring"], Is.False);
            Assert.That(report.Entries["rwsplit-tolerant"].Status, Is.EqualTo(HealthStatus.Healthy));
            Assert.That(report.Entries["rwsplit-tolerant"].Description, Does.Contain("health monitoring is off"));
        });
    }

    [Test]
    public async Task An_unreachable_primary_is_the_failure_status_with_its_error_kind_and_no_secret()
    {
        await using var harness = new HealthHarness(s =>
        {
            s.AddReadWriteSplit(o => Configure(o, monitoring: true, TimeSpan.FromMilliseconds(200)));
            s.AddHealthChecks()
                .AddRwSplit(tags: ["ready"])
                .AddRwSplit(sp => sp.GetRequiredService<RwSplitDataSource>(), "rwsplit-soft", failureStatus: HealthStatus.Degraded);
        });
        var dataSource = harness.Services.GetRequiredService<RwSplitDataSource>();
        await dataSource.RefreshTopologyAsync();

        var report = await harness.CheckAsync();
        var entry = report.Entries["rwsplit"];
        var primary = HealthHarness.Endpoint(entry, "primary");
        var rawError = dataSource.GetHealth().Endpoints[0].LastError;
        var json = HealthHarness.Json(entry);

        Assert.Multiple(() =>
        {
            Assert.That(entry.Status, Is.EqualTo(HealthStatus.Unhealthy));
            Assert.That(entry.Tags, Is.EquivalentTo(new[] { "ready" }));
            Assert.That(entry.Description, Does.Contain("no writable primary: 127.0.0.1:25483/app is unreachable (socket:ConnectionRefused)"));
            Assert.That(entry.Description, Does.Contain("replica 127.0.0.1:25483/app_replica is ejected: unreachable (socket:ConnectionRefused)"));
            Assert.That(report.Entries["rwsplit-soft"].Status, Is.EqualTo(HealthStatus.Degraded), "the registration's failure status replaces Unhealthy");
            Assert.That(primary["lastErrorKind"], Is.EqualTo("socket:ConnectionRefused"));
            Assert.That(primary["reachable"], Is.False);
            Assert.That(primary["configuredRole"], Is.EqualTo("Primary"));
            Assert.That(HealthHarness.Endpoint(entry, "replica0")["available"], Is.False);
            Assert.That(rawError, Is.Not.Null.And.Not.Empty, "the core keeps the message; the check must not publish it");
            Assert.That(json, Does.Not.Contain(rawError!));
            Assert.That(json, Does.Not.Contain(Password));
            Assert.That(json, Does.Not.Contain("hc_user"));
            Assert.That(json, Does.Not.Contain("Password").IgnoreCase);
            Assert.That(json, Does.Not.Contain("Host="));
        });
    }

    [Test]
    public async Task A_server_that_never_answers_is_reported_as_a_timeout()
    {
        // Accepts the TCP connection (the kernel's backlog) and never answers the startup packet.
        var listener = new TcpListener(IPAddress.Loopback, 25483);
        listener.Start();
        try
        {
            await using var harness = new HealthHarness(s =>
            {
                s.AddReadWriteSplit(o =>
                {
                    Configure(o, monitoring: true, TimeSpan.FromMilliseconds(200));
                    o.Primary = Nowhere.Replace("Timeout=2", "Timeout=1", StringComparison.Ordinal);
                });
                s.AddHealthChecks().AddRwSplit();
            });
            await harness.Services.GetRequiredService<RwSplitDataSource>().RefreshTopologyAsync();

            var entry = (await harness.CheckAsync()).Entries["rwsplit"];

            Assert.Multiple(() =>
            {
                Assert.That(entry.Status, Is.EqualTo(HealthStatus.Unhealthy));
                Assert.That(entry.Description, Does.Contain("no writable primary: 127.0.0.1:25483/app is unreachable (timeout)"));
                Assert.That(HealthHarness.Endpoint(entry, "primary")["lastErrorKind"], Is.EqualTo("timeout"));
            });
        }
        finally
        {
            listener.Stop();
        }
    }
}
