using System.Data;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.Tests.Fakes;

namespace RwSplit.Tests.Routing;

/// <summary>
/// <see cref="RwSplitDataSource.ExplainAsync"/>: the classification and decision a text would get on a new connection,
/// from the same classifier, statement cache and router as execution — and nothing is run.
/// </summary>
public sealed class ExplainTests
{
    private static (RwSplitDataSource DataSource, FakeServer Primary, FakeServer Replica) Create(ReadConsistency consistency = ReadConsistency.ReadYourWrites)
    {
        var primary = FakeServer.Create("primary");
        var replica = FakeServer.Create("replica");
        var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(FakeDialect.Instance);
            o.Primary = $"Server={primary.Name}";
            o.Replicas.Add($"Server={replica.Name}");
            o.HealthMonitoring = false;
            o.Consistency = consistency;
        });
        return (dataSource, primary, replica);
    }

    [Test]
    public async Task Reads_writes_pins_hints_and_consistencies_are_explained_without_running_anything()
    {
        var (dataSource, primary, replica) = Create();
        await using var _ = dataSource;

        var read = await dataSource.ExplainAsync("SELECT 1");
        var strong = await dataSource.ExplainAsync("SELECT 1", ReadConsistency.Strong);
        var write = await dataSource.ExplainAsync("UPDATE t SET a = 1");
        var pinned = await dataSource.ExplainAsync("CREATE TEMP TABLE x (a int)");
        var hinted = await dataSource.ExplainAsync("/* rwsplit:primary */ SELECT 1");
        var unknown = await dataSource.ExplainAsync("?? what");

        Assert.Multiple(() =>
        {
            Assert.That(read.Decision.Target, Is.EqualTo(RouteTarget.Replica));
            Assert.That(read.Decision.Reason, Is.EqualTo(RoutingReason.Read));
            Assert.That(read.Consistency, Is.EqualTo(ReadConsistency.ReadYourWrites), "the data source's default");
            Assert.That(read.Endpoint, Is.EqualTo(dataSource.ReplicaAddresses[0]));
            Assert.That(strong.Decision, Is.EqualTo(new RoutingDecision(RouteTarget.Primary, -1, RoutingReason.StrongConsistency)));
            Assert.That(strong.Endpoint, Is.EqualTo(dataSource.CurrentPrimaryAddress));
            Assert.That(write.Kind, Is.EqualTo(StatementKind.Write));
            Assert.That(write.Decision.Reason, Is.EqualTo(RoutingReason.Write));
            Assert.That(pinned.Classification.SessionEffect, Is.EqualTo(SessionEffect.Pin));
            Assert.That(pinned.Decision.Reason, Is.EqualTo(RoutingReason.SessionState));
            Assert.That(hinted.Decision.Reason, Is.EqualTo(RoutingReason.PrimaryHint));
            Assert.That(unknown.Decision.Reason, Is.EqualTo(RoutingReason.UnknownStatement));
            Assert.That(unknown.Decision.Target, Is.EqualTo(RouteTarget.Primary), "fails closed");
        });
        Assert.That(primary.Journal.Concat(replica.Journal), Is.Empty, "explaining opened and ran nothing");
    }

    [Test]
    public async Task A_text_learned_as_a_write_is_explained_as_one_though_it_reads_like_a_read()
    {
        var (dataSource, _, replica) = Create(ReadConsistency.Eventual);
        await using var __ = dataSource;
        replica.RejectsAsWrite.Add("SELECT refresh_totals()");
        await using (var connection = await dataSource.OpenConnectionAsync())
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT refresh_totals()";
            await command.ExecuteNonQueryAsync(); // rejected by the replica, retried on the primary, remembered
        }

        var explanation = await dataSource.ExplainAsync("SELECT refresh_totals()");
        Assert.Multiple(() =>
        {
            Assert.That(explanation.Classification.Kind, Is.EqualTo(StatementKind.Read), "the text alone reads");
            Assert.That(explanation.Kind, Is.EqualTo(StatementKind.Write), "the data source knows better");
            Assert.That(explanation.Decision.Reason, Is.EqualTo(RoutingReason.LearnedWrite));
        });
    }
}
