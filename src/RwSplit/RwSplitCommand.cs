using System;
using System.ComponentModel;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Execution;
using RwSplit.Routing;

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
    private readonly CommandRequest _request;

    internal RwSplitCommand(RwSplitDialect dialect) => _request = new CommandRequest(dialect);

    /// <summary>Creates a command bound to a connection.</summary>
    /// <param name="commandText">The SQL text.</param>
    /// <param name="connection">The logical connection.</param>
    /// <param name="transaction">The connection's current transaction, if any.</param>
    public RwSplitCommand(string? commandText, RwSplitConnection connection, RwSplitTransaction? transaction = null)
        : this((connection ?? throw new ArgumentNullException(nameof(connection))).Dialect)
    {
        CommandText = commandText;
        _request.Connection = connection;
        _request.Transaction = transaction;
    }

    private DbCommand Inner => _request.Inner;

    /// <inheritdoc />
    [AllowNull]
    public override string CommandText
    {
        get => Inner.CommandText;
        set => Inner.CommandText = value ?? string.Empty;
    }

    /// <summary>
    /// The time, in seconds, one execution may take as a whole (0: no limit; the provider's default otherwise): RwSplit's
    /// own waits (for a replica to replay the session's writes, for a fallback slot), its position queries and its
    /// retries take from it, and the provider's statement gets what is left, so an execution never takes much longer
    /// than this (physical opens count against it, bounded by the connection string's own timeout). When it runs out in
    /// RwSplit the execution fails with <see cref="RwSplitError.CommandTimeout"/>.
    /// </summary>
    public override int CommandTimeout
    {
        get => Inner.CommandTimeout;
        set => Inner.CommandTimeout = value;
    }

    /// <inheritdoc />
    public override CommandType CommandType
    {
        get => Inner.CommandType;
        set => Inner.CommandType = value;
    }

    /// <inheritdoc />
    public override bool DesignTimeVisible
    {
        get => Inner.DesignTimeVisible;
        set => Inner.DesignTimeVisible = value;
    }

    /// <inheritdoc />
    public override UpdateRowSource UpdatedRowSource
    {
        get => Inner.UpdatedRowSource;
        set => Inner.UpdatedRowSource = value;
    }

    /// <summary>The provider's own parameter collection.</summary>
    public new DbParameterCollection Parameters => Inner.Parameters;

    /// <inheritdoc />
    protected override DbParameterCollection DbParameterCollection => Inner.Parameters;

    /// <summary>The logical connection.</summary>
    public new RwSplitConnection? Connection
    {
        get => _request.Connection;
        set => _request.SetConnection(value);
    }

    /// <inheritdoc />
    protected override DbConnection? DbConnection
    {
        get => _request.Connection;
        set => _request.SetConnection(value);
    }

    /// <summary>The logical transaction.</summary>
    public new RwSplitTransaction? Transaction
    {
        get => _request.Transaction;
        set => _request.Transaction = value;
    }

    /// <inheritdoc />
    protected override DbTransaction? DbTransaction
    {
        get => _request.Transaction;
        set => _request.SetTransaction(value);
    }

    /// <summary>
    /// Where this command asks to run: <see cref="RouteTarget.Auto"/> (the default: RwSplit decides),
    /// <see cref="RouteTarget.Primary"/> (always the primary), or <see cref="RouteTarget.Replica"/> (a replica whenever
    /// the statement is a read, even under <see cref="ReadConsistency.Strong"/> or after a write). A write always runs
    /// on the primary.
    /// </summary>
    public RouteTarget Target
    {
        get => _request.Target;
        set => _request.Target = value;
    }

    /// <summary>The read consistency for this command only; <see langword="null"/> (the default) uses the connection's.</summary>
    public ReadConsistency? Consistency
    {
        get => _request.Consistency;
        set => _request.Consistency = value;
    }

    /// <summary>
    /// Bounded staleness for this command: as a read it may run on any replica at most this far behind the primary (as
    /// measured by the topology monitor), even after the session wrote and whatever the consistency; when no replica is
    /// that fresh, it runs on the primary. <see langword="null"/> (the default): the connection's consistency decides,
    /// or an enclosing <see cref="RwSplitScope.AllowStaleness"/> scope.
    /// </summary>
    public TimeSpan? MaxStaleness
    {
        get => _request.MaxStaleness;
        set => _request.MaxStaleness = value;
    }

    /// <summary>Where the last execution (or preparation) of this command went and why; <see langword="null"/> before the first.</summary>
    public RoutingDecision? LastDecision => _request.LastDecision;

    /// <summary>The provider's own command, for provider-specific settings. Its connection changes with each route.</summary>
    public DbCommand InnerCommand => Inner;

    /// <inheritdoc />
    /// <remarks>
    /// Also ends a wait of RwSplit's for this command in progress (for a replica to replay the session's writes, for a
    /// fallback slot on the primary) with <see cref="OperationCanceledException"/>; the provider's own statement is
    /// cancelled by the provider, as with its own command.
    /// </remarks>
    public override void Cancel()
    {
        _request.CancelWait();
        Inner.Cancel();
    }

    /// <inheritdoc />
    protected override DbParameter CreateDbParameter() => Inner.CreateParameter();

    /// <summary>Creates a parameter of the provider's own type.</summary>
    public new DbParameter CreateParameter() => Inner.CreateParameter();

    /// <inheritdoc />
    public override void Prepare() => CommandExecutor.PrepareAsync(_request, false, default).GetAwaiter().GetResult();

    /// <inheritdoc />
    public override Task PrepareAsync(CancellationToken cancellationToken = default) => CommandExecutor.PrepareAsync(_request, true, cancellationToken).AsTask();

    /// <inheritdoc />
    public override int ExecuteNonQuery() => CommandExecutor.Execute(_request, ProviderCall.NonQuery, CommandBehavior.Default);

    /// <inheritdoc />
    public override Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken)
        => CommandExecutor.ExecuteAsync(_request, ProviderCall.NonQuery, CommandBehavior.Default, cancellationToken);

    /// <inheritdoc />
    public override object? ExecuteScalar() => CommandExecutor.Execute(_request, ProviderCall.Scalar, CommandBehavior.Default);

    /// <inheritdoc />
    public override Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken)
        => CommandExecutor.ExecuteAsync(_request, ProviderCall.Scalar, CommandBehavior.Default, cancellationToken);

    /// <summary>Executes the command and returns the provider's own reader (wrapped only for <see cref="CommandBehavior.CloseConnection"/>).</summary>
    public new DbDataReader ExecuteReader() => ExecuteDbDataReader(CommandBehavior.Default);

    /// <inheritdoc cref="ExecuteReader()"/>
    /// <param name="behavior">The behavior.</param>
    public new DbDataReader ExecuteReader(CommandBehavior behavior) => ExecuteDbDataReader(behavior);

    /// <inheritdoc />
    protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior) => CommandExecutor.Execute(_request, ProviderCall.Reader, behavior);

    /// <inheritdoc />
    protected override Task<DbDataReader> ExecuteDbDataReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken)
        => CommandExecutor.ExecuteAsync(_request, ProviderCall.Reader, behavior, cancellationToken);

    /// <summary>A data-source command: it opens <paramref name="connection"/> around each execution and disposes it with itself.</summary>
    internal void OwnConnection(RwSplitConnection connection)
    {
        _request.Connection = connection;
        _request.OwnedConnection = connection;
    }

    /// <summary>Creates a copy with the same text, type, timeout, routing settings and cloned parameters, on the same connection.</summary>
    public RwSplitCommand Clone()
    {
        var clone = new RwSplitCommand(_request.Dialect)
        {
            CommandText = CommandText,
            CommandType = CommandType,
            CommandTimeout = CommandTimeout,
            UpdatedRowSource = UpdatedRowSource,
            Target = Target,
            Consistency = Consistency,
            MaxStaleness = MaxStaleness,
        };
        clone._request.Connection = _request.Connection;
        clone._request.Transaction = _request.Transaction;
        foreach (DbParameter parameter in Inner.Parameters)
            clone.Inner.Parameters.Add(parameter is ICloneable cloneable ? cloneable.Clone() : throw new NotSupportedException($"{parameter.GetType().Name} cannot be cloned."));
        return clone;
    }

    object ICloneable.Clone() => Clone();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Inner.Dispose();
            _request.OwnedConnection?.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        await Inner.DisposeAsync().ConfigureAwait(false);
        if (_request.OwnedConnection is { } owned)
            await owned.DisposeAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }
}
