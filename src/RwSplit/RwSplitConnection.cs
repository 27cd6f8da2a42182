using System;
using System.ComponentModel;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;
using System.Transactions;
using RwSplit.Connections;
using RwSplit.Routing;
using RwSplit.Transactions;
using Enlistment = RwSplit.Connections.Enlistment;
using IsolationLevel = System.Data.IsolationLevel;

namespace RwSplit;

/// <summary>
/// A logical connection: to the application one <see cref="DbConnection"/>; underneath, up to one physical connection
/// to the primary and one to a replica, each opened only when a command is first routed there. Each command is routed
/// on its own (see <see cref="RoutingReason"/>). Not thread-safe, like every ADO.NET connection.
/// </summary>
[DesignerCategory("")]
public sealed class RwSplitConnection : DbConnection, ICloneable
{
    private static readonly StateChangeEventArgs ClosedToOpen = new(ConnectionState.Closed, ConnectionState.Open);
    private static readonly StateChangeEventArgs OpenToClosed = new(ConnectionState.Open, ConnectionState.Closed);

    private readonly RwSplitProviderFactory _factory;
    private readonly bool _fromDataSource;
    private RwSplitDataSource? _dataSource;
    private string _connectionString;
    private ConnectionState _state;
    private bool _disposed;
    private bool _openedOnce;
    private ReadConsistency? _consistency;
    private SessionSettings? _settings;
    private WriteWatermark _watermark = new();
    private Enlistment _enlistment;
    private PhysicalConnections _physical;

    internal RwSplitConnection(RwSplitDataSource dataSource)
        : this(dataSource.Factory, dataSource.ConnectionString)
    {
        _dataSource = dataSource;
        _fromDataSource = true;
    }

    internal RwSplitConnection(RwSplitProviderFactory factory)
        : this(factory, string.Empty) { }

    private RwSplitConnection(RwSplitProviderFactory factory, string connectionString)
    {
        _factory = factory;
        _connectionString = connectionString;
        _physical = new PhysicalConnections(this);
    }

    /// <summary>
    /// For a connection from a data source: the primary's connection string without its password (read-only). For a
    /// connection created by an <see cref="RwSplitProviderFactory"/>: the drop-in connection string (the provider's
    /// connection string plus RwSplit's keywords, see <see cref="RwSplitProviderFactory.CreateConnection(string)"/>),
    /// validated when assigned.
    /// </summary>
    /// <exception cref="ArgumentException">The assigned string is invalid (as the providers throw); the connection keeps its previous string.</exception>
    [AllowNull]
    public override string ConnectionString
    {
        // As SqlClient and Npgsql do: once opened, the string no longer shows secrets unless Persist Security Info=true.
        get => _openedOnce && !_fromDataSource ? ConnectionStrings.WithoutSecrets(_connectionString) : _connectionString;
        set
        {
            if (_state != ConnectionState.Closed)
                throw new InvalidOperationException("The connection string cannot be changed while the connection is open.");
            if (_fromDataSource)
                throw new InvalidOperationException("This connection comes from an RwSplitDataSource, whose configuration is fixed: build another data source instead.");
            if (!string.IsNullOrWhiteSpace(value))
                _factory.Validate(value); // an invalid string fails here, as the providers' setters do, and the old one stays
            _connectionString = value ?? string.Empty;
            _dataSource = null;
            _openedOnce = false;
        }
    }

    /// <summary>The database the connection uses: the one set by <see cref="ChangeDatabase"/>, else the primary's.</summary>
    public override string Database
        => _settings?.Database ?? Physical.Primary?.Database ?? Physical.Replica?.Database ?? _dataSource?.PrimaryAddress.Database ?? string.Empty;

    /// <summary>The primary's host (and port), as the provider names it.</summary>
    public override string DataSource => _dataSource?.PrimaryAddress.ToString() ?? string.Empty;

    /// <summary>The server version, from a physical connection already open (primary first); when none is open, the primary is opened to ask.</summary>
    public override string ServerVersion => (Physical.Primary ?? Physical.Replica ?? GetPrimary(RoutingReason.Read)).ServerVersion;

    /// <inheritdoc />
    public override ConnectionState State => _state;

