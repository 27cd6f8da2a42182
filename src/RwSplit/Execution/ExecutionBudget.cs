using System;
using System.Threading;

namespace RwSplit.Execution;

/// <summary>
/// The time one logical execution may take: the command's (or batch's) timeout, in seconds, 0 for none. It starts when
/// the execution begins and bounds everything RwSplit does for it, not only the provider's call: the read-your-writes
/// wait, the wait for a fallback slot, the watermark and position queries, and the retries, each of which gets what is
/// left rather than a fresh full timeout. Physical opens count against it and are bounded by the connection string's
/// own timeout. The clock is the coarse one (<see cref="Environment.TickCount64"/>, a few ms per tick; 6 ns to read).
/// </summary>
internal readonly struct ExecutionBudget
{
    private readonly long _deadline; // TickCount64 milliseconds; 0 when unbounded

    private ExecutionBudget(int seconds, long deadline)
    {
        Seconds = seconds;
        _deadline = deadline;
    }

    /// <summary>No bound (a timeout of 0, or an operation that is not a command's execution).</summary>
    public static ExecutionBudget None => default;

    /// <summary>The timeout the execution was given, in seconds (0: none).</summary>
    public int Seconds { get; }

    public bool IsBounded => _deadline != 0;

    public static ExecutionBudget Start(int seconds) => Since(Environment.TickCount64, seconds);

    /// <summary>The budget of an execution that began at <paramref name="began"/> (<see cref="Environment.TickCount64"/>).</summary>
    public static ExecutionBudget Since(long began, int seconds) => seconds > 0 ? new ExecutionBudget(seconds, began + (seconds * 1000L)) : default;

    /// <summary>What is left; <see cref="Timeout.InfiniteTimeSpan"/> when unbounded.</summary>
    public TimeSpan Remaining => IsBounded ? TimeSpan.FromMilliseconds(Math.Max(0, _deadline - Environment.TickCount64)) : Timeout.InfiniteTimeSpan;

    public bool Expired => IsBounded && Environment.TickCount64 >= _deadline;

    /// <summary>A wait of at most <paramref name="wait"/>, cut to what is left.</summary>
    public TimeSpan Bound(TimeSpan wait) => IsBounded && Remaining is var left && left < wait ? left : wait;

    /// <summary>Whether <paramref name="wait"/> is longer than what is left (a wait that ends then ends for the budget).</summary>
    public bool Cuts(TimeSpan wait) => IsBounded && Remaining < wait;

    /// <summary>The timeout to give a provider command now: what is left, rounded up to whole seconds (at least 1).</summary>
    public int RemainingSeconds => IsBounded ? (int)Math.Max(1, Math.Ceiling(Remaining.TotalSeconds)) : 0;

    /// <summary>Throws when the budget is spent (<paramref name="during"/> names what was about to run).</summary>
    public void ThrowIfExpired(string during, Exception? inner = null)
    {
        if (Expired)
            throw TimedOut(during, inner);
    }

    /// <summary>The error of an execution whose timeout expired inside RwSplit (never the SQL, never a connection string).</summary>
    public RwSplitException TimedOut(string during, Exception? inner = null)
        => new(
            RwSplitError.CommandTimeout,
            $"The command's timeout ({Seconds} s, CommandTimeout) expired {during}; it bounds the whole execution, RwSplit's waits and retries included. Raise CommandTimeout, or lower ReadYourWritesTimeout / FallbackWaitTimeout, or relax the read's consistency.",
            new TimeoutException($"The execution's timeout of {Seconds} s expired.", inner)); // as the providers report theirs: a TimeoutException inside
}
