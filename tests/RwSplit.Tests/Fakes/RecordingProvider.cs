using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Providers;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit.Tests.Fakes;

/// <summary>One call a fake server received: what, which text, sync or async, and whether a cancellable token came along.</summary>
public sealed record Call(string Server, string Operation, string? Text, bool Async, CancellationToken Token)
{
    private static long _sequence;

    /// <summary>Global order of calls across every fake server.</summary>
    public long Sequence { get; } = Interlocked.Increment(ref _sequence);
}

public sealed class UniqueViolationException : DbException
{
    public UniqueViolationException()
        : base("duplicate key value violates unique constraint")
    {
    }
}

/// <summary>
/// A scripted in-memory "server" behind the recording provider. Journals every call so tests can assert which server
/// got what, in which form (sync/async) and with which cancellation token.
/// </summary>
public sealed class FakeServer
{
    private static readonly ConcurrentDictionary<string, FakeServer> Servers = new();

    private FakeServer(string name) => Name = name;

    public string Name { get; }

    public List<Call> Journal { get; } = new();

    /// <summary>Throw this from Open (the server is down).</summary>
    public Exception? OpenFailure { get; set; }

    /// <summary>Thrown by every statement this server runs (e.g. an <see cref="System.IO.IOException"/>: the connection broke).</summary>
    public Exception? ExecuteFailure { get; set; }

    /// <summary>Async executions yield before running, as a network round trip does (the caller's await really suspends).</summary>
    public bool CompletesAsynchronously { get; set; }

    /// <summary>Statements (by exact text) that this server rejects as writes.</summary>
    public HashSet<string> RejectsAsWrite { get; } = new();

    public int OpenConnections { get; set; }

    /// <summary>
    /// What this server answers to the monitored fake dialect's probe: (is replica, position, seconds since replay,
    /// identity). <see langword="null"/>: the probe fails.
    /// </summary>
    public object?[]? ProbeRow { get; set; } = { false, 0L, null, "fake-cluster" };

    /// <summary>What MAXPREPARED reports (max_prepared_transactions).</summary>
    public int MaxPrepared { get; set; } = 64;

    /// <summary>Statements (exact text or prefix) this server fails with a unique violation.</summary>
    public HashSet<string> UniqueViolations { get; } = new();

    /// <summary>The position WRITEPOS / REPLAYPOS report.</summary>
    public long? Position { get; set; } = 0;

    public static FakeServer Get(string name) => Servers.GetOrAdd(name, n => new FakeServer(n));

    /// <summary>A new unique server (tests run in parallel-safe isolation by name).</summary>
    public static FakeServer Create(string prefix) => Get(prefix + "-" + Guid.NewGuid().ToString("N")[..8]);

    public void Record(string operation, string? text, bool async, CancellationToken token)
    {
        lock (Journal)
            Journal.Add(new Call(Name, operation, text, async, token));
    }
}

public sealed class ReadOnlyViolationException : DbException
{
    public ReadOnlyViolationException()
        : base("cannot execute in a read-only transaction")
    {
    }
}

public sealed class FakeProviderFactory : DbProviderFactory
{
    public static readonly FakeProviderFactory Instance = new();

    public override DbCommand CreateCommand() => new FakeCommand();

    public override DbParameter CreateParameter() => new FakeParameter();

    public override DbConnection CreateConnection() => throw new NotSupportedException("Fake connections come from FakeConnector.");
}

public sealed class FakeParameter : DbParameter
{
    public override DbType DbType { get; set; }

    public override ParameterDirection Direction { get; set; }

    public override bool IsNullable { get; set; }

    [AllowNull]
    public override string ParameterName { get; set; } = "";

    [AllowNull]
    public override string SourceColumn { get; set; } = "";

    public override object? Value { get; set; }

    public override bool SourceColumnNullMapping { get; set; }

    public override int Size { get; set; }

    public override void ResetDbType()
    {
    }
}

public sealed class FakeParameterCollection : DbParameterCollection
{
    private readonly List<DbParameter> _items = new();

    public override int Count => _items.Count;

