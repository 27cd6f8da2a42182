using System;
using System.Collections;
using System.Collections.Generic;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.PostgreSql;
using RwSplit.Routing;
using RwSplit.Providers;
using RwSplit.Topology;

namespace RwSplit.Benchmarks;

/// <summary>
/// The smallest ADO.NET provider that can stand behind RwSplit: no I/O, no journal, and no allocation per execution
/// (constant results, cached tasks), so that what a benchmark over it measures is the decorator's own cost.
/// </summary>
public sealed class InMemoryProviderFactory : DbProviderFactory
{
    public static readonly InMemoryProviderFactory Instance = new();

    public override DbCommand CreateCommand() => new InMemoryCommand();

    public override DbConnection CreateConnection() => new InMemoryConnection("inmemory");
}

/// <summary>An always-available connection; <see cref="Open"/> only flips the state (no StateChange event, no allocation).</summary>
public sealed class InMemoryConnection : DbConnection
{
    private readonly string _server;
    private ConnectionState _state;

    public InMemoryConnection(string server, bool completesAsynchronously = false)
    {
        _server = server;
        CompletesAsynchronously = completesAsynchronously;
    }

    /// <summary>
    /// Whether the async executions of its commands yield before returning (as a network round trip does), instead of
    /// returning completed tasks: shows what a decorator's async methods allocate once they really suspend.
    /// </summary>
    public bool CompletesAsynchronously { get; }

    [AllowNull]
    public override string ConnectionString { get; set; } = string.Empty;

    public override string Database => "bench";

    public override string DataSource => _server;

    public override string ServerVersion => "1.0";

    public override ConnectionState State => _state;

    public override void ChangeDatabase(string databaseName)
    {
    }

    public override void Open() => _state = ConnectionState.Open;

    public override Task OpenAsync(CancellationToken cancellationToken)
    {
        _state = ConnectionState.Open;
        return Task.CompletedTask;
    }

    public override void Close() => _state = ConnectionState.Closed;

    public override Task CloseAsync()
    {
        _state = ConnectionState.Closed;
        return Task.CompletedTask;
    }

    public override ValueTask DisposeAsync()
    {
        _state = ConnectionState.Closed;
        return default;
    }

    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => throw new NotSupportedException();

    protected override DbCommand CreateDbCommand() => new InMemoryCommand { Connection = this };
}

/// <summary>Returns constants: <see cref="ExecuteScalar"/> a boxed value made once, <see cref="ExecuteNonQuery"/> 1.</summary>
public sealed class InMemoryCommand : DbCommand
{
    private static readonly object ScalarValue = 42L;
    private static readonly Task<object?> ScalarTask = Task.FromResult<object?>(ScalarValue);
    private static readonly Task<int> NonQueryTask = Task.FromResult(1);

    private InMemoryParameterCollection? _parameters;

    [AllowNull]
    public override string CommandText { get; set; } = string.Empty;

    public override int CommandTimeout { get; set; } = 30;

    public override CommandType CommandType { get; set; } = CommandType.Text;

    public override bool DesignTimeVisible { get; set; }

    public override UpdateRowSource UpdatedRowSource { get; set; }

    protected override DbConnection? DbConnection { get; set; }

    protected override DbParameterCollection DbParameterCollection => _parameters ??= new InMemoryParameterCollection();

    protected override DbTransaction? DbTransaction { get; set; }

    public override void Cancel()
    {
    }

    public override void Prepare()
    {
    }

    public override int ExecuteNonQuery() => 1;

    public override Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken)
        => Yields ? YieldThen(1) : NonQueryTask;

    public override object? ExecuteScalar() => ScalarValue;

    public override Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken)
        => Yields ? YieldThen<object?>(ScalarValue) : ScalarTask;

    private bool Yields => DbConnection is InMemoryConnection { CompletesAsynchronously: true };

    private static async Task<T> YieldThen<T>(T value)
    {
        await Task.Yield();
        return value;
    }

    protected override DbParameter CreateDbParameter() => throw new NotSupportedException("The in-memory provider takes no parameters.");

    protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior) => throw new NotSupportedException("The in-memory provider returns no readers.");

    public override ValueTask DisposeAsync() => default;
}

