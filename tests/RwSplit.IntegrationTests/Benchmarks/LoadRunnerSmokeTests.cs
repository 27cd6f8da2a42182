using System;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.PgCluster;
using RwSplit.TestSupport;
using RwSplit.Benchmarks;

namespace RwSplit.IntegrationTests.Benchmarks;

/// <summary>
/// The load runner of docs/benchmarks.md in its smoke mode (a second per run), against the suite's own servers, so that
/// it never rots: every scenario must run operations through raw Npgsql, through RwSplit and through each peer it runs (Npgsql's multi-host data source for read-heavy) without a single error
/// (a read-your-writes read that misses its own write counts as one). No performance threshold is asserted.
/// </summary>
[TestFixture]
public sealed class LoadRunnerSmokeTests
{
    [Test]
    public async Task Every_scenario_runs_operations_without_errors_through_raw_Npgsql_RwSplit_and_the_peers()
    {
        var log = new StringWriter();
        var options = LoadRunnerOptions.Smoke(ClusterSetup.Cluster.PrimaryConnectionString, ClusterSetup.Cluster.ReplicaConnectionStrings, log);

        var report = await new LoadRunner(options).RunAsync();

        TestContext.Out.WriteLine(report.FormatTable());
        foreach (var scenario in Enum.GetValues<LoadScenario>())
        {
            foreach (var variant in LoadRunner.Runs(scenario))
            {
                var run = report.Runs.SingleOrDefault(r => r.Scenario == scenario && r.Variant == variant);
                Assert.That(run, Is.Not.Null, $"{scenario}/{variant} did not run.{Environment.NewLine}{log}");
                Assert.Multiple(() =>
                {
                    Assert.That(run!.Operations, Is.GreaterThan(0), $"{scenario}/{variant} completed no operation.");
                    Assert.That(run.Errors, Is.Zero, $"{scenario}/{variant}: {run.FirstError}");
                });
            }
        }
    }

    /// <summary>
    /// The pgpool-II peer (Debian package <c>pgpool2</c>, which <c>.ci/run</c> installs) in front of the suite's servers:
    /// the read-heavy smoke runs through it without an error. Without pgpool-II the test is ignored, except under CI.
    /// </summary>
    [Test]
    public async Task The_read_heavy_scenario_runs_through_pgpool_without_errors()
    {
        if (PgPool.Binary is null)
        {
            Assert.That(TestClusters.IsCI, Is.False, ".ci/run installs pgpool2");
            Assert.Ignore("pgpool-II is not installed (Debian package pgpool2).");
        }

        await using var pgpool = await PgPool.StartAsync(ClusterSetup.Cluster, port: 25458, children: 8);
        var smoke = LoadRunnerOptions.Smoke(ClusterSetup.Cluster.PrimaryConnectionString, ClusterSetup.Cluster.ReplicaConnectionStrings);
        var options = new LoadRunnerOptions
        {
            PrimaryConnectionString = smoke.PrimaryConnectionString,
            ReplicaConnectionStrings = smoke.ReplicaConnectionStrings,
            Duration = smoke.Duration,
            Warmup = smoke.Warmup,
            Workers = smoke.Workers,
            Rounds = smoke.Rounds,
            Rows = smoke.Rows,
            Scenarios = [LoadScenario.ReadHeavy],
            PgPoolConnectionString = pgpool.ConnectionString,
        };

        var report = await new LoadRunner(options).RunAsync();

        TestContext.Out.WriteLine(report.FormatTable());
        var run = report.Runs.Single(r => r.Variant == LoadVariant.PgPool);
        Assert.That(run.Operations, Is.GreaterThan(0));
        Assert.That(run.Errors, Is.Zero, run.FirstError);
    }
}
