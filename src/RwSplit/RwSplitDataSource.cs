using System;
using System.Collections.Frozen;
using System.Collections.Generic;
using System.Data;
using System.Data.Common;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RwSplit.Providers;
using RwSplit.Routing;
using RwSplit.Topology;
using RwSplit.Transactions;

namespace RwSplit;

/// <summary>
/// The entry point of RwSplit: built once from <see cref="RwSplitOptions"/>, it owns the endpoints, the statement cache
/// and the routing state, and hands out <see cref="RwSplitConnection"/>s. Thread-safe; register it as a singleton.
/// </summary>
/// <example>
/// <code>
/// await using var dataSource = new RwSplitDataSourceBuilder()
///     .Configure(o =&gt; { o.UseNpgsql(); o.Primary = primaryCs; o.Replicas.Add(replicaCs); })
///     .Build();
/// await using var connection = await dataSource.OpenConnectionAsync();
/// </code>
/// </example>
public sealed partial class RwSplitDataSource : DbDataSource
{
    private readonly Endpoint[] _replicas;
    private readonly Endpoint[] _endpoints;
    private readonly FunctionCatalog? _functions;
    private readonly TopologyMonitor? _monitor;
    private readonly SemaphoreSlim? _fallbackSlots;
    private Endpoint _currentPrimary;
    private ConsistencyToken? _latestToken;
    private ConsistencyToken? _floorToken;
    private readonly ConsistencyTokenKeys _tokenKeys;
    private readonly int _fallbackLimit;
    private int _balancerTicket = -1;
    private int _disposed;
    private readonly bool _ownsRecovery;

    /// <summary>Whether the data source was disposed (a drop-in factory then builds a new one for its connection string).</summary>
    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    internal RwSplitDataSource(RwSplitOptions options)
    {
        // Freeze: the runtime reads an immutable copy, later changes to the options object have no effect.
        Dialect = options.Dialect ?? throw new InvalidOperationException("Options were not validated: no dialect.");
        Name = options.Name;
        Consistency = options.Consistency;
        RetryMisroutedWrites = options.RetryMisroutedWrites;
        ReplicaRetryDelay = options.ReplicaRetryDelay;
        HealthMonitoring = options.HealthMonitoring;
        Balancing = options.Balancing;
        ReadYourWritesTimeout = options.ReadYourWritesTimeout;
        ReadAfterWrite = options.ReadAfterWrite;
        PrimaryReadWeight = options.PrimaryReadWeight;
        ReplicaWeights = Topology.ReplicaWeights.From(options.ReplicaWeights);
        FallbackOverflow = options.FallbackOverflow;
        FallbackWaitTimeout = options.FallbackWaitTimeout;
        Logger = (ILogger?)options.LoggerFactory?.CreateLogger("RwSplit") ?? NullLogger.Instance;
        Factory = RwSplitProviderFactory.For(Dialect);

        var connectors = new List<EndpointConnector>();
        try
        {
            var primary = Dialect.CreateConnector(options.Primary!, EndpointRole.Primary, Name);
            connectors.Add(primary);
            Primary = new Endpoint(primary, -1);
            _replicas = new Endpoint[options.Replicas.Count];
            for (var i = 0; i < _replicas.Length; i++)
            {
                var connector = Dialect.CreateConnector(options.Replicas[i], EndpointRole.Replica, Name);
                connectors.Add(connector);
                _replicas[i] = new Endpoint(connector, i);
            }
        }
        catch
        {
            foreach (var connector in connectors)
                connector.Dispose();
            throw;
        }

        _endpoints = [Primary, .. _replicas];
        _currentPrimary = Primary;
        _tokenKeys = ConsistencyTokenKeys.From(options.ConsistencyTokenKeys);
        Statements = new StatementCache(Dialect.CreateClassifier(options.ReadOnlyProcedures.ToFrozenSet(StringComparer.OrdinalIgnoreCase)), options.StatementCacheSize);
        _fallbackLimit = options.FallbackReadLimit;
        InitializeHealth(options);
        if (_replicas.Length > 0)
            _fallbackSlots = new SemaphoreSlim(options.FallbackReadLimit, Math.Max(1, options.FallbackReadLimit));
        if (HealthMonitoring)
        {
            _monitor = new TopologyMonitor(this, _endpoints, options);
            _monitor.Start();
        }

        Diagnostics.RwSplitTelemetry.Register(this);
        Transactions = new DataSourceTransactions(this, options);
        if (Transactions.Enabled)
        {
            _ownsRecovery = options.Recovery is null;
            Recovery = options.Recovery ?? new RwSplitRecovery();
            Recovery.Join(this);
        }
        if (Statements.Classifier.FunctionCatalogQuery is not null)
            _functions = new FunctionCatalog(Statements.Classifier, [.. _replicas, Primary], options.ReadOnlyFunctions.ToFrozenSet(StringComparer.OrdinalIgnoreCase), options.FunctionCatalogRefreshInterval, Logger);
    }

