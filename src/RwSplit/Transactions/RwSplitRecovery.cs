using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Data.Common;
using System.Globalization;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Diagnostics;
using RwSplit.Providers;
using RwSplit.Topology;

namespace RwSplit.Transactions;

/// <summary>A prepared branch recovery could not resolve, and why.</summary>
/// <param name="BranchId">The prepared transaction's id (<c>rws:…</c>).</param>
/// <param name="Database">Where it is prepared (free of secrets).</param>
/// <param name="Age">How long it has been prepared.</param>
/// <param name="Reason">Why it is not resolved yet.</param>
public sealed record UnresolvedTransaction(string BranchId, string Database, TimeSpan Age, string Reason);

/// <summary>What one recovery pass did.</summary>
/// <param name="Committed">Prepared branches committed because their decision says commit.</param>
/// <param name="RolledBack">Prepared branches rolled back (an abort fence, or no decision).</param>
/// <param name="Fenced">Transactions recovery decided to abort by writing a fence row.</param>
/// <param name="Unresolved">Branches left for a later pass.</param>
public sealed record RecoveryResult(int Committed, int RolledBack, int Fenced, IReadOnlyList<UnresolvedTransaction> Unresolved)
{
    /// <summary>Heuristic participants whose commit recovery confirmed (marker row found); their rows were removed.</summary>
    public int HeuristicConfirmed { get; init; }

    /// <summary>Heuristic outcomes found: the decision committed, a heuristic participant's work did not.</summary>
    public IReadOnlyList<HeuristicOutcome> HeuristicOutcomes { get; init; } = Array.Empty<HeuristicOutcome>();
}

/// <summary>
/// A heuristic outcome (only possible with <see cref="RwSplitOptions.AllowHeuristicCommit"/>): distributed transaction
/// <paramref name="Gtrid"/> committed its decision on <paramref name="DecisionDatabase"/>, but its heuristic participant
/// <paramref name="Participant"/> did not commit (no marker row): its part of the work is missing. Reconcile the data by
/// hand, then call <see cref="RwSplitRecovery.AcknowledgeHeuristicAsync"/> with <paramref name="Id"/>.
/// </summary>
/// <param name="Id">The expectation row's id in the decision database (<c>{gtrid}:expect:{participant key}</c>).</param>
/// <param name="Gtrid">The distributed transaction's id.</param>
/// <param name="DecisionDatabase">Where the decision (and the expectation row) is (free of secrets).</param>
/// <param name="Participant">The participant whose work is missing (free of secrets).</param>
/// <param name="Age">How long ago the decision was written.</param>
public sealed record HeuristicOutcome(string Id, string Gtrid, string DecisionDatabase, string Participant, TimeSpan Age);

/// <summary>
/// Crash recovery of the distributed transactions of a set of data sources (those with
/// <see cref="RwSplitOptions.DistributedTransactions"/> on that were built with this recovery: <see cref="RwSplitOptions.Recovery"/>,
/// <see cref="RwSplitDataSourceBuilder.UseRecovery"/>; dependency injection gives every data source of the container one
/// shared instance, and the drop-in factory one for its connections). Runs shortly after its first data source joins, every
/// <see cref="RwSplitOptions.RecoveryInterval"/>, and on demand (<see cref="RecoverAsync(CancellationToken)"/>). For each
/// RwSplit prepared transaction (<c>rws:</c> ids, including those of other processes that never came back) it reads the
/// decision in the database the id names: commit, roll back, or — when there is none and the branch is older than
/// <see cref="RwSplitOptions.RecoveryGracePeriod"/> — insert an abort fence under the transaction's key (a late coordinator
/// then fails on the key) and roll back. It never decides while the decision database is unreachable.
/// </summary>
/// <remarks>
/// Put every data source whose databases take part in the same distributed transactions into one recovery: after a
/// restart, a prepared branch can only be resolved by a recovery that also has the data source of its decision database.
/// (While the process runs, a recovery also learns the data sources its members shared a transaction with.) A data source
/// built without one gets its own, disposed with it.
/// </remarks>
public sealed partial class RwSplitRecovery : IDisposable
{
    private readonly ConcurrentDictionary<RwSplitDataSource, byte> _members = new();
    private readonly ConcurrentDictionary<RwSplitDataSource, byte> _peers = new();
    private readonly SemaphoreSlim _pass = new(1, 1);
    private readonly object _timerGate = new();
    private Timer? _timer;
    private bool _disposed;
    private volatile IReadOnlyList<UnresolvedTransaction> _unresolved = Array.Empty<UnresolvedTransaction>();
    private volatile IReadOnlyList<HeuristicOutcome> _heuristic = Array.Empty<HeuristicOutcome>();

