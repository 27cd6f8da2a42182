using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using RwSplit.Routing;

namespace RwSplit.Benchmarks;

/// <summary>
/// The whole decorator path (RwSplitCommand → routing → provider command) over the in-memory provider, against the same
/// provider called directly, in the same run: each category has the raw provider as its baseline. Health monitoring is
/// off, so no background probe runs beside the measurement.
/// </summary>
[MemoryDiagnoser]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
public class DecoratorBenchmarks
{
    private InMemoryConnection _raw = null!;
    private InMemoryCommand _rawRead = null!;
    private InMemoryCommand _rawWrite = null!;

    private RwSplitDataSource _dataSource = null!;
    private RwSplitConnection _readConnection = null!;
    private RwSplitConnection _writeConnection = null!;
    private RwSplitConnection _readAfterWriteConnection = null!;
    private RwSplitCommand _read = null!;
    private RwSplitCommand _write = null!;
    private RwSplitCommand _readAfterWrite = null!;

    private RwSplitDataSource _noReplicas = null!;
    private RwSplitConnection _noReplicasConnection = null!;
    private RwSplitCommand _noReplicasRead = null!;

    private InMemoryConnection _rawYielding = null!;
    private InMemoryCommand _rawYieldingRead = null!;
    private RwSplitDataSource _yieldingDataSource = null!;
    private RwSplitConnection _yieldingConnection = null!;
    private RwSplitCommand _yieldingRead = null!;