    /// <summary>
    /// The crash recovery of this data source's distributed transactions (<see cref="RwSplitOptions.Recovery"/>), or
    /// <see langword="null"/> when <see cref="RwSplitOptions.DistributedTransactions"/> is off.
    /// </summary>
    public RwSplitRecovery? Recovery { get; }

    /// <summary>The name given in <see cref="RwSplitOptions.Name"/> (the DI key for keyed registrations).</summary>
    public string Name { get; }

    /// <summary>The default read consistency of connections from this data source.</summary>
    public ReadConsistency Consistency { get; }

    /// <summary>The provider dialect.</summary>
    public RwSplitDialect Dialect { get; }

    /// <summary>The primary's identity, free of secrets.</summary>
    public EndpointAddress PrimaryAddress => Primary.Address;

    /// <summary>The replicas' identities, free of secrets, in the order of <see cref="RwSplitOptions.Replicas"/>.</summary>
    public IReadOnlyList<EndpointAddress> ReplicaAddresses => Array.ConvertAll(_replicas, r => r.Address);

    /// <summary>The primary's connection string without its password.</summary>
    public override string ConnectionString => Primary.Connector.RedactedConnectionString;

    /// <summary>The configured primary.</summary>
    internal Endpoint Primary { get; }

    /// <summary>The endpoint writes go to now: the configured primary, or the replica promoted in a failover.</summary>
    internal Endpoint CurrentPrimary => Volatile.Read(ref _currentPrimary);

    internal bool HealthMonitoring { get; }

    internal DataSourceTransactions Transactions { get; }

    internal ReplicaBalancing Balancing { get; }

    internal TimeSpan ReadYourWritesTimeout { get; }

    internal ReadAfterWrite ReadAfterWrite { get; }

    internal double PrimaryReadWeight { get; }

    /// <summary>The replicas' read weights; null when all are equal.</summary>
    internal ReplicaWeights? ReplicaWeights { get; }

    internal FallbackOverflow FallbackOverflow { get; }

    internal TimeSpan FallbackWaitTimeout { get; }

    internal TopologyMonitor? Monitor => _monitor;

    /// <summary>The replica set's identity hash as reported by the servers; 0 until a probe answered.</summary>
    internal ulong IdentityHash
    {
        get
        {
            foreach (var endpoint in _endpoints)
            {
                if (endpoint.Identity is { } identity)
                    return ConsistencyToken.HashIdentity(identity);
            }

            return 0;
        }
    }

    internal Endpoint[] Replicas => _replicas;

    internal int ReplicaCount => _replicas.Length;

    internal StatementCache Statements { get; }

    internal ILogger Logger { get; }

    internal RwSplitProviderFactory Factory { get; }

    internal bool RetryMisroutedWrites { get; }

    internal TimeSpan ReplicaRetryDelay { get; }

    internal int FactsVersion => Statements.Version + (_functions?.Version ?? 0);

    /// <summary>Builds a data source from options, validating them first (all errors together).</summary>
    /// <param name="configure">Configures the options.</param>
    /// <returns>The data source.</returns>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">The options are invalid; the message lists every problem with its fix.</exception>
    public static RwSplitDataSource Create(Action<RwSplitOptions> configure)
        => new RwSplitDataSourceBuilder().Configure(configure).Build();

    /// <summary>Creates a closed connection.</summary>
    public new RwSplitConnection CreateConnection() => (RwSplitConnection)CreateDbConnection();

    /// <summary>Creates and opens a connection. Physical connections are still opened lazily, per route.</summary>
    public new RwSplitConnection OpenConnection() => (RwSplitConnection)base.OpenConnection();

    /// <summary>Creates and opens a connection. Physical connections are still opened lazily, per route.</summary>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public new async ValueTask<RwSplitConnection> OpenConnectionAsync(CancellationToken cancellationToken = default)
        => (RwSplitConnection)await base.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>Creates a command with no connection; it opens and closes a logical connection around each execution.</summary>
    /// <param name="commandText">The SQL text.</param>
    public new RwSplitCommand CreateCommand(string? commandText = null) => (RwSplitCommand)CreateDbCommand(commandText);