    /// <summary>The read consistency of this connection's reads. Defaults to the data source's; may be changed at any time.</summary>
    public ReadConsistency Consistency
    {
        get => _consistency ?? _dataSource?.Consistency ?? ReadConsistency.ReadYourWrites;
        set => _consistency = Enum.IsDefined(value) ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "Use Eventual, ReadYourWrites or Strong.");
    }

    /// <summary>Whether session state pinned this connection to the primary until it is closed, and why (<see langword="null"/> if not pinned).</summary>
    public string? PinnedReason => _settings?.PinDetail;

    /// <summary>Whether a statement that writes (or might) ran through this connection (read-your-writes then avoids replicas).</summary>
    public bool HasWritten => Watermark.HasWritten;

    /// <summary>The provider connection to the primary if one is open, else <see langword="null"/>. Never opens one.</summary>
    public DbConnection? CurrentPrimaryConnection => Physical.Primary;

    /// <summary>The provider connection to a replica if one is open, else <see langword="null"/>. Never opens one.</summary>
    public DbConnection? CurrentReplicaConnection => Physical.Replica;

    /// <inheritdoc />
    protected override DbProviderFactory DbProviderFactory => _factory;

    /// <summary>The provider factory of RwSplit for this connection's provider.</summary>
    public RwSplitProviderFactory ProviderFactory => _factory;

    internal RwSplitDialect Dialect => _factory.Dialect;

    /// <summary>The data source of this connection (for a factory-created connection, resolved from the connection string on open).</summary>
    internal RwSplitDataSource? OwningDataSource => _dataSource;

    internal RwSplitDataSource DataSourceOrThrow => _dataSource ?? throw new InvalidOperationException("The connection is not open.");

    // The parts of the logical connection (Connections/): its provider connections, what its reads must see, the
    // transactions its commands run in, and its replayed session commands, database switch and pin.
    internal ref PhysicalConnections Physical => ref _physical; // a struct inside the connection: mutated in place

    internal ref WriteWatermark Watermark => ref _watermark; // a struct inside the connection: mutated in place

    internal ref Enlistment Enlistment => ref _enlistment; // a struct inside the connection: mutated in place

    internal SessionSettings Settings => _settings ??= new SessionSettings(this); // allocated on first use: most sessions never need it

    internal SessionSettings? SettingsIfAny => _settings;

    internal RwSplitTransaction? CurrentTransaction => Enlistment.Local;

    /// <summary>Open, not disposed: what <see cref="ThrowIfNotOpen"/> checks, as a test.</summary>
    internal bool IsOpen => _state == ConnectionState.Open && !_disposed;

    /// <inheritdoc />
    public override void Open()
    {
        if (_state == ConnectionState.Open)
            throw new InvalidOperationException("The connection is already open.");
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_dataSource is null)
        {
            if (string.IsNullOrWhiteSpace(_connectionString))
                throw new InvalidOperationException("The ConnectionString property has not been initialized: set it to the provider's connection string plus RwSplit's keywords (Replicas=...).");
            _dataSource = _factory.GetDataSource(_connectionString);
        }

        if (_dataSource.FloorToken is { } floor)
            Watermark.Require(floor);
        Enlistment.Explicit = null;
        _openedOnce = true;
        SetState(ConnectionState.Open);
    }

    /// <inheritdoc />
    /// <remarks>Opens no physical connection: those open on first use, so there is nothing to wait for.</remarks>
    public override Task OpenAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
            return Task.FromCanceled(cancellationToken);
        try
        {
            Open();
            return Task.CompletedTask;
        }
        catch (Exception ex)
        {
            return Task.FromException(ex);
        }
    }

    /// <summary>
    /// Returns the physical connections to their pools, rolls back an open transaction, and forgets session state (pins,
    /// replayed <c>SET</c> commands, the database switch). Read-your-writes knowledge survives, so a reopened connection
    /// still reads its own writes.
    /// </summary>
    public override void Close()
    {
        if (_state == ConnectionState.Closed)
            return;
        try
        {
            // Both complete synchronously when async is false: no state machine on the sync path.
            Enlistment.RollBackLocalAsync(false).GetAwaiter().GetResult();
            Physical.CloseAsync(false).GetAwaiter().GetResult();
        }
        finally
        {
            OnClosed();
        }
    }

    /// <inheritdoc />
    public override async Task CloseAsync()
    {
        if (_state == ConnectionState.Closed)
            return;
        try
        {
            await Enlistment.RollBackLocalAsync(true).ConfigureAwait(false);
            await Physical.CloseAsync(true).ConfigureAwait(false);
        }
        finally
        {
            OnClosed();
        }
    }

    private void OnClosed()
    {
        Enlistment.Reset();
        _settings?.Reset();
        Watermark.ForgetReads();
        SetState(ConnectionState.Closed);
    }

    /// <summary>
    /// Forgets the session, as a pooled <see cref="DbConnection"/> is reset before its next user: what it wrote (so its
    /// reads no longer wait for replicas to replay those writes), tokens applied to it, its last read (monotonic reads)
    /// and a <see cref="Consistency"/> set on it. For an object that outlives one unit of work, such as the connection of
    /// a pooled EF Core <c>DbContext</c>; a connection closed and reopened otherwise keeps reading its own writes.
    /// </summary>
    /// <exception cref="InvalidOperationException">The connection is open: close it first.</exception>
    public void ResetSession()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_state != ConnectionState.Closed)
            throw new InvalidOperationException("The connection is open: close it before resetting its session.");
        _watermark = new WriteWatermark();
        _consistency = null;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            Close();
            _disposed = true;
        }

        base.Dispose(disposing);
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            await CloseAsync().ConfigureAwait(false);
            _disposed = true;
        }

        await base.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Switches the database on every physical connection open now and on those opened later. SQL Server switches in
    /// place; Npgsql reopens its connection to the other database.
    /// </summary>
    /// <param name="databaseName">The database.</param>
    public override void ChangeDatabase(string databaseName) => ChangeDatabaseAsync(databaseName, false, default).GetAwaiter().GetResult();

    /// <inheritdoc cref="ChangeDatabase"/>
    /// <param name="databaseName">The database.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public override async Task ChangeDatabaseAsync(string databaseName, CancellationToken cancellationToken = default)
        => await ChangeDatabaseAsync(databaseName, true, cancellationToken).ConfigureAwait(false);

    private ValueTask ChangeDatabaseAsync(string databaseName, bool async, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(databaseName);
        return OpenOrThrow.Physical.ChangeDatabaseAsync(databaseName, async, cancellationToken);
    }

    /// <summary>Begins a local transaction on the primary. Every command of the connection runs on the primary until it ends.</summary>
    /// <param name="isolationLevel">The isolation level.</param>
    public new RwSplitTransaction BeginTransaction(IsolationLevel isolationLevel = IsolationLevel.Unspecified)
        => Enlistment.BeginLocalAsync(OpenOrThrow, isolationLevel, false, default).GetAwaiter().GetResult();

    /// <inheritdoc cref="BeginTransaction(IsolationLevel)"/>
    /// <param name="isolationLevel">The isolation level.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public new async ValueTask<RwSplitTransaction> BeginTransactionAsync(IsolationLevel isolationLevel = IsolationLevel.Unspecified, CancellationToken cancellationToken = default)
        => await Enlistment.BeginLocalAsync(OpenOrThrow, isolationLevel, true, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => BeginTransaction(isolationLevel);

    /// <inheritdoc />
    protected override async ValueTask<DbTransaction> BeginDbTransactionAsync(IsolationLevel isolationLevel, CancellationToken cancellationToken)
        => await BeginTransactionAsync(isolationLevel, cancellationToken).ConfigureAwait(false);

    /// <summary>Enlists in <paramref name="transaction"/>: every command then runs on the primary, enlisted in it, until it ends.</summary>
    /// <param name="transaction">The transaction, or <see langword="null"/> to stop using an explicit one.</param>
    public override void EnlistTransaction(Transaction? transaction) => OpenOrThrow.Enlistment.Explicit = transaction;

    /// <summary>
    /// Joins an explicit distributed transaction (the async API without <c>TransactionScope</c>): every command then runs
    /// on this data source's primary inside the transaction's branch for its database, until the transaction ends.
    /// </summary>
    /// <param name="transaction">The transaction, or <see langword="null"/> to leave it.</param>
    public void EnlistDistributedTransaction(RwSplitDistributedTransaction? transaction) => OpenOrThrow.Enlistment.Join(transaction);

    /// <summary>Creates a command bound to this connection.</summary>
    public new RwSplitCommand CreateCommand() => new(Dialect) { Connection = this };

    /// <inheritdoc />
    protected override DbCommand CreateDbCommand() => CreateCommand();

    /// <summary>Whether the provider can batch statements (Npgsql and SqlClient on .NET 6 and later can): then <see cref="CreateBatch"/> works.</summary>
    public override bool CanCreateBatch => Dialect.ProviderFactory.CanCreateBatch;

    /// <summary>Creates a batch bound to this connection; routed as a whole (see <see cref="RwSplitBatch"/>).</summary>
    /// <returns>The batch.</returns>
    /// <exception cref="NotSupportedException">The provider cannot batch (<see cref="CanCreateBatch"/> is false).</exception>
    public new RwSplitBatch CreateBatch() => new(Dialect) { Connection = this };

    /// <inheritdoc />
    protected override DbBatch CreateDbBatch() => CreateBatch();

    /// <inheritdoc />
    public override DataTable GetSchema() => GetPrimary(RoutingReason.Read).GetSchema();

    /// <inheritdoc />
    public override DataTable GetSchema(string collectionName) => GetPrimary(RoutingReason.Read).GetSchema(collectionName);

    /// <inheritdoc />
    public override DataTable GetSchema(string collectionName, string?[] restrictionValues) => GetPrimary(RoutingReason.Read).GetSchema(collectionName, restrictionValues);

    /// <summary>
    /// The escape hatch: opens (if needed) and returns the provider's own connection to the primary, for APIs that need
    /// the provider type (<c>SqlBulkCopy</c>, <c>NpgsqlBinaryImporter</c>). The logical connection is pinned to the
    /// primary from then on, since RwSplit cannot see what runs on it. In a distributed transaction it is the branch's
    /// connection, and the branch counts as written (it commits atomically with the others). Refused inside
    /// <see cref="RwSplitScope.PreventWrites"/>.
    /// </summary>
    /// <exception cref="RwSplitException">Inside a PreventWrites scope (<see cref="RwSplitError.WriteBlocked"/>).</exception>
    public DbConnection GetPrimaryConnection() => OpenOrThrow.Physical.HandOverPrimaryAsync(false, default).GetAwaiter().GetResult();

    /// <inheritdoc cref="GetPrimaryConnection"/>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public ValueTask<DbConnection> GetPrimaryConnectionAsync(CancellationToken cancellationToken = default) => OpenOrThrow.Physical.HandOverPrimaryAsync(true, cancellationToken);

    private DbConnection GetPrimary(RoutingReason reason) => OpenOrThrow.GetPhysicalAsync(RoutingDecision.ToPrimary(reason), false, default).GetAwaiter().GetResult();

    /// <summary>Creates a closed copy of this connection with the same configuration.</summary>
    public RwSplitConnection Clone()
    {
        var clone = _fromDataSource ? new RwSplitConnection(_dataSource!) : new RwSplitConnection(_factory) { ConnectionString = _connectionString };
        clone._consistency = _consistency;
        return clone;
    }

    object ICloneable.Clone() => Clone();

    /// <summary>
    /// Exports a token covering this connection's writes (and tokens applied to it), for a later read elsewhere; see
    /// <see cref="ConsistencyToken"/>. <see langword="null"/> when the connection neither wrote nor received a token.
    /// After a write, asks the primary for its current position (one round trip) unless already known.
    /// </summary>
    public string? GetConsistencyToken() => ReadYourWrites.ExportTokenAsync(OpenOrThrow, false, default).GetAwaiter().GetResult();

    /// <inheritdoc cref="GetConsistencyToken"/>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public ValueTask<string?> GetConsistencyTokenAsync(CancellationToken cancellationToken = default) => ReadYourWrites.ExportTokenAsync(OpenOrThrow, true, cancellationToken);

    /// <summary>
    /// Makes this connection's reads see at least the writes the token covers: under
    /// <see cref="ReadConsistency.ReadYourWrites"/> a read runs on a replica only once the replica has replayed them.
    /// </summary>
    /// <param name="token">A token from <see cref="GetConsistencyToken"/> (of any connection or data source over the same servers).</param>
    /// <exception cref="RwSplitException">The token is malformed, of an unknown version, or from another database cluster.</exception>
    public void ApplyConsistencyToken(string token) => Watermark.Require(OpenOrThrow.DataSourceOrThrow.Validate(ConsistencyToken.Parse(token)));

    /// <summary>
    /// Records that this session wrote: its reads under <see cref="ReadConsistency.ReadYourWrites"/> then see the
    /// primary's state as of the next statement (the primary's position is asked once, when a read needs it). RwSplit
    /// calls it for every statement that writes or might; call it after writing through a connection RwSplit does not
    /// see (<see cref="RwSplitDataSource.CreatePrimaryConnection()"/>, another process that handed over its work). In a
    /// distributed transaction the branch on the primary counts as written too.
    /// </summary>
    public void MarkWritten()
    {
        Enlistment.ActiveBranch?.MarkWritten();
        Watermark.MarkWritten();
    }

    /// <summary>The physical connection for a decision (see <see cref="PhysicalConnections.GetAsync"/>), reading the ambient transaction itself.</summary>
    internal ValueTask<DbConnection> GetPhysicalAsync(RoutingDecision decision, bool async, CancellationToken cancellationToken)
        => Physical.GetAsync(decision, decision.Target == RouteTarget.Primary && Enlistment.Distributed is null ? Enlistment.Ambient : null, async, cancellationToken);

    /// <summary>The inner transaction to give a provider command that runs on <paramref name="physical"/>.</summary>
    internal DbTransaction? InnerTransactionFor(DbConnection physical) => Enlistment.InnerTransactionFor(physical, Physical.Primary);

    internal void ThrowIfNotOpen() => _ = OpenOrThrow;

    /// <summary>This connection, when open; else the exception ADO.NET code expects.</summary>
    private RwSplitConnection OpenOrThrow => IsOpen ? this
        : _disposed ? throw new ObjectDisposedException(nameof(RwSplitConnection))
        : throw new InvalidOperationException("The connection is not open: call Open() or OpenAsync() first.");

    private void SetState(ConnectionState state)
    {
        if (_state == state)
            return;
        _state = state;
        // The event arguments are immutable: the two transitions there are share one instance each, as Npgsql does.
        OnStateChange(state == ConnectionState.Open ? ClosedToOpen : OpenToClosed);
    }
}
