using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit.Diagnostics;

/// <summary>What the execution pipeline reports of a routed execution: the decision counter, the debug log, and the span.</summary>
internal static class RouteTelemetry
{
    /// <summary>Counts a decision (and logs it at debug level).</summary>
    public static void Record(RwSplitDataSource dataSource, in RoutingDecision decision)
    {
        if (RwSplitTelemetry.Decisions.Enabled)
        {
            var tags = new TagList
            {
                { TagNames.RouteTarget, TargetName(decision) },
                { TagNames.RouteReason, ReasonName(decision.Reason) },
                { TagNames.DataSource, dataSource.Name },
            };
            RwSplitTelemetry.Decisions.Add(1, tags);
        }

        if (dataSource.Logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Debug))
            Log.Routed(dataSource.Logger, decision.Target, EndpointOf(dataSource, decision).Address, decision.Reason, dataSource.Name);
    }

    /// <summary>
    /// The span of one execution, when someone listens, started before routing: the read-your-writes and fallback waits
    /// (<see cref="StartWait"/>), the physical open (<see cref="StartOpen"/>) and the provider's own client span are
    /// inside it. Internal, not Client: the provider's span is the client span of the call, and RwSplit does not
    /// duplicate it. <see cref="Routed"/> adds where it ran once that is decided.
    /// </summary>
    public static Activity? StartCommand(RwSplitDataSource? dataSource)
    {
        if (!RwSplitTelemetry.Source.HasListeners())
            return null;
        var activity = RwSplitTelemetry.Source.StartActivity("rwsplit.route", ActivityKind.Internal);
        if (activity is null || dataSource is null)
            return activity;
        activity.SetTag(TagNames.DbSystem, dataSource.Dialect.SystemName);
        activity.SetTag(TagNames.DataSource, dataSource.Name);
        return activity;
    }

    /// <summary>The server the execution runs on and why (again after a retry moved it).</summary>
    public static void Routed(Activity? activity, RwSplitDataSource dataSource, in RoutingDecision decision)
    {
        if (activity is null || !activity.IsAllDataRequested)
            return;
        activity.SetTag(TagNames.DbSystem, dataSource.Dialect.SystemName);
        activity.SetTag(TagNames.DataSource, dataSource.Name);
        SetServer(activity, EndpointOf(dataSource, decision).Address);
        activity.SetTag(TagNames.RouteTarget, TargetName(decision));
        activity.SetTag(TagNames.RouteReason, ReasonName(decision.Reason));
    }

    /// <summary>
    /// A child span of the execution's for one of RwSplit's waits (<c>rwsplit.wait.read_your_writes</c>,
    /// <c>rwsplit.wait.fallback_slot</c>); <see cref="WaitEnded"/> records how it ended.
    /// </summary>
    public static Activity? StartWait(string name, RwSplitDataSource dataSource)
    {
        if (!RwSplitTelemetry.Source.HasListeners())
            return null;
        var activity = RwSplitTelemetry.Source.StartActivity(name, ActivityKind.Internal);
        activity?.SetTag(TagNames.DataSource, dataSource.Name);
        return activity;
    }

    /// <summary>How a wait ended: <c>ready</c> (a replica caught up, a slot freed) or <c>gave_up</c>.</summary>
    public static void WaitEnded(Activity? wait, bool ready) => wait?.SetTag(TagNames.WaitOutcome, ready ? "ready" : "gave_up");

    /// <summary>A child span for a physical connection taken from the provider (its pool, or a new connection to the server).</summary>
    public static Activity? StartOpen(RwSplitDataSource dataSource, Endpoint endpoint)
    {
        if (!RwSplitTelemetry.Source.HasListeners())
            return null;
        var activity = RwSplitTelemetry.Source.StartActivity("rwsplit.connection.open", ActivityKind.Internal);
        if (activity is null)
            return null;
        activity.SetTag(TagNames.DbSystem, dataSource.Dialect.SystemName);
        activity.SetTag(TagNames.DataSource, dataSource.Name);
        activity.SetTag(TagNames.Role, endpoint.Role == EndpointRole.Primary ? "primary" : "replica");
        SetServer(activity, endpoint.Address);
        return activity;
    }

    /// <summary><c>server.address</c>, <c>server.port</c> and <c>db.namespace</c> of an endpoint (never a connection string).</summary>
    public static void SetServer(Activity activity, EndpointAddress address)
    {
        activity.SetTag(TagNames.ServerAddress, address.Host);
        if (address.Port is { } port)
            activity.SetTag(TagNames.ServerPort, port);
        if (address.Database is { } database)
            activity.SetTag(TagNames.DbNamespace, database);
    }

    /// <summary>
    /// Marks the span failed with the error's type only (<c>error.type</c>, as the semantic conventions ask): provider
    /// messages can quote values of the statement, which must not reach traces.
    /// </summary>
    public static void MarkFailed(Activity activity, Exception exception)
    {
        var type = exception is DbException { SqlState: { Length: > 0 } state } ? state : exception.GetType().FullName;
        activity.SetTag(TagNames.ErrorType, type);
        activity.SetStatus(ActivityStatusCode.Error, type);
    }

    /// <summary>For an exception filter: marks the span (if any) failed and lets the exception pass (always false).</summary>
    public static bool Failed(Activity? activity, Exception exception)
    {
        if (activity is not null)
            MarkFailed(activity, exception);
        return false;
    }

    public static Endpoint EndpointOf(RwSplitDataSource dataSource, in RoutingDecision decision)
        => decision.Target == RouteTarget.Primary ? dataSource.CurrentPrimary : dataSource.Replicas[decision.ReplicaIndex];

    private static string TargetName(in RoutingDecision decision) => decision.Target == RouteTarget.Primary ? "primary" : "replica";

    public static string ReasonName(RoutingReason reason) => reason switch
    {
        RoutingReason.Read => "read",
        RoutingReason.ReadOnlyProcedure => "read_only_procedure",
        RoutingReason.ReplicaHint => "replica_hint",
        RoutingReason.Write => "write",
        RoutingReason.UnknownStatement => "unknown_statement",
        RoutingReason.StoredProcedure => "stored_procedure",
        RoutingReason.VolatileFunction => "volatile_function",
        RoutingReason.LearnedWrite => "learned_write",
        RoutingReason.MisrouteRetry => "misroute_retry",
        RoutingReason.LocalTransaction => "local_transaction",
        RoutingReason.AmbientTransaction => "ambient_transaction",
        RoutingReason.SessionState => "session_state",
        RoutingReason.PinnedSession => "pinned_session",
        RoutingReason.PrimaryHint => "primary_hint",
        RoutingReason.CommandTarget => "command_target",
        RoutingReason.ForcePrimaryScope => "force_primary_scope",
        RoutingReason.StrongConsistency => "strong_consistency",
        RoutingReason.ReadYourWrites => "read_your_writes",
        RoutingReason.CaughtUpReplica => "caught_up_replica",
        RoutingReason.ReadAfterWrite => "read_after_write",
        RoutingReason.PrimaryCapacity => "primary_capacity",
        RoutingReason.NoReplicaAvailable => "no_replica_available",
        RoutingReason.WriteBlocked => "write_blocked",
        _ => "other",
    };
}
