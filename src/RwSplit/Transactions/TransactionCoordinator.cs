using System;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Transactions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace RwSplit.Transactions;

/// <summary>
/// The process's coordinator: maps each ambient <see cref="Transaction"/> to its <see cref="DistributedTransaction"/>
/// and enlists once per transaction, durably, as the single-phase participant. The lightweight transaction manager then
/// calls <see cref="ISinglePhaseNotification.SinglePhaseCommit"/>, where RwSplit runs its own protocol.
/// </summary>
internal static class TransactionCoordinator
{
    /// <summary>Identifies this process's coordinator in branch ids and decision rows.</summary>
    public static readonly string CoordinatorId = Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();

    private static readonly Guid ResourceManagerId = new("5f0c2b1e-7a43-4d0e-9a55-52a3c1f0a001");
    private static readonly ConcurrentDictionary<Transaction, DistributedTransaction> Ambient = new();

    /// <summary>The distributed transaction of an ambient transaction, enlisting on first use.</summary>
    public static DistributedTransaction ForAmbient(Transaction transaction)
    {
        if (Ambient.TryGetValue(transaction, out var existing))
            return existing;
        if (transaction.TransactionInformation.Status != TransactionStatus.Active)
            throw new TransactionException($"The ambient transaction is {transaction.TransactionInformation.Status.ToString().ToLowerInvariant()}: RwSplit cannot enlist in it any more.");

        var created = new DistributedTransaction(TimeSpan.Zero); // the ambient transaction enforces its own timeout
        if (!Ambient.TryAdd(transaction, created))
            return Ambient[transaction];
        try
        {
            // One durable enlistment per transaction: the lightweight manager gives a lone durable participant the
            // single-phase commit, so no second phase (and no MSDTC) is ever needed.
            transaction.EnlistDurable(ResourceManagerId, new DurableEnlistment(created), EnlistmentOptions.None);
            transaction.TransactionCompleted += (_, _) => Ambient.TryRemove(transaction, out _);
        }
        catch
        {
            Ambient.TryRemove(transaction, out _);
            throw;
        }

        return created;
    }

    /// <summary>The <see cref="System.Transactions"/> participant. Its callbacks are synchronous by contract: the protocol runs synchronously there.</summary>
    private sealed class DurableEnlistment : ISinglePhaseNotification
    {
        private readonly DistributedTransaction _transaction;

        public DurableEnlistment(DistributedTransaction transaction) => _transaction = transaction;

        public void SinglePhaseCommit(SinglePhaseEnlistment singlePhaseEnlistment)
        {
            try
            {
                // System.Transactions calls this synchronously: the protocol runs on its sync path (no sync-over-async).
                _transaction.CommitAsync(async: false, default).GetAwaiter().GetResult();
                singlePhaseEnlistment.Committed();
            }
            catch (TransactionInDoubtException ex)
            {
                singlePhaseEnlistment.InDoubt(ex);
            }
            catch (Exception ex)
            {
                singlePhaseEnlistment.Aborted(ex); // the caller sees RwSplit's reason as the inner exception
            }
        }

        public void Prepare(PreparingEnlistment preparingEnlistment)
        {
            // Reached only when another durable resource enlisted too (two-phase under the lightweight manager, which
            // Linux cannot do): RwSplit must be the only durable participant.
            preparingEnlistment.ForceRollback(new NotSupportedException(
                "Another durable resource manager enlisted in this transaction beside RwSplit. Open every connection of the transaction through RwSplit (provider connections with Enlist=false), so that RwSplit is the only durable participant."));
        }

        public void Commit(Enlistment enlistment) => enlistment.Done();

        public void Rollback(Enlistment enlistment)
        {
            _transaction.RollbackAsync(async: false).GetAwaiter().GetResult();
            enlistment.Done();
        }

        public void InDoubt(Enlistment enlistment) => enlistment.Done();
    }
}
