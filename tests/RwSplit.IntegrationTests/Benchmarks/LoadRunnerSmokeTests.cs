using System;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
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
}