    [GlobalSetup]
    public void Setup()
    {
        _raw = new InMemoryConnection("primary");
        _raw.Open();
        _rawRead = (InMemoryCommand)_raw.CreateCommand();
        _rawRead.CommandText = Statements.PgShortRead;
        _rawWrite = (InMemoryCommand)_raw.CreateCommand();
        _rawWrite.CommandText = Statements.PgShortWrite;

        _dataSource = CreateDataSource(InMemoryDialect.Instance);

        // A connection that only reads (reads go to a replica), one that only writes (primary), and one that wrote
        // once so that, with nothing known of the replicas' progress, read-your-writes keeps its reads on the primary.
        _readConnection = _dataSource.OpenConnection();
        _read = Command(_readConnection, Statements.PgShortRead);
        _writeConnection = _dataSource.OpenConnection();
        _write = Command(_writeConnection, Statements.PgShortWrite);
        _readAfterWriteConnection = _dataSource.OpenConnection();
        Command(_readAfterWriteConnection, Statements.PgShortWrite).ExecuteNonQuery();
        _readAfterWrite = Command(_readAfterWriteConnection, Statements.PgShortRead);

        // Warm the physical connections and the statement cache, and check the routes are the ones meant.
        _read.ExecuteScalar();
        _write.ExecuteNonQuery();
        _readAfterWrite.ExecuteScalar();
        Expect(_read, RouteTarget.Replica, RoutingReason.Read);
        Expect(_write, RouteTarget.Primary, RoutingReason.Write);
        Expect(_readAfterWrite, RouteTarget.Primary, RoutingReason.ReadYourWrites);
        Expect(RwSplit_NewCommandPerCall_ShortRead_Command(), RouteTarget.Replica, RoutingReason.Read);
        Expect(RwSplit_NewCommandPerCall_LongRead_Command(), RouteTarget.Replica, RoutingReason.Read);

        // A data source without replicas: every read runs on the primary, and takes no fallback slot.
        _noReplicas = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(InMemoryDialect.Instance);
            o.Primary = "Server=primary";
            o.HealthMonitoring = false;
        });
        _noReplicasConnection = _noReplicas.OpenConnection();
        _noReplicasRead = Command(_noReplicasConnection, Statements.PgShortRead);
        _noReplicasRead.ExecuteScalar();
        Expect(_noReplicasRead, RouteTarget.Primary, RoutingReason.NoReplicaAvailable);

        _rawYielding = new InMemoryConnection("primary", completesAsynchronously: true);
        _rawYielding.Open();
        _rawYieldingRead = (InMemoryCommand)_rawYielding.CreateCommand();
        _rawYieldingRead.CommandText = Statements.PgShortRead;
        _yieldingDataSource = CreateDataSource(InMemoryDialect.Yielding);
        _yieldingConnection = _yieldingDataSource.OpenConnection();
        _yieldingRead = Command(_yieldingConnection, Statements.PgShortRead);
        _yieldingRead.ExecuteScalarAsync().GetAwaiter().GetResult();
        Expect(_yieldingRead, RouteTarget.Replica, RoutingReason.Read);
    }

    private static RwSplitDataSource CreateDataSource(InMemoryDialect dialect) => RwSplitDataSource.Create(o =>
    {
        o.UseDialect(dialect);
        o.Primary = "Server=primary";
        o.Replicas.Add("Server=replica1");
        o.Replicas.Add("Server=replica2");
        o.HealthMonitoring = false;
    });

    [GlobalCleanup]
    public void Cleanup()
    {
        _readConnection.Dispose();
        _writeConnection.Dispose();
        _readAfterWriteConnection.Dispose();
        _dataSource.Dispose();
        _raw.Dispose();
        _yieldingConnection.Dispose();
        _noReplicasConnection.Dispose();
        _noReplicas.Dispose();
        _yieldingDataSource.Dispose();
        _rawYielding.Dispose();
    }

    // ---- A command executed again on an open connection (the steady state) ----

    [Benchmark(Baseline = true), BenchmarkCategory("ExecuteScalar")]
    public object? Raw_ExecuteScalar() => _rawRead.ExecuteScalar();

    [Benchmark, BenchmarkCategory("ExecuteScalar")]
    public object? RwSplit_ExecuteScalar_Replica() => _read.ExecuteScalar();

    /// <summary>A read after the session wrote, with no replica known to have the write: primary, fallback budget.</summary>
    [Benchmark, BenchmarkCategory("ExecuteScalar")]
    public object? RwSplit_ExecuteScalar_ReadYourWritesOnPrimary() => _readAfterWrite.ExecuteScalar();

    /// <summary>A read of a data source without replicas (on the primary, no fallback budget to take).</summary>
    [Benchmark, BenchmarkCategory("ExecuteScalar")]
    public object? RwSplit_ExecuteScalar_NoReplicas() => _noReplicasRead.ExecuteScalar();

    [Benchmark(Baseline = true), BenchmarkCategory("ExecuteNonQuery")]
    public int Raw_ExecuteNonQuery() => _rawWrite.ExecuteNonQuery();

    [Benchmark, BenchmarkCategory("ExecuteNonQuery")]
    public int RwSplit_ExecuteNonQuery_Primary() => _write.ExecuteNonQuery();

    [Benchmark(Baseline = true), BenchmarkCategory("ExecuteScalarAsync")]
    public Task<object?> Raw_ExecuteScalarAsync() => _rawRead.ExecuteScalarAsync();

    [Benchmark, BenchmarkCategory("ExecuteScalarAsync")]
    public Task<object?> RwSplit_ExecuteScalarAsync_Replica() => _read.ExecuteScalarAsync();

    [Benchmark, BenchmarkCategory("ExecuteScalarAsync")]
    public Task<object?> RwSplit_ExecuteScalarAsync_NoReplicas() => _noReplicasRead.ExecuteScalarAsync();

    [Benchmark(Baseline = true), BenchmarkCategory("ExecuteNonQueryAsync")]
    public Task<int> Raw_ExecuteNonQueryAsync() => _rawWrite.ExecuteNonQueryAsync();

    [Benchmark, BenchmarkCategory("ExecuteNonQueryAsync")]
    public Task<int> RwSplit_ExecuteNonQueryAsync_Primary() => _write.ExecuteNonQueryAsync();

    // ---- The provider completes asynchronously (as over a network): what RwSplit's async methods allocate then ----

    [Benchmark(Baseline = true), BenchmarkCategory("ExecuteScalarAsync, provider yields")]
    public Task<object?> Raw_ExecuteScalarAsync_Yielding() => _rawYieldingRead.ExecuteScalarAsync();

    [Benchmark, BenchmarkCategory("ExecuteScalarAsync, provider yields")]
    public Task<object?> RwSplit_ExecuteScalarAsync_Yielding_Replica() => _yieldingRead.ExecuteScalarAsync();

    // ---- A new command per call on an open connection (Dapper, most repositories): facts from the statement cache ----

    [Benchmark(Baseline = true), BenchmarkCategory("NewCommandPerCall")]
    public object? Raw_NewCommandPerCall_LongRead()
    {
        using var command = _raw.CreateCommand();
        command.CommandText = Statements.PgLongRead;
        return command.ExecuteScalar();
    }

    [Benchmark, BenchmarkCategory("NewCommandPerCall")]
    public object? RwSplit_NewCommandPerCall_ShortRead()
    {
        using var command = _readConnection.CreateCommand();
        command.CommandText = Statements.PgShortRead;
        return command.ExecuteScalar();
    }

    /// <summary>A 1.5 KB reporting query (it calls functions: the facts need the data source's resolution, not only the cache).</summary>
    [Benchmark, BenchmarkCategory("NewCommandPerCall")]
    public object? RwSplit_NewCommandPerCall_LongRead()
    {
        using var command = _readConnection.CreateCommand();
        command.CommandText = Statements.PgLongRead;
        return command.ExecuteScalar();
    }

    private RwSplitCommand RwSplit_NewCommandPerCall_ShortRead_Command()
    {
        var command = Command(_readConnection, Statements.PgShortRead);
        command.ExecuteScalar();
        return command;
    }

    private RwSplitCommand RwSplit_NewCommandPerCall_LongRead_Command()
    {
        var command = Command(_readConnection, Statements.PgLongRead);
        command.ExecuteScalar();
        return command;
    }

    // ---- One unit of work as an application writes it: open, create the command, execute, close ----

    [Benchmark(Baseline = true), BenchmarkCategory("OpenExecuteClose")]
    public object? Raw_OpenExecuteClose()
    {
        using var connection = new InMemoryConnection("primary");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = Statements.PgShortRead;
        return command.ExecuteScalar();
    }

    [Benchmark, BenchmarkCategory("OpenExecuteClose")]
    public object? RwSplit_OpenExecuteClose()
    {
        using var connection = _dataSource.OpenConnection();
        using var command = connection.CreateCommand();
        command.CommandText = Statements.PgShortRead;
        return command.ExecuteScalar();
    }

    /// <summary>The first async command of a connection: its physical connection is opened on the way.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("OpenExecuteCloseAsync")]
    public async Task<object?> Raw_OpenExecuteCloseAsync()
    {
        await using var connection = new InMemoryConnection("primary");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = Statements.PgShortRead;
        return await command.ExecuteScalarAsync();
    }

    [Benchmark, BenchmarkCategory("OpenExecuteCloseAsync")]
    public async Task<object?> RwSplit_OpenExecuteCloseAsync()
    {
        await using var connection = await _dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = Statements.PgShortRead;
        return await command.ExecuteScalarAsync();
    }

    private static RwSplitCommand Command(RwSplitConnection connection, string text)
    {
        var command = connection.CreateCommand();
        command.CommandText = text;
        return command;
    }

    private static void Expect(RwSplitCommand command, RouteTarget target, RoutingReason reason)
    {
        var decision = command.LastDecision ?? throw new System.InvalidOperationException("The command was not routed.");
        if (decision.Target != target || decision.Reason != reason)
            throw new System.InvalidOperationException($"'{command.CommandText}' was routed to {decision}, expected {target} ({reason}).");
    }
}
