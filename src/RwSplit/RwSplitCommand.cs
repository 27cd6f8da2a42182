using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Data;
using System.Data.Common;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Diagnostics;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit;

/// <summary>
/// A command of an <see cref="RwSplitConnection"/>. Each execution is routed on its own to the primary or a replica
/// (<see cref="LastDecision"/> tells where and why), then runs as the provider's own command: parameters are the
/// provider's (<c>SqlParameter</c>, <c>NpgsqlParameter</c>) and readers are the provider's (<c>SqlDataReader</c>,
/// <c>NpgsqlDataReader</c>), untouched.
/// </summary>
[DesignerCategory("")]
public sealed class RwSplitCommand : DbCommand, ICloneable
{
    private readonly DbCommand _inner;
    private readonly RwSplitDialect _dialect;
    private RwSplitConnection? _connection;
    private RwSplitTransaction? _transaction;
    private RwSplitConnection? _ownedConnection;
    private RouteTarget _target;
    private ReadConsistency? _consistency;
    private TimeSpan? _maxStaleness;

    // Facts of the last text routed: re-executing the same command skips even the cache lookup.
    private string? _factsText;
    private CommandType _factsType;
    private int _factsVersion;
    private StatementFacts _facts;

    internal RwSplitCommand(RwSplitDialect dialect)
    {
        _dialect = dialect;
        _inner = dialect.ProviderFactory.CreateCommand()
                 ?? throw new InvalidOperationException($"The {dialect.SystemName} provider factory cannot create commands.");
    }

    /// <summary>Creates a command bound to a connection.</summary>
    /// <param name="commandText">The SQL text.</param>
    /// <param name="connection">The logical connection.</param>
    /// <param name="transaction">The connection's current transaction, if any.</param>
    public RwSplitCommand(string? commandText, RwSplitConnection connection, RwSplitTransaction? transaction = null)
        : this((connection ?? throw new ArgumentNullException(nameof(connection))).Dialect)
    {
        CommandText = commandText;
        _connection = connection;
        _transaction = transaction;
    }

    /// <inheritdoc />
    [AllowNull]
    public override string CommandText
    {
        get => _inner.CommandText;
        set => _inner.CommandText = value ?? string.Empty;
    }

    /// <inheritdoc />
    public override int CommandTimeout
    {
        get => _inner.CommandTimeout;
        set => _inner.CommandTimeout = value;
    }

    /// <inheritdoc />
    public override CommandType CommandType
    {
        get => _inner.CommandType;
        set => _inner.CommandType = value;
    }

    /// <inheritdoc />
    public override bool DesignTimeVisible
    {
        get => _inner.DesignTimeVisible;
        set => _inner.DesignTimeVisible = value;
    }

    /// <inheritdoc />
    public override UpdateRowSource UpdatedRowSource
    {
        get => _inner.UpdatedRowSource;
        set => _inner.UpdatedRowSource = value;
    }

    /// <summary>The provider's own parameter collection.</summary>
    public new DbParameterCollection Parameters => _inner.Parameters;

    /// <inheritdoc />
    protected override DbParameterCollection DbParameterCollection => _inner.Parameters;

    /// <summary>The logical connection.</summary>
    public new RwSplitConnection? Connection
    {
        get => _connection;
        set
        {
            if (value is not null && !ReferenceEquals(value.Dialect, _dialect))
                throw new ArgumentException($"This command was created for the {_dialect.SystemName} provider; the connection uses {value.Dialect.SystemName}.", nameof(value));
            if (!ReferenceEquals(value, _connection) && _inner.Connection is not null)
                _inner.Connection = null; // the provider refuses while the command's reader is open, with its own exception
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
            _ => throw new ArgumentException($"An RwSplitCommand runs on an RwSplitConnection, not on a {value.GetType().Name}. Use the provider's own command for provider connections.", nameof(value)),
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
            _ => throw new ArgumentException($"An RwSplitCommand takes an RwSplitTransaction (from RwSplitConnection.BeginTransaction), not a {value.GetType().Name}.", nameof(value)),
        };
    }

