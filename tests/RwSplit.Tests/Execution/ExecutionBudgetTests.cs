using System;
using System.Threading;
using NUnit.Framework;
using RwSplit.Execution;

namespace RwSplit.Tests.Execution;

/// <summary>The execution's time budget on its own: what a wait, a query and a retry get of it.</summary>
public sealed class ExecutionBudgetTests
{
    [Test]
    public void A_timeout_of_zero_bounds_nothing()
    {
        var budget = ExecutionBudget.Start(0);
        Assert.That(budget.IsBounded, Is.False);
        Assert.That(budget.Expired, Is.False);
        Assert.That(budget.Remaining, Is.EqualTo(Timeout.InfiniteTimeSpan));
        Assert.That(budget.Bound(TimeSpan.FromSeconds(5)), Is.EqualTo(TimeSpan.FromSeconds(5)));
        Assert.That(budget.Cuts(TimeSpan.FromDays(1)), Is.False);
        Assert.That(budget.RemainingSeconds, Is.Zero, "0: the provider's command keeps its own timeout");
        Assert.DoesNotThrow(() => budget.ThrowIfExpired("now"));
        Assert.That(ExecutionBudget.None.IsBounded, Is.False);
    }

    [Test]
    public void Waits_are_cut_to_what_is_left_and_queries_get_it_in_whole_seconds()
    {
        var budget = ExecutionBudget.Since(Environment.TickCount64 - 1_500, 3); // began 1.5 s ago, 3 s allowed
        Assert.That(budget.IsBounded && !budget.Expired, Is.True);
        Assert.That(budget.Remaining, Is.InRange(TimeSpan.FromMilliseconds(1_400), TimeSpan.FromMilliseconds(1_520)));
        Assert.That(budget.Bound(TimeSpan.FromMilliseconds(100)), Is.EqualTo(TimeSpan.FromMilliseconds(100)), "a shorter wait is kept");
        Assert.That(budget.Bound(TimeSpan.FromSeconds(20)), Is.EqualTo(budget.Remaining).Within(TimeSpan.FromMilliseconds(20)), "a longer one is cut");
        Assert.That(budget.Cuts(TimeSpan.FromSeconds(20)), Is.True);
        Assert.That(budget.Cuts(TimeSpan.FromMilliseconds(100)), Is.False);
        Assert.That(budget.RemainingSeconds, Is.EqualTo(2), "1.5 s left, rounded up");
    }

    [Test]
    public void A_spent_budget_fails_with_the_command_timeout_error_naming_the_fix()
    {
        var budget = ExecutionBudget.Since(Environment.TickCount64 - 5_000, 2);
        Assert.That(budget.Expired, Is.True);
        Assert.That(budget.Remaining, Is.EqualTo(TimeSpan.Zero));
        Assert.That(budget.Bound(TimeSpan.FromSeconds(1)), Is.EqualTo(TimeSpan.Zero));
        Assert.That(budget.RemainingSeconds, Is.EqualTo(1), "a provider timeout of 0 would mean no limit: at least 1");
        var inner = new InvalidOperationException("the replica failed");
        var ex = Assert.Throws<RwSplitException>(() => budget.ThrowIfExpired("before the retry", inner));
        Assert.That(ex!.Error, Is.EqualTo(RwSplitError.CommandTimeout));
        Assert.That(ex.IsTransient, Is.True);
        Assert.That(ex.Message, Does.Contain("(2 s, CommandTimeout) expired before the retry").And.Contain("Raise CommandTimeout"));
        Assert.That(ex.InnerException, Is.InstanceOf<TimeoutException>());
        Assert.That(ex.InnerException!.InnerException, Is.SameAs(inner));
    }
}
