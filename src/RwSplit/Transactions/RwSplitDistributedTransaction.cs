using System;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit.Transactions;

/// <summary>
/// A distributed transaction without <c>TransactionScope</c>, fully asynchronous: begin it, attach connections of any
/// RwSplit data sources with <see cref="RwSplitConnection.EnlistDistributedTransaction"/>, run commands, then
/// <see cref="CommitAsync"/> or <see cref="RollbackAsync"/>. Same guarantees as under a <c>TransactionScope</c>:
/// all-or-nothing across databases, a durable decision, crash recovery.
/// </summary>
/// <example>
/// <code>
/// await using var tx = RwSplitDistributedTransaction.Begin();
/// await using var a = await accounts.OpenConnectionAsync();
/// await using var b = await ledger.OpenConnectionAsync();
/// a.EnlistDistributedTransaction(tx);
/// b.EnlistDistributedTransaction(tx);
/// // ... commands on a and b ...
/// await tx.CommitAsync(); // TransactionAbortedException or TransactionInDoubtException on failure
/// </code>
/// </example>
public sealed class RwSplitDistributedTransaction : IAsyncDisposable, IDisposable
{
    private RwSplitDistributedTransaction(TimeSpan timeout) => Inner = new DistributedTransaction(timeout);

    internal DistributedTransaction Inner { get; }

    /// <summary>The global transaction id (the <c>gtrid</c> of the decision row and of the branch ids).</summary>
    public string Id => Inner.Gtrid;

    /// <summary>Whether it committed, rolled back or ended in doubt.</summary>
    public bool IsCompleted => Inner.IsCompleted;

    /// <summary>Begins a distributed transaction.</summary>
    /// <param name="timeout">After this, the transaction can only roll back. Default: no limit.</param>
    public static RwSplitDistributedTransaction Begin(TimeSpan? timeout = null) => new(timeout ?? TimeSpan.Zero);

    /// <summary>Commits every branch atomically.</summary>
    /// <param name="cancellationToken">Cancels before the decision; after it, the protocol completes.</param>
    /// <exception cref="System.Transactions.TransactionAbortedException">Something failed before the decision: everything was rolled back.</exception>
    /// <exception cref="System.Transactions.TransactionInDoubtException">The decision's own commit had an unknown outcome; recovery resolves it.</exception>
    public Task CommitAsync(CancellationToken cancellationToken = default) => Inner.CommitAsync(async: true, cancellationToken).AsTask();

    /// <summary>Commits synchronously (see <see cref="CommitAsync"/>).</summary>
    public void Commit() => Inner.CommitAsync(async: false, default).GetAwaiter().GetResult();

    /// <summary>Rolls every branch back.</summary>
    public Task RollbackAsync() => Inner.RollbackAsync(async: true).AsTask();

    /// <summary>Rolls every branch back.</summary>
    public void Rollback() => Inner.RollbackAsync(async: false).GetAwaiter().GetResult();

    /// <summary>Rolls back if neither committed nor rolled back.</summary>
    public ValueTask DisposeAsync() => Inner.RollbackAsync(async: true);

    /// <summary>Rolls back if neither committed nor rolled back.</summary>
    public void Dispose() => Rollback();
}
