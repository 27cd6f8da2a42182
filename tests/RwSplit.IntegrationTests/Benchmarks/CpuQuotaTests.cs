using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using Npgsql;
using NUnit.Framework;
using RwSplit.PgCluster;
using RwSplit.TestSupport;

namespace RwSplit.IntegrationTests.Benchmarks;

/// <summary>
/// Servers with their own capacity (the load runner's <c>--cpu-quota</c>): a server started with a CPU quota runs, with
/// every backend it forks, in a cgroup of its own, and the kernel throttles it there. The kernel is the oracle
/// (<c>cgroup.procs</c>, <c>cpu.stat</c>), not a timing. Its own server on port 25545.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class CpuQuotaTests
{
    [Test]
    public async Task A_server_with_a_quota_runs_its_backends_in_its_cgroup_and_is_throttled_there_across_restarts()
    {
        if (!CpuQuota.IsAvailable)
        {
            Assert.That(TestClusters.IsCI, Is.False, "CI runs as root on a cgroup v1 host: quotas must be available there");
            Assert.Ignore("CPU quotas need root and the cgroup v1 cpu controller.");
        }

        await using var cluster = await TestClusters.StartOrIgnoreAsync(new LocalPgClusterOptions { BasePort = 25545, ReplicaCount = 0, StartSecondPrimary = false, CpuQuota = 0.2 });
        var server = cluster.Primary;
        Assert.That(server.CpuQuota, Is.EqualTo(0.2));
        Assert.That(CpuQuota.CoresOf(server.CpuGroup), Is.EqualTo(0.2).Within(1e-9), "cpu.cfs_quota_us = 0.2 × the period");

        async Task<int> BackendAsync(string sql)
        {
            await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.ConnectionString) { Pooling = false }.ConnectionString);
            await connection.OpenAsync();
            await using (var burn = new NpgsqlCommand(sql, connection) { CommandTimeout = 120 })
                await burn.ExecuteScalarAsync();
            await using var pid = new NpgsqlCommand("SELECT pg_backend_pid()", connection);
            var backend = (int)(await pid.ExecuteScalarAsync())!;
            Assert.That(CpuQuota.Members(server.CpuGroup), Does.Contain(backend), "a backend forked after the quota was set is in the group");
            return backend;
        }

        long Throttled() => long.Parse(File.ReadLines(Path.Combine(CpuQuota.GroupOf(server.CpuGroup), "cpu.stat")).Single(l => l.StartsWith("nr_throttled ", StringComparison.Ordinal))["nr_throttled ".Length..], CultureInfo.InvariantCulture);

        var before = Throttled();
        await BackendAsync("SELECT count(*) FROM generate_series(1, 3000000)"); // about 0.3 s of CPU: longer than a 20 ms per 100 ms quota
        Assert.That(Throttled(), Is.GreaterThan(before), "the kernel throttled the group");

        await server.StopAsync();
        await server.StartAsync();
        var postmaster = int.Parse(File.ReadLines(Path.Combine(server.DataDirectory, "postmaster.pid")).First(), CultureInfo.InvariantCulture);
        Assert.That(CpuQuota.Members(server.CpuGroup), Does.Contain(postmaster), "a restarted server is put back under its quota");
        await BackendAsync("SELECT 1");

        cluster.LimitCpu(null);
        Assert.That(CpuQuota.CoresOf(server.CpuGroup), Is.Null, "the quota lifted");
    }
}
