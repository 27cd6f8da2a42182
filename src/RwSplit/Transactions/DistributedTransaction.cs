using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using System.Transactions;
using Microsoft.Extensions.Logging;
using RwSplit.Diagnostics;
using RwSplit.Providers;

namespace RwSplit.Transactions;

/// <summary>
/// One distributed transaction: its branches (one per database, or per instance for engines that cannot prepare) and
/// the commit protocol — read-only branches drop out, a single writing branch commits locally, several writing branches
/// commit with two-phase commit whose decision is a row in the last resource's own local transaction:
/// <list type="number">
/// <item><description>PREPARE TRANSACTION every writing branch except the last resource;</description></item>
/// <item><description>insert the decision row in the last resource and commit it — the decision point (one round trip
/// where the dialect sends both as one statement, <see cref="Providers.TransactionStatements.InsertDecisionAndCommitSql"/>);</description></item>
/// <item><description>COMMIT PREPARED the others.</description></item>
/// </list>
/// Any failure before the decision rolls everything back (presumed abort). An unknown outcome of the decision's commit
/// leaves the prepared branches to recovery and reports in-doubt. Branch ids <c>rws:{coordinator}:{gtrid}:{decision
/// database key}:{branch}</c> name where the decision lives, so recovery needs no local file.
/// </summary>
internal sealed class DistributedTransaction
{
    private readonly object _gate = new();
    private readonly Dictionary<string, Branch> _branches = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _branchLock = new(1, 1);
    private readonly long _deadline;
    private State _state;
    private bool _decided;
    private bool _fenced;
    private RwSplitDataSource? _decisionSource;

    /// <summary>
    /// Where the transaction as a whole logs: the data source holding its decision, else the one of its first branch
    /// (each branch's own events go to its data source's logger).
    /// </summary>
    private Microsoft.Extensions.Logging.ILogger Logger
    {
        get
        {
            if (_decisionSource is { } decision)
                return decision.Logger;
            lock (_branches)
                return _branches.Values.OrderBy(b => b.Index).FirstOrDefault()?.DataSource.Logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        }
    }

    public DistributedTransaction(TimeSpan timeout)
    {
        Gtrid = Guid.NewGuid().ToString("N");
        _deadline = timeout <= TimeSpan.Zero || timeout == TimeSpan.MaxValue ? long.MaxValue : Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
    }

    private enum State
    {
        Active,
        Committing,
        Committed,
        RolledBack,
        InDoubt,
    }

    public string Gtrid { get; }

    public bool IsCompleted => _state is State.Committed or State.RolledBack or State.InDoubt;

    internal IReadOnlyCollection<Branch> Branches
    {
        get
        {
            lock (_gate)
                return _branches.Values.ToArray();
        }
    }

    /// <summary>The branch for a data source's database, opened (connection + BEGIN) on first use.</summary>
    public async ValueTask<Branch> GetBranchAsync(RwSplitDataSource dataSource, bool async, CancellationToken cancellationToken)
    {
        if (!dataSource.Transactions.Enabled)
        {
            throw new RwSplitException(
                RwSplitError.DistributedTransactionUnavailable,
                $"Data source '{dataSource.Name}' has DistributedTransactions turned off, so it is not registered for recovery and cannot join a distributed transaction: set RwSplitOptions.DistributedTransactions = true.");
        }

        var key = dataSource.Dialect.BranchKey(dataSource.CurrentPrimaryAddress);
        lock (_gate)
        {
            ThrowIfNotActive();
            if (_branches.TryGetValue(key, out var existing))
                return existing;
        }

        await ProviderIo.WaitAsync(_branchLock, async, cancellationToken).ConfigureAwait(false);
        try
        {
            lock (_gate)
            {
                ThrowIfNotActive();
                if (_branches.TryGetValue(key, out var existing))
                    return existing;
            }

            for (var attempt = 1; ; attempt++)
            {
            var connection = dataSource.CurrentPrimary.Connector.CreateConnection();
            try
            {
                await ProviderIo.OpenAsync(connection, async, cancellationToken).ConfigureAwait(false);
                var transaction = await ProviderIo.BeginTransactionAsync(connection, System.Data.IsolationLevel.Unspecified, async, cancellationToken).ConfigureAwait(false);
                lock (_gate)
                {
                    ThrowIfNotActive();
                    var branch = new Branch(dataSource, key, _branches.Count, connection, transaction);
                    _branches.Add(key, branch);
                    return branch;
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException && dataSource.Dialect.Failures.IsConnectionFailure(ex, connection) && dataSource.ClearPoolOf(connection) && attempt < 3)
            {
                // a pooled connection the server already closed: nothing ran on it yet, take another
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            catch
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                throw;
            }
            }
        }
        finally
        {
            _branchLock.Release();
        }
    }

    private void ThrowIfNotActive()
    {
        if (_state != State.Active)
            throw new InvalidOperationException($"The distributed transaction is {_state.ToString().ToLowerInvariant()}: no statement can join it any more. Start a new transaction (or TransactionScope).");
        if (Stopwatch.GetTimestamp() > _deadline)
            throw new TransactionAbortedException("The distributed transaction timed out.");
    }

    /// <summary>Runs the commit protocol. Throws <see cref="TransactionAbortedException"/> or <see cref="TransactionInDoubtException"/>.</summary>
    public async ValueTask CommitAsync(bool async, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_state != State.Active)
                throw new InvalidOperationException($"The distributed transaction is already {_state.ToString().ToLowerInvariant()}.");
            _state = State.Committing;
        }

