using System;
using System.Linq;
using System.Threading.Tasks;
using Dapper;
using NUnit.Framework;
using static RwSplit.IntegrationTests.ClusterSetup;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>Dapper over an RwSplit connection: queries go to replicas, executes to the primary, closed connections work.</summary>
[TestFixture(DataSourceKind.Builder)]
[TestFixture(DataSourceKind.DependencyInjection)]
public sealed class DapperTests
{
    private readonly DataSourceKind _kind;
    private RwSplitDataSource _dataSource = null!;
    private IDisposable? _owner;

    public DapperTests(DataSourceKind kind) => _kind = kind;

    [OneTimeSetUp]
    public void CreateDataSource() => (_dataSource, _owner) = TestDataSources.Create(_kind, "rwsplit-dapper");

    [OneTimeTearDown]
    public void DisposeDataSource()
    {
        _dataSource.Dispose();
        _owner?.Dispose();
    }

    private sealed record Item(int Id, string Name, int Port);

    [Test]
    public async Task Query_runs_on_a_replica_with_parameters_async()
    {
        await using var connection = _dataSource.CreateConnection(); // closed: Dapper opens and closes it
        var items = (await connection.QueryAsync<Item>(
            "SELECT id AS Id, name AS Name, inet_server_port() AS Port FROM items WHERE id BETWEEN @from AND @to ORDER BY id",
            new { from = 10, to = 12 })).ToList();
        Assert.That(items.Select(i => i.Id), Is.EqualTo(new[] { 10, 11, 12 }));
        Assert.That(items.Select(i => i.Port).Distinct().Single(), Is.AnyOf(ReplicaPorts.Cast<object>().ToArray()));
        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Closed), "Dapper's CloseConnection closed the logical connection");
    }

    [Test]
    public void Query_runs_on_a_replica_with_parameters_sync()
    {
        using var connection = _dataSource.CreateConnection();
        var item = connection.QuerySingle<Item>("SELECT id AS Id, name AS Name, inet_server_port() AS Port FROM items WHERE id = @id", new { id = 20 });
        Assert.That(item.Name, Is.EqualTo("item 20"));
        Assert.That(ReplicaPorts, Does.Contain(item.Port));
        Assert.That(connection.State, Is.EqualTo(System.Data.ConnectionState.Closed));
    }

    [Test]
    public async Task Execute_runs_on_the_primary_and_read_your_writes_sees_it()
    {
        var note = "dapper-" + Guid.NewGuid();
        await using var connection = await _dataSource.OpenConnectionAsync();
        var rows = await connection.ExecuteAsync("INSERT INTO audit(note, written_on) VALUES (@note, inet_server_port())", new { note });
        Assert.That(rows, Is.EqualTo(1));
        var writtenOn = await connection.ExecuteScalarAsync<int>("SELECT written_on FROM audit WHERE note = @note", new { note });
        Assert.That(writtenOn, Is.EqualTo(PrimaryPort));
    }

    [Test]
    public void Execute_sync_and_transaction()
    {
        var note = "dapper-tx-" + Guid.NewGuid();
        using var connection = _dataSource.OpenConnection();
        using (var transaction = connection.BeginTransaction())
        {
            connection.Execute("INSERT INTO audit(note) VALUES (@note)", new { note }, transaction);
            var port = connection.ExecuteScalar<int>("SELECT inet_server_port()", transaction: transaction);
            Assert.That(port, Is.EqualTo(PrimaryPort));
            transaction.Commit();
        }

        Assert.That(connection.ExecuteScalar<long>("SELECT count(*) FROM audit WHERE note = @note", new { note }), Is.EqualTo(1L));
    }

    [Test]
    public async Task Query_multiple_with_stable_function_stays_on_a_replica()
    {
        await using var connection = await _dataSource.OpenConnectionAsync();
        await using var grid = await connection.QueryMultipleAsync("SELECT item_name(1); SELECT inet_server_port()");
        Assert.That(await grid.ReadSingleAsync<string>(), Is.EqualTo("item 1"));
        Assert.That(ReplicaPorts, Does.Contain(await grid.ReadSingleAsync<int>()));
    }
}