    /// <summary>The data sources this recovery scans (each joined when it was built, and left when disposed).</summary>
    public IReadOnlyCollection<RwSplitDataSource> DataSources => _members.Keys.ToArray();

    /// <summary>What the last pass could not resolve.</summary>
    public IReadOnlyList<UnresolvedTransaction> Unresolved => _unresolved;

    /// <summary>
    /// Heuristic outcomes the last pass found (see <see cref="RwSplitOptions.AllowHeuristicCommit"/>): each stays listed,
    /// logged and counted until acknowledged with <see cref="AcknowledgeHeuristicAsync"/>.
    /// </summary>
    public IReadOnlyList<HeuristicOutcome> HeuristicOutcomes => _heuristic;

    /// <summary>Stops the periodic passes (the data sources stay usable; an explicit <see cref="RecoverAsync(CancellationToken)"/> still works).</summary>
    public void Dispose()
    {
        lock (_timerGate)
        {
            _disposed = true;
            _timer?.Dispose();
            _timer = null;
        }
    }

    internal void Join(RwSplitDataSource dataSource)
    {
        _members.TryAdd(dataSource, 0);
        _peers.TryRemove(dataSource, out _);
        lock (_timerGate)
        {
            if (_disposed)
                return;
            var interval = _members.Keys.Min(d => d.Transactions.RecoveryInterval);
            _timer ??= new Timer(static state => _ = ((RwSplitRecovery)state!).RunInBackgroundAsync(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _timer.Change(TimeSpan.FromSeconds(1), interval); // start-up pass, then periodic
        }
    }

    internal void Leave(RwSplitDataSource dataSource)
    {
        _members.TryRemove(dataSource, out _);
        lock (_timerGate)
        {
            if (_members.IsEmpty && _timer is not null)
            {
                _timer.Dispose();
                _timer = null;
            }
        }
    }

    /// <summary>
    /// Makes the data sources of one distributed transaction known to each other's recovery (lookups only: each is
    /// scanned by its own), so that a branch one member prepared can be resolved from a decision held by another's database.
    /// </summary>
    internal static void Introduce(RwSplitDataSource decision, IEnumerable<RwSplitDataSource> participants)
    {
        foreach (var participant in participants)
        {
            participant.Recovery?.Learn(decision);
            decision.Recovery?.Learn(participant);
        }
    }

    private void Learn(RwSplitDataSource peer)
    {
        if (!_members.ContainsKey(peer))
            _peers.TryAdd(peer, 0);
    }

    /// <summary>
    /// Asks for a pass soon (a coordinator left a branch it could not finish, with its answer written down), instead of
    /// at the next <see cref="RwSplitOptions.RecoveryInterval"/>.
    /// </summary>
    internal void RequestPass()
    {
        lock (_timerGate)
        {
            if (_timer is null || _members.IsEmpty)
                return;
            _timer.Change(TimeSpan.FromMilliseconds(500), _members.Keys.Min(d => d.Transactions.RecoveryInterval));
        }
    }

    /// <summary>Members first, then the live peers (disposed peers are forgotten).</summary>
    private RwSplitDataSource[] Known()
    {
        foreach (var peer in _peers.Keys)
        {
            if (peer.IsDisposed)
                _peers.TryRemove(peer, out _);
        }

        return [.. _members.Keys.Where(d => !d.IsDisposed), .. _peers.Keys.Where(d => !d.IsDisposed)];
    }

    private async Task RunInBackgroundAsync()
    {
        try
        {
            await RecoverAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The periodic pass logs and tries again next time.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            foreach (var logger in _members.Keys.Select(d => d.Logger).Distinct())
                Log.RecoveryPassFailed(logger, ex);
        }
    }

    /// <summary>Runs one recovery pass now over this recovery's data sources.</summary>
    /// <param name="cancellationToken">Cancels the pass.</param>
    public Task<RecoveryResult> RecoverAsync(CancellationToken cancellationToken = default) => RecoverAsync(null, cancellationToken);

    /// <summary>Runs one pass with a grace period other than the data sources' (tests, and operators who know no coordinator is alive).</summary>
    internal async Task<RecoveryResult> RecoverAsync(TimeSpan? gracePeriod, CancellationToken cancellationToken)
    {
        await _pass.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var committed = 0;
            var rolledBack = 0;
            var fenced = 0;
            var unresolved = new List<UnresolvedTransaction>();
            var sources = Known();
            await foreach (var (dataSource, gid, age) in ListPreparedBranchesAsync(sources, (source, ex) => Log.RecoveryDatabaseUnreachable(source.Logger, source.CurrentPrimaryAddress, ex), cancellationToken).ConfigureAwait(false))
            {
                Resolution result;
                try
                {
                    result = await ResolveAsync(dataSource, gid, age, gracePeriod ?? dataSource.Transactions.RecoveryGracePeriod, sources, cancellationToken).ConfigureAwait(false);
                }
                catch (DbException ex)
                {
                    // For example the coordinator finished the branch meanwhile ("does not exist"): the next pass looks again.
                    result = new Resolution(PlannedRecoveryAction.Unresolvable, $"resolving it failed ({ErrorKinds.Of(ex)}); the next pass looks again");
                }

                switch (result.Action)
                {
                    case PlannedRecoveryAction.Commit:
                        committed++;
                        break;
                    case PlannedRecoveryAction.Fence:
                        fenced++;
                        rolledBack++;
                        break;
                    case PlannedRecoveryAction.Rollback:
                        rolledBack++;
                        break;
                    default:
                        AddUnresolved(unresolved, new UnresolvedTransaction(gid, dataSource.CurrentPrimaryAddress.ToString(), age, result.Reason), dataSource);
                        break;
                }
            }

            var (confirmed, hazards) = await CheckHeuristicParticipantsAsync(sources, gracePeriod, unresolved, cancellationToken).ConfigureAwait(false);
            var known = _heuristic.Select(h => h.Id).ToHashSet(StringComparer.Ordinal);
            foreach (var hazard in hazards)
            {
                if (!known.Contains(hazard.Id))
                    Count("heuristic_hazard");
            }

            _heuristic = hazards;
            _unresolved = unresolved;
            return new RecoveryResult(committed, rolledBack, fenced, unresolved) { HeuristicConfirmed = confirmed, HeuristicOutcomes = hazards };
        }
        finally
        {
            _pass.Release();
        }
    }

    /// <summary>Lists a branch recovery cannot resolve, and logs it to the logger of the data source it was found through.</summary>
    private static void AddUnresolved(List<UnresolvedTransaction> unresolved, UnresolvedTransaction item, RwSplitDataSource source)
    {
        unresolved.Add(item);
        Log.RecoveryUnresolved(source.Logger, item.BranchId, item.Database, item.Reason);
    }

    /// <summary>
    /// Resolves one prepared branch by hand (an operator's heuristic decision, logged as such): commit or roll it back
    /// without consulting the decision. Use only when the decision database is lost for good.
    /// </summary>
    /// <param name="branchId">The <c>rws:</c> id, as listed in <see cref="Unresolved"/>.</param>
    /// <param name="commit"><see langword="true"/> to commit it, <see langword="false"/> to roll it back.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public async Task ForceResolveAsync(string branchId, bool commit, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(branchId);
        foreach (var dataSource in _members.Keys)
        {
            if (!dataSource.Dialect.CanPrepare)
                continue;
            var prepared = await ListPreparedAsync(dataSource, cancellationToken).ConfigureAwait(false);
            if (prepared.All(p => p.Id != branchId))
                continue;
            await ActAsync(dataSource, commit ? "forced_commit" : "forced_rollback", commit ? dataSource.Dialect.Distributed.CommitPreparedSql(branchId) : dataSource.Dialect.Distributed.RollbackPreparedSql(branchId), cancellationToken).ConfigureAwait(false);
            Log.HeuristicResolution(dataSource.Logger, branchId, commit ? "commit" : "rollback", dataSource.CurrentPrimaryAddress);
            _unresolved = _unresolved.Where(u => u.BranchId != branchId).ToArray();
            return;
        }

        throw new InvalidOperationException($"No data source of this recovery has a prepared transaction '{branchId}'.");
    }