        var started = Stopwatch.GetTimestamp();
        var kind = "two_phase";
        var outcome = "committed";
        using var activity = TransactionTelemetry.StartCommit(Branches.Count);
        try
        {
            if (Stopwatch.GetTimestamp() > _deadline)
                throw new TransactionAbortedException("The distributed transaction timed out before it committed; everything was rolled back.");
            kind = await CommitBranchesAsync(async, cancellationToken).ConfigureAwait(false);
            _state = State.Committed;
        }
        catch (TransactionInDoubtException)
        {
            _state = State.InDoubt;
            outcome = "in_doubt";
            throw;
        }
        catch (Exception ex) when (_decided)
        {
            // The decision is durable: whatever failed afterwards cannot undo the commit; recovery finishes the branches.
            _state = State.Committed;
            Log.AfterDecisionFailure(Logger, Gtrid, ex);
        }
        catch (Exception ex)
        {
            // Before the decision: presumed abort. The rollback runs whatever the caller's token says.
            _state = State.RolledBack;
            outcome = "aborted";
            await RollbackAllAsync(async).ConfigureAwait(false);
            if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
                throw new OperationCanceledException("The distributed commit was cancelled before its decision: every branch was rolled back, nothing was committed.", ex, cancellationToken);
            if (ex is TransactionAbortedException)
                throw;
            throw new TransactionAbortedException($"The distributed transaction was rolled back: {ex.Message}", ex);
        }
        finally
        {
            await CloseAllAsync(async).ConfigureAwait(false);
            TransactionTelemetry.Ended(activity, kind, outcome);
            RwSplitTelemetry.Transactions.Add(1, new KeyValuePair<string, object?>(TagNames.TransactionKind, kind), new KeyValuePair<string, object?>(TagNames.TransactionOutcome, outcome));
            RwSplitTelemetry.TransactionDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>(TagNames.TransactionKind, kind));
        }
    }

    private async ValueTask<string> CommitBranchesAsync(bool async, CancellationToken cancellationToken)
    {
        var branches = Branches;
        var writers = branches.Where(b => b.Wrote).ToList();

        // Read-only branches drop out: nothing of theirs needs to be atomic with the rest.
        foreach (var reader in branches.Where(b => !b.Wrote))
            await FinishLocalAsync(reader, commit: true, async, cancellationToken).ConfigureAwait(false);

        if (writers.Count == 0)
            return "read_only";
        if (writers.Count == 1)
        {
            // One writing branch: a plain local commit, nothing logged.
            await CommitLastResourceAsync(writers[0], async).ConfigureAwait(false);
            return "one_phase";
        }

        var cannotPrepare = writers.Where(b => !b.Dialect.CanPrepare).ToList();
        var (last, heuristic) = ChooseLastResource(writers, cannotPrepare);
        var toPrepare = writers.Where(b => !ReferenceEquals(b, last) && !heuristic.Contains(b)).ToList();

        // Phase 0: everything that can refuse, refuses now, before anything is prepared.
        foreach (var branch in toPrepare)
            await branch.DataSource.Transactions.EnsureCanPrepareAsync(async, cancellationToken).ConfigureAwait(false);
        await last.DataSource.Transactions.EnsureDecisionTableAsync(async, cancellationToken).ConfigureAwait(false);
        var decisionKey = await last.DataSource.Transactions.GetKeyAsync(async, cancellationToken).ConfigureAwait(false);
        var heuristicIds = new List<(Branch Branch, string Key)>(heuristic.Count);
        foreach (var participant in heuristic)
        {
            await participant.DataSource.Transactions.EnsureDecisionTableAsync(async, cancellationToken).ConfigureAwait(false);
            heuristicIds.Add((participant, await participant.DataSource.Transactions.GetKeyAsync(async, cancellationToken).ConfigureAwait(false)));
        }

        // Phase 1a: heuristic participants (opt-in) write their marker row in their own local transaction: it commits
        // with their work or not at all, which is how recovery tells a heuristic participant's outcome afterwards.
        foreach (var (participant, key) in heuristicIds)
        {
            await participant.UseDatabaseAsync(participant.HomeDatabase, async, cancellationToken).ConfigureAwait(false);
            await InsertDecisionRowAsync(participant, HeuristicId(Gtrid, "marker", key), "h", async, cancellationToken).ConfigureAwait(false);
        }

        RwSplitRecovery.Introduce(last.DataSource, toPrepare.Concat(heuristic).Select(b => b.DataSource));

        // Phase 1b: prepare.
        foreach (var branch in toPrepare)
        {
            FaultInjection.Hit(FaultInjection.BeforePrepare, branch);
            branch.Gid = BranchId(decisionKey, branch.Index);
            _decisionSource = last.DataSource;
            branch.State = BranchState.PrepareSent; // from here on, a failure (a cancelled token, a lost reply) may leave it prepared
            using (var span = TransactionTelemetry.StartPhase(TransactionTelemetry.Prepare, branch))
            {
                try
                {
                    await ExecuteAsync(branch.Connection, branch.Dialect.Distributed.PrepareTransactionSql(branch.Gid), branch.Transaction, async, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (RouteTelemetry.Failed(span, ex))
                {
                    throw; // not reached: the filter only marks the span
                }
            }

            DisposeLocalTransaction(branch); // PREPARE TRANSACTION ended the session's transaction
            branch.State = BranchState.Prepared;
            FaultInjection.Hit(FaultInjection.AfterPrepare, branch);
        }

        // Phase 2: the decision, in the last resource's own transaction (in its own database, for a branch that
        // switched databases of its instance), with one expectation row per heuristic participant.
        FaultInjection.Hit(FaultInjection.BeforeDecision, last);
        using (var decision = TransactionTelemetry.StartPhase(TransactionTelemetry.Decision, last))
        {
            try
            {
                await last.UseDatabaseAsync(last.HomeDatabase, async, cancellationToken).ConfigureAwait(false);
                var withCommit = heuristicIds.Count == 0 ? last.Dialect.Distributed.InsertDecisionAndCommitSql : null;
                if (withCommit is not null)
                {
                    // The decision row and its COMMIT in one round trip: the row commits with it or not at all, so the
                    // protocol's meaning is unchanged, and the last point where the caller's token applies is here.
                    var command = CreateDecisionCommand(last, withCommit, Gtrid, "c");
                    await using (command.ConfigureAwait(false))
                    {
                        // Preparing (a round trip on a connection's first decision) sends no COMMIT: a failure here aborts.
                        await PrepareIfWorthItAsync(last, command, async, cancellationToken).ConfigureAwait(false);
                        cancellationToken.ThrowIfCancellationRequested();
                        FaultInjection.Hit(FaultInjection.AfterDecisionInsert, last);
                        await CommitLastResourceAsync(last, async, command).ConfigureAwait(false);
                    }
                }
                else
                {
                    try
                    {
                        await InsertDecisionRowAsync(last, Gtrid, "c", async, cancellationToken).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (last.Dialect.Distributed.IsUniqueViolation(ex))
                    {
                        throw Fenced(ex);
                    }

                    foreach (var (_, key) in heuristicIds)
                        await InsertDecisionRowAsync(last, HeuristicId(Gtrid, "expect", key), "h", async, cancellationToken).ConfigureAwait(false);

                    FaultInjection.Hit(FaultInjection.AfterDecisionInsert, last);

                    // The decision's COMMIT is the point of no return: from here on the caller's token no longer applies. A COMMIT
                    // cancelled in flight could have committed on the server while the client saw OperationCanceledException, and
                    // rolling the prepared branches back then would break atomicity.
                    await CommitLastResourceAsync(last, async).ConfigureAwait(false);
                }

                _decided = true;
            }
            catch (Exception ex) when (RouteTelemetry.Failed(decision, ex))
            {
                throw; // not reached: the filter only marks the span
            }
        }
        FaultInjection.Hit(FaultInjection.AfterDecisionCommit, last);

        // Phase 2b: heuristic participants commit right after the decision. A failure here cannot be undone: the
        // outcome is mixed (heuristic), recovery reports it (the expectation row without its marker), the caller is told.
        List<string>? heuristicFailures = null;
        foreach (var (participant, _) in heuristicIds)
        {
            try
            {
                FaultInjection.Hit(FaultInjection.BeforeHeuristicCommit, participant);
                await FinishLocalAsync(participant, commit: true, async, CancellationToken.None).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // The decision is durable: the remaining branches still commit; the caller learns of the hazard below.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                (heuristicFailures ??= []).Add($"{participant.DataSource.CurrentPrimaryAddress} ({ex.GetType().Name}: {ex.Message})");
                Log.HeuristicCommitFailed(participant.DataSource.Logger, Gtrid, participant.DataSource.CurrentPrimaryAddress, ex);
                RwSplitTelemetry.RecoveryActions.Add(1, new KeyValuePair<string, object?>(TagNames.RecoveryAction, "heuristic_commit_failed")); // recovery counts the hazard itself once it sees it
            }
        }

        // Phase 3: the decision is durable; finishing the prepared branches can no longer change the outcome, and no
        // token cancels it: a prepared branch left behind would hold its row locks until recovery's next pass.
        foreach (var branch in toPrepare)
        {
            await FinishPreparedAsync(branch, commit: true, async).ConfigureAwait(false);
            FaultInjection.Hit(FaultInjection.BetweenCommitPrepared, branch);
        }

        FaultInjection.Hit(FaultInjection.AfterCommitPrepared, null);
        if (heuristicFailures is not null)
        {
            throw new TransactionInDoubtException(
                $"Distributed transaction {Gtrid} committed its decision on {last.DataSource.CurrentPrimaryAddress}, but the commit of heuristic participant(s) {string.Join(", ", heuristicFailures)} failed after it: their work may have been rolled back while the rest committed (a heuristic outcome, possible because AllowHeuristicCommit is on). Recovery lists it in RwSplitRecovery.HeuristicOutcomes once the participant is reachable; reconcile the data by hand, then call RwSplitRecovery.AcknowledgeHeuristicAsync.");
        }

        return heuristic.Count == 0 ? "two_phase" : "heuristic";
    }

    /// <summary>
    /// The last resource, and the heuristic participants: an engine that cannot prepare must be the last resource, so
    /// with two or more such instances all but one must have opted in to committing after the decision.
    /// </summary>
    private static (Branch Last, List<Branch> Heuristic) ChooseLastResource(List<Branch> writers, List<Branch> cannotPrepare)
    {
        if (cannotPrepare.Count == 0)
            return (writers[0], []);
        if (cannotPrepare.Count == 1)
            return (cannotPrepare[0], []);
        var refusing = cannotPrepare.Where(b => !b.DataSource.Transactions.AllowHeuristicCommit).ToList();
        if (refusing.Count > 1)
        {
            throw new RwSplitException(
                RwSplitError.DistributedTransactionUnavailable,
                $"The transaction wrote to {cannotPrepare.Count} SQL Server instances ({string.Join(", ", cannotPrepare.Select(b => b.Key))}); SQL Server cannot prepare a transaction outside MSDTC, so only one instance can take part atomically (as the last resource). Write to one instance per transaction (databases of one instance are fine), move the other work out of the transaction, or accept a heuristic outcome on a crash by setting RwSplitOptions.AllowHeuristicCommit on the data sources of all instances but one (see docs/transactions.md). Nothing was committed.");
        }

        var last = refusing.Count == 1 ? refusing[0] : cannotPrepare[0];
        return (last, cannotPrepare.Where(b => !ReferenceEquals(b, last)).ToList());
    }

    /// <summary>The decision-table id of a heuristic participant's marker (in its database) or expectation (in the decision database).</summary>
    internal static string HeuristicId(string gtrid, string kind, string participantKey) => $"{gtrid}:{kind}:{participantKey}";

    private static TransactionAbortedException Fenced(Exception ex)
        => new("Recovery fenced this transaction off (it found its branches prepared for longer than RecoveryGracePeriod, with no decision) and rolled it back.", ex);

    private static async ValueTask InsertDecisionRowAsync(Branch branch, string id, string outcome, bool async, CancellationToken cancellationToken)
    {
        var insert = CreateDecisionCommand(branch, branch.Dialect.Distributed.InsertDecisionSql, id, outcome);
        await using (insert.ConfigureAwait(false))
        {
            await PrepareIfWorthItAsync(branch, insert, async, cancellationToken).ConfigureAwait(false);
            _ = await ProviderIo.ExecuteNonQueryAsync(insert, async, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A decision-table insert (<paramref name="sql"/>: the dialect's insert, alone or with its COMMIT) in the branch's transaction.</summary>
    private static DbCommand CreateDecisionCommand(Branch branch, string sql, string id, string outcome)
    {
        var command = branch.Connection.CreateCommand();
        command.Transaction = branch.Transaction;
        command.CommandText = sql;
        AddParameter(command, "gtrid", id);
        AddParameter(command, "outcome", outcome);
        AddParameter(command, "coordinator", TransactionCoordinator.CoordinatorId);
        return command;
    }

    /// <summary>
    /// Prepares a coordinator statement where the dialect says it pays: a server-side prepared statement, kept by the
    /// provider per physical connection, so later decisions on the same pooled connection skip parsing and planning.
    /// </summary>
    private static ValueTask PrepareIfWorthItAsync(Branch branch, DbCommand command, bool async, CancellationToken cancellationToken)
        => branch.Dialect.Distributed.PrepareCoordinatorStatements ? ProviderIo.PrepareAsync(command, async, cancellationToken) : default;

    /// <summary>
    /// Commits the branch's local transaction — the decision, or the only writing branch — never cancelled: once the
    /// COMMIT is sent only the server knows whether it committed. An unknown outcome (connection lost during COMMIT) is
    /// in-doubt. With <paramref name="decisionAndCommit"/> (the decision row and the COMMIT in one statement) that
    /// statement is the COMMIT: a duplicate decision (a recovery fence) or any other error the server reports means it
    /// did not commit.
    /// </summary>
    private async ValueTask CommitLastResourceAsync(Branch branch, bool async, DbCommand? decisionAndCommit = null)
    {
        var transaction = branch.Transaction ?? throw new InvalidOperationException("The branch has no local transaction.");
        try
        {
            if (decisionAndCommit is null)
            {
                await ProviderIo.CommitAsync(transaction, async, CancellationToken.None).ConfigureAwait(false);
            }
            else
            {
                _ = await ProviderIo.ExecuteNonQueryAsync(decisionAndCommit, async, CancellationToken.None).ConfigureAwait(false);
            }

            FaultInjection.Hit(FaultInjection.DecisionCommitReplyLost, branch);
        }
        catch (Exception ex) when (decisionAndCommit is not null && branch.Dialect.Distributed.IsUniqueViolation(ex))
        {
            throw Fenced(ex);
        }
        catch (Exception ex) when (ex is not OperationCanceledException && (branch.Connection.State != System.Data.ConnectionState.Open || branch.Dialect.Failures.IsConnectionFailure(ex, branch.Connection) || ex is System.IO.IOException))
        {
            // The COMMIT may or may not have reached the server: only the database knows.
            branch.State = BranchState.Committed; // not ours to roll back any more
            throw new TransactionInDoubtException(
                $"The connection to {branch.DataSource.CurrentPrimaryAddress} failed while committing the decision of distributed transaction {Gtrid}: it may or may not have committed. Recovery resolves it (prepared branches follow the decision row, or are rolled back after RecoveryGracePeriod if there is none); see RwSplitRecovery.",
                ex);
        }

        DisposeLocalTransaction(branch);
        branch.State = BranchState.Committed;
    }

    private string BranchId(string decisionKey, int index)
        => string.Create(CultureInfo.InvariantCulture, $"rws:{TransactionCoordinator.CoordinatorId}:{Gtrid}:{decisionKey}:{index}");

    /// <summary>Rolls back every branch: local ones, and prepared ones (presumed abort: no decision was committed).</summary>
    public async ValueTask RollbackAsync(bool async)
    {
        lock (_gate)
        {
            if (_state != State.Active)
                return;
            _state = State.RolledBack;
        }

        using var activity = TransactionTelemetry.StartRollback(Branches.Count);
        try
        {
            await RollbackAllAsync(async).ConfigureAwait(false);
        }
        finally
        {
            await CloseAllAsync(async).ConfigureAwait(false);
            TransactionTelemetry.Ended(activity, "rollback", "aborted");
            RwSplitTelemetry.Transactions.Add(1, new KeyValuePair<string, object?>(TagNames.TransactionKind, "rollback"), new KeyValuePair<string, object?>(TagNames.TransactionOutcome, "aborted"));
        }
    }

    private async ValueTask RollbackAllAsync(bool async)
    {
        // Local transactions first: the last resource's may hold an inserted, uncommitted decision row,
        // which an abort fence written below would wait for.
        var branches = Branches.OrderBy(b => b.State == BranchState.Active ? 0 : 1).ToArray();
        foreach (var branch in branches)
        {
            try
            {
                switch (branch.State)
                {
                    case BranchState.Active:
                        await FinishLocalAsync(branch, commit: false, async, CancellationToken.None).ConfigureAwait(false);
                        break;
                    case BranchState.PrepareSent:
                        // The PREPARE may have gone through (its reply lost, or its cancellation too late): end the
                        // session's transaction if it is still open, then roll back the prepared one if it exists.
                        await FinishLocalAsync(branch, commit: false, async, CancellationToken.None).ConfigureAwait(false);
                        await FinishPreparedAsync(branch, commit: false, async).ConfigureAwait(false);
                        break;
                    case BranchState.Prepared:
                        await FinishPreparedAsync(branch, commit: false, async).ConfigureAwait(false);
                        break;
                }
            }
#pragma warning disable CA1031 // Best effort: the local transaction ends with its connection; prepared ones are handled above.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.RollbackDeferred(branch.DataSource.Logger, branch.Gid ?? Gtrid, branch.DataSource.CurrentPrimaryAddress, ex);
            }
        }
    }

    /// <summary>
    /// COMMIT PREPARED or ROLLBACK PREPARED of a branch, uncancellable: on the branch's own connection, else (it broke,
    /// or the statement failed) on a fresh connection to the branch's database. A branch that cannot be finished now is
    /// left to recovery with its answer written down: the decision row says commit; for a rollback an abort fence is
    /// written into the decision database (best effort), so that recovery rolls it back on its next pass, which is
    /// requested at once, instead of waiting for <see cref="RwSplitOptions.RecoveryGracePeriod"/>.
    /// </summary>
    private async ValueTask FinishPreparedAsync(Branch branch, bool commit, bool async)
    {
        using var span = TransactionTelemetry.StartPhase(commit ? TransactionTelemetry.CommitPrepared : TransactionTelemetry.RollbackPrepared, branch);
        var sql = commit ? branch.Dialect.Distributed.CommitPreparedSql(branch.Gid!) : branch.Dialect.Distributed.RollbackPreparedSql(branch.Gid!);
        Exception? failure = null;
        if (branch.Connection.State == System.Data.ConnectionState.Open)
        {
            try
            {
                await ExecuteAsync(branch.Connection, sql, null, async, CancellationToken.None).ConfigureAwait(false);
                branch.State = commit ? BranchState.Committed : BranchState.RolledBack;
                return;
            }
#pragma warning disable CA1031 // Tried again below on a fresh connection.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                failure = ex;
            }
        }

        try
        {
            if (branch.State == BranchState.PrepareSent || failure is not null)
            {
                // Only an id the server lists is finished: "not prepared" (the PREPARE never happened, or recovery
                // or an operator finished it meanwhile) is no failure.
                if (!await IsPreparedAsync(branch, async).ConfigureAwait(false))
                {
                    branch.State = commit ? BranchState.Committed : BranchState.RolledBack;
                    return;
                }
            }

            await ProviderCalls.NonQueryAsync(branch.DataSource, sql, async, CancellationToken.None).ConfigureAwait(false);
            branch.State = commit ? BranchState.Committed : BranchState.RolledBack;
            return;
        }
#pragma warning disable CA1031 // Left to recovery below, with its answer written down.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            failure = ex;
        }

        _ = RouteTelemetry.Failed(span, failure); // deferred to recovery
        if (commit)
        {
            Log.CommitPreparedDeferred(branch.DataSource.Logger, branch.Gid!, branch.DataSource.CurrentPrimaryAddress, failure);
        }
        else
        {
            Log.RollbackDeferred(branch.DataSource.Logger, branch.Gid!, branch.DataSource.CurrentPrimaryAddress, failure);
            await FenceAsync(async).ConfigureAwait(false);
        }

        branch.DataSource.Recovery?.RequestPass(); // the recovery that scans the branch's database
    }

    private static async ValueTask<bool> IsPreparedAsync(Branch branch, bool async)
        => branch.Dialect.Distributed.ListPreparedTransactionsSql is null
           || (await RwSplitRecovery.ListPreparedAsync(branch.DataSource, CancellationToken.None, async).ConfigureAwait(false)).Exists(p => p.Id == branch.Gid);

    /// <summary>
    /// Writes this transaction's abort decision (the fence recovery writes after the grace period) into the decision
    /// database, before any decision was committed: recovery then rolls back whatever is left prepared without waiting.
    /// A duplicate key means a fence is there already.
    /// </summary>
    private async ValueTask FenceAsync(bool async)
    {
        var decisionSource = _decisionSource;
        if (decisionSource is null || _fenced)
            return;
        try
        {
            // false: a fence is there already; either way the answer is written down
            await RwSplitRecovery.TryFenceAsync(decisionSource, Gtrid, CancellationToken.None, TransactionCoordinator.CoordinatorId, async).ConfigureAwait(false);
            _fenced = true;
        }
#pragma warning disable CA1031 // Unreachable too: recovery falls back to the grace period.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.RollbackDeferred(decisionSource.Logger, Gtrid, decisionSource.CurrentPrimaryAddress, ex);
        }
    }

    private static async ValueTask FinishLocalAsync(Branch branch, bool commit, bool async, CancellationToken cancellationToken)
    {
        var transaction = branch.Transaction;
        if (transaction is null)
            return;
        try
        {
            if (commit)
                await ProviderIo.CommitAsync(transaction, async, cancellationToken).ConfigureAwait(false);
            else
                await ProviderIo.RollbackAsync(transaction, async, cancellationToken).ConfigureAwait(false);

            branch.State = commit ? BranchState.Committed : BranchState.RolledBack;
        }
        finally
        {
            DisposeLocalTransaction(branch);
        }
    }

    private static void DisposeLocalTransaction(Branch branch)
    {
        var transaction = branch.Transaction;
        branch.Transaction = null;
        try
        {
            transaction?.Dispose();
        }
#pragma warning disable CA1031 // A transaction object of a broken connection may throw on dispose.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    private async ValueTask CloseAllAsync(bool async)
    {
        foreach (var branch in Branches)
        {
            try
            {
                DisposeLocalTransaction(branch);
                await ProviderIo.DisposeAsync(branch.Connection, async).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // Closing a broken connection may throw; it is gone either way.
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }
    }

    private static async ValueTask ExecuteAsync(DbConnection connection, string sql, DbTransaction? transaction, bool async, CancellationToken cancellationToken)
    {
        var command = connection.CreateCommand();
        await using (command.ConfigureAwait(false))
        {
            command.CommandText = sql;
            command.Transaction = transaction;
            _ = await ProviderIo.ExecuteNonQueryAsync(command, async, cancellationToken).ConfigureAwait(false);
        }
    }

    internal static void AddParameter(DbCommand command, string name, object value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
    }
}
