namespace RwSplit.Diagnostics;

/// <summary>Tag names used on RwSplit's activities and metrics (OpenTelemetry names where they exist).</summary>
internal static class TagNames
{
    public const string DbSystem = "db.system.name";
    public const string DbNamespace = "db.namespace";
    public const string ServerAddress = "server.address";
    public const string ServerPort = "server.port";
    public const string RouteTarget = "rwsplit.route.target";
    public const string RouteReason = "rwsplit.route.reason";
    public const string ReplicaIndex = "rwsplit.replica.index";
    public const string ErrorType = "error.type";
    public const string DataSource = "rwsplit.data_source";
    public const string Role = "rwsplit.endpoint.role";
    public const string WaitOutcome = "rwsplit.wait.outcome";
    public const string TransactionKind = "rwsplit.transaction.kind";
    public const string TransactionOutcome = "rwsplit.transaction.outcome";
    public const string BranchIndex = "rwsplit.transaction.branch.index";
    public const string BranchCount = "rwsplit.transaction.branch.count";
    public const string RecoveryAction = "rwsplit.recovery.action";
}