    public override object SyncRoot => _items;

    public override int Add(object value)
    {
        _items.Add((DbParameter)value);
        return _items.Count - 1;
    }

    public override void AddRange(Array values)
    {
        foreach (var v in values)
            Add(v!);
    }

    public override void Clear() => _items.Clear();

    public override bool Contains(object value) => _items.Contains((DbParameter)value);

    public override bool Contains(string value) => IndexOf(value) >= 0;

    public override void CopyTo(Array array, int index) => ((System.Collections.ICollection)_items).CopyTo(array, index);

    public override System.Collections.IEnumerator GetEnumerator() => _items.GetEnumerator();

    public override int IndexOf(object value) => _items.IndexOf((DbParameter)value);

    public override int IndexOf(string parameterName) => _items.FindIndex(p => p.ParameterName == parameterName);

    public override void Insert(int index, object value) => _items.Insert(index, (DbParameter)value);

    public override void Remove(object value) => _items.Remove((DbParameter)value);

    public override void RemoveAt(int index) => _items.RemoveAt(index);

    public override void RemoveAt(string parameterName) => _items.RemoveAt(IndexOf(parameterName));

    protected override DbParameter GetParameter(int index) => _items[index];

    protected override DbParameter GetParameter(string parameterName) => _items[IndexOf(parameterName)];

    protected override void SetParameter(int index, DbParameter value) => _items[index] = value;

    protected override void SetParameter(string parameterName, DbParameter value) => _items[IndexOf(parameterName)] = value;
}

public sealed class FakeConnection : DbConnection
{
    private ConnectionState _state;
    private string _database;

    public FakeConnection(FakeServer server, string database)
    {
        Server = server;
        _database = database;
    }

    public FakeServer Server { get; }

    public System.Transactions.Transaction? Enlisted { get; private set; }

    [AllowNull]
    public override string ConnectionString { get; set; } = "";

    public override string Database => _database;

    public override string DataSource => Server.Name;

    public override string ServerVersion => "fake-1.0";

    public override ConnectionState State => _state;

    public override void ChangeDatabase(string databaseName)
    {
        Server.Record("ChangeDatabase", databaseName, false, default);
        _database = databaseName;
    }

    public override Task ChangeDatabaseAsync(string databaseName, CancellationToken cancellationToken = default)
    {
        Server.Record("ChangeDatabase", databaseName, true, cancellationToken);
        _database = databaseName;
        return Task.CompletedTask;
    }

    public override void Open()
    {
        Server.Record("Open", null, false, default);
        if (Server.OpenFailure is not null)
            throw Server.OpenFailure;
        _state = ConnectionState.Open;
        Server.OpenConnections++;
    }

    public override Task OpenAsync(CancellationToken cancellationToken)
    {
        Server.Record("Open", null, true, cancellationToken);
        if (Server.OpenFailure is not null)
            return Task.FromException(Server.OpenFailure);
        _state = ConnectionState.Open;
        Server.OpenConnections++;
        return Task.CompletedTask;
    }

    public override void Close()
    {
        if (_state == ConnectionState.Closed)
            return;
        Server.Record("Close", null, false, default);
        _state = ConnectionState.Closed;
        Server.OpenConnections--;
    }

    public override void EnlistTransaction(System.Transactions.Transaction? transaction)
    {
        Server.Record("Enlist", null, false, default);
        Enlisted = transaction;
    }

    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel)
    {
        Server.Record("Begin", isolationLevel.ToString(), false, default);
        return new FakeTransaction(this, isolationLevel);
    }

    protected override ValueTask<DbTransaction> BeginDbTransactionAsync(IsolationLevel isolationLevel, CancellationToken cancellationToken)
    {
        Server.Record("Begin", isolationLevel.ToString(), true, cancellationToken);
        return new ValueTask<DbTransaction>(new FakeTransaction(this, isolationLevel));
    }

    protected override DbCommand CreateDbCommand() => new FakeCommand { Connection = this };

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            Close();
        base.Dispose(disposing);
    }
}