    /// <summary>What recovery did with a branch: <see cref="RecoveryPlan.Reason"/> says why when it left it.</summary>
    private readonly record struct Resolution(PlannedRecoveryAction Action, string Reason);

    /// <summary>
    /// RwSplit's prepared branches in the databases of the members (each database once, in member order, listed as the
    /// caller reaches it), with the data source each was found through; a database that cannot be read is passed to
    /// <paramref name="unreachable"/> and skipped.
    /// </summary>
    private async IAsyncEnumerable<(RwSplitDataSource DataSource, string Id, TimeSpan Age)> ListPreparedBranchesAsync(RwSplitDataSource[] sources, Action<RwSplitDataSource, DbException> unreachable, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var dataSource in sources.Where(_members.ContainsKey))
        {
            if (!dataSource.Dialect.CanPrepare || dataSource.Dialect.Distributed.ListPreparedTransactionsSql is null)
                continue;
            List<(string Id, double Age)> prepared;
            try
            {
                if (!seen.Add(await dataSource.Transactions.GetKeyAsync(true, cancellationToken).ConfigureAwait(false)))
                    continue;
                prepared = await ListPreparedAsync(dataSource, cancellationToken).ConfigureAwait(false);
            }
            catch (DbException ex)
            {
                unreachable(dataSource, ex);
                continue;
            }

            foreach (var (id, age) in prepared)
                yield return (dataSource, id, TimeSpan.FromSeconds(age));
        }
    }

    /// <summary>Gathers the facts of one branch, lets <see cref="RecoveryPlan.Decide"/> decide, and carries its plan out.</summary>
    private static async Task<Resolution> ResolveAsync(RwSplitDataSource branchSource, string gid, TimeSpan age, TimeSpan grace, RwSplitDataSource[] sources, CancellationToken cancellationToken)
    {
        var id = PreparedBranchId.Parse(gid);
        var facts = new BranchFacts(id, age, grace);
        if (id is null || await FindByKeyAsync(sources, id.DecisionKey, cancellationToken).ConfigureAwait(false) is not { } decisionSource)
            return Leave(RecoveryPlan.Decide(facts));
        facts = facts with { DecisionDatabase = decisionSource.CurrentPrimaryAddress.ToString() };

        FaultInjection.Hit(FaultInjection.RecoveryBeforeResolve, gid);
        RecoveryPlan plan;
        try
        {
            facts = facts with { Outcome = await ReadDecisionAsync(decisionSource, id.Gtrid, cancellationToken).ConfigureAwait(false) };
            plan = RecoveryPlan.Decide(facts);
            if (plan.Action == PlannedRecoveryAction.Fence)
            {
                // No decision and old enough: try to decide abort. If the fence loses, a decision exists: follow it.
                if (await TryFenceAsync(decisionSource, id.Gtrid, cancellationToken).ConfigureAwait(false))
                {
                    await ActAsync(branchSource, "fence", branchSource.Dialect.Distributed.RollbackPreparedSql(gid), cancellationToken).ConfigureAwait(false);
                    return new Resolution(PlannedRecoveryAction.Fence, plan.Reason);
                }

                facts = facts with { Outcome = await ReadDecisionAsync(decisionSource, id.Gtrid, cancellationToken).ConfigureAwait(false), FenceLost = true };
                plan = RecoveryPlan.Decide(facts);
            }
        }
        catch (DbException ex) when (!IsMissingDecisionTable(ex))
        {
            plan = RecoveryPlan.Decide(facts with { DecisionError = ErrorKinds.Of(ex) });
        }

        switch (plan.Action)
        {
            case PlannedRecoveryAction.Commit:
                await ActAsync(branchSource, "commit", branchSource.Dialect.Distributed.CommitPreparedSql(gid), cancellationToken).ConfigureAwait(false);
                return new Resolution(plan.Action, plan.Reason);
            case PlannedRecoveryAction.Rollback:
                await ActAsync(branchSource, "rollback", branchSource.Dialect.Distributed.RollbackPreparedSql(gid), cancellationToken).ConfigureAwait(false);
                return new Resolution(plan.Action, plan.Reason);
            default:
                return Leave(plan);
        }

        static Resolution Leave(RecoveryPlan plan) => new(plan.Action == PlannedRecoveryAction.Fence ? PlannedRecoveryAction.Unresolvable : plan.Action, plan.Reason);
    }

    /// <summary>The known data source of the database with this key, or null (none, or unreachable now: tried again next pass).</summary>
    private static async Task<RwSplitDataSource?> FindByKeyAsync(RwSplitDataSource[] sources, string key, CancellationToken cancellationToken)
    {
        foreach (var candidate in sources)
        {
            try
            {
                if (await candidate.Transactions.GetKeyAsync(true, cancellationToken).ConfigureAwait(false) == key)
                    return candidate;
            }
            catch (DbException)
            {
                // unreachable now: it may be the database looked for; it is tried again next pass
            }
        }

        return null;
    }

    /// <summary>
    /// For every expectation row (written with a decision that had heuristic participants) older than the grace period:
    /// the participant's marker row present means it committed (both rows are removed); absent means its work was rolled
    /// back while the decision committed, a heuristic outcome. Runs only when some data source allows heuristic commit.
    /// </summary>
    private async Task<(int Confirmed, List<HeuristicOutcome> Hazards)> CheckHeuristicParticipantsAsync(RwSplitDataSource[] sources, TimeSpan? gracePeriod, List<UnresolvedTransaction> unresolved, CancellationToken cancellationToken)
    {
        var hazards = new List<HeuristicOutcome>();
        var confirmed = 0;
        await foreach (var (decisionSource, id, expectation, age) in ListHeuristicExpectationsAsync(sources, gracePeriod, (source, ex) => Log.RecoveryDatabaseUnreachable(source.Logger, source.CurrentPrimaryAddress, ex), cancellationToken).ConfigureAwait(false))
        {
            var participant = await FindByKeyAsync(sources, expectation.ParticipantKey, cancellationToken).ConfigureAwait(false);
            if (participant is null)
            {
                AddUnresolved(unresolved, new UnresolvedTransaction(id, decisionSource.CurrentPrimaryAddress.ToString(), age, $"its heuristic participant (key {expectation.ParticipantKey}) is not in this recovery or unreachable: build its RwSplitDataSource (DistributedTransactions on) with the same RwSplitRecovery so that recovery can check its marker row"), decisionSource);
                continue;
            }

            var markerId = expectation.MarkerId;
            try
            {
                if (HeuristicExpectationId.Committed(await ReadDecisionAsync(participant, markerId, cancellationToken).ConfigureAwait(false)))
                {
                    // The expectation goes first: a crash in between leaves a stray marker, never a false alarm.
                    await ProviderCalls.NonQueryAsync(decisionSource, decisionSource.Dialect.Distributed.DeleteDecisionSql, true, cancellationToken, ("gtrid", id)).ConfigureAwait(false);
                    await ProviderCalls.NonQueryAsync(participant, participant.Dialect.Distributed.DeleteDecisionSql, true, cancellationToken, ("gtrid", markerId)).ConfigureAwait(false);
                    confirmed++;
                    Count("heuristic_confirmed");
                }
                else
                {
                    var hazard = Hazard(decisionSource, id, expectation, participant, age);
                    hazards.Add(hazard);
                    Log.HeuristicHazard(decisionSource.Logger, hazard.Gtrid, hazard.DecisionDatabase, hazard.Participant);
                }
            }
            catch (DbException ex)
            {
                AddUnresolved(unresolved, new UnresolvedTransaction(id, participant.CurrentPrimaryAddress.ToString(), age, $"checking the heuristic participant's marker failed ({ErrorKinds.Of(ex)}); nothing is reported until it can be read"), participant);
            }
        }

        return (confirmed, hazards);
    }

    /// <summary>
    /// The heuristic expectation rows older than the grace period in the members' databases (each database once, listed as
    /// the caller reaches it), with the data source of the decision database each is in; nothing when no data source allows
    /// heuristic commit. A database without the decision table never held a decision; one that cannot be read is passed
    /// to <paramref name="unreachable"/>. Rows that are not expectations, or younger (their coordinator may still be
    /// committing the participant), are skipped.
    /// </summary>
    private async IAsyncEnumerable<(RwSplitDataSource DecisionSource, string Id, HeuristicExpectationId Expectation, TimeSpan Age)> ListHeuristicExpectationsAsync(RwSplitDataSource[] sources, TimeSpan? gracePeriod, Action<RwSplitDataSource, DbException> unreachable, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!sources.Any(s => s.Transactions.AllowHeuristicCommit))
            yield break;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var decisionSource in sources.Where(_members.ContainsKey))
        {
            if (decisionSource.Dialect.Distributed.ListHeuristicExpectationsSql is not { } sql)
                continue;
            List<(string Id, double Age)> expectations;
            try
            {
                if (!seen.Add(await decisionSource.Transactions.GetKeyAsync(true, cancellationToken).ConfigureAwait(false)))
                    continue;
                expectations = await ListRowsAsync(decisionSource, sql, cancellationToken).ConfigureAwait(false);
            }
            catch (DbException ex) when (IsMissingDecisionTable(ex))
            {
                continue; // it never held a decision
            }
            catch (DbException ex)
            {
                unreachable(decisionSource, ex);
                continue;
            }

            var grace = gracePeriod ?? decisionSource.Transactions.RecoveryGracePeriod;
            foreach (var (id, age) in expectations)
            {
                if (HeuristicExpectationId.Parse(id) is { } expectation && TimeSpan.FromSeconds(age) > grace)
                    yield return (decisionSource, id, expectation, TimeSpan.FromSeconds(age));
            }
        }
    }

    private static HeuristicOutcome Hazard(RwSplitDataSource decisionSource, string id, HeuristicExpectationId expectation, RwSplitDataSource participant, TimeSpan age)
        => new(id, expectation.Gtrid, decisionSource.CurrentPrimaryAddress.ToString(), participant.CurrentPrimaryAddress.ToString(), age);

    /// <summary>
    /// Acknowledges a heuristic outcome after the data was reconciled by hand: removes its expectation row, so recovery
    /// stops reporting it. Logged.
    /// </summary>
    /// <param name="id">The outcome's <see cref="HeuristicOutcome.Id"/>.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <exception cref="InvalidOperationException">No data source of this recovery holds that expectation.</exception>
    public async Task AcknowledgeHeuristicAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        foreach (var dataSource in _members.Keys)
        {
            if (dataSource.Dialect.Distributed.ListHeuristicExpectationsSql is null)
                continue;
            int deleted;
            try
            {
                deleted = await ProviderCalls.NonQueryAsync(dataSource, dataSource.Dialect.Distributed.DeleteDecisionSql, true, cancellationToken, ("gtrid", id)).ConfigureAwait(false);
            }
            catch (DbException ex) when (IsMissingDecisionTable(ex))
            {
                continue;
            }

            if (deleted == 0)
                continue;
            Log.HeuristicAcknowledged(dataSource.Logger, id);
            RwSplitTelemetry.RecoveryActions.Add(1, new KeyValuePair<string, object?>(TagNames.RecoveryAction, "heuristic_acknowledged"));
            _heuristic = _heuristic.Where(h => h.Id != id).ToArray();
            return;
        }

        throw new InvalidOperationException($"No data source of this recovery holds the heuristic outcome '{id}' (already acknowledged, or its decision database's data source is not in this recovery).");
    }

    private static async Task<List<(string Id, double Age)>> ListRowsAsync(RwSplitDataSource dataSource, string sql, CancellationToken cancellationToken, bool async = true)
        => await ProviderCalls.RunAsync(dataSource, async (connection, isAsync, token) =>
        {
            var result = new List<(string, double)>();
            var command = connection.CreateCommand();
            await using (command.ConfigureAwait(false))
            {
                command.CommandText = sql;
                var reader = await ProviderIo.ExecuteReaderAsync(command, isAsync, token).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    while (await ProviderIo.ReadAsync(reader, isAsync, token).ConfigureAwait(false))
                        result.Add((reader.GetString(0), Convert.ToDouble(reader.GetValue(1), CultureInfo.InvariantCulture)));
                }
            }

            return result;
        }, async, cancellationToken).ConfigureAwait(false);

    private static bool IsMissingDecisionTable(DbException ex) => ex.Message.Contains("rwsplit_decisions", StringComparison.Ordinal);

    private static void Count(string action) => RwSplitTelemetry.RecoveryActions.Add(1, new KeyValuePair<string, object?>(TagNames.RecoveryAction, action));

    /// <summary>A recovery action on a prepared branch (commit, rollback, fence, forced_commit, forced_rollback): its statement in its own span, then counted.</summary>
    private static async Task ActAsync(RwSplitDataSource dataSource, string action, string sql, CancellationToken cancellationToken)
    {
        using (var span = TransactionTelemetry.StartRecoveryAction(action, dataSource))
        {
            try
            {
                await ExecuteAsync(dataSource, sql, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (RouteTelemetry.Failed(span, ex))
            {
                throw; // not reached: the filter only marks the span
            }
        }

        Count(action);
    }

    private static async Task<string?> ReadDecisionAsync(RwSplitDataSource dataSource, string gtrid, CancellationToken cancellationToken)
    {
        await dataSource.Transactions.EnsureDecisionTableAsync(true, cancellationToken).ConfigureAwait(false);
        var value = await ProviderCalls.ScalarAsync(dataSource, dataSource.Dialect.Distributed.SelectDecisionSql, true, cancellationToken, ("gtrid", gtrid)).ConfigureAwait(false);
        return DecisionValue(value);
    }

    /// <summary>A decision row's outcome as read (trimmed), or null when there is none.</summary>
    private static string? DecisionValue(object? value) => value is null or DBNull ? null : Convert.ToString(value, CultureInfo.InvariantCulture)?.Trim();

    /// <summary>
    /// Inserts an abort fence for <paramref name="gtrid"/> in its decision database: <see langword="true"/> if it was
    /// written, <see langword="false"/> if a decision or fence was there already. Written by recovery after the grace
    /// period, and by a coordinator that rolled back but could not finish a prepared branch.
    /// </summary>
    internal static async Task<bool> TryFenceAsync(RwSplitDataSource dataSource, string gtrid, CancellationToken cancellationToken, string? coordinator = null, bool async = true)
    {
        try
        {
            await ProviderCalls.ScalarAsync(
                dataSource,
                dataSource.Dialect.Distributed.InsertDecisionSql,
                async,
                cancellationToken,
                ("gtrid", gtrid),
                ("outcome", "a"),
                ("coordinator", coordinator ?? "recovery:" + TransactionCoordinator.CoordinatorId)).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (dataSource.Dialect.Distributed.IsUniqueViolation(ex))
        {
            return false; // the coordinator's decision (or another recovery's fence) won
        }
    }

    /// <summary>RwSplit's prepared transactions of the data source's database: (branch id, seconds since prepared).</summary>
    internal static Task<List<(string Id, double Age)>> ListPreparedAsync(RwSplitDataSource dataSource, CancellationToken cancellationToken, bool async = true)
        => ListRowsAsync(dataSource, dataSource.Dialect.Distributed.ListPreparedTransactionsSql!, cancellationToken, async);

    private static async Task ExecuteAsync(RwSplitDataSource dataSource, string sql, CancellationToken cancellationToken)
        => await ProviderCalls.ScalarAsync(dataSource, sql, true, cancellationToken).ConfigureAwait(false);
}
