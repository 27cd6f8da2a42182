using System;
using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Execution;
using RwSplit.Routing;

namespace RwSplit;

/// <summary>
/// A batch of statements of an <see cref="RwSplitConnection"/>, sent in one round trip. The whole batch goes where its
/// most demanding statement must go: when every statement is a plain read it is routed like a read command (a replica,
/// per the consistency rules); otherwise it runs on the primary, the session counts as written, and a statement with a
/// session effect (<c>SET</c>, temporary tables) pins the session to the primary. Inside a transaction it runs in that
/// transaction. It runs as the provider's own batch: parameters and readers are the provider's. It runs through the same
/// pipeline as a command: a replica's refusal of a misrouted write runs it once on the primary, a replica failing before
/// the first row runs it elsewhere, and it is traced and counted as a command is.
/// </summary>
public sealed class RwSplitBatch : DbBatch
{
    private readonly BatchRequest _request;
    private readonly RwSplitBatchCommandCollection _commands;

    internal RwSplitBatch(RwSplitDialect dialect)
    {
        if (!dialect.ProviderFactory.CanCreateBatch)
            throw NotSupported(dialect);
        _commands = new RwSplitBatchCommandCollection(dialect);
        _request = new BatchRequest(dialect, _commands.Items);
    }

    internal static NotSupportedException NotSupported(RwSplitDialect dialect)
        => new($"The {dialect.SystemName} provider ({dialect.ProviderFactory.GetType().Name}) cannot create batches (CanCreateBatch is false): use one RwSplitCommand per statement, or a multi-statement command.");

    /// <summary>The statements, in execution order.</summary>
    public new RwSplitBatchCommandCollection BatchCommands => _commands;

    /// <inheritdoc />
    protected override DbBatchCommandCollection DbBatchCommands => _commands;

    /// <summary>
    /// The time, in seconds, one execution of the batch may take as a whole (0: no limit; default: the provider's), RwSplit's
    /// waits and retries included, as <see cref="RwSplitCommand.CommandTimeout"/>.
    /// </summary>
    public override int Timeout
    {
        get => _request.Inner.Timeout;
        set => _request.Inner.Timeout = value;
    }

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

    /// <summary>Where the last execution (or preparation) of this batch went and why; <see langword="null"/> before the first.</summary>
    public RoutingDecision? LastDecision => _request.LastDecision;

    /// <summary>The provider's own batch, for provider-specific settings. Its connection and statements are set at each execution.</summary>
    public DbBatch InnerBatch => _request.Inner;

    /// <summary>Creates a statement for this batch (add it to <see cref="BatchCommands"/>).</summary>
    /// <returns>A statement whose parameters are the provider's.</returns>
    public new RwSplitBatchCommand CreateBatchCommand() => new(_request.Dialect);

    /// <inheritdoc />
    protected override DbBatchCommand CreateDbBatchCommand() => CreateBatchCommand();

    /// <inheritdoc />
    /// <remarks>Also ends a wait of RwSplit's for this batch (read-your-writes, a fallback slot) with <see cref="OperationCanceledException"/>.</remarks>
    public override void Cancel()
    {
        _request.CancelWait();
        _request.Inner.Cancel();
    }

    /// <inheritdoc />
    public override void Prepare() => CommandExecutor.PrepareAsync(_request, false, default).GetAwaiter().GetResult();

    /// <inheritdoc />
    public override Task PrepareAsync(CancellationToken cancellationToken = default) => CommandExecutor.PrepareAsync(_request, true, cancellationToken).AsTask();

    /// <inheritdoc />
    public override int ExecuteNonQuery() => CommandExecutor.Execute(_request, ProviderCall.NonQuery, CommandBehavior.Default);

    /// <inheritdoc />
    public override Task<int> ExecuteNonQueryAsync(CancellationToken cancellationToken = default)
        => CommandExecutor.ExecuteAsync(_request, ProviderCall.NonQuery, CommandBehavior.Default, cancellationToken);

    /// <inheritdoc />
    public override object? ExecuteScalar() => CommandExecutor.Execute(_request, ProviderCall.Scalar, CommandBehavior.Default);

    /// <inheritdoc />
    public override Task<object?> ExecuteScalarAsync(CancellationToken cancellationToken = default)
        => CommandExecutor.ExecuteAsync(_request, ProviderCall.Scalar, CommandBehavior.Default, cancellationToken);

    /// <inheritdoc />
    protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior) => CommandExecutor.Execute(_request, ProviderCall.Reader, behavior);

    /// <inheritdoc />
    protected override Task<DbDataReader> ExecuteDbDataReaderAsync(CommandBehavior behavior, CancellationToken cancellationToken)
        => CommandExecutor.ExecuteAsync(_request, ProviderCall.Reader, behavior, cancellationToken);

    /// <inheritdoc />
    public override void Dispose()
    {
        _request.Inner.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        await _request.Inner.DisposeAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }
}