public sealed class FakeTransaction : DbTransaction
{
    private readonly FakeConnection _connection;

    public FakeTransaction(FakeConnection connection, IsolationLevel isolationLevel)
    {
        _connection = connection;
        IsolationLevel = isolationLevel;
    }

    public override IsolationLevel IsolationLevel { get; }

    protected override DbConnection DbConnection => _connection;

    public override bool SupportsSavepoints => true;

    public override void Commit() => _connection.Server.Record("Commit", null, false, default);

    public override Task CommitAsync(CancellationToken cancellationToken = default)
    {
        _connection.Server.Record("Commit", null, true, cancellationToken);
        return Task.CompletedTask;
    }

    public override void Rollback() => _connection.Server.Record("Rollback", null, false, default);

    public override Task RollbackAsync(CancellationToken cancellationToken = default)
    {
        _connection.Server.Record("Rollback", null, true, cancellationToken);
        return Task.CompletedTask;
    }

    public override void Save(string savepointName) => _connection.Server.Record("Save", savepointName, false, default);

    public override Task SaveAsync(string savepointName, CancellationToken cancellationToken = default)
    {
        _connection.Server.Record("Save", savepointName, true, cancellationToken);
        return Task.CompletedTask;
    }

    public override void Release(string savepointName) => _connection.Server.Record("Release", savepointName, false, default);

    public override void Rollback(string savepointName) => _connection.Server.Record("RollbackTo", savepointName, false, default);
}

public sealed class FakeCommand : DbCommand
{
    private readonly FakeParameterCollection _parameters = new();
    private int _yielding; // inside AfterYield: run at once

    [AllowNull]
    public override string CommandText { get; set; } = "";

    public override int CommandTimeout { get; set; } = 30;

    public override CommandType CommandType { get; set; }

    public override bool DesignTimeVisible { get; set; }

    public override UpdateRowSource UpdatedRowSource { get; set; }

    protected override DbConnection? DbConnection { get; set; }

    protected override DbParameterCollection DbParameterCollection => _parameters;

    protected override DbTransaction? DbTransaction { get; set; }

    public bool Cancelled { get; private set; }

    public override void Cancel() => Cancelled = true;

    public override void Prepare() => Server.Record("Prepare", CommandText, false, default);

    protected override DbParameter CreateDbParameter() => new FakeParameter();

    private FakeServer Server => ((FakeConnection)(DbConnection ?? throw new InvalidOperationException("no connection"))).Server;

    private void Run(string operation, bool async, CancellationToken token)
    {
        var connection = (FakeConnection)(DbConnection ?? throw new InvalidOperationException("no connection"));
        if (connection.State != ConnectionState.Open)
            throw new InvalidOperationException("Fake connection is not open.");
        if (DbTransaction is not null && DbTransaction.Connection != connection)
            throw new InvalidOperationException("Transaction belongs to another connection (the decorator did not unwrap it).");
        Server.Record(operation, CommandText, async, token);
        if (Server.ExecuteFailure is { } failure)
            throw failure;
        if (Server.RejectsAsWrite.Contains(CommandText))
            throw new ReadOnlyViolationException();
        if (Server.UniqueViolations.Contains(CommandText))
            throw new UniqueViolationException();
    }

    public override int ExecuteNonQuery()
    {
        Run("NonQuery", false, default);
        return 1;
    }

