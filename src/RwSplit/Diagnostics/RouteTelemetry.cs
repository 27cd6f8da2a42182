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

    /// <summary>The span of one execution, when someone listens: the server it runs on and why.</summary>
    public static Activity? StartActivity(RwSplitDataSource dataSource, in RoutingDecision decision)
    {
        if (!RwSplitTelemetry.Source.HasListeners())
            return null;
        var activity = RwSplitTelemetry.Source.StartActivity("rwsplit.route", ActivityKind.Internal);
        if (activity is null)
            return null;
        var endpoint = EndpointOf(dataSource, decision);
        activity.SetTag(TagNames.DbSystem, dataSource.Dialect.SystemName);
        activity.SetTag(TagNames.ServerAddress, endpoint.Address.Host);
        if (endpoint.Address.Port is { } port)
            activity.SetTag(TagNames.ServerPort, port);
        if (endpoint.Address.Database is { } database)
            activity.SetTag(TagNames.DbNamespace, database);
        activity.SetTag(TagNames.RouteTarget, TargetName(decision));
        activity.SetTag(TagNames.RouteReason, ReasonName(decision.Reason));
        activity.SetTag(TagNames.DataSource, dataSource.Name);
        return activity;
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
        RoutingReason.NoReplicaAvailable => "no_replica_available",
        RoutingReason.WriteBlocked => "write_blocked",
        _ => "other",
    };
}
