using System;
using System.Collections.Generic;
using NUnit.Framework;
using RwSplit.Transactions;

namespace RwSplit.Tests.Transactions;

/// <summary>
/// The truth table of <see cref="RecoveryPlan.Decide"/>, the one rule both a recovery pass (which acts on it) and
/// <see cref="RwSplitRecovery.InspectAsync"/> (which reports it) follow for a prepared branch; and the id parsing both share.
/// </summary>
public sealed class RecoveryPlanTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Young = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Old = TimeSpan.FromSeconds(61);
    private static readonly PreparedBranchId Id = new("c0", "g1", "k9", "1");
    private const string Decisions = "10.0.0.11:5432/accounts";

    private static BranchFacts Read(string? outcome, TimeSpan age) => new(Id, age, Grace) { DecisionDatabase = Decisions, Outcome = outcome };

    private static IEnumerable<TestCaseData> Rows()
    {
        static TestCaseData Row(string name, BranchFacts facts, PlannedRecoveryAction action, string reason)
            => new TestCaseData(facts, action, reason).SetName(name);

        // Recovery cannot decide: nothing is read, whatever the age.
        yield return Row("Not_an_RwSplit_id_is_left", new BranchFacts(null, Old, Grace), PlannedRecoveryAction.Unresolvable, "not an id RwSplit writes");
        yield return Row("Unknown_or_unreachable_decision_database_is_left_even_when_old", new BranchFacts(Id, Old, Grace), PlannedRecoveryAction.Unresolvable, "its decision database (key k9) is not in this recovery or unreachable: build its RwSplitDataSource (DistributedTransactions on) with the same RwSplitRecovery");
        yield return Row("Failed_decision_read_is_left_with_its_error_kind", new BranchFacts(Id, Old, Grace) { DecisionDatabase = Decisions, DecisionError = "socket:ConnectionRefused" }, PlannedRecoveryAction.Unresolvable, $"the decision database {Decisions} is unreachable (socket:ConnectionRefused); nothing is decided meanwhile");
        yield return Row("Failed_read_wins_over_an_outcome_read_before_it", Read("c", Young) with { DecisionError = "sqlstate:57P01" }, PlannedRecoveryAction.Unresolvable, "is unreachable (sqlstate:57P01)");

        // The decision is followed, whatever the age.
        yield return Row("Commit_decision_commits_a_young_branch", Read("c", Young), PlannedRecoveryAction.Commit, "its decision says commit");
        yield return Row("Commit_decision_commits_an_old_branch", Read("c", Old), PlannedRecoveryAction.Commit, "its decision says commit");
        yield return Row("Abort_decision_rolls_back_a_young_branch", Read("a", Young), PlannedRecoveryAction.Rollback, "says abort");
        yield return Row("Abort_decision_rolls_back_an_old_branch", Read("a", Old), PlannedRecoveryAction.Rollback, "says abort");

        // No decision: the grace period.
        yield return Row("No_decision_within_the_grace_period_waits", Read(null, Young), PlannedRecoveryAction.Wait, "no decision yet and prepared for 5 s, within RecoveryGracePeriod (60 s): its coordinator may still be committing");
        yield return Row("No_decision_at_exactly_the_grace_period_waits", Read(null, Grace), PlannedRecoveryAction.Wait, "within RecoveryGracePeriod (60 s)");
        yield return Row("No_decision_past_the_grace_period_fences", Read(null, Old), PlannedRecoveryAction.Fence, "no decision, and prepared for longer than RecoveryGracePeriod (60 s): abort");

        // A lost fence: the decision read after it is followed, and never a second fence.
        yield return Row("Lost_fence_then_commit_commits", Read("c", Old) with { FenceLost = true }, PlannedRecoveryAction.Commit, "its decision says commit");
        yield return Row("Lost_fence_then_abort_rolls_back", Read("a", Old) with { FenceLost = true }, PlannedRecoveryAction.Rollback, "says abort");
        yield return Row("Lost_fence_then_no_decision_is_left", Read(null, Old) with { FenceLost = true }, PlannedRecoveryAction.Unresolvable, "its abort fence lost to a row already there");

        // An outcome that is neither commit nor abort (a heuristic marker's 'h'): never fenced, never acted on.
        yield return Row("Heuristic_outcome_of_a_young_branch_is_left", Read("h", Young), PlannedRecoveryAction.Unresolvable, "neither commit (c) nor abort (a)");
        yield return Row("Heuristic_outcome_of_an_old_branch_is_left_not_fenced", Read("h", Old), PlannedRecoveryAction.Unresolvable, "neither commit (c) nor abort (a)");
        yield return Row("Unknown_outcome_is_left", Read("x", Old), PlannedRecoveryAction.Unresolvable, "neither commit (c) nor abort (a)");
    }

    [TestCaseSource(nameof(Rows))]
    public void Decides(object facts, PlannedRecoveryAction action, string reason)
    {
        // object: the facts are internal to the library.
        var plan = RecoveryPlan.Decide((BranchFacts)facts);

        Assert.That(plan.Action, Is.EqualTo(action), plan.Reason);
        Assert.That(plan.Reason, Does.Contain(reason));
    }

    [TestCase("c", "commit")]
    [TestCase("a", "abort")]
    [TestCase("h", null)]
    [TestCase(null, null)]
    public void Names_the_decision(string? outcome, string? name) => Assert.That(RecoveryPlan.DecisionName(outcome), Is.EqualTo(name));

    [Test]
    public void Parses_the_branch_ids_RwSplit_writes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(PreparedBranchId.Parse("rws:3f2a:9c1e:5d7b:1"), Is.EqualTo(new PreparedBranchId("3f2a", "9c1e", "5d7b", "1")));
            Assert.That(PreparedBranchId.Parse("rws:3f2a:9c1e:5d7b"), Is.Null, "four parts");
            Assert.That(PreparedBranchId.Parse("rws:3f2a:9c1e:5d7b:1:2"), Is.Null, "six parts");
            Assert.That(PreparedBranchId.Parse("someone-elses-transaction"), Is.Null);
        });
    }

    [Test]
    public void Parses_heuristic_expectation_ids_and_names_their_marker()
    {
        var expectation = HeuristicExpectationId.Parse("9c1e:expect:5d7b");
        Assert.Multiple(() =>
        {
            Assert.That(expectation, Is.EqualTo(new HeuristicExpectationId("9c1e", "5d7b")));
            Assert.That(expectation!.MarkerId, Is.EqualTo("9c1e:marker:5d7b"));
            Assert.That(HeuristicExpectationId.Parse("9c1e:marker:5d7b"), Is.Null, "a marker is not an expectation");
            Assert.That(HeuristicExpectationId.Parse("9c1e"), Is.Null, "a decision row");
            Assert.That(HeuristicExpectationId.Parse("9c1e:expect:5d7b:x"), Is.Null);
        });
    }

    [TestCase("h", true)]
    [TestCase(null, false)]
    [TestCase("c", false)]
    public void A_marker_row_shows_the_participant_committed(string? markerOutcome, bool committed)
        => Assert.That(HeuristicExpectationId.Committed(markerOutcome), Is.EqualTo(committed));
}
