using System;
using System.Globalization;

namespace RwSplit.Transactions;

/// <summary>A prepared branch's id as RwSplit writes it: <c>rws:{coordinator}:{gtrid}:{decision key}:{branch}</c>.</summary>
/// <param name="Coordinator">The coordinator (process) that prepared it.</param>
/// <param name="Gtrid">The distributed transaction's id: the decision row's key.</param>
/// <param name="DecisionKey">The key of the database that holds the decision.</param>
/// <param name="Branch">The branch's index within the transaction.</param>
internal sealed record PreparedBranchId(string Coordinator, string Gtrid, string DecisionKey, string Branch)
{
    /// <summary>The parts of <paramref name="gid"/>, or <see langword="null"/> when it is not an id RwSplit writes.</summary>
    public static PreparedBranchId? Parse(string gid)
    {
        var parts = gid.Split(':');
        return parts.Length == 5 ? new PreparedBranchId(parts[1], parts[2], parts[3], parts[4]) : null;
    }
}

/// <summary>
/// A heuristic expectation row's id, <c>{gtrid}:expect:{participant key}</c> (written with a decision that had heuristic
/// participants); the participant's marker row is <c>{gtrid}:marker:{participant key}</c> in the participant's database.
/// </summary>
/// <param name="Gtrid">The distributed transaction's id.</param>
/// <param name="ParticipantKey">The key of the heuristic participant's database.</param>
internal sealed record HeuristicExpectationId(string Gtrid, string ParticipantKey)
{
    /// <summary>The outcome of a marker row: the participant committed.</summary>
    public const string MarkerOutcome = "h";

    /// <summary>The id of the participant's marker row.</summary>
    public string MarkerId => DistributedTransaction.HeuristicId(Gtrid, "marker", ParticipantKey);

    /// <summary>The parts of <paramref name="id"/>, or <see langword="null"/> when it is not an expectation row's id.</summary>
    public static HeuristicExpectationId? Parse(string id)
    {
        var parts = id.Split(':');
        return parts.Length == 3 && parts[1] == "expect" ? new HeuristicExpectationId(parts[0], parts[2]) : null;
    }

    /// <summary>Whether the participant's marker row (its outcome, or <see langword="null"/> when absent) shows it committed.</summary>
    public static bool Committed(string? markerOutcome) => markerOutcome == MarkerOutcome;
}

/// <summary>
/// What recovery knows about one prepared branch when it decides, all read beforehand (this type does no I/O). Heuristic
/// commit does not enter: heuristic participants are never prepared.
/// </summary>
/// <param name="Id">The parsed branch id, or <see langword="null"/> when it is not an id RwSplit writes.</param>
/// <param name="Age">How long the branch has been prepared.</param>
/// <param name="GracePeriod">How long a branch without a decision may wait for its coordinator.</param>
internal readonly record struct BranchFacts(PreparedBranchId? Id, TimeSpan Age, TimeSpan GracePeriod)
{
    /// <summary>The decision database (free of secrets), or <see langword="null"/> when no reachable data source of the recovery has its key.</summary>
    public string? DecisionDatabase { get; init; }

    /// <summary>The error kind (<see cref="Topology.ErrorKinds.Of"/>, never a message) when reading (or fencing in) the decision database failed.</summary>
    public string? DecisionError { get; init; }

    /// <summary>The decision row's outcome: <c>c</c> commit, <c>a</c> abort (or fence), anything else, or <see langword="null"/> when there is none.</summary>
    public string? Outcome { get; init; }

    /// <summary>An abort fence was tried and lost (a row was there already), and <see cref="Outcome"/> was read again after it.</summary>
    public bool FenceLost { get; init; }
}

/// <summary>
/// The one rule that decides what recovery does with a prepared branch: <see cref="RwSplitRecovery.RecoverAsync(System.Threading.CancellationToken)"/>
/// acts on it, <see cref="RwSplitRecovery.InspectAsync"/> only reports it.
/// </summary>
/// <param name="Action">What to do.</param>
/// <param name="Reason">Why, in words (free of secrets).</param>
internal readonly record struct RecoveryPlan(PlannedRecoveryAction Action, string Reason)
{
    /// <summary>Decides from the facts alone, in this order: unknown id, unknown or unreachable decision database, the decision, the grace period.</summary>
    public static RecoveryPlan Decide(in BranchFacts facts)
    {
        if (facts.Id is null)
            return new(PlannedRecoveryAction.Unresolvable, "not an id RwSplit writes (expected rws:coordinator:gtrid:decision:branch)");
        if (facts.DecisionDatabase is null)
            return new(PlannedRecoveryAction.Unresolvable, $"its decision database (key {facts.Id.DecisionKey}) is not in this recovery or unreachable: build its RwSplitDataSource (DistributedTransactions on) with the same RwSplitRecovery so that recovery can read the decision; nothing is decided meanwhile");
        if (facts.DecisionError is not null)
            return new(PlannedRecoveryAction.Unresolvable, $"the decision database {facts.DecisionDatabase} is unreachable ({facts.DecisionError}); nothing is decided meanwhile");
        return facts.Outcome switch
        {
            "c" => new(PlannedRecoveryAction.Commit, "its decision says commit"),
            "a" => new(PlannedRecoveryAction.Rollback, "its decision (or an abort fence) says abort"),
            null when facts.FenceLost => new(PlannedRecoveryAction.Unresolvable, "its abort fence lost to a row already there, but no decision could be read back; the next pass looks again"),
            null when facts.Age > facts.GracePeriod => new(PlannedRecoveryAction.Fence, $"no decision, and prepared for longer than RecoveryGracePeriod ({Seconds(facts.GracePeriod)} s): abort"),
            null => new(PlannedRecoveryAction.Wait, $"no decision yet and prepared for {Seconds(facts.Age)} s, within RecoveryGracePeriod ({Seconds(facts.GracePeriod)} s): its coordinator may still be committing"),
            _ => new(PlannedRecoveryAction.Unresolvable, "its decision row holds an outcome that is neither commit (c) nor abort (a); nothing is decided"),
        };
    }

    /// <summary>The decision as the inspection names it: <c>commit</c>, <c>abort</c>, or <see langword="null"/>.</summary>
    public static string? DecisionName(string? outcome) => outcome switch
    {
        "c" => "commit",
        "a" => "abort",
        _ => null,
    };

    private static string Seconds(TimeSpan span) => span.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
}