    /// <inheritdoc />
    protected override DbConnection CreateDbConnection()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return new RwSplitConnection(this);
    }

    /// <inheritdoc />
    protected override DbCommand CreateDbCommand(string? commandText = null)
    {
        var command = new RwSplitCommand(Dialect) { CommandText = commandText ?? string.Empty };
        command.OwnConnection(CreateConnection());
        return command;
    }

    /// <summary>What the topology monitor last observed of every endpoint, the primary first.</summary>
    public IReadOnlyList<EndpointStatus> GetTopology() => Array.ConvertAll(_endpoints, e => e.Status());

    /// <summary>The primary writes go to now (differs from the configured one after a failover).</summary>
    public EndpointAddress CurrentPrimaryAddress => CurrentPrimary.Address;

    /// <summary>
    /// Probes every endpoint now instead of waiting for the next round (for example at start-up, so that the first reads
    /// already know replica lag). Without health monitoring, does nothing.
    /// </summary>
    /// <param name="cancellationToken">Cancels the probes.</param>
    public Task RefreshTopologyAsync(CancellationToken cancellationToken = default)
        => _monitor?.ProbeAllAsync(cancellationToken) ?? Task.CompletedTask;

    /// <summary>
    /// A token covering every write whose token this data source's connections exported (see
    /// <see cref="ConsistencyToken"/>), or <see langword="null"/> when there is none.
    /// </summary>
    public string? GetConsistencyToken() => Volatile.Read(ref _latestToken)?.ToString();

    /// <summary>
    /// Makes every connection this data source opens from now on read at least up to the token's writes (a floor for
    /// the whole data source, for example after a deployment or a migration run elsewhere).
    /// </summary>
    /// <param name="token">A token from <see cref="RwSplitConnection.GetConsistencyToken"/> or <see cref="GetConsistencyToken"/>.</param>
    /// <exception cref="RwSplitException">The token is invalid or from another database cluster.</exception>
    public void ApplyConsistencyToken(string token)
    {
        var parsed = Validate(ConsistencyToken.Parse(token));
        ConsistencyToken? current;
        do
        {
            current = Volatile.Read(ref _floorToken);
            if (current is not null && ReferenceEquals(ConsistencyToken.Max(current, parsed), current))
                return;
        }
        while (!ReferenceEquals(Interlocked.CompareExchange(ref _floorToken, parsed, current), current));
    }

    /// <summary>A token's position was refuted by the primary: a floor beyond <paramref name="primaryPosition"/> is dropped.</summary>
    internal void DropFloorBeyond(long primaryPosition)
    {
        if (Volatile.Read(ref _floorToken) is { } floor && floor.Position > primaryPosition)
            Interlocked.CompareExchange(ref _floorToken, null, floor);
    }

    /// <summary>The floor applied with <see cref="ApplyConsistencyToken"/>: every new connection starts with it.</summary>
    internal ConsistencyToken? FloorToken => Volatile.Read(ref _floorToken);

    internal void RecordToken(ConsistencyToken token)
    {
        ConsistencyToken? current;
        do
        {
            current = Volatile.Read(ref _latestToken);
            if (current is not null && ReferenceEquals(ConsistencyToken.Max(current, token), current))
                return;
        }
        while (!ReferenceEquals(Interlocked.CompareExchange(ref _latestToken, token, current), current));
    }

    /// <summary>A new token of this data source, signed with its signing key.</summary>
    internal ConsistencyToken CreateToken(ulong identity, long position, DateTimeOffset writtenAt)
        => new(identity, position, writtenAt, _tokenKeys.Signing);

    /// <summary>
    /// Refuses a token this data source did not sign with one of its keys (forged, altered, or from a data source or
    /// service with other keys), and a token of another replica set once the servers' identity is known.
    /// </summary>
    internal ConsistencyToken Validate(ConsistencyToken token)
    {
        if (_tokenKeys.Find(token.KeyId) is not { } key)
        {
            throw new RwSplitException(
                RwSplitError.InvalidConsistencyToken,
                _tokenKeys.Configured
                    ? $"The consistency token was signed with a key data source '{Name}' does not have (a retired key, or another service's): list the key in RwSplitOptions.ConsistencyTokenKeys (after the signing key, while such tokens are in flight) or export a new token."
                    : $"The consistency token was signed with a key data source '{Name}' does not have: without RwSplitOptions.ConsistencyTokenKeys a data source accepts only its own tokens. Configure the same keys on every data source and service that exchanges tokens.");
        }

        if (!token.IsSignedBy(key))
            throw new RwSplitException(RwSplitError.InvalidConsistencyToken, "The consistency token's signature does not match its contents: it was forged or altered. Pass the string exactly as RwSplit produced it, or no token at all.");

        var identity = IdentityHash;
        if (identity != 0 && token.IdentityHash != 0 && token.IdentityHash != identity)
        {
            throw new RwSplitException(
                RwSplitError.InvalidConsistencyToken,
                $"The consistency token comes from another database cluster than data source '{Name}' ({PrimaryAddress}): apply tokens only to data sources over the same primary and replicas.");
        }

        return token;
    }

    /// <summary>Switches writes to <paramref name="promoted"/> if the current primary is still <paramref name="expected"/>.</summary>
    internal bool ChangePrimary(Endpoint expected, Endpoint promoted)
    {
        var changed = ReferenceEquals(Interlocked.CompareExchange(ref _currentPrimary, promoted, expected), expected);
        if (changed)
            NoteFailover();
        return changed;
    }

    /// <summary>The replicas routing may choose from now, with the load data balancing needs.</summary>
    internal TopologySnapshot Snapshot(ulong caughtUp = ulong.MaxValue, ulong fresh = ulong.MaxValue)
    {
        long now = 0; // the clock is read only when some replica is backing off after a failed open
        ulong mask = 0;
        for (var i = 0; i < _replicas.Length; i++)
        {
            var replica = _replicas[i];
            bool available;
            if (replica.HasBackoff)
            {
                if (now == 0)
                    now = Stopwatch.GetTimestamp();
                available = replica.IsAvailable(now);
            }
            else
            {
                available = replica.IsAdmitted;
            }

            if (available && replica.ObservedRole != EndpointRole.Primary)
                mask |= 1UL << i;
        }

        return new TopologySnapshot(_replicas.Length, mask & fresh, caughtUp, Balancing, _replicas, ReadAfterWrite, PrimaryReadWeight, CurrentPrimary, ReplicaWeights);
    }

    /// <summary>Replicas whose measured lag is at most <paramref name="staleness"/> (unknown lag does not qualify).</summary>
    internal ulong ReplicasWithin(TimeSpan staleness)
    {
        if (!HealthMonitoring)
            return 0;
        ulong mask = 0;
        var limit = staleness.TotalSeconds;
        for (var i = 0; i < _replicas.Length; i++)
        {
            if (_replicas[i].LagSeconds is { } lag && lag <= limit)
                mask |= 1UL << i;
        }

        return mask;
    }

    /// <summary>
    /// Takes a slot of the fallback budget for a read that runs on the primary for want of a replica; <see langword="false"/>
    /// when the budget does not apply (no replicas configured).
    /// </summary>
    /// <param name="wait">How long to wait for a slot under <see cref="FallbackOverflow.Wait"/> (at most <see cref="FallbackWaitTimeout"/>, cut to what is left of the execution's timeout).</param>
    /// <param name="async">Whether to wait asynchronously.</param>
    /// <param name="cancellationToken">Ends the wait.</param>
    internal async ValueTask<bool> EnterFallbackAsync(TimeSpan wait, bool async, CancellationToken cancellationToken)
    {
        if (_fallbackSlots is null)
            return false;
        if (_fallbackSlots.Wait(0, CancellationToken.None))
        {
            NoteFallbackRead();
            return true;
        }

        if (FallbackOverflow == FallbackOverflow.Wait)
        {
            var entered = await ProviderIo.TryWaitAsync(_fallbackSlots, wait, async, cancellationToken).ConfigureAwait(false);
            if (entered)
            {
                NoteFallbackRead();
                return true;
            }
        }

        Diagnostics.RwSplitTelemetry.FallbackRejections.Add(1, new KeyValuePair<string, object?>(Diagnostics.TagNames.DataSource, Name));
        throw new RwSplitException(
            RwSplitError.FallbackLimitReached,
            $"No replica of data source '{Name}' can serve this read (down, lagging, or behind this session's writes) and {_fallbackLimit} reads (FallbackReadLimit) already run on the primary instead. Raise FallbackReadLimit or FallbackWaitTimeout, relax the consistency of this read, or restore the replicas.");
    }

    /// <summary>
    /// <see cref="EnterFallbackAsync"/> when it needs no wait: <see langword="true"/> with <paramref name="held"/> when a
    /// slot was free or none is needed (no replicas: reads on the primary are no fallback); <see langword="false"/> when the
    /// read must wait for a slot or be refused.
    /// </summary>
    internal bool TryEnterFallbackNow(out bool held)
    {
        held = _fallbackSlots is not null && _fallbackSlots.Wait(0, CancellationToken.None);
        if (held)
            NoteFallbackRead();
        return held || _fallbackSlots is null;
    }

    internal void ExitFallback() => _fallbackSlots?.Release();


    /// <summary>
    /// Creates a closed provider connection (<c>NpgsqlConnection</c>, <c>SqlConnection</c>) to the current primary, from
    /// its pool, outside RwSplit's routing: for work that must run on the primary as the provider runs it (database
    /// lifecycle, schema migrations, tools that need the provider's type). Read-your-writes cannot see what runs on it:
    /// after writing through it, call <see cref="RwSplitConnection.MarkWritten"/> on the logical connections whose reads
    /// must see those writes. It does not enlist in an ambient transaction.
    /// </summary>
    public DbConnection CreatePrimaryConnection() => CurrentPrimary.Connector.CreateConnection();

    /// <summary>
    /// Creates a closed provider connection to <paramref name="database"/> on the current primary, outside the pools and
    /// with the primary's credentials, for commands that must run from another database (<c>CREATE DATABASE</c> and
    /// <c>DROP DATABASE</c> from <c>postgres</c> or <c>master</c>).
    /// </summary>
    /// <param name="database">The database to connect to.</param>
    /// <exception cref="NotSupportedException">The dialect's connector cannot connect to another database.</exception>
    public DbConnection CreatePrimaryConnection(string database)
    {
        ArgumentException.ThrowIfNullOrEmpty(database);
        return CurrentPrimary.Connector.CreateUnpooledConnection(database);
    }

    /// <summary>
    /// Empties the provider pools of every endpoint (the application's and the monitor's): after the database was
    /// dropped and created again, or its sessions were terminated, pooled connections to it are dead.
    /// </summary>
    public void ClearPools()
    {
        foreach (var endpoint in _endpoints)
            endpoint.Connector.ClearAllPools();
    }

    /// <summary>
    /// Empties the pool <paramref name="connection"/> came from (its endpoint connector's) after the connection or its
    /// server failed. Always <see langword="true"/>, for use in exception filters.
    /// </summary>
    internal bool ClearPoolOf(DbConnection connection)
    {
        try
        {
            foreach (var endpoint in _endpoints)
            {
                if (endpoint.Connector.ClearPool(connection))
                    break;
            }
        }
#pragma warning disable CA1031 // Clearing is an optimisation; failing to clear changes nothing else.
        catch (Exception)
#pragma warning restore CA1031
        {
        }

        return true;
    }

    internal uint NextBalancerTicket() => (uint)Interlocked.Increment(ref _balancerTicket);

    /// <summary>What routing needs to know about a command text of a given type.</summary>
    internal async ValueTask<StatementFacts> ResolveFactsAsync(string commandText, CommandType commandType, bool async, CancellationToken cancellationToken)
    {
        // Every text but a read calling functions is resolved by the cache alone (learned writes, procedures, reads).
        if (Statements.TryResolveFacts(commandText, commandType, out var facts))
            return facts;

        var classification = Statements.Classify(commandText);
        if (_functions is not null)
        {
            var kind = await _functions.ClassifyCallsAsync(classification.Functions, async, cancellationToken).ConfigureAwait(false);
            if (kind != StatementKind.Read)
                return new StatementFacts(kind, RoutingReason.VolatileFunction, classification.SessionEffect, classification.Hint);
        }

        return StatementFacts.From(classification, RoutingReason.Read, RoutingReason.Write);
    }

    private void LeaveRecovery()
    {
        Recovery?.Leave(this);
        if (_ownsRecovery)
            Recovery?.Dispose();
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Diagnostics.RwSplitTelemetry.Unregister(this);
            LeaveRecovery();
            _monitor?.Stop(); // the loop ends on its own and closes its probe connections; DisposeAsync waits for it
            _fallbackSlots?.Dispose();
            Primary.Connector.Dispose();
            foreach (var replica in _replicas)
                replica.Connector.Dispose();
            _functions?.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <inheritdoc />
    protected override async ValueTask DisposeAsyncCore()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Diagnostics.RwSplitTelemetry.Unregister(this);
            LeaveRecovery();
            if (_monitor is not null)
                await _monitor.DisposeAsync().ConfigureAwait(false);
            _fallbackSlots?.Dispose();
            await Primary.Connector.DisposeAsync().ConfigureAwait(false);
            foreach (var replica in _replicas)
                await replica.Connector.DisposeAsync().ConfigureAwait(false);
            _functions?.Dispose();
        }

        await base.DisposeAsyncCore().ConfigureAwait(false);
    }
}
