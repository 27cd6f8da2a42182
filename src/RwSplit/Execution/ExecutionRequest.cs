using System;
using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Routing;

namespace RwSplit.Execution;

/// <summary>
/// What one execution of a command or a batch asks of the pipeline: where it may run (connection, transaction, target,
/// consistency, staleness), what it does (its statement facts), and the provider object that runs it. The ADO.NET shells
/// (<see cref="RwSplitCommand"/>, <see cref="RwSplitBatch"/>) hold one each and hand it to <see cref="CommandExecutor"/>.
/// </summary>
internal abstract class ExecutionRequest
{
    private RouteTarget _target;
    private CancellationTokenSource? _wait;
    private ReadConsistency? _consistency;
    private TimeSpan? _maxStaleness;

    protected ExecutionRequest(RwSplitDialect dialect) => Dialect = dialect;

    public RwSplitDialect Dialect { get; }

    public RwSplitConnection? Connection { get; set; }

    public RwSplitTransaction? Transaction { get; set; }

    /// <summary>The shell's type name, for messages (<c>RwSplitCommand</c>, <c>RwSplitBatch</c>).</summary>
    public abstract string ShellName { get; }

    /// <summary>Sets the logical connection (<c>DbCommand.Connection</c>, <c>DbBatch.Connection</c>): only one of this provider.</summary>
    public void SetConnection(RwSplitConnection? value)
    {
        if (value is not null && !value.Dialect.IsSameProvider(Dialect))
            throw new ArgumentException($"This {Noun} was created for the {Dialect.SystemName} provider; the connection uses {value.Dialect.SystemName}.", nameof(value));
        if (!ReferenceEquals(value, Connection))
            OnConnectionChanging();
        Connection = value;
    }

    /// <summary>Sets the connection from the base type's property: an RwSplitConnection, or null.</summary>
    public void SetConnection(DbConnection? value) => SetConnection(value switch
    {
        null => null,
        RwSplitConnection rw => rw,
        _ => throw new ArgumentException($"An {ShellName} runs on an RwSplitConnection, not on a {value.GetType().Name}. Use the provider's own {Noun} for provider connections.", nameof(value)),
    });

    /// <summary>Sets the transaction from the base type's property: an RwSplitTransaction, or null.</summary>
    public void SetTransaction(DbTransaction? value) => Transaction = value switch
    {
        null => null,
        RwSplitTransaction rw => rw,
        _ => throw new ArgumentException($"An {ShellName} takes an RwSplitTransaction (from RwSplitConnection.BeginTransaction), not a {value.GetType().Name}.", nameof(value)),
    };

    /// <summary>The logical connection is about to change.</summary>
    protected virtual void OnConnectionChanging()
    {
    }

    /// <summary>The logical connection a data-source command opens around each execution, if it is one.</summary>
    public RwSplitConnection? OwnedConnection { get; set; }

    public RouteTarget Target
    {
        get => _target;
        set => _target = value is RouteTarget.Auto or RouteTarget.Primary or RouteTarget.Replica
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "Use Auto, Primary or Replica.");
    }

    public ReadConsistency? Consistency
    {
        get => _consistency;
        set => _consistency = value is null || Enum.IsDefined(value.Value)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "Use Eventual, ReadYourWrites or Strong.");
    }

    public TimeSpan? MaxStaleness
    {
        get => _maxStaleness;
        set => _maxStaleness = value is null || value > TimeSpan.Zero
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxStaleness must be positive, or null.");
    }

    /// <summary>Where the last execution (or preparation) went and why.</summary>
    public RoutingDecision? LastDecision { get; set; }

    /// <summary>"command" or "batch", for messages.</summary>
    public abstract string Noun { get; }

    /// <summary>The statement that names the execution in messages and logs (a batch's: the one that decided its route).</summary>
    public abstract string Text { get; }

    /// <summary>Whether the statement carries parameters (a session command with parameters cannot be replayed).</summary>
    public abstract bool HasParameters { get; }

    /// <summary>The command's (or batch's) timeout in seconds, as the application set it (0: none).</summary>
    public abstract int Timeout { get; }

    /// <summary>Sets the timeout of the provider object that runs now (the command's copy, if it runs on one); the pipeline restores <see cref="Timeout"/> after the run.</summary>
    public abstract void SetProviderTimeout(int seconds);

    /// <summary>
    /// A wait of RwSplit's for this execution begins (for a replica to catch up, for a fallback slot): its token ends
    /// it when the caller's token is cancelled, when <see cref="CancelWait"/> runs (<c>Cancel()</c> from another
    /// thread), or when <paramref name="budget"/> runs out. Dispose the result when the wait is over.
    /// </summary>
    public WaitScope BeginWait(in ExecutionBudget budget, CancellationToken cancellationToken)
    {
        var source = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (budget.IsBounded)
            source.CancelAfter(budget.Remaining);
        Volatile.Write(ref _wait, source);
        return new WaitScope(this, source);
    }

    /// <summary><c>Cancel()</c>: ends a wait of RwSplit's in progress (the provider's own call is cancelled by the provider).</summary>
    public void CancelWait()
    {
        try
        {
            Volatile.Read(ref _wait)?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // the wait ended meanwhile
        }
    }

    /// <summary>One wait of RwSplit's: its token, and the end of it.</summary>
    public readonly struct WaitScope : IDisposable
    {
        private readonly ExecutionRequest _request;
        private readonly CancellationTokenSource _source;

        public WaitScope(ExecutionRequest request, CancellationTokenSource source)
        {
            _request = request;
            _source = source;
        }

        public CancellationToken Token => _source.Token;

        public void Dispose()
        {
            Interlocked.CompareExchange(ref _request._wait, null, _source);
            _source.Dispose();
        }
    }

    /// <summary>Throws when there is nothing to run (no text, no statements).</summary>
    public abstract void ThrowIfEmpty();

    /// <summary>
    /// The statement facts without an async state machine: those at hand (cached on the request, or in the statement
    /// cache), and for a <paramref name="sync"/> caller the data source's, resolved synchronously. <see langword="false"/>
    /// when an asynchronous caller must await them (<see cref="ResolveFactsAsync"/>).
    /// </summary>
    public abstract bool TryGetFactsNow(RwSplitDataSource dataSource, bool sync, out StatementFacts facts);

    public abstract ValueTask<StatementFacts> ResolveFactsAsync(RwSplitDataSource dataSource, bool async, CancellationToken cancellationToken);

    /// <summary>A replica refused the execution as a write: remember which statement wrote, so it goes to the primary from now on.</summary>
    public abstract void LearnWrite(RwSplitDataSource dataSource, Exception refusal);

    /// <summary>
    /// Points the provider object at <paramref name="physical"/> and <paramref name="transaction"/>. On a retry after a
    /// connection broke under the first attempt, the provider may still count that attempt's reader as open and refuse
    /// the new connection: a command then runs on a copy (<see cref="Detach"/> copies its outputs back).
    /// </summary>
    public abstract void Attach(DbConnection physical, DbTransaction? transaction, bool retry);

    /// <summary>After a run: anything <see cref="Attach"/> set up for it only is undone.</summary>
    public virtual void Detach()
    {
    }

    public abstract int ExecuteNonQuery();

    public abstract Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken);

    public abstract object? ExecuteScalar();

    public abstract Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken);

    public abstract DbDataReader ExecuteReader(CommandBehavior behavior);

    public abstract Task<DbDataReader> ExecuteReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken);

    public abstract void Prepare();

    public abstract Task PrepareAsync(CancellationToken cancellationToken);
}
