using System;
using System.Collections.Generic;
using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using System.Transactions;
using RwSplit.Connections;
using RwSplit.Diagnostics;
using RwSplit.Routing;

namespace RwSplit.Execution;

/// <summary>Where one execution runs: the physical connection, the decision that chose it, and the statement facts it was made on.</summary>
internal readonly record struct RoutePlan(DbConnection Physical, RoutingDecision Decision, StatementFacts Facts, bool HoldsFallbackSlot = false);

/// <summary>
/// What <see cref="RoutePlanner.TryPlanNow"/> had done when it stopped: the facts it resolved, the decision it made and
/// the physical open it started, which <see cref="RoutePlanner.PlanAsync"/> takes over, so that nothing is resolved or
/// decided twice. Kept small (the fast path zeroes it on every execution): a pending open is held as its task.
/// </summary>
internal struct PlanStart
{
    public StatementFacts Facts;
    public RoutingDecision Decision;
    public Task<DbConnection>? Opening;
    public bool HasFacts;
    public bool HasDecision;
    public bool HoldsFallbackSlot;
}

/// <summary>
/// Routes one execution: gathers the inputs once (statement facts, session, consistency, scope, topology), asks the
/// pure <see cref="Router"/>, and carries the decision out (a bounded wait for a replica to catch up, monotonic reads,
/// the physical connection, the fallback budget, then the session's marks). The fast attempt does it without an async
/// state machine when nothing on the way waits; the general path takes over where it stopped.
/// </summary>
internal static class RoutePlanner
{
    /// <summary>
    /// Plans without an async state machine when nothing on the way needs a wait, a session replay or a trace: facts at
    /// hand, no staleness bound, no distributed transaction, no read-your-writes data to compute, and the physical
    /// connection open or opened at once (a synchronous caller opens it here; an asynchronous one when the provider's
    /// open completes synchronously, as a pooled open does). Otherwise <see langword="false"/>, and
    /// <paramref name="start"/> holds what was done for <see cref="PlanAsync"/>.
    /// </summary>
    public static bool TryPlanNow(ExecutionRequest request, bool sync, CommandBehavior behavior, CancellationToken cancellationToken, out RoutePlan plan, out PlanStart start)
    {
        plan = default;
        start = default;
        var connection = request.Connection;
        if (connection is null || !connection.IsOpen || request.OwnedConnection is { State: ConnectionState.Closed }
            || (request.Transaction is not null && !ReferenceEquals(request.Transaction, connection.CurrentTransaction))
            || (!sync && (behavior & CommandBehavior.CloseConnection) != 0)
            || request.MaxStaleness is not null || RwSplitTelemetry.Source.HasListeners())
            return false;
        var dataSource = connection.DataSourceOrThrow;
        if (!request.TryGetFactsNow(dataSource, sync, out var facts))
            return false;
        start.HasFacts = true;
        start.Facts = facts;
        if (facts.SessionEffect != SessionEffect.None)
            return false;
        var scope = RwSplitScope.Capture();
        if (scope.MaxStaleness is not null)
            return false;
        var consistency = request.Consistency ?? connection.Consistency;
        var session = Session(connection, request.Target, scope, out _);
        if (session.InAmbientTransaction)
            return false;
        var caughtUp = ulong.MaxValue;
        if (NeedsCaughtUp(facts, session, consistency) && !ReadYourWrites.TryCaughtUpNow(connection, out caughtUp))
            return false;

        var decision = Router.Route(facts, session, consistency, dataSource.Snapshot(caughtUp), session.CurrentReplica < 0 ? dataSource.NextBalancerTicket() : 0);
        start.HasDecision = true;
        start.Decision = decision;
        if (decision.Target == RouteTarget.None || decision.Reason == RoutingReason.ReadYourWrites || connection.Watermark.WouldReadOlderData(decision, consistency))
            return false;
        var slot = false;
        if (decision.Reason == RoutingReason.NoReplicaAvailable && !dataSource.TryEnterFallbackNow(out slot))
            return false;

        var physical = connection.Physical.TryGetOpen(decision);
        if (physical is null)
        {
            var opening = connection.Physical.GetAsync(decision, null, !sync, cancellationToken);
            if (!opening.IsCompletedSuccessfully)
            {
                start.Opening = opening.AsTask(); // the open suspended: its state machine is on the heap already
                start.HoldsFallbackSlot = slot;
                return false;
            }

            physical = opening.Result;
        }

        plan = Commit(request, connection, facts, decision, physical, slot);
        return true;
    }

