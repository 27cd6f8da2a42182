using System;
using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit;

/// <summary>
/// A batch of statements of an <see cref="RwSplitConnection"/>, sent in one round trip. The whole batch goes where its
/// most demanding statement must go: when every statement is a plain read it is routed like a read command (a replica,
/// per the consistency rules); otherwise it runs on the primary, the session counts as written, and a statement with a
/// session effect (<c>SET</c>, temporary tables) pins the session to the primary. Inside a transaction it runs in that
/// transaction. It runs as the provider's own batch: parameters and readers are the provider's.
/// </summary>
public sealed class RwSplitBatch : DbBatch
{
    private readonly DbBatch _inner;
    private readonly RwSplitDialect _dialect;
    private readonly RwSplitBatchCommandCollection _commands;

    // Routes the batch as a command would: one routing path, whose CommandText is the batch's most demanding statement.
    private readonly RwSplitCommand _router;
    private RwSplitConnection? _connection;
    private RwSplitTransaction? _transaction;

    internal RwSplitBatch(RwSplitDialect dialect)
    {
        _dialect = dialect;
        if (!dialect.ProviderFactory.CanCreateBatch)
            throw NotSupported(dialect);
        _inner = dialect.ProviderFactory.CreateBatch();
        _commands = new RwSplitBatchCommandCollection(dialect);
        _router = new RwSplitCommand(dialect);
    }

    internal static NotSupportedException NotSupported(RwSplitDialect dialect)
        => new($"The {dialect.SystemName} provider ({dialect.ProviderFactory.GetType().Name}) cannot create batches (CanCreateBatch is false): use one RwSplitCommand per statement, or a multi-statement command.");

    /// <summary>The statements, in execution order.</summary>
    public new RwSplitBatchCommandCollection BatchCommands => _commands;

    /// <inheritdoc />
    protected override DbBatchCommandCollection DbBatchCommands => _commands;

    /// <summary>The wait before the batch times out, in seconds, as the provider's batch counts it (0: no limit). Default: the provider's.</summary>
    public override int Timeout
    {
        get => _inner.Timeout;
        set => _inner.Timeout = value;
    }

    /// <summary>The logical connection.</summary>
    public new RwSplitConnection? Connection
    {
        get => _connection;
        set
        {
            if (value is not null && !ReferenceEquals(value.Dialect, _dialect))
                throw new ArgumentException($"This batch was created for the {_dialect.SystemName} provider; the connection uses {value.Dialect.SystemName}.", nameof(value));
            _connection = value;
        }
    }

    /// <inheritdoc />
    protected override DbConnection? DbConnection
    {
        get => _connection;
        set => Connection = value switch
        {
            null => null,
            RwSplitConnection rw => rw,
            _ => throw new ArgumentException($"An RwSplitBatch runs on an RwSplitConnection, not on a {value.GetType().Name}. Use the provider's own batch for provider connections.", nameof(value)),
        };
    }

    /// <summary>The logical transaction.</summary>
    public new RwSplitTransaction? Transaction
    {
        get => _transaction;
        set => _transaction = value;
    }

    /// <inheritdoc />
    protected override DbTransaction? DbTransaction
    {
        get => _transaction;
        set => _transaction = value switch
        {
            null => null,
            RwSplitTransaction rw => rw,
            _ => throw new ArgumentException($"An RwSplitBatch takes an RwSplitTransaction (from RwSplitConnection.BeginTransaction), not a {value.GetType().Name}.", nameof(value)),
        };
    }

    /// <summary>Where the last execution (or preparation) of this batch went and why; <see langword="null"/> before the first.</summary>
    public RoutingDecision? LastDecision => _router.LastDecision;

    /// <summary>The provider's own batch, for provider-specific settings. Its connection and statements are set at each execution.</summary>
    public DbBatch InnerBatch => _inner;

    /// <summary>Creates a statement for this batch (add it to <see cref="BatchCommands"/>).</summary>
    /// <returns>A statement whose parameters are the provider's.</returns>
    public new RwSplitBatchCommand CreateBatchCommand() => new(_dialect);

    /// <inheritdoc />
    protected override DbBatchCommand CreateDbBatchCommand() => CreateBatchCommand();

    /// <inheritdoc />
    public override void Cancel() => _inner.Cancel();

    /// <inheritdoc />
    public override void Prepare() => PrepareAsync(false, default).GetAwaiter().GetResult();

    /// <inheritdoc />
    public override Task PrepareAsync(CancellationToken cancellationToken = default) => PrepareAsync(true, cancellationToken).AsTask();

    private async ValueTask PrepareAsync(bool async, CancellationToken cancellationToken)
    {
        var route = await RouteAsync(async, cancellationToken).ConfigureAwait(false);
        try
        {
            Attach(route.Physical);
            if (async)
                await _inner.PrepareAsync(cancellationToken).ConfigureAwait(false);
            else
                _inner.Prepare();
        }
        finally
        {
            if (route.HoldsFallbackSlot)
                _connection!.DataSourceOrThrow.ExitFallback();
        }
    }

    /// <inheritdoc />
    public override int ExecuteNonQuery() => ExecuteAsync(Operation.NonQuery, CommandBehavior.Default, false, default).GetAwaiter().GetResult().Rows;

