using System;
using Microsoft.Extensions.Logging;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit.Diagnostics;

/// <summary>Every log message of the library, with stable event ids (1000s: routing, 2000s: connections).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Debug, Message = "Routed command to {Target} {Endpoint} ({Reason}) in data source {DataSource}")]
    public static partial void Routed(ILogger logger, RouteTarget target, EndpointAddress endpoint, RoutingReason reason, string dataSource);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning, Message = "Replica {Endpoint} rejected a statement as a write; retrying it once on the primary and remembering its text as a write. Declare it read-write or send it to the primary to avoid the extra round trip. Statement (values masked): {Statement}")]
    public static partial void MisrouteRetried(ILogger logger, EndpointAddress endpoint, string statement, Exception exception);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Logical connection pinned to the primary: {Detail}")]
    public static partial void SessionPinned(ILogger logger, string detail);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Debug, Message = "Statement refused by a PreventWrites scope ({Reason}): {Statement}")]
    public static partial void WriteBlocked(ILogger logger, RoutingReason reason, string statement);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Information, Message = "Loaded {Count} function names from the catalog of {Endpoint}")]
    public static partial void FunctionCatalogLoaded(ILogger logger, int count, EndpointAddress endpoint);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Warning, Message = "Could not load the function catalog from {Endpoint}; reads that call functions go to the primary until it loads")]
    public static partial void FunctionCatalogFailed(ILogger logger, EndpointAddress endpoint, Exception exception);

    [LoggerMessage(EventId = 2000, Level = LogLevel.Warning, Message = "Could not open a connection to replica {Endpoint}; it is skipped for {RetryDelay} and the read moves elsewhere")]
    public static partial void ReplicaOpenFailed(ILogger logger, EndpointAddress endpoint, TimeSpan retryDelay, Exception exception);

    [LoggerMessage(EventId = 2009, Level = LogLevel.Warning, Message = "Could not open a connection to primary {Endpoint} for a read it took for its spare capacity; it takes no reads for {RetryDelay} and the read moves to a replica")]
    public static partial void PrimaryReadOpenFailed(ILogger logger, EndpointAddress endpoint, TimeSpan retryDelay, Exception exception);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Opened a physical connection to {Role} {Endpoint}")]
    public static partial void PhysicalOpened(ILogger logger, EndpointRole role, EndpointAddress endpoint);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Replaying session command on a new physical connection to {Endpoint} failed")]
    public static partial void ReplayFailed(ILogger logger, EndpointAddress endpoint, Exception exception);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "Replica {Endpoint} ejected ({Outcome}, lag {LagSeconds:0.###} s): no reads go to it until it passes the health checks again. {Error}")]
    public static partial void ReplicaEjected(ILogger logger, EndpointAddress endpoint, ProbeOutcome outcome, double lagSeconds, string error);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Information, Message = "Replica {Endpoint} re-admitted after {Probes} healthy probes")]
    public static partial void ReplicaReadmitted(ILogger logger, EndpointAddress endpoint, int probes);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Warning, Message = "Primary changed from {Old} to {New}: writes go to the new primary; connections holding the old one fail with PrimaryChanged")]
    public static partial void PrimaryChanged(ILogger logger, EndpointAddress old, EndpointAddress @new);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Error, Message = "Two servers report themselves primary ({First} and {Second}) while the current primary is unavailable: not failing over")]
    public static partial void AmbiguousPrimary(ILogger logger, EndpointAddress first, EndpointAddress second);

    [LoggerMessage(EventId = 2007, Level = LogLevel.Warning, Message = "A topology monitor round failed")]
    public static partial void MonitorRoundFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 2008, Level = LogLevel.Warning, Message = "A read on replica {Endpoint} failed before returning rows; retrying it on another server")]
    public static partial void ReadRetried(ILogger logger, EndpointAddress endpoint, Exception exception);

    [LoggerMessage(EventId = 3000, Level = LogLevel.Warning, Message = "COMMIT PREPARED of {BranchId} on {Endpoint} failed after the decision was committed; recovery will commit it")]
    public static partial void CommitPreparedDeferred(ILogger logger, string branchId, EndpointAddress endpoint, Exception exception);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "Rolling back {BranchId} on {Endpoint} failed; recovery will roll it back (no decision: presumed abort)")]
    public static partial void RollbackDeferred(ILogger logger, string branchId, EndpointAddress endpoint, Exception exception);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Recovery could not resolve {BranchId} on {Database}: {Reason}")]
    public static partial void RecoveryUnresolved(ILogger logger, string branchId, string database, string reason);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "Recovery could not reach {Endpoint}; its prepared transactions wait for the next pass")]
    public static partial void RecoveryDatabaseUnreachable(ILogger logger, EndpointAddress endpoint, Exception exception);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Error, Message = "A recovery pass failed")]
    public static partial void RecoveryPassFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "Heuristic resolution by hand: {Action} of {BranchId} on {Endpoint}, without consulting its decision")]
    public static partial void HeuristicResolution(ILogger logger, string branchId, string action, EndpointAddress endpoint);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Warning, Message = "Distributed transaction {Gtrid} committed (its decision is durable), but finishing it failed; recovery completes the remaining branches")]
    public static partial void AfterDecisionFailure(ILogger logger, string gtrid, Exception exception);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Error, Message = "Distributed transaction {Gtrid} committed its decision, but heuristic participant {Endpoint} failed to commit after it: the outcome may be mixed (heuristic)")]
    public static partial void HeuristicCommitFailed(ILogger logger, string gtrid, EndpointAddress endpoint, Exception exception);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Error, Message = "Heuristic outcome of distributed transaction {Gtrid}: the decision committed on {DecisionDatabase}, but participant {Participant} has no marker row, so its work was rolled back; reconcile by hand, then call RwSplitRecovery.AcknowledgeHeuristicAsync")]
    public static partial void HeuristicHazard(ILogger logger, string gtrid, string decisionDatabase, string participant);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Warning, Message = "Heuristic outcome {Id} acknowledged by hand")]
    public static partial void HeuristicAcknowledged(ILogger logger, string id);
}