    /// <summary>
    /// Plans an execution, continuing from <paramref name="start"/> (a default one plans from scratch), within
    /// <paramref name="budget"/>: the read-your-writes wait and the fallback wait end when it does (with
    /// <see cref="RwSplitError.CommandTimeout"/>), and so does <c>Cancel()</c> (with <see cref="OperationCanceledException"/>).
    /// </summary>
    public static async ValueTask<RoutePlan> PlanAsync(ExecutionRequest request, PlanStart start, ExecutionBudget budget, bool async, CancellationToken cancellationToken)
    {
        var connection = request.Connection ?? throw new InvalidOperationException($"The {request.Noun} has no connection: set Connection to an open RwSplitConnection.");
        if (start.Opening is { } opening)
        {
            var opener = connection.DataSourceOrThrow;
            // The fast attempt decided and started opening the physical connection: finish that.
            request.LastDecision = start.Decision;
            try
            {
                return Commit(request, connection, start.Facts, start.Decision, await opening.ConfigureAwait(false), start.HoldsFallbackSlot);
            }
            catch (ReplicaUnavailableException)
            {
                start.HasDecision = false; // the replica is excluded now: route again
            }
            catch
            {
                if (start.HoldsFallbackSlot)
                    opener.ExitFallback();
                throw;
            }
        }

        connection.ThrowIfNotOpen();
        var dataSource = connection.DataSourceOrThrow;
        request.ThrowIfEmpty();
        if (request.Transaction is not null && !ReferenceEquals(request.Transaction, connection.CurrentTransaction))
            throw new InvalidOperationException($"The {request.Noun}'s transaction is not the current transaction of its connection (it completed, or belongs to another connection).");
        var facts = start.HasFacts ? start.Facts : await request.ResolveFactsAsync(dataSource, async, cancellationToken).ConfigureAwait(false);

        var consistency = request.Consistency ?? connection.Consistency;
        var scope = RwSplitScope.Capture();
        var fresh = ulong.MaxValue;
        if ((request.MaxStaleness ?? scope.MaxStaleness) is { } bound)
        {
            consistency = ReadConsistency.Eventual; // the caller bounded staleness explicitly
            fresh = dataSource.ReplicasWithin(bound);
        }

        var waited = false;
        while (true)
        {
            var session = Session(connection, request.Target, scope, out var ambient);
            RoutingDecision decision;
            if (start.HasDecision)
            {
                decision = start.Decision; // decided by the fast attempt on the same inputs
                start.HasDecision = false;
            }
            else
            {
                var caughtUp = NeedsCaughtUp(facts, session, consistency)
                    ? await ReadYourWrites.CaughtUpReplicasAsync(connection, budget.RemainingSeconds, async, cancellationToken).ConfigureAwait(false)
                    : ulong.MaxValue;
                decision = Router.Route(facts, session, consistency, dataSource.Snapshot(caughtUp, fresh), session.CurrentReplica < 0 ? dataSource.NextBalancerTicket() : 0);
            }

            if (decision.Reason == RoutingReason.ReadYourWrites && !waited)
            {
                // No replica is known to have the session's writes yet: give the most promising one a bounded chance.
                waited = true;
                if (await WaitForReplicaAsync(request, connection, dataSource.Snapshot(ulong.MaxValue, fresh).AvailableReplicas, budget, async, cancellationToken).ConfigureAwait(false))
                    continue;
            }

            if (connection.Watermark.WouldReadOlderData(decision, consistency))
            {
                // Monotonic reads: moving to another server must not show older data than the session has seen.
                connection.Watermark.RequireReadFloor();
                continue;
            }

            request.LastDecision = decision;
            if (decision.Target == RouteTarget.None)
                throw WriteBlocked(request, dataSource, facts);

            DbConnection physical;
            try
            {
                physical = await connection.Physical.GetAsync(decision, ambient, async, cancellationToken).ConfigureAwait(false);
            }
            catch (ReplicaUnavailableException)
            {
                continue; // the replica is excluded now: route again (another replica, then the primary)
            }

            // A read on the primary for want of a replica takes a slot of the fallback budget.
            var slot = decision.Reason is RoutingReason.NoReplicaAvailable or RoutingReason.ReadYourWrites
                       && await EnterFallbackAsync(request, dataSource, budget, async, cancellationToken).ConfigureAwait(false);
            return Commit(request, connection, facts, decision, physical, slot);
        }
    }