    /// <inheritdoc />
    public override async Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken = default)
        => (await ExecuteAsync(Operation.NonQuery, CommandBehavior.Default, true, cancellationToken).ConfigureAwait(false)).Rows;

    /// <inheritdoc />
    public override object? ExecuteScalar() => ExecuteAsync(Operation.Scalar, CommandBehavior.Default, false, default).GetAwaiter().GetResult().Value;

    /// <inheritdoc />
    public override async Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken = default)
        => (await ExecuteAsync(Operation.Scalar, CommandBehavior.Default, true, cancellationToken).ConfigureAwait(false)).Value;

    /// <inheritdoc />
    protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior)
        => ExecuteAsync(Operation.Reader, behavior, false, default).GetAwaiter().GetResult().Reader!;

    /// <inheritdoc />
    protected override async Task<DbDataReader> ExecuteDbDataReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken)
        => (await ExecuteAsync(Operation.Reader, behavior, true, cancellationToken).ConfigureAwait(false)).Reader!;

    private enum Operation
    {
        NonQuery,
        Scalar,
        Reader,
    }

    private readonly record struct Outcome(int Rows, object? Value, DbDataReader? Reader);

    private async ValueTask<Outcome> ExecuteAsync(Operation operation, CommandBehavior behavior, bool async, CancellationToken cancellationToken)
    {
        var route = await RouteAsync(async, cancellationToken).ConfigureAwait(false);
        var connection = _connection!;
        var dataSource = connection.DataSourceOrThrow;
        Endpoint? endpoint = null;
        if (route.Decision.Target == RouteTarget.Replica)
        {
            endpoint = dataSource.Replicas[route.Decision.ReplicaIndex];
            endpoint.BeginCommand();
        }

        try
        {
            Attach(route.Physical);
            switch (operation)
            {
                case Operation.NonQuery:
                    return new Outcome(async ? await _inner.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) : _inner.ExecuteNonQuery(), null, null);
                case Operation.Scalar:
                    return new Outcome(0, async ? await _inner.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) : _inner.ExecuteScalar(), null);
                default:
                    // CloseConnection must close the logical connection, not the physical one.
                    var innerBehavior = behavior & ~CommandBehavior.CloseConnection;
                    var reader = async ? await _inner.ExecuteReaderAsync(innerBehavior, cancellationToken).ConfigureAwait(false) : _inner.ExecuteReader(innerBehavior);
                    return new Outcome(0, null, (behavior & CommandBehavior.CloseConnection) != 0 ? new RwSplitDataReader(reader, connection) : reader);
            }
        }
        catch (Exception ex) when (RwSplitCommand.AfterFailure(connection, connection.Dialect, ex, route.Physical))
        {
            throw; // not reached: the filter only clears the pool or forgets a broken connection
        }
        finally
        {
            endpoint?.EndCommand();
            if (route.HoldsFallbackSlot)
                dataSource.ExitFallback();
        }
    }

    /// <summary>
    /// Routes the batch: each statement's facts, combined into those of the most demanding one, then the routing of
    /// <see cref="RwSplitCommand"/> (decision, physical connection, pin, written mark, fallback slot).
    /// </summary>
    private async ValueTask<(DbConnection Physical, RoutingDecision Decision, bool HoldsFallbackSlot)> RouteAsync(bool async, CancellationToken cancellationToken)
    {
        var connection = _connection ?? throw new InvalidOperationException("The batch has no connection: set Connection to an open RwSplitConnection (or create the batch with RwSplitConnection.CreateBatch).");
        connection.ThrowIfNotOpen();
        var commands = _commands.Items;
        if (commands.Count == 0)
            throw new InvalidOperationException("The batch has no statements: add commands from CreateBatchCommand() to BatchCommands before executing.");

        var dataSource = connection.DataSourceOrThrow;
        var demanding = -1; // the statement that decides: the first that may write, else the first that must see the primary
        var demandingWrites = false;
        var sessionEffect = false;
        StatementFacts demandingFacts = default, firstFacts = default;
        for (var i = 0; i < commands.Count; i++)
        {
            var command = commands[i];
            if (string.IsNullOrWhiteSpace(command.CommandText))
                throw new InvalidOperationException($"The command text of batch statement {i} is empty: set CommandText before executing.");
            var facts = await dataSource.ResolveFactsAsync(command.CommandText, command.CommandType, async, cancellationToken).ConfigureAwait(false);
            if (i == 0)
                firstFacts = facts;
            sessionEffect |= facts.SessionEffect != SessionEffect.None;
            var mayWrite = facts.Kind != StatementKind.Read && !(facts.Kind == StatementKind.Unknown && facts.Hint == RoutingHint.Replica);
            if ((mayWrite && !demandingWrites) || (demanding < 0 && (facts.SessionEffect != SessionEffect.None || facts.Hint == RoutingHint.Primary)))
            {
                demanding = i;
                demandingFacts = facts;
                demandingWrites = mayWrite;
            }
        }

        StatementFacts routed;
        if (demanding < 0)
        {
            // Every statement is a plain read: route the batch as its first statement.
            demanding = 0;
            routed = firstFacts;
        }
        else
        {
            // A session effect anywhere pins the session: a batch's SET cannot be replayed apart from its other statements.
            routed = new StatementFacts(demandingFacts.Kind, demandingFacts.Cause, sessionEffect ? SessionEffect.Pin : SessionEffect.None, demandingFacts.Hint);
        }

        _router.Connection = connection;
        _router.Transaction = _transaction;
        _router.CommandText = commands[demanding].CommandText;
        _router.CommandType = commands[demanding].CommandType;
        return await _router.RouteBatchAsync(routed, async, cancellationToken).ConfigureAwait(false);
    }

    private void Attach(DbConnection physical)
    {
        _inner.Connection = physical;
        _inner.Transaction = _connection!.InnerTransactionFor(physical);
        _inner.BatchCommands.Clear();
        foreach (var command in _commands.Items)
            _inner.BatchCommands.Add(command.InnerBatchCommand);
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        _inner.Dispose();
        _router.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        await _inner.DisposeAsync().ConfigureAwait(false);
        await _router.DisposeAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }
}
