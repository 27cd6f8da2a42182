using System;
using System.Data;
using System.Data.Common;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Diagnostics;
using RwSplit.Providers;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit.Execution;

/// <summary>
/// Runs one execution of a command or a batch: plans it (<see cref="RoutePlanner"/>), calls the provider
/// (<see cref="ProviderCall{T}"/>), observes it (the replica's outstanding count, the span, pool clearing after a
/// failure) and recovers a failure on a replica — a misroute runs once on the primary, a broken replica is ejected and
/// the read runs elsewhere. When planning needed no wait the provider's call runs without an async state machine of
/// RwSplit (and, asynchronously, the provider's own task is returned when it completed at once).
/// </summary>
internal static class CommandExecutor
{
    /// <summary>What a failed execution on a replica allows: nothing, a retry on the primary, or a retry elsewhere.</summary>
    private enum Recovery
    {
        None,
        Misroute,
        ReplicaFailure,
    }

    // Every execution notes when it began (the coarse clock, 6 ns): its timeout bounds it as a whole (ExecutionBudget),
    // and a retry or a wait gets what is left. The budget itself is worked out only when something waits or retries.

    public static T Execute<T>(ExecutionRequest request, ProviderCall<T> call, CommandBehavior behavior)
    {
        var began = Environment.TickCount64;
        return RoutePlanner.TryPlanNow(request, sync: true, behavior, default, out var plan, out var start)
            ? RunNow(request, call, plan, behavior, began)
            : ExecuteAsync(request, call, behavior, start, began, async: false, default).GetAwaiter().GetResult();
    }

    public static Task<T> ExecuteAsync<T>(ExecutionRequest request, ProviderCall<T> call, CommandBehavior behavior, CancellationToken cancellationToken)
    {
        var began = Environment.TickCount64;
        return RoutePlanner.TryPlanNow(request, sync: false, behavior, cancellationToken, out var plan, out var start)
            ? RunNowAsync(request, call, plan, behavior, began, cancellationToken)
            : ExecuteAsync(request, call, behavior, start, began, async: true, cancellationToken).AsTask();
    }

    /// <summary>Routes the execution and prepares the provider's command (or batch) on the chosen server.</summary>
    public static async ValueTask PrepareAsync(ExecutionRequest request, bool async, CancellationToken cancellationToken)
    {
        var plan = await RoutePlanner.PlanAsync(request, default, ExecutionBudget.Start(request.Timeout), async, cancellationToken).ConfigureAwait(false);
        try
        {
            Attach(request, plan, retry: false);
            if (async)
                await request.PrepareAsync(cancellationToken).ConfigureAwait(false);
            else
                request.Prepare();
        }
        finally
        {
            End(request, plan, endpoint: null);
        }
    }

    // ---- Planned without a wait: the provider's call, without async state machines ----

    private static T RunNow<T>(ExecutionRequest request, ProviderCall<T> call, in RoutePlan plan, CommandBehavior behavior, long began)
    {
        var endpoint = BeginTracked(request, plan);
        T result;
        Exception? failure = null;
        try
        {
            Attach(request, plan, retry: false);
            result = call.Run(request, behavior & ~CommandBehavior.CloseConnection);
        }
        catch (Exception ex) when (RecoveryFor(request, plan, ex) != Recovery.None)
        {
            failure = ex;
            result = default!;
        }
        catch (Exception ex) when (!AfterFailure(request, ex, plan.Physical))
        {
            throw; // not reached: the filter only clears the pool or forgets a broken connection
        }
        finally
        {
            End(request, plan, endpoint);
        }

        if (failure is not null)
            result = RecoverAsync(request, call, plan, failure, behavior, null, ExecutionBudget.Since(began, request.Timeout), false, default).GetAwaiter().GetResult().Result;
        return call.Wraps(behavior) ? call.Wrap(result, request.Connection!) : result;
    }

    /// <summary>
    /// The provider's asynchronous call; its own task is returned when it completed successfully at once, else one small
    /// async method awaits it (one allocation when the provider really suspends), ends the tracking and recovers a failure.
    /// </summary>
    private static Task<T> RunNowAsync<T>(ExecutionRequest request, ProviderCall<T> call, in RoutePlan plan, CommandBehavior behavior, long began, CancellationToken cancellationToken)
    {
        var endpoint = BeginTracked(request, plan);
        Task<T> task;
        try
        {
            Attach(request, plan, retry: false);
            task = call.Start(request, behavior, cancellationToken);
        }
#pragma warning disable CA1031 // Not swallowed: the task carries it to CompleteAsync, as an async method would.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            task = Task.FromException<T>(ex);
        }