    public override Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken)
    {
        if (Server.CompletesAsynchronously && _yielding == 0)
            return AfterYield(() => ExecuteNonQueryAsync(cancellationToken));
        Run("NonQuery", true, cancellationToken);
        return Task.FromResult(1);
    }

    public override object? ExecuteScalar()
    {
        Run("Scalar", false, default);
        return ScalarResult();
    }

    public override Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken)
    {
        if (Server.CompletesAsynchronously && _yielding == 0)
            return AfterYield(() => ExecuteScalarAsync(cancellationToken));
        Run("Scalar", true, cancellationToken);
        return Task.FromResult(ScalarResult());
    }

    private object? ScalarResult() => CommandText switch
    {
        FakeDialect.WritePosition or FakeDialect.ReplayPosition => Server.Position,
        FakeDialect.MaxPreparedQuery => Server.MaxPrepared,
        FakeDialect.IdentityQuery => "identity-of-" + Server.Name + "/" + ((FakeConnection)Connection!).Database,
        _ => Server.Name,
    };

    protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior)
    {
        Run("Reader:" + behavior, false, default);
        return CreateReader();
    }

    protected override Task<DbDataReader> ExecuteDbDataReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken)
    {
        if (Server.CompletesAsynchronously && _yielding == 0)
            return AfterYield(() => ExecuteDbDataReaderAsync(behavior, cancellationToken));
        Run("Reader:" + behavior, true, cancellationToken);
        return Task.FromResult<DbDataReader>(CreateReader());
    }

    /// <summary>Yields, then runs the execution as a server that answers at once would (which throws synchronously).</summary>
    private async Task<T> AfterYield<T>(Func<Task<T>> execute)
    {
        await Task.Yield();
        _yielding++;
        try
        {
            return await execute();
        }
        finally
        {
            _yielding--;
        }
    }

    private DataTableReader CreateReader()
    {
        if (CommandText == FakeDialect.Probe)
        {
            var row = Server.ProbeRow ?? throw new ReadOnlyViolationException();
            var probe = new DataTable();
            probe.Columns.Add("is_replica", typeof(bool));
            probe.Columns.Add("position", typeof(long));
            probe.Columns.Add("lag", typeof(double));
            probe.Columns.Add("identity", typeof(string));
            probe.Rows.Add(row[0], row[1] ?? DBNull.Value, row[2] ?? DBNull.Value, row[3] ?? DBNull.Value);
            return probe.CreateDataReader();
        }

        var table = new DataTable();
        table.Columns.Add("server", typeof(string));
        table.Rows.Add(Server.Name);
        return table.CreateDataReader();
    }
}

/// <summary>A dialect over the recording provider. Connection strings: <c>Server=name;Database=db;Password=x</c>.</summary>
public sealed class FakeDialect : RwSplitDialect
{
    public const string Probe = "PROBE";
    public const string WritePosition = "WRITEPOS";
    public const string ReplayPosition = "REPLAYPOS";

    public const string MaxPreparedQuery = "MAXPREPARED";
    public const string IdentityQuery = "IDENTITY";
    public const string CreateDecisions = "CREATE DECISIONS";

    /// <summary>Without health probes (the monitor only checks that connections open).</summary>
    public static readonly FakeDialect Instance = new(false, false);

    /// <summary>With scripted probes and positions (<see cref="FakeServer.ProbeRow"/>, <see cref="FakeServer.Position"/>).</summary>
    public static readonly FakeDialect Monitored = new(true, false);

    /// <summary>An engine that can prepare transactions (PostgreSQL-like).</summary>
    public static readonly FakeDialect TwoPhase = new(false, true);

    private readonly bool _monitored;
    private readonly bool _twoPhase;

    private FakeDialect(bool monitored, bool twoPhase)
    {
        _monitored = monitored;
        _twoPhase = twoPhase;
    }

    public override TransactionStatements TransactionStatements => _twoPhase ? Statements.Preparing : Statements.LastResourceOnly;

    public override ReplicationQueries? Replication => _monitored ? Queries.Instance : null;

    private sealed class Statements : TransactionStatements
    {
        public static readonly Statements Preparing = new(true);
        public static readonly Statements LastResourceOnly = new(false);

        private readonly bool _canPrepare;

        private Statements(bool canPrepare) => _canPrepare = canPrepare;

        public override bool CanPrepare => _canPrepare;

        public override string PrepareTransactionSql(string gid) => "PREPARE " + gid;

        public override string CommitPreparedSql(string gid) => "COMMIT PREPARED " + gid;

        public override string RollbackPreparedSql(string gid) => "ROLLBACK PREPARED " + gid;

        public override string? MaxPreparedTransactionsSql => _canPrepare ? MaxPreparedQuery : null;

