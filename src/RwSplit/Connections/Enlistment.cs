using System;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using System.Transactions;
using RwSplit.Providers;
using RwSplit.Routing;
using RwSplit.Transactions;

namespace RwSplit.Connections;

/// <summary>
/// The transactions a logical connection's commands run in: its local transaction (on the primary), a
/// System.Transactions transaction (ambient or enlisted explicitly), or an explicit distributed transaction, and the
/// branch of a distributed transaction the last primary command used. A struct inside the connection (reached by
/// reference through <see cref="RwSplitConnection.Enlistment"/>, never copied): no object of its own per connection.
/// </summary>
internal struct Enlistment
{
    /// <summary>The local transaction, if one is open.</summary>
    public RwSplitTransaction? Local { get; set; }

    /// <summary>The transaction enlisted in with <see cref="RwSplitConnection.EnlistTransaction"/>, if any.</summary>
    public Transaction? Explicit { get; set; }

    /// <summary>The explicit distributed transaction joined, if any.</summary>
    public RwSplitDistributedTransaction? Distributed { get; private set; }

    /// <summary>The distributed branch the last primary command ran on, if it ran on one.</summary>
    public Branch? ActiveBranch { get; set; }

    /// <summary>The System.Transactions transaction commands enlist in: the explicit enlistment, else <see cref="Transaction.Current"/>.</summary>
    public readonly Transaction? Ambient => Explicit ?? Transaction.Current;

    /// <summary>Whether an explicit distributed transaction is joined and still running.</summary>
    public readonly bool InDistributed => Distributed is { IsCompleted: false };

    /// <summary>Whether commands run in a distributed transaction of any kind (given the ambient one, read once).</summary>
    public readonly bool InAnyDistributed(Transaction? ambient) => ambient is not null || InDistributed;

    /// <summary>Whether nothing but the connection's own physical connections is involved (no ambient or explicit distributed transaction).</summary>
    public readonly bool OnlyOwnConnections(Transaction? ambient) => ambient is null && Distributed is null or { IsCompleted: true };

    /// <summary>Whether some transaction (local or distributed) would lose its state if the primary's connection went.</summary>
    public readonly bool HoldsPrimaryState => Local is not null || Distributed is not null || Explicit is not null;

    /// <summary>
    /// Begins the local transaction of <paramref name="connection"/> on the primary (refused inside a distributed
    /// transaction of any kind). Static: an async method cannot hold a reference to the struct across its awaits.
    /// </summary>
    public static async ValueTask<RwSplitTransaction> BeginLocalAsync(RwSplitConnection connection, System.Data.IsolationLevel isolationLevel, bool async, CancellationToken cancellationToken)
    {
        if (connection.Enlistment.Local is not null)
            throw new InvalidOperationException("A transaction is already in progress; nested transactions are not supported (use savepoints).");
        if (Transaction.Current is not null || connection.Enlistment.Explicit is not null || connection.Enlistment.InDistributed)
            throw new InvalidOperationException("The connection is enlisted in a distributed (System.Transactions or RwSplit) transaction; a local transaction cannot be started inside it.");
        var primary = await connection.GetPhysicalAsync(RoutingDecision.ToPrimary(RoutingReason.LocalTransaction), async, cancellationToken).ConfigureAwait(false);
        var inner = await ProviderIo.BeginTransactionAsync(primary, isolationLevel, async, cancellationToken).ConfigureAwait(false);
        connection.Watermark.AssumeWritten(); // a transaction may write through commands RwSplit cannot see (e.g. the inner connection)
        return connection.Enlistment.Local = new RwSplitTransaction(connection, inner);
    }

    /// <summary>Rolls back the local transaction, if one is open (the connection closes).</summary>
    public readonly ValueTask RollBackLocalAsync(bool async) => Local is { } transaction ? ProviderIo.DisposeAsync(transaction, async) : default;

    /// <summary>The local transaction completed: after a rollback the server reverted its session commands (after a commit they were taken already).</summary>
    public void OnLocalEnded(RwSplitTransaction transaction, SessionSettings? settings)
    {
        if (!ReferenceEquals(Local, transaction))
            return;
        Local = null;
        settings?.OnTransactionRolledBack();
    }

    public void Join(RwSplitDistributedTransaction? transaction)
    {
        if (transaction is not null && Local is not null)
            throw new InvalidOperationException("The connection has a local transaction: commit or roll it back before joining a distributed transaction.");
        Distributed = transaction;
        ActiveBranch = null;
    }

    /// <summary>
    /// The distributed transaction commands of this connection run in now, if any. <paramref name="ambient"/> is
    /// <see cref="Ambient"/>, read once by the caller.
    /// </summary>
    public readonly DistributedTransaction? Current(Transaction? ambient)
    {
        if (Distributed is { } explicitTransaction)
            return explicitTransaction.IsCompleted ? null : explicitTransaction.Inner;
        return ambient is null ? null : TransactionCoordinator.ForAmbient(ambient);
    }

    /// <summary>The inner transaction to give a provider command that runs on <paramref name="physical"/>.</summary>
    public readonly DbTransaction? InnerTransactionFor(DbConnection physical, DbConnection? primary)
    {
        if (ActiveBranch is { } branch && ReferenceEquals(physical, branch.Connection))
            return branch.Transaction;
        return Local is not null && ReferenceEquals(physical, primary) ? Local.InnerTransaction : null;
    }

    public void Reset()
    {
        Local = null;
        Explicit = null;
        Distributed = null;
        ActiveBranch = null;
    }
}
