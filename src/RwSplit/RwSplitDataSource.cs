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
using RwSplit.Routing;
using RwSplit.Topology;

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
public sealed class RwSplitDataSource : DbDataSource
{
    private readonly Endpoint[] _replicas;
    private readonly FunctionCatalog? _functions;
    private int _balancerTicket = -1;
    private int _disposed;

    internal RwSplitDataSource(RwSplitOptions options)
    {
        // Freeze: the runtime reads an immutable copy, later changes to the options object have no effect.
        Dialect = options.Dialect ?? throw new InvalidOperationException("Options were not validated: no dialect.");
        Name = options.Name;
        Consistency = options.Consistency;
        RetryMisroutedWrites = options.RetryMisroutedWrites;
        ReplicaRetryDelay = options.ReplicaRetryDelay;
        ReadOnlyProcedures = options.ReadOnlyProcedures.ToFrozenSet(StringComparer.OrdinalIgnoreCase);
        Logger = (ILogger?)options.LoggerFactory?.CreateLogger("RwSplit") ?? NullLogger.Instance;
        Factory = RwSplitProviderFactory.For(Dialect);

        var connectors = new List<EndpointConnector>();
        try
        {
            var primary = Dialect.CreateConnector(options.Primary!, EndpointRole.Primary);
            connectors.Add(primary);
            Primary = new Endpoint(primary, -1);
            _replicas = new Endpoint[options.Replicas.Count];
            for (var i = 0; i < _replicas.Length; i++)
            {
                var connector = Dialect.CreateConnector(options.Replicas[i], EndpointRole.Replica);
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

        Statements = new StatementCache(Dialect, ReadOnlyProcedures, options.StatementCacheSize);
        if (Dialect.FunctionCatalogQuery is not null)
            _functions = new FunctionCatalog(Dialect, [.. _replicas, Primary], options.ReadOnlyFunctions.ToFrozenSet(StringComparer.OrdinalIgnoreCase), options.FunctionCatalogRefreshInterval, Logger);
    }

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

    internal Endpoint Primary { get; }

    internal ReadOnlySpan<Endpoint> Replicas => _replicas;

    internal int ReplicaCount => _replicas.Length;

    internal StatementCache Statements { get; }

    internal ILogger Logger { get; }

    internal RwSplitProviderFactory Factory { get; }

    internal bool RetryMisroutedWrites { get; }

    internal TimeSpan ReplicaRetryDelay { get; }

    internal IReadOnlySet<string> ReadOnlyProcedures { get; }

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

    /// <summary>The availability of the replicas now.</summary>
    internal TopologySnapshot Snapshot()
    {
        var now = Stopwatch.GetTimestamp();
        ulong mask = 0;
        for (var i = 0; i < _replicas.Length; i++)
        {
            if (_replicas[i].IsAvailable(now))
                mask |= 1UL << i;
        }

        return new TopologySnapshot(_replicas.Length, mask);
    }

    internal uint NextBalancerTicket() => (uint)Interlocked.Increment(ref _balancerTicket);

    /// <summary>What routing needs to know about a command text of a given type.</summary>
    internal async ValueTask<StatementFacts> ResolveFactsAsync(string commandText, CommandType commandType, bool async, CancellationToken cancellationToken)
    {
        if (commandType == CommandType.StoredProcedure)
            return Facts(Dialect.ClassifyProcedure(commandText, ReadOnlyProcedures), RoutingReason.ReadOnlyProcedure, RoutingReason.StoredProcedure);
        if (commandType == CommandType.TableDirect)
            return StatementFacts.Read;
        if (Statements.IsLearnedWrite(commandText))
            return new StatementFacts(StatementKind.Write, RoutingReason.LearnedWrite);

        var classification = Statements.Classify(commandText);
        if (classification.Kind == StatementKind.Read && classification.Functions.Count > 0 && _functions is not null)
        {
            var kind = await _functions.ClassifyCallsAsync(classification.Functions, async, cancellationToken).ConfigureAwait(false);
            if (kind != StatementKind.Read)
                return new StatementFacts(kind, RoutingReason.VolatileFunction, classification.SessionEffect, classification.Hint);
        }

        return Facts(classification, RoutingReason.Read, RoutingReason.Write);
    }

    private static StatementFacts Facts(StatementClassification c, RoutingReason readCause, RoutingReason writeCause)
        => new(c.Kind, c.Kind switch
        {
            StatementKind.Read => readCause,
            StatementKind.Write => writeCause,
            _ => RoutingReason.UnknownStatement,
        }, c.SessionEffect, c.Hint);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
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
            await Primary.Connector.DisposeAsync().ConfigureAwait(false);
            foreach (var replica in _replicas)
                await replica.Connector.DisposeAsync().ConfigureAwait(false);
            _functions?.Dispose();
        }

        await base.DisposeAsyncCore().ConfigureAwait(false);
    }
}