        public override string DatabaseIdentitySql => IdentityQuery;

        public override string CreateDecisionTableSql => CreateDecisions;

        public override bool IsUniqueViolation(Exception exception) => exception is UniqueViolationException;
    }

    private sealed class Queries : ReplicationQueries
    {
        public static readonly Queries Instance = new();

        public override string HealthProbeQuery => Probe;

        public override string? WritePositionQuery => WritePosition;

        public override string? ReplayPositionQuery => ReplayPosition;
    }

    public override string SystemName => "fake";

    public override DbProviderFactory ProviderFactory => FakeProviderFactory.Instance;

    public override EndpointAddress ParseEndpoint(string connectionString)
    {
        var builder = new DbConnectionStringBuilder { ConnectionString = connectionString };
        foreach (string key in builder.Keys)
        {
            if (key is not ("server" or "database" or "password"))
                throw new ArgumentException($"Keyword not supported: '{key}'.");
        }

        if (!builder.TryGetValue("Server", out var server))
            throw new ArgumentException("Server is missing.");
        return new EndpointAddress((string)server, null, builder.TryGetValue("Database", out var db) ? (string)db : "db");
    }

    public override EndpointConnector CreateConnector(string connectionString, EndpointRole role)
        => new FakeConnector(ParseEndpoint(connectionString), role);

    public override StatementClassifier CreateClassifier(IReadOnlySet<string> readOnlyProcedures) => new FakeClassifier(readOnlyProcedures);

    public override FailureRules Failures => Rules.Instance;

    public override string WithServer(string connectionString, string server)
    {
        var builder = new DbConnectionStringBuilder { ConnectionString = connectionString };
        builder["Server"] = server;
        return builder.ConnectionString;
    }

    private sealed class Rules : FailureRules
    {
        public static readonly Rules Instance = new();

        public override bool IsReadOnlyViolation(Exception exception) => exception is ReadOnlyViolationException;
    }
}

/// <summary>SELECT/SHOW: read; SET: replayable read; CREATE TEMP: pinning write; "??": unknown; else write.</summary>
public sealed class FakeClassifier(IReadOnlySet<string> readOnlyProcedures) : StatementClassifier(readOnlyProcedures)
{
    public static readonly FakeClassifier Instance = new(new HashSet<string>());

    public override StatementClassification Classify(string commandText)
    {
        var hint = commandText.Contains("rwsplit:primary", StringComparison.Ordinal) ? RoutingHint.Primary
            : commandText.Contains("rwsplit:replica", StringComparison.Ordinal) ? RoutingHint.Replica : RoutingHint.None;
        var text = commandText.TrimStart();
        if (text.StartsWith("/*", StringComparison.Ordinal))
            text = text[(text.IndexOf("*/", StringComparison.Ordinal) + 2)..].TrimStart();
        if (text.StartsWith("SELECT", StringComparison.OrdinalIgnoreCase) || text.StartsWith("SHOW", StringComparison.OrdinalIgnoreCase))
            return new StatementClassification(StatementKind.Read, hint: hint);
        if (text.StartsWith("SET", StringComparison.OrdinalIgnoreCase))
            return new StatementClassification(StatementKind.Read, SessionEffect.Replay, hint);
        if (text.StartsWith("CREATE TEMP", StringComparison.OrdinalIgnoreCase))
            return new StatementClassification(StatementKind.Write, SessionEffect.Pin, hint, detail: "temporary table");
        if (text.StartsWith("??", StringComparison.Ordinal))
            return new StatementClassification(StatementKind.Unknown, hint: hint);
        return new StatementClassification(StatementKind.Write, hint: hint);
    }
}

public sealed class FakeConnector : EndpointConnector
{
    public FakeConnector(EndpointAddress address, EndpointRole role)
        : base(address, role)
    {
    }

    public override string RedactedConnectionString => $"Server={Address.Host};Database={Address.Database}";

    public FakeServer Server => FakeServer.Get(Address.Host);

    public override DbConnection CreateConnection() => new FakeConnection(Server, Address.Database ?? "db");
}