    /// <summary>
    /// Where this command asks to run: <see cref="RouteTarget.Auto"/> (the default: RwSplit decides),
    /// <see cref="RouteTarget.Primary"/> (always the primary), or <see cref="RouteTarget.Replica"/> (a replica whenever
    /// the statement is a read, even under <see cref="ReadConsistency.Strong"/> or after a write). A write always runs
    /// on the primary.
    /// </summary>
    public RouteTarget Target
    {
        get => _target;
        set => _target = value is RouteTarget.Auto or RouteTarget.Primary or RouteTarget.Replica
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "Use Auto, Primary or Replica.");
    }

    /// <summary>The read consistency for this command only; <see langword="null"/> (the default) uses the connection's.</summary>
    public ReadConsistency? Consistency
    {
        get => _consistency;
        set => _consistency = value is null || Enum.IsDefined(value.Value)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "Use Eventual, ReadYourWrites or Strong.");
    }

    /// <summary>
    /// Bounded staleness for this command: as a read it may run on any replica at most this far behind the primary (as
    /// measured by the topology monitor), even after the session wrote and whatever the consistency; when no replica is
    /// that fresh, it runs on the primary. <see langword="null"/> (the default): the connection's consistency decides,
    /// or an enclosing <see cref="RwSplitScope.AllowStaleness"/> scope.
    /// </summary>
    public TimeSpan? MaxStaleness
    {
        get => _maxStaleness;
        set => _maxStaleness = value is null || value > TimeSpan.Zero
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxStaleness must be positive, or null.");
    }

    /// <summary>Where the last execution (or preparation) of this command went and why; <see langword="null"/> before the first.</summary>
    public RoutingDecision? LastDecision { get; private set; }

    /// <summary>The provider's own command, for provider-specific settings. Its connection changes with each route.</summary>
    public DbCommand InnerCommand => _inner;

    /// <inheritdoc />
    public override void Cancel() => _inner.Cancel();

    /// <inheritdoc />
    protected override DbParameter CreateDbParameter() => _inner.CreateParameter();

    /// <summary>Creates a parameter of the provider's own type.</summary>
    public new DbParameter CreateParameter() => _inner.CreateParameter();

    /// <inheritdoc />
    public override void Prepare() => PrepareAsync(false, default).GetAwaiter().GetResult();

    /// <inheritdoc />
    public override Task PrepareAsync(CancellationToken cancellationToken = default) => PrepareAsync(true, cancellationToken).AsTask();

    private async ValueTask PrepareAsync(bool async, CancellationToken cancellationToken)
    {
        var route = await RouteAsync(null, async, cancellationToken).ConfigureAwait(false);
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
    public override int ExecuteNonQuery()
        => TryRouteNow(sync: true, CommandBehavior.Default, out var route, out var ticket)
            ? RunNow(route, Operation.NonQuery, CommandBehavior.Default).Rows
            : ExecuteAsync(Operation.NonQuery, CommandBehavior.Default, ticket, false, default).GetAwaiter().GetResult().Rows;

    /// <inheritdoc />
    public override Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken)
        => TryRouteNow(sync: false, CommandBehavior.Default, out var route, out var ticket)
            ? RunNowAsync(route, Operation.NonQuery, CommandBehavior.Default, static (command, _, token) => command.ExecuteNonQueryAsync(token), static outcome => outcome.Rows, cancellationToken)
            : ExecuteSlowAsync(Operation.NonQuery, CommandBehavior.Default, ticket, static outcome => outcome.Rows, cancellationToken);

    /// <inheritdoc />
    public override object? ExecuteScalar()
        => TryRouteNow(sync: true, CommandBehavior.Default, out var route, out var ticket)
            ? RunNow(route, Operation.Scalar, CommandBehavior.Default).Value
            : ExecuteAsync(Operation.Scalar, CommandBehavior.Default, ticket, false, default).GetAwaiter().GetResult().Value;

    /// <inheritdoc />
    public override Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken)
        => TryRouteNow(sync: false, CommandBehavior.Default, out var route, out var ticket)
            ? RunNowAsync(route, Operation.Scalar, CommandBehavior.Default, static (command, _, token) => command.ExecuteScalarAsync(token), static outcome => outcome.Value, cancellationToken)
            : ExecuteSlowAsync(Operation.Scalar, CommandBehavior.Default, ticket, static outcome => outcome.Value, cancellationToken);

    /// <summary>Executes the command and returns the provider's own reader (wrapped only for <see cref="CommandBehavior.CloseConnection"/>).</summary>
    public new DbDataReader ExecuteReader() => ExecuteDbDataReader(CommandBehavior.Default);

    /// <inheritdoc cref="ExecuteReader()"/>
    /// <param name="behavior">The behavior.</param>
    public new DbDataReader ExecuteReader(CommandBehavior behavior) => ExecuteDbDataReader(behavior);

    /// <inheritdoc />
    protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior)
        => TryRouteNow(sync: true, behavior, out var route, out var ticket)
            ? RunNow(route, Operation.Reader, behavior).Reader!
            : ExecuteAsync(Operation.Reader, behavior, ticket, false, default).GetAwaiter().GetResult().Reader!;

    /// <inheritdoc />
    protected override Task<DbDataReader> ExecuteDbDataReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken)
        => TryRouteNow(sync: false, behavior, out var route, out var ticket)
            ? RunNowAsync(route, Operation.Reader, behavior, static (command, innerBehavior, token) => command.ExecuteReaderAsync(innerBehavior, token), static outcome => outcome.Reader!, cancellationToken)
            : ExecuteSlowAsync(Operation.Reader, behavior, ticket, static outcome => outcome.Reader!, cancellationToken);

    private enum Operation
    {
        NonQuery,
        Scalar,
        Reader,
    }

    /// <summary>What a failed execution on a replica allows: nothing, a retry on the primary, or a retry elsewhere.</summary>
    private enum Recovery
    {
        None,
        Misroute,
        ReplicaFailure,
    }

    private readonly record struct Outcome(int Rows, object? Value, DbDataReader? Reader);

    private readonly record struct Route(DbConnection Physical, RoutingDecision Decision, StatementFacts Facts, bool HoldsFallbackSlot = false);

    // ---- The fast path: routing that needs no I/O and no wait, and the provider's call, without async state machines ----

    /// <summary>
    /// Routes this execution as <see cref="RouteAsync(uint?, bool, CancellationToken)"/> would, without an async state machine, when nothing on the way
    /// needs I/O, a wait, a session replay or a trace: facts at hand, no staleness bound, no distributed transaction, no
    /// read-your-writes data to compute, no fallback slot, and the physical connection open (a synchronous caller
    /// resolves facts and opens the connection here, synchronously, as the general path would). Otherwise
    /// <see langword="false"/>, and
    /// <see cref="ExecuteAsync"/> takes the execution; a balancer ticket drawn before that is handed on in
    /// <paramref name="ticket"/>, so round-robin still sees one draw per decision.
    /// </summary>
    private bool TryRouteNow(bool sync, CommandBehavior behavior, out Route route, out uint? ticket)
    {
        route = default;
        ticket = null;
        var connection = _connection;
        if (connection is null || !connection.IsOpen || _ownedConnection is { State: ConnectionState.Closed }
            || (_transaction is not null && !ReferenceEquals(_transaction, connection.CurrentTransaction))
            || (!sync && (behavior & CommandBehavior.CloseConnection) != 0)
            || _maxStaleness is not null || RwSplitTelemetry.Source.HasListeners())
            return false;
        var text = CommandText;
        if (string.IsNullOrWhiteSpace(text))
            return false;
        var dataSource = connection.DataSourceOrThrow;
        if (!TryGetFactsNow(dataSource, text, sync, out var facts) || facts.SessionEffect != SessionEffect.None)
            return false;
        var scope = RwSplitScope.Capture();
        if (scope.MaxStaleness is not null)
            return false;
        var consistency = _consistency ?? connection.Consistency;
        var session = connection.GetSessionState(_target, scope, out _);
        if (session.InAmbientTransaction || (consistency == ReadConsistency.ReadYourWrites && session.HasWritten && MayRunOnReplica(facts, session)))
            return false;

        var topology = dataSource.Snapshot();
        var drawn = session.CurrentReplica < 0 ? dataSource.NextBalancerTicket() : 0;
        var decision = Router.Route(facts, session, consistency, topology, drawn);
        uint? handedOn = session.CurrentReplica < 0 ? drawn : null;
        if (decision.Target == RouteTarget.None || decision.Reason is RoutingReason.NoReplicaAvailable or RoutingReason.ReadYourWrites
            || connection.WouldReadOlderData(decision, consistency))
        {
            ticket = handedOn; // a refusal, a fallback slot or a wait: RouteAsync decides again with the same ticket
            return false;
        }

        var physical = connection.TryGetOpenPhysical(decision);
        if (physical is null)
        {
            if (!sync)
            {
                ticket = handedOn;
                return false;
            }

            LastDecision = decision;
            try
            {
                physical = connection.GetPhysicalAsync(decision, null, false, default).GetAwaiter().GetResult();
            }
            catch (ReplicaUnavailableException)
            {
                return false; // the replica is excluded now: RouteAsync routes again with a new ticket, as its own loop does
            }
        }

        LastDecision = decision;
        if (decision.Target == RouteTarget.Primary && facts.Kind != StatementKind.Read)
            connection.MarkWritten();
        else
            connection.NoteRead(decision);
        Record(dataSource, decision, decision.Target == RouteTarget.Primary ? dataSource.CurrentPrimary : dataSource.Replicas[decision.ReplicaIndex]);
        route = new Route(physical, decision, facts);
        return true;
    }

    /// <summary>Runs a route of <see cref="TryRouteNow"/> with the provider's synchronous call; a failure on a replica recovers as in <see cref="ExecuteAsync"/>.</summary>
    private Outcome RunNow(in Route route, Operation operation, CommandBehavior behavior)
    {
        var endpoint = BeginTracked(route);
        Outcome outcome;
        Exception? failure = null;
        try
        {
            Attach(route.Physical);
            outcome = operation switch
            {
                Operation.NonQuery => new Outcome(_inner.ExecuteNonQuery(), null, null),
                Operation.Scalar => new Outcome(0, _inner.ExecuteScalar(), null),
                _ => new Outcome(0, null, _inner.ExecuteReader(behavior & ~CommandBehavior.CloseConnection)),
            };
        }
        catch (Exception ex) when (RecoveryFor(route, ex) != Recovery.None)
        {
            failure = ex;
            outcome = default;
        }
        catch (Exception ex) when (!ClearPoolIfBroken(ex, route.Physical))
        {
            throw; // not reached: the filter only clears the pool
        }
        finally
        {
            endpoint?.EndCommand();
        }

        if (failure is not null)
            outcome = RecoverAsync(route, failure, operation, behavior, null, false, default).GetAwaiter().GetResult().Outcome;
        if (outcome.Reader is not null && (behavior & CommandBehavior.CloseConnection) != 0)
            outcome = outcome with { Reader = new RwSplitDataReader(outcome.Reader, _connection!) };
        return outcome;
    }

    /// <summary>
    /// Runs a route of <see cref="TryRouteNow"/> with the provider's asynchronous call, and returns the provider's own
    /// task when it completed successfully at once; else one small async method awaits it (one allocation when the
    /// provider really suspends), ends the replica's outstanding count and recovers a failure as in <see cref="ExecuteAsync"/>.
    /// </summary>
    private Task<T> RunNowAsync<T>(in Route route, Operation operation, CommandBehavior behavior, Func<DbCommand, CommandBehavior, CancellationToken, Task<T>> start, Func<Outcome, T> select, CancellationToken cancellationToken)
    {
        var endpoint = BeginTracked(route);
        Task<T> task;
        try
        {
            Attach(route.Physical);
            task = start(_inner, behavior, cancellationToken);
        }
#pragma warning disable CA1031 // Not swallowed: the task carries it to CompleteAsync, as an async method would.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            task = Task.FromException<T>(ex);
        }

        if (!task.IsCompletedSuccessfully)
            return CompleteAsync(task, route, endpoint, operation, behavior, select, cancellationToken);
        endpoint?.EndCommand();
        return task;
    }

    private async Task<T> CompleteAsync<T>(Task<T> pending, Route route, Endpoint? endpoint, Operation operation, CommandBehavior behavior, Func<Outcome, T> select, CancellationToken cancellationToken)
    {
        Exception failure;
        try
        {
            return await pending.ConfigureAwait(false);
        }
        catch (Exception ex) when (RecoveryFor(route, ex) != Recovery.None)
        {
            failure = ex;
        }
        catch (Exception ex) when (!ClearPoolIfBroken(ex, route.Physical))
        {
            throw; // not reached: the filter only clears the pool
        }
        finally
        {
            endpoint?.EndCommand();
        }

        // Awaited as a Task: the awaiter of RecoverAsync's ValueTask would hold its (Outcome, Route) result inline, and
        // this state machine is the one object boxed whenever the provider really suspends.
        return await RecoverToTaskAsync(route, failure, operation, behavior, select, cancellationToken).ConfigureAwait(false);
    }

    private async Task<T> RecoverToTaskAsync<T>(Route route, Exception failure, Operation operation, CommandBehavior behavior, Func<Outcome, T> select, CancellationToken cancellationToken)
        => select((await RecoverAsync(route, failure, operation, behavior, null, true, cancellationToken).ConfigureAwait(false)).Outcome);

    private Endpoint? BeginTracked(in Route route)
    {
        if (route.Decision.Target != RouteTarget.Replica)
            return null;
        var endpoint = _connection!.DataSourceOrThrow.Replicas[route.Decision.ReplicaIndex];
        endpoint.BeginCommand();
        return endpoint;
    }

    // ---- The general path ----

    private async Task<T> ExecuteSlowAsync<T>(Operation operation, CommandBehavior behavior, uint? ticket, Func<Outcome, T> select, CancellationToken cancellationToken)
        => select(await ExecuteAsync(operation, behavior, ticket, true, cancellationToken).ConfigureAwait(false));

    private async ValueTask<Outcome> ExecuteAsync(Operation operation, CommandBehavior behavior, uint? ticket, bool async, CancellationToken cancellationToken)
    {
        var ownsOpen = false;
        if (_ownedConnection is { State: ConnectionState.Closed } owned)
        {
            // A data-source command: open a logical connection around the execution.
            if (async)
                await owned.OpenAsync(cancellationToken).ConfigureAwait(false);
            else
                owned.Open();
            ownsOpen = true;
            if (operation == Operation.Reader)
                behavior |= CommandBehavior.CloseConnection;
        }

        try
        {
            var route = await RouteAsync(ticket, async, cancellationToken).ConfigureAwait(false);
            var connection = _connection!;
            var dataSource = connection.DataSourceOrThrow;
            using var activity = StartActivity(route, dataSource);
            Outcome outcome;
            try
            {
                outcome = await RunTrackedAsync(route, operation, behavior, async, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (RecoveryFor(route, ex) != Recovery.None)
            {
                (outcome, route) = await RecoverAsync(route, ex, operation, behavior, activity, async, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ClearPoolIfBroken(ex, route.Physical) && activity is not null)
            {
                MarkFailed(activity, ex);
                throw;
            }

            if (route.Facts.SessionEffect == SessionEffect.Replay)
            {
                if (_inner.Parameters.Count > 0)
                    connection.Pin("a session command with parameters cannot be replayed on other servers");
                else
                    await connection.ReplaySessionCommandAsync(route.Physical, CommandText, async, cancellationToken).ConfigureAwait(false);
            }

            if (outcome.Reader is not null && (behavior & CommandBehavior.CloseConnection) != 0)
            {
                outcome = outcome with { Reader = new RwSplitDataReader(outcome.Reader, connection) };
                ownsOpen = false; // closing the reader closes the logical connection
            }

            return outcome;
        }
        finally
        {
            if (ownsOpen)
            {
                if (async)
                    await _ownedConnection!.CloseAsync().ConfigureAwait(false);
                else
                    _ownedConnection!.Close();
            }
        }
    }

    private Recovery RecoveryFor(in Route route, Exception exception)
    {
        if (route.Decision.Target != RouteTarget.Replica)
            return Recovery.None;
        if (_connection!.DataSourceOrThrow.RetryMisroutedWrites && _dialect.IsReadOnlyViolation(exception))
            return Recovery.Misroute;
        return _dialect.IsConnectionFailure(exception, route.Physical) ? Recovery.ReplicaFailure : Recovery.None;
    }

    /// <summary>
    /// After the first attempt on a replica failed with <paramref name="failure"/> (<see cref="RecoveryFor"/> not
    /// <see cref="Recovery.None"/>): a misroute runs once on the primary; a broken replica is ejected and the read runs
    /// on another replica, then on the primary. Returns the outcome and the route that produced it.
    /// </summary>
    private async ValueTask<(Outcome Outcome, Route Route)> RecoverAsync(Route route, Exception failure, Operation operation, CommandBehavior behavior, Activity? activity, bool async, CancellationToken cancellationToken)
    {
        var connection = _connection!;
        try
        {
            var recovery = RecoveryFor(route, failure);
            while (true)
            {
                if (recovery == Recovery.Misroute)
                {
                    // The replica refused the statement as a write, so it did nothing there: run it once on the primary.
                    route = await RetryOnPrimaryAsync(route, failure, async, cancellationToken).ConfigureAwait(false);
                    activity?.SetTag(TagNames.RouteReason, ReasonName(RoutingReason.MisrouteRetry));
                    return (await RunTrackedAsync(route, operation, behavior, async, cancellationToken, retry: true).ConfigureAwait(false), route);
                }

                // The replica failed before any row reached the caller (a reader that returned is never retried):
                // eject it and run the read on another replica, then on the primary.
                await connection.DiscardReplicaAsync(route.Decision.ReplicaIndex, failure, async).ConfigureAwait(false);
                route = await RouteAsync(null, async, cancellationToken).ConfigureAwait(false);
                activity?.SetTag(TagNames.RouteReason, ReasonName(route.Decision.Reason));
                try
                {
                    return (await RunTrackedAsync(route, operation, behavior, async, cancellationToken, retry: true).ConfigureAwait(false), route);
                }
                catch (Exception ex) when ((recovery = RecoveryFor(route, ex)) != Recovery.None)
                {
                    failure = ex;
                }
            }
        }
        catch (Exception ex) when (ClearPoolIfBroken(ex, route.Physical) && activity is not null)
        {
            MarkFailed(activity, ex);
            throw;
        }
    }

    /// <summary>
    /// After a failure that reaches the caller: when the connection or its server failed, the pool's other idle
    /// connections to that server are likely dead too (restart, terminated backends): clear them so the next open dials
    /// anew; when the statement or the caller's input failed and the provider closed the connection anyway, forget
    /// that one connection (<see cref="RwSplitConnection.ForgetBroken"/>) and nothing else. Always true (a filter).
    /// </summary>
    private bool ClearPoolIfBroken(Exception exception, DbConnection physical)
        => AfterFailure(_connection!, _dialect, exception, physical);

    /// <inheritdoc cref="ClearPoolIfBroken"/>
    internal static bool AfterFailure(RwSplitConnection connection, RwSplitDialect dialect, Exception exception, DbConnection physical)
    {
        if (exception is OperationCanceledException)
            return true;
        if (dialect.IsConnectionFailure(exception, physical))
            Transactions.ProviderCalls.ClearPool(connection.DataSourceOrThrow, physical);
        else
            connection.ForgetBroken(physical);
        return true;
    }

    private async ValueTask<Outcome> RunTrackedAsync(Route route, Operation operation, CommandBehavior behavior, bool async, CancellationToken cancellationToken, bool retry = false)
    {
        var dataSource = _connection!.DataSourceOrThrow;
        var endpoint = BeginTracked(route);
        var command = _inner;
        try
        {
            command = Attach(route.Physical, retry);
            switch (operation)
            {
                case Operation.NonQuery:
                    return new Outcome(async ? await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteNonQuery(), null, null);
                case Operation.Scalar:
                    return new Outcome(0, async ? await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) : command.ExecuteScalar(), null);
                default:
                    // CloseConnection must close the logical connection, not the physical one: handled by RwSplitDataReader.
                    var innerBehavior = behavior & ~CommandBehavior.CloseConnection;
                    var reader = async ? await command.ExecuteReaderAsync(innerBehavior, cancellationToken).ConfigureAwait(false) : command.ExecuteReader(innerBehavior);
                    return new Outcome(0, null, reader);
            }
        }
        finally
        {
            if (!ReferenceEquals(command, _inner))
                CopyOutputs(command);
            endpoint?.EndCommand();
            if (route.HoldsFallbackSlot)
                dataSource.ExitFallback();
        }
    }

    /// <summary>
    /// Points the provider command at <paramref name="physical"/>. On a retry after a connection broke under the first
    /// attempt, the provider may still count that attempt's reader as open (Npgsql, when closing it failed on the dead
    /// connection) and refuse a new connection: the retry then runs on a copy of the command (text, type, timeout and
    /// cloned parameters; output values are copied back).
    /// </summary>
    private DbCommand Attach(DbConnection physical, bool retry = false)
    {
        try
        {
            _inner.Connection = physical;
        }
        catch (InvalidOperationException) when (retry && _inner.Parameters.Cast<DbParameter>().All(p => p is ICloneable))
        {
            var copy = _dialect.ProviderFactory.CreateCommand()!;
            copy.CommandText = _inner.CommandText;
            copy.CommandType = _inner.CommandType;
            copy.CommandTimeout = _inner.CommandTimeout;
            foreach (DbParameter parameter in _inner.Parameters)
                copy.Parameters.Add(((ICloneable)parameter).Clone());
            copy.Connection = physical;
            copy.Transaction = _connection!.InnerTransactionFor(physical);
            return copy;
        }

        _inner.Transaction = _connection!.InnerTransactionFor(physical);
        return _inner;
    }

    private void CopyOutputs(DbCommand copy)
    {
        for (var i = 0; i < copy.Parameters.Count && i < _inner.Parameters.Count; i++)
        {
            if (_inner.Parameters[i].Direction != ParameterDirection.Input)
                _inner.Parameters[i].Value = copy.Parameters[i].Value;
        }
    }

    /// <summary>Routes this execution. <paramref name="ticket"/>: a balancer ticket <see cref="TryRouteNow"/> drew for the first decision, if any.</summary>
    private async ValueTask<Route> RouteAsync(uint? ticket, bool async, CancellationToken cancellationToken)
    {
        var connection = _connection ?? throw new InvalidOperationException("The command has no connection: set Connection to an open RwSplitConnection.");
        connection.ThrowIfNotOpen();
        if (string.IsNullOrWhiteSpace(CommandText))
            throw new InvalidOperationException("The command text is empty: set CommandText before executing.");
        if (_transaction is not null && !ReferenceEquals(_transaction, connection.CurrentTransaction))
            throw new InvalidOperationException("The command's transaction is not the current transaction of its connection (it completed, or belongs to another connection).");

        var facts = await GetFactsAsync(connection.DataSourceOrThrow, async, cancellationToken).ConfigureAwait(false);
        return await RouteAsync(connection, facts, ticket, async, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Routes a batch of <see cref="RwSplitBatch"/> whose combined <paramref name="facts"/> the batch worked out: the
    /// same decision, physical connection and session effects (pin, written mark, fallback slot) as an execution of
    /// this command. <see cref="CommandText"/> is the batch's most demanding statement (named in messages).
    /// </summary>
    internal async ValueTask<(DbConnection Physical, RoutingDecision Decision, bool HoldsFallbackSlot)> RouteBatchAsync(StatementFacts facts, bool async, CancellationToken cancellationToken)
    {
        var connection = _connection ?? throw new InvalidOperationException("The batch has no connection: set Connection to an open RwSplitConnection.");
        connection.ThrowIfNotOpen();
        if (_transaction is not null && !ReferenceEquals(_transaction, connection.CurrentTransaction))
            throw new InvalidOperationException("The batch's transaction is not the current transaction of its connection (it completed, or belongs to another connection).");
        var route = await RouteAsync(connection, facts, null, async, cancellationToken).ConfigureAwait(false);
        return (route.Physical, route.Decision, route.HoldsFallbackSlot);
    }

    private async ValueTask<Route> RouteAsync(RwSplitConnection connection, StatementFacts facts, uint? ticket, bool async, CancellationToken cancellationToken)
    {
        var dataSource = connection.DataSourceOrThrow;
        var consistency = _consistency ?? connection.Consistency;
        var scope = RwSplitScope.Capture();
        var staleness = _maxStaleness ?? scope.MaxStaleness;
        var fresh = ulong.MaxValue;
        if (staleness is { } bound)
        {
            consistency = ReadConsistency.Eventual; // the caller bounded staleness explicitly
            fresh = dataSource.ReplicasWithin(bound);
        }

        var waited = false;
        while (true)
        {
            var session = connection.GetSessionState(_target, scope, out var ambient);
            var caughtUp = ulong.MaxValue;
            var readYourWrites = consistency == ReadConsistency.ReadYourWrites && session.HasWritten && MayRunOnReplica(facts, session);
            if (readYourWrites)
                caughtUp = await connection.CaughtUpReplicasAsync(async, cancellationToken).ConfigureAwait(false);
            var topology = dataSource.Snapshot(caughtUp, fresh);
            var drawn = session.CurrentReplica < 0 ? ticket ?? dataSource.NextBalancerTicket() : 0;
            ticket = null; // a ticket handed on serves the first decision only
            var decision = Router.Route(facts, session, consistency, topology, drawn);

            if (decision.Reason == RoutingReason.ReadYourWrites && !waited)
            {
                // No replica is known to have the session's writes yet: give the most promising one a bounded chance.
                waited = true;
                if (await connection.WaitForReplicaAsync(topology.AvailableReplicas, async, cancellationToken).ConfigureAwait(false))
                    continue;
            }

            if (connection.WouldReadOlderData(decision, consistency))
            {
                // Monotonic reads: moving to another server must not show older data than the session has seen.
                connection.RequireReadFloor();
                continue;
            }

            LastDecision = decision;

            if (decision.Target == RouteTarget.None)
            {
                RwSplitTelemetry.WritesBlocked.Add(1, new KeyValuePair<string, object?>(TagNames.DataSource, dataSource.Name));
                var detail = dataSource.Statements.Classify(CommandText).Detail ?? facts.Cause.ToString();
                Log.WriteBlocked(dataSource.Logger, facts.Cause, detail);
                throw new RwSplitException(
                    RwSplitError.WriteBlocked,
                    $"A PreventWrites scope refused this statement before it was sent ({Describe(facts.Cause)}: {detail}). Move the statement out of the scope; if it only reads, declare it in RwSplitOptions.ReadOnlyProcedures / ReadOnlyFunctions or mark it with /* rwsplit:replica */.");
            }

            DbConnection physical;
            try
            {
                physical = await connection.GetPhysicalAsync(decision, ambient, async, cancellationToken).ConfigureAwait(false);
            }
            catch (ReplicaUnavailableException)
            {
                continue; // the replica is excluded now: route again (another replica, then the primary)
            }

            // A read on the primary for want of a replica takes a slot of the fallback budget.
            var slot = decision.Reason is RoutingReason.NoReplicaAvailable or RoutingReason.ReadYourWrites
                       && await dataSource.EnterFallbackAsync(async, cancellationToken).ConfigureAwait(false);

            if (facts.SessionEffect == SessionEffect.Pin)
                connection.Pin(dataSource.Statements.Classify(CommandText).Detail ?? "session state that cannot be replayed");
            if (decision.Target == RouteTarget.Primary && facts.Kind != StatementKind.Read)
                connection.MarkWritten();
            else
                connection.NoteRead(decision);

            Record(dataSource, decision, decision.Target == RouteTarget.Primary ? dataSource.CurrentPrimary : dataSource.Replicas[decision.ReplicaIndex]);
            return new Route(physical, decision, facts, slot);
        }
    }

    /// <summary>Whether nothing but consistency keeps this statement from a replica (so read-your-writes data is worth computing).</summary>
    private static bool MayRunOnReplica(in StatementFacts facts, in SessionState session)
        => (facts.Kind == StatementKind.Read || (facts.Kind == StatementKind.Unknown && facts.Hint == RoutingHint.Replica))
           && facts.SessionEffect != SessionEffect.Pin && facts.Hint != RoutingHint.Primary
           && !session.InLocalTransaction && !session.InAmbientTransaction && !session.Pinned
           && session.CommandTarget == RouteTarget.Auto && !session.ForcePrimaryScope;

    private async ValueTask<Route> RetryOnPrimaryAsync(Route failed, Exception ex, bool async, CancellationToken cancellationToken)
    {
        var connection = _connection!;
        var dataSource = connection.DataSourceOrThrow;
        dataSource.Statements.LearnWrite(CommandText);
        RwSplitTelemetry.Misroutes.Add(1, new KeyValuePair<string, object?>(TagNames.DataSource, dataSource.Name));
        Log.MisrouteRetried(dataSource.Logger, dataSource.Replicas[failed.Decision.ReplicaIndex].Address, SqlRedaction.Shape(CommandText), ex);

        var decision = RoutingDecision.ToPrimary(RoutingReason.MisrouteRetry);
        LastDecision = decision;
        var physical = await connection.GetPhysicalAsync(decision, async, cancellationToken).ConfigureAwait(false);
        connection.MarkWritten();
        Record(dataSource, decision, dataSource.CurrentPrimary);
        _factsText = null;
        return new Route(physical, decision, new StatementFacts(StatementKind.Write, RoutingReason.LearnedWrite, failed.Facts.SessionEffect, failed.Facts.Hint));
    }

    private ValueTask<StatementFacts> GetFactsAsync(RwSplitDataSource dataSource, bool async, CancellationToken cancellationToken)
    {
        var text = CommandText;
        return TryGetFactsNow(dataSource, text, !async, out var facts) ? new ValueTask<StatementFacts>(facts) : ResolveFactsAsync(dataSource, text, async, cancellationToken);
    }

    /// <summary>
    /// The facts of <paramref name="text"/> without an async state machine of this command: those cached on this
    /// command (re-executing the same command skips even the cache lookup), else the statement cache's when the function
    /// catalog has no say; for a <paramref name="sync"/> caller, else the data source's, synchronously (as the general
    /// path would). <see langword="false"/> when an asynchronous caller must await the function catalog.
    /// </summary>
    private bool TryGetFactsNow(RwSplitDataSource dataSource, string text, bool sync, out StatementFacts facts)
    {
        var type = CommandType;
        var version = dataSource.FactsVersion;
        if (ReferenceEquals(text, _factsText) && type == _factsType && version == _factsVersion)
        {
            facts = _facts;
            return true;
        }

        if (!dataSource.Statements.TryResolveFacts(text, type, out facts))
        {
            if (!sync)
                return false;
            facts = dataSource.ResolveFactsAsync(text, type, false, default).GetAwaiter().GetResult();
        }

        _facts = facts;
        _factsText = text;
        _factsType = type;
        _factsVersion = version;
        return true;
    }

    private async ValueTask<StatementFacts> ResolveFactsAsync(RwSplitDataSource dataSource, string text, bool async, CancellationToken cancellationToken)
    {
        var type = CommandType;
        var version = dataSource.FactsVersion;
        var facts = await dataSource.ResolveFactsAsync(text, type, async, cancellationToken).ConfigureAwait(false);
        _facts = facts;
        _factsText = text;
        _factsType = type;
        _factsVersion = version;
        return facts;
    }

    private static void Record(RwSplitDataSource dataSource, RoutingDecision decision, Endpoint endpoint)
    {
        if (RwSplitTelemetry.Decisions.Enabled)
        {
            var tags = new TagList
            {
                { TagNames.RouteTarget, decision.Target == RouteTarget.Primary ? "primary" : "replica" },
                { TagNames.RouteReason, ReasonName(decision.Reason) },
                { TagNames.DataSource, dataSource.Name },
            };
            RwSplitTelemetry.Decisions.Add(1, tags);
        }

        if (dataSource.Logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Debug))
            Log.Routed(dataSource.Logger, decision.Target, endpoint.Address, decision.Reason, dataSource.Name);
    }

    private static Activity? StartActivity(in Route route, RwSplitDataSource dataSource)
    {
        if (!RwSplitTelemetry.Source.HasListeners())
            return null;
        var activity = RwSplitTelemetry.Source.StartActivity("rwsplit.route", ActivityKind.Internal);
        if (activity is null)
            return null;
        var endpoint = route.Decision.Target == RouteTarget.Primary ? dataSource.CurrentPrimary : dataSource.Replicas[route.Decision.ReplicaIndex];
        activity.SetTag(TagNames.DbSystem, dataSource.Dialect.SystemName);
        activity.SetTag(TagNames.ServerAddress, endpoint.Address.Host);
        if (endpoint.Address.Port is { } port)
            activity.SetTag(TagNames.ServerPort, port);
        if (endpoint.Address.Database is { } database)
            activity.SetTag(TagNames.DbNamespace, database);
        activity.SetTag(TagNames.RouteTarget, route.Decision.Target == RouteTarget.Primary ? "primary" : "replica");
        activity.SetTag(TagNames.RouteReason, ReasonName(route.Decision.Reason));
        activity.SetTag(TagNames.DataSource, dataSource.Name);
        return activity;
    }

    /// <summary>
    /// Marks the span failed with the error's type only (<c>error.type</c>, as the semantic conventions ask): provider
    /// messages can quote values of the statement, which must not reach traces.
    /// </summary>
    private static void MarkFailed(Activity activity, Exception exception)
    {
        var type = exception is DbException { SqlState: { Length: > 0 } state } ? state : exception.GetType().FullName;
        activity.SetTag(TagNames.ErrorType, type);
        activity.SetStatus(ActivityStatusCode.Error, type);
    }

    internal static string ReasonName(RoutingReason reason) => reason switch
    {
        RoutingReason.Read => "read",
        RoutingReason.ReadOnlyProcedure => "read_only_procedure",
        RoutingReason.ReplicaHint => "replica_hint",
        RoutingReason.Write => "write",
        RoutingReason.UnknownStatement => "unknown_statement",
        RoutingReason.StoredProcedure => "stored_procedure",
        RoutingReason.VolatileFunction => "volatile_function",
        RoutingReason.LearnedWrite => "learned_write",
        RoutingReason.MisrouteRetry => "misroute_retry",
        RoutingReason.LocalTransaction => "local_transaction",
        RoutingReason.AmbientTransaction => "ambient_transaction",
        RoutingReason.SessionState => "session_state",
        RoutingReason.PinnedSession => "pinned_session",
        RoutingReason.PrimaryHint => "primary_hint",
        RoutingReason.CommandTarget => "command_target",
        RoutingReason.ForcePrimaryScope => "force_primary_scope",
        RoutingReason.StrongConsistency => "strong_consistency",
        RoutingReason.ReadYourWrites => "read_your_writes",
        RoutingReason.CaughtUpReplica => "caught_up_replica",
        RoutingReason.NoReplicaAvailable => "no_replica_available",
        RoutingReason.WriteBlocked => "write_blocked",
        _ => "other",
    };

    private static string Describe(RoutingReason cause) => cause switch
    {
        RoutingReason.Write => "it writes",
        RoutingReason.StoredProcedure => "a stored procedure not declared read-only",
        RoutingReason.VolatileFunction => "it calls a function that may write",
        RoutingReason.LearnedWrite => "a replica rejected it as a write before",
        _ => "RwSplit cannot prove it only reads",
    };

    internal void OwnConnection(RwSplitConnection connection)
    {
        _connection = connection;
        _ownedConnection = connection;
    }

    /// <summary>Creates a copy with the same text, type, timeout, routing settings and cloned parameters, on the same connection.</summary>
    public RwSplitCommand Clone()
    {
        var clone = new RwSplitCommand(_dialect)
        {
            CommandText = CommandText,
            CommandType = CommandType,
            CommandTimeout = CommandTimeout,
            UpdatedRowSource = UpdatedRowSource,
            _connection = _connection,
            _transaction = _transaction,
            _target = _target,
            _consistency = _consistency,
            _maxStaleness = _maxStaleness,
        };
        foreach (DbParameter parameter in _inner.Parameters)
        {
            clone._inner.Parameters.Add(parameter is ICloneable cloneable ? cloneable.Clone() : throw new NotSupportedException($"{parameter.GetType().Name} cannot be cloned."));
        }

        return clone;
    }

    object ICloneable.Clone() => Clone();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
            _ownedConnection?.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        await _inner.DisposeAsync().ConfigureAwait(false);
        if (_ownedConnection is not null)
            await _ownedConnection.DisposeAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }
}
