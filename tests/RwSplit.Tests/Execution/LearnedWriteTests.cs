using System.Data;
using System.Linq;
using System.Threading.Tasks;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.Tests.Fakes;

namespace RwSplit.Tests.Execution;

/// <summary>
/// Misroute recovery remembers the rejected command as a write for every command type: a stored procedure declared
/// read-only that a replica rejects goes straight to the primary afterwards, instead of failing on a replica every time.
/// </summary>
[TestFixture(false)]
[TestFixture(true)]
public sealed class LearnedWriteTests
{
    private readonly bool _async;

    public LearnedWriteTests(bool async) => _async = async;

    [Test]
    public async Task Misrouted_stored_procedure_call_is_remembered_as_a_write()
    {
        var primary = FakeServer.Create("primary");
        var replica1 = FakeServer.Create("replica1");
        var replica2 = FakeServer.Create("replica2");
        replica1.RejectsAsWrite.Add("dbo.RefreshTotals");
        replica2.RejectsAsWrite.Add("dbo.RefreshTotals");
        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(FakeDialect.Instance);
            o.Primary = $"Server={primary.Name}";
            o.Replicas.Add($"Server={replica1.Name}");
            o.Replicas.Add($"Server={replica2.Name}");
            o.HealthMonitoring = false;
            o.Consistency = ReadConsistency.Eventual;
            o.ReadOnlyProcedures.Add("dbo.RefreshTotals"); // wrongly: it writes
        });

        for (var i = 0; i < 3; i++)
        {
            await using var connection = _async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
            await using var command = connection.CreateCommand();
            command.CommandType = CommandType.StoredProcedure;
            command.CommandText = "dbo.RefreshTotals";
            if (_async)
                await command.ExecuteNonQueryAsync();
            else
                command.ExecuteNonQuery();
            Assert.That(command.LastDecision?.Reason, Is.EqualTo(i == 0 ? RoutingReason.MisrouteRetry : RoutingReason.LearnedWrite), $"call {i + 1}");
        }

        Assert.That(replica1.Journal.Concat(replica2.Journal).Count(c => c.Text == "dbo.RefreshTotals"), Is.EqualTo(1), "a replica was tried once, ever");
        Assert.That(primary.Journal.Count(c => c.Text == "dbo.RefreshTotals"), Is.EqualTo(3));
    }
}
