using System;
using System.Globalization;
using System.Collections.Generic;
using System.ComponentModel;
using System.Data;
using System.Data.Common;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;
using System.Transactions;
using Microsoft.Extensions.Logging;
using RwSplit.Diagnostics;
using RwSplit.Routing;
using RwSplit.Topology;
using RwSplit.Transactions;
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
    private const int MaxReplayedCommands = 64;

    private readonly RwSplitProviderFactory _factory;
    private RwSplitDataSource? _dataSource;
    private string _connectionString;
    private ConnectionState _state;
    private DbConnection? _primary;
    private DbConnection? _replica;
    private int _replicaIndex = -1;
    private RwSplitTransaction? _transaction;
    private string? _pinDetail;
    private bool _hasWritten;
    private bool _writeUnsynced;
    private long _requiredPosition = -1;
    private DateTimeOffset _lastWriteUtc;
    private ulong _tokenIdentity;
    private Endpoint? _primaryEndpoint;
    private RwSplitDistributedTransaction? _distributed;
    private Branch? _activeBranch;
    private ulong _excludedReplicas;
    private List<string>? _replay;
    private List<string>? _pendingReplay; // in the order run (savepoints cut it back), deduplicated at commit
    private List<(string Name, int Length)>? _savepoints;

    // Monotonic reads: the server the session's last read ran on (a replica's index, ReadOnPrimary, or NoReadYet).
    private const int NoReadYet = -1;
    private const int ReadOnPrimary = -2;
    private int _lastReadServer = NoReadYet;
    private long _lastReadTimestamp;
    private string? _database;
    private Transaction? _explicitEnlistment;
    private bool _disposed;
    private readonly bool _fromDataSource;
    private ReadConsistency? _consistency;
    private bool _openedOnce;

    internal RwSplitConnection(RwSplitDataSource dataSource)
    {
        _dataSource = dataSource;
        _fromDataSource = true;
        _factory = dataSource.Factory;
        _connectionString = dataSource.ConnectionString;
    }

    internal RwSplitConnection(RwSplitProviderFactory factory)
    {
        _factory = factory;
        _connectionString = string.Empty;
    }

    /// <summary>
    /// For a connection from a data source: the primary's connection string without its password (read-only). For a
    /// connection created by an <see cref="RwSplitProviderFactory"/>: the drop-in connection string (the provider's
    /// connection string plus RwSplit's keywords, see <see cref="RwSplitProviderFactory.CreateConnection(string)"/>).
    /// </summary>
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
            _connectionString = value ?? string.Empty;
            _dataSource = null;
            _openedOnce = false;
        }
    }

    /// <summary>The data source of this connection (for a factory-created connection, resolved from the connection string on open).</summary>
    internal RwSplitDataSource? OwningDataSource => _dataSource;

    /// <summary>The database the connection uses: the one set by <see cref="ChangeDatabase"/>, else the primary's.</summary>
    public override string Database => _database ?? _primary?.Database ?? _replica?.Database ?? _dataSource?.PrimaryAddress.Database ?? string.Empty;

    /// <summary>The primary's host (and port), as the provider names it.</summary>
    public override string DataSource => _dataSource?.PrimaryAddress.ToString() ?? string.Empty;

    /// <summary>
    /// The server version, from a physical connection already open (primary first); when none is open, the primary is
    /// opened to ask.
    /// </summary>
    public override string ServerVersion
    {
        get
        {
            ThrowIfNotOpen();
            var physical = _primary ?? _replica ?? GetPhysicalAsync(RoutingDecision.ToPrimary(RoutingReason.Read), false, default).GetAwaiter().GetResult();
            return physical.ServerVersion;
        }
    }

    /// <inheritdoc />
    public override ConnectionState State => _state;

    /// <summary>The read consistency of this connection's reads. Defaults to the data source's; may be changed at any time.</summary>
    public ReadConsistency Consistency
    {
        get => _consistency ?? _dataSource?.Consistency ?? ReadConsistency.ReadYourWrites;
        set => _consistency = Enum.IsDefined(value) ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "Use Eventual, ReadYourWrites or Strong.");
    }

    /// <summary>Whether session state pinned this connection to the primary until it is closed, and why (<see langword="null"/> if not pinned).</summary>
    public string? PinnedReason => _pinDetail;

    /// <summary>Whether a statement that writes (or might) ran through this connection (read-your-writes then avoids replicas).</summary>
    public bool HasWritten => _hasWritten;

    /// <summary>The provider connection to the primary if one is open, else <see langword="null"/>. Never opens one.</summary>
    public DbConnection? CurrentPrimaryConnection => _primary;

    /// <summary>The provider connection to a replica if one is open, else <see langword="null"/>. Never opens one.</summary>
    public DbConnection? CurrentReplicaConnection => _replica;

    /// <inheritdoc />
    protected override DbProviderFactory DbProviderFactory => _factory;

    /// <summary>The provider factory of RwSplit for this connection's provider.</summary>
    public RwSplitProviderFactory ProviderFactory => _factory;

    internal RwSplitDialect Dialect => _factory.Dialect;

    internal RwSplitDataSource DataSourceOrThrow => _dataSource ?? throw new InvalidOperationException("The connection is not open.");

    internal RwSplitTransaction? CurrentTransaction => _transaction;

    internal int CurrentReplicaIndex => _replica is null ? -1 : _replicaIndex;

    /// <inheritdoc />
    public override void Open()
    {
        if (_state == ConnectionState.Open)
            throw new InvalidOperationException("The connection is already open.");
        ObjectDisposedException.ThrowIf(_disposed, this);
        _dataSource ??= ResolveDataSource();
        if (_dataSource.FloorToken is { } floor)
            Require(floor);
        _explicitEnlistment = null;
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

    private RwSplitDataSource ResolveDataSource()
    {
        if (string.IsNullOrWhiteSpace(_connectionString))
            throw new InvalidOperationException("The ConnectionString property has not been initialized: set it to the provider's connection string plus RwSplit's keywords (Replicas=...).");
        return _factory.GetDataSource(_connectionString);
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
            _transaction?.Dispose();
            _primary?.Dispose();
            _replica?.Dispose();
        }
        finally
        {
            ResetSession();
            SetState(ConnectionState.Closed);
        }
    }

    /// <inheritdoc />
    public override async Task CloseAsync()
    {
        if (_state == ConnectionState.Closed)
            return;
        try
        {
            if (_transaction is not null)
                await _transaction.DisposeAsync().ConfigureAwait(false);
            if (_primary is not null)
                await _primary.DisposeAsync().ConfigureAwait(false);
            if (_replica is not null)
                await _replica.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            ResetSession();
            SetState(ConnectionState.Closed);
        }
    }

    private void ResetSession()
    {
        _transaction = null;
        _primary = null;
        _primaryEndpoint = null;
        _replica = null;
        _replicaIndex = -1;
        _lastReadServer = NoReadYet;
        _pinDetail = null;
        _excludedReplicas = 0;
        _replay = null;
        _pendingReplay = null;
        _savepoints = null;
        _database = null;
        _explicitEnlistment = null;
        _distributed = null;
        _activeBranch = null;
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
    public override void ChangeDatabase(string databaseName)
        => ChangeDatabaseAsync(databaseName, false, default).GetAwaiter().GetResult();

    /// <inheritdoc cref="ChangeDatabase"/>
    /// <param name="databaseName">The database.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public override Task ChangeDatabaseAsync(string databaseName, CancellationToken cancellationToken = default)
        => ChangeDatabaseAsync(databaseName, true, cancellationToken).AsTask();

    private async ValueTask ChangeDatabaseAsync(string databaseName, bool async, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(databaseName);
        ThrowIfNotOpen();
        if (_primary is not null)
            await ChangePhysicalDatabaseAsync(_primary, databaseName, async, cancellationToken).ConfigureAwait(false);
        if (_replica is not null)
            await ChangePhysicalDatabaseAsync(_replica, databaseName, async, cancellationToken).ConfigureAwait(false);
        _database = databaseName;
    }

    private static async ValueTask ChangePhysicalDatabaseAsync(DbConnection physical, string databaseName, bool async, CancellationToken cancellationToken)
    {
        if (async)
            await physical.ChangeDatabaseAsync(databaseName, cancellationToken).ConfigureAwait(false);
        else
            physical.ChangeDatabase(databaseName);
    }

    /// <summary>Begins a local transaction on the primary. Every command of the connection runs on the primary until it ends.</summary>
    /// <param name="isolationLevel">The isolation level.</param>
    public new RwSplitTransaction BeginTransaction(IsolationLevel isolationLevel = IsolationLevel.Unspecified)
        => BeginTransactionAsync(isolationLevel, false, default).GetAwaiter().GetResult();

    /// <inheritdoc cref="BeginTransaction(IsolationLevel)"/>
    /// <param name="isolationLevel">The isolation level.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public new async ValueTask<RwSplitTransaction> BeginTransactionAsync(IsolationLevel isolationLevel = IsolationLevel.Unspecified, CancellationToken cancellationToken = default)
        => await BeginTransactionAsync(isolationLevel, true, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => BeginTransaction(isolationLevel);

    /// <inheritdoc />
    protected override async ValueTask<DbTransaction> BeginDbTransactionAsync(IsolationLevel isolationLevel, CancellationToken cancellationToken)
        => await BeginTransactionAsync(isolationLevel, true, cancellationToken).ConfigureAwait(false);

    private async ValueTask<RwSplitTransaction> BeginTransactionAsync(IsolationLevel isolationLevel, bool async, CancellationToken cancellationToken)
    {
        ThrowIfNotOpen();
        if (_transaction is not null)
            throw new InvalidOperationException("A transaction is already in progress; nested transactions are not supported (use savepoints).");
        if (Transaction.Current is not null || _explicitEnlistment is not null || _distributed is { IsCompleted: false })
            throw new InvalidOperationException("The connection is enlisted in a distributed (System.Transactions or RwSplit) transaction; a local transaction cannot be started inside it.");
        var primary = await GetPhysicalAsync(RoutingDecision.ToPrimary(RoutingReason.LocalTransaction), async, cancellationToken).ConfigureAwait(false);
        var inner = async
            ? await primary.BeginTransactionAsync(isolationLevel, cancellationToken).ConfigureAwait(false)
            : primary.BeginTransaction(isolationLevel);
        _hasWritten = true; // a transaction may write through commands RwSplit cannot see (e.g. the inner connection)
        return _transaction = new RwSplitTransaction(this, inner);
    }

    internal void OnTransactionEnded(RwSplitTransaction transaction)
    {
        if (ReferenceEquals(_transaction, transaction))
        {
            _transaction = null;
            _pendingReplay = null; // rolled back, so the server reverted them (after a commit they were taken already)
            _savepoints = null;
        }
    }

    /// <summary>
    /// Enlists in <paramref name="transaction"/>: every command then runs on the primary, enlisted in it, until it ends.
    /// </summary>
    /// <param name="transaction">The transaction, or <see langword="null"/> to stop using an explicit one.</param>
    public override void EnlistTransaction(Transaction? transaction)
    {
        ThrowIfNotOpen();
        _explicitEnlistment = transaction;
    }

    /// <summary>
    /// Joins an explicit distributed transaction (the async API without <c>TransactionScope</c>): every command then runs
    /// on this data source's primary inside the transaction's branch for its database, until the transaction ends.
    /// </summary>
    /// <param name="transaction">The transaction, or <see langword="null"/> to leave it.</param>
    public void EnlistDistributedTransaction(RwSplitDistributedTransaction? transaction)
    {
        ThrowIfNotOpen();
        if (transaction is not null && _transaction is not null)
            throw new InvalidOperationException("The connection has a local transaction: commit or roll it back before joining a distributed transaction.");
        _distributed = transaction;
        _activeBranch = null;
    }

    /// <summary>
    /// The distributed transaction commands of this connection run in now, if any. <paramref name="ambient"/> is
    /// <see cref="AmbientTransaction"/>, read once by the caller.
    /// </summary>
    private DistributedTransaction? CurrentDistributed(Transaction? ambient)
    {
        if (_distributed is { } explicitTransaction)
            return explicitTransaction.IsCompleted ? null : explicitTransaction.Inner;
        return ambient is null ? null : TransactionCoordinator.ForAmbient(ambient);
    }

    /// <summary>The System.Transactions transaction commands enlist in: the explicit enlistment, else <see cref="Transaction.Current"/>.</summary>
    private Transaction? AmbientTransaction => _explicitEnlistment ?? Transaction.Current;

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
    public override DataTable GetSchema() => GetPrimary().GetSchema();

    /// <inheritdoc />
    public override DataTable GetSchema(string collectionName) => GetPrimary().GetSchema(collectionName);

    /// <inheritdoc />
    public override DataTable GetSchema(string collectionName, string?[] restrictionValues) => GetPrimary().GetSchema(collectionName, restrictionValues);

    /// <summary>
    /// The escape hatch: opens (if needed) and returns the provider's own connection to the primary, for APIs that need
    /// the provider type (<c>SqlBulkCopy</c>, <c>NpgsqlBinaryImporter</c>). The logical connection is pinned to the
    /// primary from then on, since RwSplit cannot see what runs on it. In a distributed transaction it is the branch's
    /// connection, and the branch counts as written (it commits atomically with the others). Refused inside
    /// <see cref="RwSplitScope.PreventWrites"/>.
    /// </summary>
    /// <exception cref="RwSplitException">Inside a PreventWrites scope (<see cref="RwSplitError.WriteBlocked"/>).</exception>
    public DbConnection GetPrimaryConnection() => GetPrimaryConnectionAsync(false, default).GetAwaiter().GetResult();

    /// <inheritdoc cref="GetPrimaryConnection"/>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public ValueTask<DbConnection> GetPrimaryConnectionAsync(CancellationToken cancellationToken = default)
        => GetPrimaryConnectionAsync(true, cancellationToken);

    private async ValueTask<DbConnection> GetPrimaryConnectionAsync(bool async, CancellationToken cancellationToken)
    {
        ThrowIfNotOpen();
        if (RwSplitScope.IsPreventWrites)
        {
            throw new RwSplitException(
                RwSplitError.WriteBlocked,
                "A PreventWrites scope refused the provider connection to the primary: whatever runs on it (COPY, bulk copy, any command) cannot be checked. Get it outside the scope.");
        }

        var primary = await GetPhysicalAsync(RoutingDecision.ToPrimary(RoutingReason.PinnedSession), async, cancellationToken).ConfigureAwait(false);
        Pin("the provider connection to the primary was handed to the application");

        // Anything may be written through it: in a distributed transaction it is the branch's connection, whose branch
        // then takes part in the atomic commit as a writer; outside one, read-your-writes covers it.
        MarkWritten();
        return primary;
    }

    private DbConnection GetPrimary()
    {
        ThrowIfNotOpen();
        return GetPhysicalAsync(RoutingDecision.ToPrimary(RoutingReason.Read), false, default).GetAwaiter().GetResult();
    }

    /// <summary>Creates a closed copy of this connection with the same configuration.</summary>
    public RwSplitConnection Clone()
    {
        var clone = _fromDataSource
            ? new RwSplitConnection(_dataSource!)
            : new RwSplitConnection(_factory) { ConnectionString = _connectionString };
        clone._consistency = _consistency;
        return clone;
    }

    object ICloneable.Clone() => Clone();

    // ---- Routing support, used by RwSplitCommand ----

    /// <summary>The session half of the routing input.</summary>
    internal SessionState GetSessionState(RouteTarget commandTarget, in RwSplitScope.Snapshot scope) => GetSessionState(commandTarget, scope, out _);

    /// <summary>
    /// The session half of the routing input, and the ambient transaction it read (to hand to
    /// <see cref="GetPhysicalAsync(RoutingDecision, Transaction?, bool, CancellationToken)"/>, so that a command reads
    /// <see cref="Transaction.Current"/> once).
    /// </summary>
    internal SessionState GetSessionState(RouteTarget commandTarget, in RwSplitScope.Snapshot scope, out Transaction? ambient)
    {
        ambient = AmbientTransaction;
        return new SessionState
        {
            InLocalTransaction = _transaction is not null,
            InAmbientTransaction = ambient is not null || _distributed is { IsCompleted: false },
            Pinned = _pinDetail is not null,
            HasWritten = _hasWritten,
            CurrentReplica = _replica is null ? -1 : _replicaIndex,
            ExcludedReplicas = _excludedReplicas,
            CommandTarget = commandTarget,
            ForcePrimaryScope = scope.ForcePrimary,
            PreventWrites = scope.PreventWrites,
        };
    }

    /// <summary>Open, not disposed: what <see cref="ThrowIfNotOpen"/> checks, as a test.</summary>
    internal bool IsOpen => _state == ConnectionState.Open && !_disposed;

    internal void Pin(string detail)
    {
        if (_pinDetail is not null)
            return;
        _pinDetail = detail;
        Log.SessionPinned(DataSourceOrThrow.Logger, detail);
    }

    internal void MarkWritten()
    {
        _activeBranch?.MarkWritten();
        _hasWritten = true;
        _writeUnsynced = true;
        _lastWriteUtc = DateTimeOffset.UtcNow;
    }

    // ---- Monotonic reads ----

    /// <summary>Records where a read ran: the data it saw is the floor of the session's next reads.</summary>
    internal void NoteRead(in RoutingDecision decision)
    {
        _lastReadServer = decision.Target == RouteTarget.Replica ? decision.ReplicaIndex : ReadOnPrimary;
        _lastReadTimestamp = Stopwatch.GetTimestamp();
    }

    /// <summary>
    /// Whether <paramref name="decision"/> could make a read-your-writes session go back in time: it sends the read to a
    /// replica other than the server of the session's last read (another replica, which may be ahead of this one, or
    /// the primary, which is ahead of every replica). Then <see cref="RequireReadFloor"/> comes first.
    /// </summary>
    internal bool WouldReadOlderData(in RoutingDecision decision, ReadConsistency consistency)
        => decision.Target == RouteTarget.Replica && consistency == ReadConsistency.ReadYourWrites
           && _lastReadServer != NoReadYet && _lastReadServer != decision.ReplicaIndex;

    /// <summary>
    /// Before a read moves to another server: everything the session's reads may have seen so far becomes a floor, as
    /// a write would (the primary's position now is at least the position of any data read before), so read-your-writes
    /// then only uses a replica that has replayed up to it.
    /// </summary>
    internal void RequireReadFloor()
    {
        _lastReadServer = NoReadYet;
        _hasWritten = true;
        _writeUnsynced = true;

        // Without positions the time rule applies: the data read last was at most as new as the moment of that read.
        var readAt = DateTimeOffset.UtcNow - Stopwatch.GetElapsedTime(_lastReadTimestamp);
        if (readAt > _lastWriteUtc)
            _lastWriteUtc = readAt;
    }

    // ---- Read-your-writes ----

    /// <summary>
    /// Exports a token covering this connection's writes (and tokens applied to it), for a later read elsewhere; see
    /// <see cref="ConsistencyToken"/>. <see langword="null"/> when the connection neither wrote nor received a token.
    /// After a write, asks the primary for its current position (one round trip) unless already known.
    /// </summary>
    public string? GetConsistencyToken() => GetConsistencyTokenAsync(false, default).GetAwaiter().GetResult();

    /// <inheritdoc cref="GetConsistencyToken"/>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public async ValueTask<string?> GetConsistencyTokenAsync(CancellationToken cancellationToken = default)
        => await GetConsistencyTokenAsync(true, cancellationToken).ConfigureAwait(false);

    private async ValueTask<string?> GetConsistencyTokenAsync(bool async, CancellationToken cancellationToken)
    {
        ThrowIfNotOpen();
        if (!_hasWritten)
            return null;
        if (_writeUnsynced)
            await CaptureWritePositionAsync(openPrimary: true, async, cancellationToken).ConfigureAwait(false);
        var dataSource = DataSourceOrThrow;
        var identity = _tokenIdentity != 0 ? _tokenIdentity : dataSource.IdentityHash;
        if (identity == 0)
            identity = await AskPrimaryIdentityAsync(async, cancellationToken).ConfigureAwait(false);
        var token = new ConsistencyToken(identity, _requiredPosition, _lastWriteUtc);
        dataSource.RecordToken(token);
        return token.ToString();
    }

    /// <summary>
    /// The replica set's identity hash from the primary itself, when no probe has reported it yet (the monitor's first
    /// round may still be under way): a token without it would be accepted by a data source over any other cluster.
    /// One round trip, only until the identity is known; 0 when the dialect reports none.
    /// </summary>
    private async ValueTask<ulong> AskPrimaryIdentityAsync(bool async, CancellationToken cancellationToken)
    {
        var dataSource = DataSourceOrThrow;
        if (Dialect.HealthProbeQuery is not { } query || !dataSource.HealthMonitoring)
            return 0;
        var primary = await GetPhysicalAsync(RoutingDecision.ToPrimary(RoutingReason.ReadYourWrites), async, cancellationToken).ConfigureAwait(false);
        var command = primary.CreateCommand();
        await using (command.ConfigureAwait(false))
        {
            command.CommandText = query;
            command.Transaction = InnerTransactionFor(primary);
            var reader = async ? await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteReader();
            await using (reader.ConfigureAwait(false))
            {
                var read = async ? await reader.ReadAsync(cancellationToken).ConfigureAwait(false) : reader.Read();
                if (!read || reader.FieldCount < 4 || reader.IsDBNull(3))
                    return 0;
                var identity = Convert.ToString(reader.GetValue(3), CultureInfo.InvariantCulture)!;
                dataSource.CurrentPrimary.LearnIdentity(identity);
                return ConsistencyToken.HashIdentity(identity);
            }
        }
    }

    /// <summary>
    /// Makes this connection's reads see at least the writes the token covers: under
    /// <see cref="ReadConsistency.ReadYourWrites"/> a read runs on a replica only once the replica has replayed them.
    /// </summary>
    /// <param name="token">A token from <see cref="GetConsistencyToken"/> (of any connection or data source over the same servers).</param>
    /// <exception cref="RwSplitException">The token is malformed, of an unknown version, or from another database cluster.</exception>
    public void ApplyConsistencyToken(string token)
    {
        ThrowIfNotOpen();
        Require(DataSourceOrThrow.Validate(ConsistencyToken.Parse(token)));
    }

    private void Require(ConsistencyToken token)
    {
        _hasWritten = true;
        _requiredPosition = Math.Max(_requiredPosition, token.Position);
        if (token.WrittenAt > _lastWriteUtc)
            _lastWriteUtc = token.WrittenAt;
        if (token.IdentityHash != 0)
            _tokenIdentity = token.IdentityHash;
    }

    /// <summary>Asks the primary where its WAL (or commit log) is now: at least where this session's writes are.</summary>
    private async ValueTask<bool> CaptureWritePositionAsync(bool openPrimary, bool async, CancellationToken cancellationToken)
    {
        var dataSource = DataSourceOrThrow;
        var query = Dialect.WritePositionQuery;
        if (query is null || !dataSource.HealthMonitoring)
        {
            _writeUnsynced = false; // no positions: the time rule applies
            return true;
        }

        if (_primary is null && !openPrimary)
            return false;
        var primary = await GetPhysicalAsync(RoutingDecision.ToPrimary(RoutingReason.ReadYourWrites), async, cancellationToken).ConfigureAwait(false);
        var position = await QueryPositionAsync(primary, query, async, cancellationToken).ConfigureAwait(false);
        if (position is { } p)
            _requiredPosition = Math.Max(_requiredPosition, p);
        _writeUnsynced = false;
        return true;
    }

    private async ValueTask<long?> QueryPositionAsync(DbConnection physical, string query, bool async, CancellationToken cancellationToken)
    {
        var command = physical.CreateCommand();
        await using (command.ConfigureAwait(false))
        {
            command.CommandText = query;
            command.Transaction = InnerTransactionFor(physical);
            var value = async ? await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteScalar();
            return value is null or DBNull ? null : Dialect.ToPosition(value);
        }
    }

    /// <summary>
    /// The replicas known to have replayed this session's writes (bit per replica). Positions when the dialect has them;
    /// else the time rule: a replica whose data, at its last probe, was newer than the last write.
    /// </summary>
    internal ValueTask<ulong> CaughtUpReplicasAsync(bool async, CancellationToken cancellationToken)
    {
        var dataSource = DataSourceOrThrow;
        if (!_hasWritten)
            return new ValueTask<ulong>(ulong.MaxValue);
        if (!dataSource.HealthMonitoring)
            return new ValueTask<ulong>(0UL); // nothing is known of the replicas' progress
        if (_tokenIdentity != 0)
        {
            var identity = dataSource.IdentityHash;
            if (identity == 0)
                return new ValueTask<ulong>(0UL); // cannot check the token's origin yet: the primary is safe
            if (identity != _tokenIdentity)
                return ValueTask.FromException<ulong>(new RwSplitException(RwSplitError.InvalidConsistencyToken, $"The consistency token applied to this connection comes from another database cluster than data source '{dataSource.Name}' ({dataSource.PrimaryAddress})."));
        }

        // Only capturing the write position may need a round trip: the rest runs without an async state machine.
        return _writeUnsynced ? CaughtUpAfterCaptureAsync(async, cancellationToken) : new ValueTask<ulong>(CaughtUpMask());
    }

    private async ValueTask<ulong> CaughtUpAfterCaptureAsync(bool async, CancellationToken cancellationToken)
        => await CaptureWritePositionAsync(openPrimary: false, async, cancellationToken).ConfigureAwait(false) ? CaughtUpMask() : 0;

    private ulong CaughtUpMask()
    {
        var dataSource = DataSourceOrThrow;
        ulong mask = 0;
        var replicas = dataSource.Replicas;
        for (var i = 0; i < replicas.Length; i++)
        {
            var replica = replicas[i];
            if (_requiredPosition >= 0)
            {
                if (replica.Position >= _requiredPosition)
                    mask |= 1UL << i;
            }
            else if (replica.LagSeconds is { } lag && replica.LastProbe is { } probed && probed - TimeSpan.FromSeconds(lag) > _lastWriteUtc)
            {
                mask |= 1UL << i;
            }
        }

        return mask;
    }

    /// <summary>
    /// Waits up to <see cref="RwSplitOptions.ReadYourWritesTimeout"/> for one available replica (this session's, else the
    /// most advanced) to replay this session's writes, polling its position. <see langword="true"/> if it did.
    /// </summary>
    internal ValueTask<bool> WaitForReplicaAsync(ulong available, bool async, CancellationToken cancellationToken)
    {
        var dataSource = DataSourceOrThrow;
        var query = Dialect.ReplayPositionQuery;
        available &= ~_excludedReplicas;
        if (query is null || _requiredPosition < 0 || available == 0 || dataSource.ReadYourWritesTimeout <= TimeSpan.Zero)
            return new ValueTask<bool>(false); // nothing to wait for: no async state machine
        return WaitForReplicaCoreAsync(available, query, async, cancellationToken);
    }

    private async ValueTask<bool> WaitForReplicaCoreAsync(ulong available, string query, bool async, CancellationToken cancellationToken)
    {
        var dataSource = DataSourceOrThrow;
        var replicas = dataSource.Replicas;
        var candidate = _replica is not null && (available & (1UL << _replicaIndex)) != 0 ? _replicaIndex : -1;
        if (candidate < 0)
        {
            // The most advanced replica; ties are broken in turn (balancer ticket), so waits spread over equal replicas.
            var start = (int)(dataSource.NextBalancerTicket() % (uint)replicas.Length);
            for (var k = 0; k < replicas.Length; k++)
            {
                var i = (start + k) % replicas.Length;
                if ((available & (1UL << i)) != 0 && (candidate < 0 || replicas[i].Position > replicas[candidate].Position))
                    candidate = i;
            }
        }

        DbConnection physical;
        try
        {
            physical = await GetPhysicalAsync(RoutingDecision.ToReplica(candidate, RoutingReason.ReadYourWrites), async, cancellationToken).ConfigureAwait(false);
        }
        catch (ReplicaUnavailableException)
        {
            return false;
        }

        var deadline = Stopwatch.GetTimestamp() + (long)(dataSource.ReadYourWritesTimeout.TotalSeconds * Stopwatch.Frequency);
        var delay = 1;
        while (true)
        {
            long? position;
            try
            {
                position = await QueryPositionAsync(physical, query, async, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is DbException or InvalidOperationException && Dialect.IsConnectionFailure(ex, physical))
            {
                // The replica's session died while waiting (terminated, restarted): drop it; the read routes again.
                await DiscardReplicaAsync(candidate, ex, async).ConfigureAwait(false);
                return false;
            }

            if (position is { } p)
            {
                replicas[candidate].ObservePosition(p);
                if (p >= _requiredPosition)
                    return true;
            }

            if (Stopwatch.GetTimestamp() >= deadline)
                return false;
            if (async)
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            else
                Thread.Sleep(delay);
            delay = Math.Min(delay * 2, 20);
        }
    }

    /// <summary>
    /// A statement failed for a reason that is not its server's (a client-side error, a statement error) and the
    /// provider closed its physical connection doing so: forget that connection, so that the session's next command
    /// opens a fresh one (with the session's state replayed) instead of failing, and the endpoint stays in rotation. A
    /// primary connection carrying a transaction or pinned session state is kept: the provider's own error about it
    /// must go on surfacing, as losing that state silently would be worse.
    /// </summary>
    internal void ForgetBroken(DbConnection physical)
    {
        if (physical.State == ConnectionState.Open)
            return;
        if (ReferenceEquals(physical, _replica))
        {
            _replica = null;
            _replicaIndex = -1;
        }
        else if (ReferenceEquals(physical, _primary) && _transaction is null && _distributed is null && _explicitEnlistment is null && _pinDetail is null)
        {
            _primary = null;
            _primaryEndpoint = null;
        }
        else
        {
            return;
        }

        try
        {
            physical.Dispose();
        }
#pragma warning disable CA1031 // A broken connection may fail to close; it is discarded either way.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    /// <summary>A read's replica failed: eject it, drop its connection, and let the read go elsewhere.</summary>
    internal async ValueTask DiscardReplicaAsync(int index, Exception failure, bool async)
    {
        var dataSource = DataSourceOrThrow;
        var endpoint = dataSource.Replicas[index];
        endpoint.MarkUnreachable(dataSource.ReplicaRetryDelay, $"{failure.GetType().Name}: {failure.Message}");
        ExcludeReplica(index);
        Log.ReadRetried(dataSource.Logger, endpoint.Address, failure);
        RwSplitTelemetry.ReadRetries.Add(1, new KeyValuePair<string, object?>(TagNames.DataSource, dataSource.Name));
        if (_replica is not null && _replicaIndex == index)
        {
            var broken = _replica;
            _replica = null;
            _replicaIndex = -1;
            try
            {
                await DisposePhysicalAsync(broken, async).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // A broken connection may fail to close; it is discarded either way.
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }
    }

    internal void ExcludeReplica(int index) => _excludedReplicas |= 1UL << index;

    /// <summary>
    /// The physical connection for a decision, opened on first use with the session's database and replayed commands.
    /// A replica that cannot be opened throws <see cref="ReplicaUnavailableException"/> so the caller can route again.
    /// </summary>
    internal ValueTask<DbConnection> GetPhysicalAsync(RoutingDecision decision, bool async, CancellationToken cancellationToken)
        => GetPhysicalAsync(decision, decision.Target == RouteTarget.Primary && _distributed is null ? AmbientTransaction : null, async, cancellationToken);

    /// <inheritdoc cref="GetPhysicalAsync(RoutingDecision, bool, CancellationToken)"/>
    /// <param name="decision">Where the statement goes.</param>
    /// <param name="ambient">The <see cref="AmbientTransaction"/> the caller read (see <see cref="GetSessionState(RouteTarget, in RwSplitScope.Snapshot, out Transaction?)"/>).</param>
    /// <param name="async">Whether to open asynchronously.</param>
    /// <param name="cancellationToken">Cancels the open.</param>
    internal ValueTask<DbConnection> GetPhysicalAsync(RoutingDecision decision, Transaction? ambient, bool async, CancellationToken cancellationToken)
    {
        // The common case without an async state machine: the connection is open already.
        if (ambient is null && _distributed is null or { IsCompleted: true } && TryGetOpenPhysical(decision) is { } open)
            return new ValueTask<DbConnection>(open);
        return GetPhysicalCoreAsync(decision, ambient, async, cancellationToken);
    }

    /// <summary>
    /// The physical connection for a decision when it is open already and no distributed transaction is involved (the
    /// caller checked), else <see langword="null"/>: <see cref="GetPhysicalAsync(RoutingDecision, Transaction?, bool, CancellationToken)"/>
    /// without opening, waiting or throwing.
    /// </summary>
    internal DbConnection? TryGetOpenPhysical(RoutingDecision decision)
    {
        if (decision.Target == RouteTarget.Primary)
        {
            if (_primary is null || !ReferenceEquals(_primaryEndpoint, DataSourceOrThrow.CurrentPrimary))
                return null;
            _activeBranch = null;
            return _primary;
        }

        return _replica is not null && _replicaIndex == decision.ReplicaIndex ? _replica : null;
    }

    private async ValueTask<DbConnection> GetPhysicalCoreAsync(RoutingDecision decision, Transaction? ambient, bool async, CancellationToken cancellationToken)
    {
        var dataSource = DataSourceOrThrow;
        DbConnection physical;
        if (decision.Target == RouteTarget.Primary)
        {
            // Inside a distributed transaction: the transaction's branch for this database, shared by every logical
            // connection of the transaction (opened with Enlist=false: RwSplit is the one durable participant).
            if (CurrentDistributed(ambient) is { } distributed)
            {
                var branch = await distributed.GetBranchAsync(dataSource, async, cancellationToken).ConfigureAwait(false);
                await branch.UseDatabaseAsync(_database ?? dataSource.PrimaryAddress.Database, async, cancellationToken).ConfigureAwait(false);
                if (_replay is not null)
                    await branch.ApplySessionAsync(_replay, async, cancellationToken).ConfigureAwait(false); // this session's SETs, as on its own connections
                _activeBranch = branch;
                return branch.Connection;
            }

            _activeBranch = null;
            var current = dataSource.CurrentPrimary;
            if (_primary is not null && !ReferenceEquals(_primaryEndpoint, current))
            {
                throw new RwSplitException(
                    RwSplitError.PrimaryChanged,
                    $"The primary of data source '{dataSource.Name}' changed from {_primaryEndpoint!.Address} to {current.Address} (failover) while this connection used the old one; its transaction or session state there is lost. Close and reopen the connection, then retry.")
                { Endpoint = _primaryEndpoint.Address };
            }

            if (_primary is null)
            {
                var connection = await OpenPhysicalAsync(current, async, cancellationToken).ConfigureAwait(false);
                _primary = connection;
                _primaryEndpoint = current;
            }

            physical = _primary;
        }
        else
        {
            if (_replica is not null && _replicaIndex == decision.ReplicaIndex)
                return _replica;
            var endpoint = dataSource.Replicas[decision.ReplicaIndex];
            DbConnection connection;
            try
            {
                connection = await OpenPhysicalAsync(endpoint, async, cancellationToken).ConfigureAwait(false);
            }
            catch (RwSplitException ex) when (ex.Error == RwSplitError.EndpointUnreachable)
            {
                endpoint.MarkUnreachable(dataSource.ReplicaRetryDelay, ex.InnerException?.Message ?? ex.Message);
                ExcludeReplica(decision.ReplicaIndex);
                RwSplitTelemetry.ReplicaFailures.Add(1, new KeyValuePair<string, object?>(TagNames.DataSource, dataSource.Name));
                Log.ReplicaOpenFailed(dataSource.Logger, endpoint.Address, dataSource.ReplicaRetryDelay, ex.InnerException ?? ex);
                throw new ReplicaUnavailableException(ex);
            }

            if (_replica is not null)
            {
                if (async)
                    await _replica.DisposeAsync().ConfigureAwait(false);
                else
                    _replica.Dispose();
            }

            _replica = connection;
            _replicaIndex = decision.ReplicaIndex;
            physical = connection;
        }

        return physical;
    }

    private async ValueTask<DbConnection> OpenPhysicalAsync(Endpoint endpoint, bool async, CancellationToken cancellationToken)
    {
        var dataSource = DataSourceOrThrow;
        var connection = endpoint.Connector.CreateConnection();
        try
        {
            if (async)
                await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            else
                connection.Open();
        }
        catch (Exception ex) when (ex is DbException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            await DisposePhysicalAsync(connection, async).ConfigureAwait(false);
            throw new RwSplitException(
                RwSplitError.EndpointUnreachable,
                $"Could not open a connection to the {endpoint.Role.ToString().ToLowerInvariant()} {endpoint.Address} of data source '{dataSource.Name}': {ex.Message} Check that the server is running and reachable, and its connection string in the RwSplit options.",
                ex) { Endpoint = endpoint.Address };
        }

        try
        {
            RwSplitTelemetry.PhysicalOpens.Add(1, new KeyValuePair<string, object?>(TagNames.Role, endpoint.Role == EndpointRole.Primary ? "primary" : "replica"));
            Log.PhysicalOpened(dataSource.Logger, endpoint.Role, endpoint.Address);
            if (_database is not null && !string.Equals(connection.Database, _database, StringComparison.Ordinal))
                await ChangePhysicalDatabaseAsync(connection, _database, async, cancellationToken).ConfigureAwait(false);
            if (_replay is not null)
            {
                try
                {
                    foreach (var text in _replay)
                        await ExecuteSessionCommandAsync(connection, text, async, cancellationToken).ConfigureAwait(false);
                }
                catch (DbException ex)
                {
                    // The session's state cannot be rebuilt on this server (a role or setting gone since): the command
                    // fails, naming the server; the log names neither the command nor its values.
                    Log.ReplayFailed(dataSource.Logger, endpoint.Address, ex);
                    throw;
                }
            }
        }
        catch
        {
            await DisposePhysicalAsync(connection, async).ConfigureAwait(false);
            throw;
        }

        return connection;
    }

    private static async ValueTask DisposePhysicalAsync(DbConnection connection, bool async)
    {
        if (async)
            await connection.DisposeAsync().ConfigureAwait(false);
        else
            connection.Dispose();
    }

    private static async ValueTask ExecuteSessionCommandAsync(DbConnection connection, string text, bool async, CancellationToken cancellationToken)
    {
        var command = connection.CreateCommand();
        await using (command.ConfigureAwait(false))
        {
            command.CommandText = text;
            if (async)
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            else
                command.ExecuteNonQuery();
        }
    }

    /// <summary>
    /// After a replayable session command succeeded on <paramref name="ranOn"/>: run it on the other open physical
    /// connection and remember it for physical connections opened later.
    /// </summary>
    internal async ValueTask ReplaySessionCommandAsync(DbConnection ranOn, string text, bool async, CancellationToken cancellationToken)
    {
        // Ran on a distributed transaction's branch: the connection's own primary and replica need it too.
        var onBranch = _activeBranch is { } branch && ReferenceEquals(ranOn, branch.Connection);
        if (!onBranch && _transaction is not null && Dialect.RevertsSessionCommandsOnRollback)
        {
            // PostgreSQL undoes a SET of a transaction that rolls back: it becomes the session's only if the
            // transaction commits (OnTransactionCommittedAsync); until then it is on the primary alone.
            var pending = _pendingReplay ??= new List<string>();
            if (pending.Count >= 4 * MaxReplayedCommands)
                Pin($"more than {4 * MaxReplayedCommands} session commands in one transaction");
            else
                pending.Add(text);
            return;
        }

        if (_primary is not null && !ReferenceEquals(ranOn, _primary))
            await ExecuteSessionCommandAsync(_primary, text, async, cancellationToken).ConfigureAwait(false);
        if (_replica is not null && !ReferenceEquals(ranOn, _replica))
            await ExecuteSessionCommandAsync(_replica, text, async, cancellationToken).ConfigureAwait(false);
        Remember(text);
        if (onBranch && _replay is not null)
            _activeBranch!.MarkSessionApplied(_replay);
    }

    /// <summary>Adds a session command to the replay list; pins the session when the list is full.</summary>
    private void Remember(string text)
    {
        _replay ??= new List<string>();
        if (!_replay.Contains(text) && _replay.Count >= MaxReplayedCommands)
        {
            Pin($"more than {MaxReplayedCommands} distinct session commands to replay");
            return;
        }

        AddLastWins(_replay, text);
    }

    /// <summary>
    /// Appends <paramref name="text"/>, removing an earlier identical command first: replaying the list in order then
    /// ends where the session ended (<c>SET x = 1; SET x = 2; SET x = 1</c> replays as <c>x = 2, x = 1</c>).
    /// </summary>
    private static void AddLastWins(List<string> list, string text)
    {
        list.Remove(text);
        list.Add(text);
    }

    /// <summary>
    /// The local transaction committed: the session commands it ran (on the primary) become the session's, so the
    /// replica's connection gets them now and later physical connections by replay. A replica that cannot take them is
    /// let go (the next read opens one with the whole list).
    /// </summary>
    internal async ValueTask OnTransactionCommittedAsync(bool async)
    {
        var ran = _pendingReplay;
        _pendingReplay = null;
        _savepoints = null;
        if (ran is null)
            return;
        var pending = new List<string>(ran.Count);
        foreach (var text in ran)
            AddLastWins(pending, text);
        foreach (var text in pending)
        {
            if (_replica is not null)
            {
                try
                {
                    await ExecuteSessionCommandAsync(_replica, text, async, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is DbException or InvalidOperationException)
                {
                    var replica = _replica;
                    _replica = null;
                    _replicaIndex = -1;
                    await DisposePhysicalAsync(replica, async).ConfigureAwait(false);
                }
            }

            Remember(text);
        }
    }

    /// <summary>A savepoint of the local transaction: the session commands run after it are undone by a rollback to it.</summary>
    internal void OnSavepoint(string name) => (_savepoints ??= new()).Add((name, _pendingReplay?.Count ?? 0));

    /// <summary>
    /// The local transaction rolled back to a savepoint: the server undid the session commands run since (PostgreSQL),
    /// so they are not replayed; the savepoint stays, later ones go.
    /// </summary>
    internal void OnRollbackToSavepoint(string name)
    {
        var index = LastSavepoint(name);
        if (index < 0)
            return;
        var length = _savepoints![index].Length;
        if (_pendingReplay is { } pending && pending.Count > length)
            pending.RemoveRange(length, pending.Count - length);
        _savepoints.RemoveRange(index + 1, _savepoints.Count - index - 1);
    }

    /// <summary>A savepoint was released: it and the later ones are gone; the session commands run since stay pending.</summary>
    internal void OnReleaseSavepoint(string name)
    {
        var index = LastSavepoint(name);
        if (index >= 0)
            _savepoints!.RemoveRange(index, _savepoints.Count - index);
    }

    // PostgreSQL folds unquoted names to lower case and a newer savepoint of the same name hides the older one.
    private int LastSavepoint(string name)
        => _savepoints?.FindLastIndex(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase)) ?? -1;

    /// <summary>The inner transaction to give a provider command that runs on <paramref name="physical"/>.</summary>
    internal DbTransaction? InnerTransactionFor(DbConnection physical)
    {
        if (_activeBranch is { } branch && ReferenceEquals(physical, branch.Connection))
            return branch.Transaction;
        return _transaction is not null && ReferenceEquals(physical, _primary) ? _transaction.InnerTransaction : null;
    }

    internal void ThrowIfNotOpen()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_state != ConnectionState.Open)
            throw new InvalidOperationException("The connection is not open: call Open() or OpenAsync() first.");
    }

    private static readonly StateChangeEventArgs ClosedToOpen = new(ConnectionState.Closed, ConnectionState.Open);
    private static readonly StateChangeEventArgs OpenToClosed = new(ConnectionState.Open, ConnectionState.Closed);

    private void SetState(ConnectionState state)
    {
        var previous = _state;
        if (previous == state)
            return;
        _state = state;
        // The event arguments are immutable: the two transitions there are share one instance each, as Npgsql does.
        OnStateChange(state == ConnectionState.Open ? ClosedToOpen : OpenToClosed);
    }
}

/// <summary>A replica could not be opened; the command routes again without it.</summary>
internal sealed class ReplicaUnavailableException : Exception
{
    public ReplicaUnavailableException(Exception inner)
        : base(inner.Message, inner)
    {
    }
}
