using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.SqlClient;
using NUnit.Framework;
using RwSplit.SqlServer;
using RwSplit.Tds;

// Not under RwSplit.IntegrationTests: that namespace's set-up fixture starts PostgreSQL, which these tests never need.
namespace RwSplit.TdsTests;

/// <summary>
/// Starts a scripted primary and two readable secondaries (TDS servers on free ports) for each test, and checks after
/// it that none of them saw a malformed message. Each test gets its own SqlClient application name, hence its own
/// SqlClient pools.
/// </summary>
public abstract class TdsTestBase
{
    private static int s_tests;

    protected TdsServer Primary { get; private set; } = null!;

    protected TdsServer Replica1 { get; private set; } = null!;

    protected TdsServer Replica2 { get; private set; } = null!;

    /// <summary>The application name of this test's connections (SqlClient pools per connection string).</summary>
    protected string ApplicationName { get; private set; } = "";

    private readonly List<RwSplitDataSource> _dataSources = [];

    [SetUp]
    public void StartServers()
    {
        ApplicationName = $"rwsplit-tds-{Interlocked.Increment(ref s_tests)}";
        Primary = TdsServer.Start("sql-primary");
        Replica1 = TdsServer.Start("sql-replica-1", TdsServerRole.Secondary);
        Replica2 = TdsServer.Start("sql-replica-2", TdsServerRole.Secondary);
    }

    [TearDown]
    public async Task StopServersAsync()
    {
        foreach (var dataSource in _dataSources)
            await dataSource.DisposeAsync();
        _dataSources.Clear();
        SqlConnection.ClearAllPools();
        var errors = new[] { Primary, Replica1, Replica2 }.SelectMany(s => s.ProtocolErrors).ToArray();
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
        {
            foreach (var server in new[] { Primary, Replica1, Replica2 })
                TestContext.Out.WriteLine($"--- journal of {server}{Environment.NewLine}{server.Dump()}");
        }

        await Primary.DisposeAsync();
        await Replica1.DisposeAsync();
        await Replica2.DisposeAsync();

        Assert.That(errors, Is.Empty, "the TDS servers reported protocol errors");
    }

    /// <summary>A server's SqlClient connection string with this test's application name.</summary>
    protected string ConnectionString(TdsServer server, string extra = "")
        => server.ConnectionString() + $";Application Name={ApplicationName}" + extra;

    /// <summary>A data source over the primary and both replicas (disposed after the test).</summary>
    protected RwSplitDataSource CreateDataSource(Action<RwSplitOptions>? configure = null, string replicaExtra = "")
    {
        var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseSqlServer();
            o.Primary = ConnectionString(Primary);
            o.Replicas.Add(ConnectionString(Replica1, replicaExtra));
            o.Replicas.Add(ConnectionString(Replica2, replicaExtra));
            configure?.Invoke(o);
        });
        _dataSources.Add(dataSource);
        return dataSource;
    }

    /// <summary>Disposes <paramref name="dataSource"/> after the test.</summary>
    protected RwSplitDataSource Track(RwSplitDataSource dataSource)
    {
        _dataSources.Add(dataSource);
        return dataSource;
    }

    /// <summary>Tracks a drop-in connection's shared data source so that it is disposed after the test.</summary>
    protected void Track(string dropInConnectionString) => _dataSources.Add(RwSplitSqlServer.Factory.GetDataSource(dropInConnectionString));

    protected static async Task<object?> ScalarAsync(DbCommand command, bool async)
        => async ? await command.ExecuteScalarAsync() : command.ExecuteScalar();

    protected static async Task<int> NonQueryAsync(DbCommand command, bool async)
        => async ? await command.ExecuteNonQueryAsync() : command.ExecuteNonQuery();

    protected static async Task<DbDataReader> ReaderAsync(DbCommand command, bool async)
        => async ? await command.ExecuteReaderAsync() : command.ExecuteReader();

    protected static async Task<bool> ReadAsync(DbDataReader reader, bool async)
        => async ? await reader.ReadAsync() : reader.Read();

    protected static async Task OpenAsync(DbConnection connection, bool async)
    {
        if (async)
            await connection.OpenAsync();
        else
            connection.Open();
    }

    protected static async Task<RwSplitConnection> OpenAsync(RwSplitDataSource dataSource, bool async)
        => async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();

    /// <summary>The application statements (batches, sp_executesql texts, procedure names) a server ran.</summary>
    protected static IReadOnlyList<string> Ran(TdsServer server) => server.Statements;

    /// <summary>How many times the application ran <paramref name="statement"/> on <paramref name="server"/>.</summary>
    protected static int Count(TdsServer server, string statement) => server.Statements.Count(s => s == statement);
}