        if (!task.IsCompletedSuccessfully)
            return CompleteAsync(request, call, task, plan, endpoint, behavior, began, cancellationToken);
        End(request, plan, endpoint);
        return task;
    }

    private static async Task<T> CompleteAsync<T>(ExecutionRequest request, ProviderCall<T> call, Task<T> pending, RoutePlan plan, Endpoint? endpoint, CommandBehavior behavior, long began, CancellationToken cancellationToken)
    {
        Exception failure;
        try
        {
            return await pending.ConfigureAwait(false);
        }
        catch (Exception ex) when (RecoveryFor(request, plan, ex) != Recovery.None)
        {
            failure = ex;
        }
        catch (Exception ex) when (!AfterFailure(request, ex, plan.Physical))
        {
            throw; // not reached: the filter only clears the pool or forgets a broken connection
        }
        finally
        {
            End(request, plan, endpoint);
        }

        // Awaited as a Task: the awaiter of RecoverAsync's ValueTask would hold its result inline, and this state machine
        // is the one object boxed whenever the provider really suspends.
        return await RecoverToTaskAsync(request, call, plan, failure, behavior, ExecutionBudget.Since(began, request.Timeout), cancellationToken).ConfigureAwait(false);
    }

    private static async Task<T> RecoverToTaskAsync<T>(ExecutionRequest request, ProviderCall<T> call, RoutePlan plan, Exception failure, CommandBehavior behavior, ExecutionBudget budget, CancellationToken cancellationToken)
        => (await RecoverAsync(request, call, plan, failure, behavior, null, budget, true, cancellationToken).ConfigureAwait(false)).Result;

    // ---- The general path ----

    private static async ValueTask<T> ExecuteAsync<T>(ExecutionRequest request, ProviderCall<T> call, CommandBehavior behavior, PlanStart start, long began, bool async, CancellationToken cancellationToken)
    {
        var budget = ExecutionBudget.Since(began, request.Timeout);
        var ownsOpen = false;
        if (request.OwnedConnection is { State: ConnectionState.Closed } owned)
        {
            // A data-source command: open a logical connection around the execution.
            await ProviderIo.OpenAsync(owned, async, cancellationToken).ConfigureAwait(false);
            ownsOpen = true;
            if (call.Wraps(CommandBehavior.CloseConnection))
                behavior |= CommandBehavior.CloseConnection; // the reader closes it
        }

        // The span starts before routing: RwSplit's waits, the physical open and the provider's own span are inside it.
        using var activity = RouteTelemetry.StartCommand(request.Connection?.OwningDataSource);
        try
        {
            RoutePlan plan;
            try
            {
                plan = await RoutePlanner.PlanAsync(request, start, budget, async, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (RouteTelemetry.Failed(activity, ex))
            {
                throw; // not reached: the filter only marks the span
            }

            var connection = request.Connection!;
            RouteTelemetry.Routed(activity, connection.DataSourceOrThrow, plan.Decision);
            T result;
            try
            {
                result = await RunTrackedAsync(request, call, plan, behavior, budget, async, cancellationToken, retry: false).ConfigureAwait(false);
            }
            catch (Exception ex) when (RecoveryFor(request, plan, ex) != Recovery.None)
            {
                (result, plan) = await RecoverAsync(request, call, plan, ex, behavior, activity, budget, async, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (AfterFailure(request, ex, plan.Physical) && activity is not null)
            {
                RouteTelemetry.MarkFailed(activity, ex);
                throw;
            }

            if (plan.Facts.SessionEffect == SessionEffect.Replay)
            {
                if (request.HasParameters)
                    connection.Settings.Pin("a session command with parameters cannot be replayed on other servers");
                else
                    await connection.Settings.OnSessionCommandAsync(plan.Physical, request.Text, async, cancellationToken).ConfigureAwait(false);
            }

            if (call.Wraps(behavior))
            {
                result = call.Wrap(result, connection);
                ownsOpen = false; // closing the reader closes the logical connection
            }

            return result;
        }
        finally
        {
            if (ownsOpen)
            {
                await ProviderIo.CloseAsync(request.OwnedConnection!, async).ConfigureAwait(false);
            }
        }
    }

    /// <summary>One run of the provider's call on the planned server, with what is left of the execution's timeout.</summary>
    private static async ValueTask<T> RunTrackedAsync<T>(ExecutionRequest request, ProviderCall<T> call, RoutePlan plan, CommandBehavior behavior, ExecutionBudget budget, bool async, CancellationToken cancellationToken, bool retry)
    {
        var endpoint = BeginTracked(request, plan);
        var restore = -1;
        try
        {
            Attach(request, plan, retry);
            if (budget.IsBounded)
            {
                budget.ThrowIfExpired(retry ? "before RwSplit's retry of the statement on another server" : "before the statement was sent (RwSplit's waits used it up)");
                var left = budget.RemainingSeconds;
                if (left < request.Timeout)
                {
                    restore = request.Timeout;
                    request.SetProviderTimeout(left); // for this run only: the application's setting comes back below
                }
            }

            return await call.RunAsync(request, behavior, async, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (restore >= 0)
                request.SetProviderTimeout(restore);
            End(request, plan, endpoint);
        }
    }

    // ---- Recovery ----

    private static Recovery RecoveryFor(ExecutionRequest request, in RoutePlan plan, Exception exception)
    {
        if (plan.Decision.Target != RouteTarget.Replica || request.Dialect.Failures.IsStatementTimeout(exception))
            return Recovery.None; // a statement that timed out has spent the execution's time: it surfaces as it is
        if (request.Connection!.DataSourceOrThrow.RetryMisroutedWrites && request.Dialect.Failures.IsReadOnlyViolation(exception))
            return Recovery.Misroute;
        return request.Dialect.Failures.IsConnectionFailure(exception, plan.Physical) ? Recovery.ReplicaFailure : Recovery.None;
    }

    /// <summary>
    /// After the first attempt on a replica failed with <paramref name="failure"/> (<see cref="RecoveryFor"/> not
    /// <see cref="Recovery.None"/>): a misroute runs once on the primary; a broken replica is ejected and the read runs
    /// on another replica, then on the primary (a reader that returned is never retried: the failure came before any
    /// row reached the caller). Returns the result and the plan that produced it.
    /// </summary>
    private static async ValueTask<(T Result, RoutePlan Plan)> RecoverAsync<T>(ExecutionRequest request, ProviderCall<T> call, RoutePlan plan, Exception failure, CommandBehavior behavior, Activity? activity, ExecutionBudget budget, bool async, CancellationToken cancellationToken)
    {
        try
        {
            var recovery = RecoveryFor(request, plan, failure);
            while (true)
            {
                if (recovery == Recovery.Misroute)
                {
                    // The replica refused the statement as a write, so it did nothing there: run it once on the primary.
                    plan = await RoutePlanner.PlanMisrouteRetryAsync(request, plan, failure, async, cancellationToken).ConfigureAwait(false);
                    RouteTelemetry.Routed(activity, request.Connection!.DataSourceOrThrow, plan.Decision);
                    return (await RunTrackedAsync(request, call, plan, behavior, budget, async, cancellationToken, retry: true).ConfigureAwait(false), plan);
                }

                await request.Connection!.Physical.DiscardReplicaAsync(plan.Decision.ReplicaIndex, failure, async).ConfigureAwait(false);
                budget.ThrowIfExpired("before RwSplit's retry of the read on another server (its replica failed)", failure);
                plan = await RoutePlanner.PlanAsync(request, default, budget, async, cancellationToken).ConfigureAwait(false);
                RouteTelemetry.Routed(activity, request.Connection!.DataSourceOrThrow, plan.Decision);
                try
                {
                    return (await RunTrackedAsync(request, call, plan, behavior, budget, async, cancellationToken, retry: true).ConfigureAwait(false), plan);
                }
                catch (Exception ex) when ((recovery = RecoveryFor(request, plan, ex)) != Recovery.None)
                {
                    failure = ex;
                }
            }
        }
        catch (Exception ex) when (AfterFailure(request, ex, plan.Physical) && activity is not null)
        {
            RouteTelemetry.MarkFailed(activity, ex);
            throw;
        }
    }

    /// <summary>
    /// After a failure that reaches the caller: when the connection or its server failed, the pool's other idle
    /// connections to that server are likely dead too (restart, terminated backends): clear them so the next open dials
    /// anew; when the statement or the caller's input failed and the provider closed the connection anyway, forget that
    /// one connection (<see cref="Connections.PhysicalConnections.ForgetBroken"/>) and nothing else. Always true (a filter).
    /// </summary>
    private static bool AfterFailure(ExecutionRequest request, Exception exception, DbConnection physical)
    {
        if (exception is OperationCanceledException)
            return true;
        var connection = request.Connection!;
        if (request.Dialect.Failures.IsConnectionFailure(exception, physical) && !request.Dialect.Failures.IsStatementTimeout(exception))
            connection.DataSourceOrThrow.ClearPoolOf(physical);
        else
            connection.Physical.ForgetBroken(physical);
        return true;
    }

    // ---- Observation ----

    private static void Attach(ExecutionRequest request, in RoutePlan plan, bool retry)
        => request.Attach(plan.Physical, request.Connection!.InnerTransactionFor(plan.Physical), retry);

    /// <summary>Counts the command as outstanding on its server (least-outstanding balancing, <see cref="RwSplitOptions.PrimaryReadWeight"/>).</summary>
    private static Endpoint? BeginTracked(ExecutionRequest request, in RoutePlan plan)
    {
        var connection = request.Connection!;
        var endpoint = plan.Decision.Target == RouteTarget.Replica
            ? connection.DataSourceOrThrow.Replicas[plan.Decision.ReplicaIndex]
            : connection.Physical.PrimaryEndpoint;
        endpoint?.BeginCommand();
        return endpoint;
    }

    private static void End(ExecutionRequest request, in RoutePlan plan, Endpoint? endpoint)
    {
        request.Detach();
        endpoint?.EndCommand();
        if (plan.HoldsFallbackSlot)
            request.Connection!.DataSourceOrThrow.ExitFallback();
    }
}