    /// <summary>The read-your-writes wait, bounded by the execution's budget and ended by <c>Cancel()</c>.</summary>
    private static async ValueTask<bool> WaitForReplicaAsync(ExecutionRequest request, RwSplitConnection connection, ulong available, ExecutionBudget budget, bool async, CancellationToken cancellationToken)
    {
        var allowed = connection.DataSourceOrThrow.ReadYourWritesTimeout;
        var maxWait = budget.Bound(allowed);
        if (!ReadYourWrites.CanWait(connection, available, maxWait))
            return false;

        var cut = budget.Cuts(allowed);
        bool caughtUp;
        using (var span = RouteTelemetry.StartWait("rwsplit.wait.read_your_writes", connection.DataSourceOrThrow))
        using (var wait = request.BeginWait(budget, cancellationToken))
        {
            try
            {
                caughtUp = await ReadYourWrites.WaitForReplicaAsync(connection, available, maxWait, budget.RemainingSeconds, async, wait.Token, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
            {
                RouteTelemetry.WaitEnded(span, ready: false);
                throw Interrupted(budget, WaitingForReplica, ex);
            }

            RouteTelemetry.WaitEnded(span, caughtUp);
        }

        if (!caughtUp && cut)
            throw budget.TimedOut(WaitingForReplica);
        return caughtUp;
    }

    private const string WaitingForReplica = "while RwSplit waited for a replica to replay this session's writes (read-your-writes)";
    private const string WaitingForSlot = "while RwSplit waited for a fallback slot on the primary (FallbackReadLimit reads already run there)";

    /// <summary>A slot of the fallback budget, waited for within the execution's budget and ended by <c>Cancel()</c>.</summary>
    private static async ValueTask<bool> EnterFallbackAsync(ExecutionRequest request, RwSplitDataSource dataSource, ExecutionBudget budget, bool async, CancellationToken cancellationToken)
    {
        if (dataSource.TryEnterFallbackNow(out var held))
            return held;
        var cut = budget.Cuts(dataSource.FallbackWaitTimeout) && dataSource.FallbackOverflow == FallbackOverflow.Wait;
        using var span = RouteTelemetry.StartWait("rwsplit.wait.fallback_slot", dataSource);
        using var wait = request.BeginWait(budget, cancellationToken);
        try
        {
            var entered = await dataSource.EnterFallbackAsync(budget.Bound(dataSource.FallbackWaitTimeout), async, wait.Token).ConfigureAwait(false);
            RouteTelemetry.WaitEnded(span, entered);
            return entered;
        }
        catch (RwSplitException ex) when (ex.Error == RwSplitError.FallbackLimitReached && cut)
        {
            RouteTelemetry.WaitEnded(span, ready: false);
            throw budget.TimedOut(WaitingForSlot, ex);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            RouteTelemetry.WaitEnded(span, ready: false);
            throw Interrupted(budget, WaitingForSlot, ex);
        }
    }

    /// <summary>A wait of RwSplit's ended without the caller's token: the execution's timeout, else <c>Cancel()</c>.</summary>
    private static Exception Interrupted(in ExecutionBudget budget, string during, OperationCanceledException cancelled)
        => budget.Expired
            ? budget.TimedOut(during, cancelled)
            : new OperationCanceledException($"The command was cancelled (Cancel()) {during}.", cancelled);

    /// <summary>
    /// After a replica refused the execution as a write (so it did nothing there): the statement is learned as a write
    /// and the execution goes once to the primary.
    /// </summary>
    public static async ValueTask<RoutePlan> PlanMisrouteRetryAsync(ExecutionRequest request, RoutePlan failed, Exception refusal, bool async, CancellationToken cancellationToken)
    {
        var connection = request.Connection!;
        var dataSource = connection.DataSourceOrThrow;
        request.LearnWrite(dataSource, refusal);
        RwSplitTelemetry.Misroutes.Add(1, new KeyValuePair<string, object?>(TagNames.DataSource, dataSource.Name));
        Log.MisrouteRetried(dataSource.Logger, dataSource.Replicas[failed.Decision.ReplicaIndex].Address, SqlRedaction.Shape(request.Text), refusal);

        var decision = RoutingDecision.ToPrimary(RoutingReason.MisrouteRetry);
        request.LastDecision = decision;
        var physical = await connection.GetPhysicalAsync(decision, async, cancellationToken).ConfigureAwait(false);
        var facts = new StatementFacts(StatementKind.Write, RoutingReason.LearnedWrite, failed.Facts.SessionEffect, failed.Facts.Hint);
        return Commit(request, connection, facts, decision, physical, slot: false);
    }

    /// <summary>The session half of the routing input, and the ambient transaction it read (so that an execution reads it once).</summary>
    public static SessionState Session(RwSplitConnection connection, RouteTarget commandTarget, in RwSplitScope.Snapshot scope, out Transaction? ambient)
    {
        ambient = connection.Enlistment.Ambient;
        var primaryOpen = connection.Physical.HasOpenPrimary;
        return new SessionState
        {
            InLocalTransaction = connection.Enlistment.Local is not null,
            InAmbientTransaction = connection.Enlistment.InAnyDistributed(ambient),
            Pinned = connection.PinnedReason is not null,
            PrimaryOpen = primaryOpen,
            WritePending = connection.Watermark.WritePending,
            ReadsOnPrimary = primaryOpen && connection.Watermark.ReadsOnPrimaryByCapacity,
            HasWritten = connection.Watermark.HasWritten,
            CurrentReplica = connection.Physical.CurrentReplica,
            ExcludedReplicas = connection.Physical.Excluded,
            CommandTarget = commandTarget,
            ForcePrimaryScope = scope.ForcePrimary,
            PreventWrites = scope.PreventWrites,
        };
    }

    /// <summary>Whether read-your-writes data must be computed: the session wrote and nothing but consistency keeps the statement from a replica.</summary>
    private static bool NeedsCaughtUp(in StatementFacts facts, in SessionState session, ReadConsistency consistency)
        => consistency == ReadConsistency.ReadYourWrites && session.HasWritten && facts.MayRunOnReplica
           && !session.InLocalTransaction && !session.InAmbientTransaction && !session.Pinned
           && session.CommandTarget == RouteTarget.Auto && !session.ForcePrimaryScope;

    /// <summary>The decision is carried out: the request and the session record it.</summary>
    private static RoutePlan Commit(ExecutionRequest request, RwSplitConnection connection, in StatementFacts facts, in RoutingDecision decision, DbConnection physical, bool slot)
    {
        var dataSource = connection.DataSourceOrThrow;
        request.LastDecision = decision;
        if (facts.SessionEffect == SessionEffect.Pin)
            connection.Settings.Pin(dataSource.Statements.Classify(request.Text).Detail ?? "session state that cannot be replayed");
        if (decision.Target == RouteTarget.Primary && facts.Kind != StatementKind.Read)
            connection.MarkWritten();
        else
            connection.Watermark.NoteRead(decision);
        RouteTelemetry.Record(dataSource, decision);
        return new RoutePlan(physical, decision, facts, slot);
    }

    private static RwSplitException WriteBlocked(ExecutionRequest request, RwSplitDataSource dataSource, in StatementFacts facts)
    {
        RwSplitTelemetry.WritesBlocked.Add(1, new KeyValuePair<string, object?>(TagNames.DataSource, dataSource.Name));
        var detail = dataSource.Statements.Classify(request.Text).Detail ?? facts.Cause.ToString();
        Log.WriteBlocked(dataSource.Logger, facts.Cause, detail);
        var cause = facts.Cause switch
        {
            RoutingReason.Write => "it writes",
            RoutingReason.StoredProcedure => "a stored procedure not declared read-only",
            RoutingReason.VolatileFunction => "it calls a function that may write",
            RoutingReason.LearnedWrite => "a replica rejected it as a write before",
            _ => "RwSplit cannot prove it only reads",
        };
        return new RwSplitException(
            RwSplitError.WriteBlocked,
            $"A PreventWrites scope refused this statement before it was sent ({cause}: {detail}). Move the statement out of the scope; if it only reads, declare it in RwSplitOptions.ReadOnlyProcedures / ReadOnlyFunctions or mark it with /* rwsplit:replica */.");
    }
}