/// <summary>Always empty: the benchmarks run statements without parameters.</summary>
public sealed class InMemoryParameterCollection : DbParameterCollection
{
    public override int Count => 0;

    public override object SyncRoot => this;

    public override int Add(object value) => throw new NotSupportedException();

    public override void AddRange(Array values) => throw new NotSupportedException();

    public override void Clear()
    {
    }

    public override bool Contains(object value) => false;

    public override bool Contains(string value) => false;

    public override void CopyTo(Array array, int index)
    {
    }

    public override IEnumerator GetEnumerator() => Array.Empty<object>().GetEnumerator();

    public override int IndexOf(object value) => -1;

    public override int IndexOf(string parameterName) => -1;

    public override void Insert(int index, object value) => throw new NotSupportedException();

    public override void Remove(object value)
    {
    }

    public override void RemoveAt(int index) => throw new ArgumentOutOfRangeException(nameof(index));

    public override void RemoveAt(string parameterName) => throw new ArgumentOutOfRangeException(nameof(parameterName));

    protected override DbParameter GetParameter(int index) => throw new ArgumentOutOfRangeException(nameof(index));

    protected override DbParameter GetParameter(string parameterName) => throw new ArgumentOutOfRangeException(nameof(parameterName));

    protected override void SetParameter(int index, DbParameter value) => throw new ArgumentOutOfRangeException(nameof(index));

    protected override void SetParameter(string parameterName, DbParameter value) => throw new ArgumentOutOfRangeException(nameof(parameterName));
}

/// <summary>
/// A dialect over the in-memory provider. Connection strings are <c>Server=name</c>; SQL is classified by the PostgreSQL
/// lexer (the result is cached by RwSplit, so the decorator benchmarks never reach it after the first call).
/// </summary>
public sealed class InMemoryDialect : RwSplitDialect
{
    /// <summary>Commands complete synchronously, async ones with cached tasks.</summary>
    public static readonly InMemoryDialect Instance = new(false);

    /// <summary>Async executions yield once before completing (see <see cref="InMemoryConnection.CompletesAsynchronously"/>).</summary>
    public static readonly InMemoryDialect Yielding = new(true);

    private readonly bool _yielding;

    private InMemoryDialect(bool yielding) => _yielding = yielding;

    public override string SystemName => "inmemory";

    public override DbProviderFactory ProviderFactory => InMemoryProviderFactory.Instance;

    public override EndpointAddress ParseEndpoint(string connectionString)
    {
        ArgumentNullException.ThrowIfNull(connectionString);
        const string Prefix = "Server=";
        if (!connectionString.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) || connectionString.Length == Prefix.Length)
            throw new ArgumentException("Use Server=<name>.", nameof(connectionString));
        return new EndpointAddress(connectionString[Prefix.Length..], null, "bench");
    }

    public override EndpointConnector CreateConnector(string connectionString, EndpointRole role)
        => new InMemoryConnector(ParseEndpoint(connectionString), role, _yielding);

    public override StatementClassifier CreateClassifier(IReadOnlySet<string> readOnlyProcedures)
        => new InMemoryClassifier(NpgsqlDialect.Instance.CreateClassifier(readOnlyProcedures), readOnlyProcedures);

    /// <summary>The PostgreSQL classifier's verdicts, without its function catalog (nothing to load it from).</summary>
    private sealed class InMemoryClassifier(StatementClassifier postgres, IReadOnlySet<string> readOnlyProcedures) : StatementClassifier(readOnlyProcedures)
    {
        public override StatementClassification Classify(string commandText) => postgres.Classify(commandText);
    }
}

public sealed class InMemoryConnector : EndpointConnector
{
    private readonly bool _yielding;

    public InMemoryConnector(EndpointAddress address, EndpointRole role, bool yielding)
        : base(address, role)
    {
        _yielding = yielding;
        RedactedConnectionString = "Server=" + address.Host;
    }

    /// <summary>Made once, as the real connectors do: every logical connection reads it.</summary>
    public override string RedactedConnectionString { get; }

    public override DbConnection CreateConnection() => new InMemoryConnection(Address.Host, _yielding);
}
