using System;
using System.Threading;

namespace RwSplit.Routing;

/// <summary>
/// Ambient routing overrides that flow with the async context (<see cref="AsyncLocal{T}"/>): everything the code inside
/// the scope executes through any RwSplit connection obeys them. Scopes nest; disposing restores the outer state.
/// </summary>
/// <example>
/// <code>
/// using (RwSplitScope.ForcePrimary())
/// {
///     var fresh = await connection.QuerySingleAsync&lt;Order&gt;("SELECT * FROM orders WHERE id = @id", new { id });
/// }
/// </code>
/// </example>
public static class RwSplitScope
{
    private static readonly AsyncLocal<State?> Current = new();

    [Flags]
    private enum ScopeFlags
    {
        None = 0,
        ForcePrimary = 1,
        PreventWrites = 2,
    }

    /// <summary>Whether a <see cref="ForcePrimary"/> scope is active in this async context.</summary>
    public static bool IsForcePrimary => (Current.Value?.Flags & ScopeFlags.ForcePrimary) is ScopeFlags.ForcePrimary;

    /// <summary>Whether a <see cref="PreventWrites"/> scope is active in this async context.</summary>
    public static bool IsPreventWrites => (Current.Value?.Flags & ScopeFlags.PreventWrites) is ScopeFlags.PreventWrites;

    /// <summary>The staleness an <see cref="AllowStaleness"/> scope allows here, or <see langword="null"/>.</summary>
    public static TimeSpan? MaxStaleness => Current.Value?.MaxStaleness;

    /// <summary>Every override in force, read with one async-local access (the routing hot path).</summary>
    internal static Snapshot Capture()
    {
        var state = Current.Value;
        return state is null
            ? default
            : new Snapshot((state.Flags & ScopeFlags.ForcePrimary) != 0, (state.Flags & ScopeFlags.PreventWrites) != 0, state.MaxStaleness);
    }

    internal readonly record struct Snapshot(bool ForcePrimary, bool PreventWrites, TimeSpan? MaxStaleness);

    /// <summary>Sends every statement, reads included, to the primary until the returned scope is disposed.</summary>
    /// <returns>The scope; dispose it to restore the previous behaviour.</returns>
    public static IDisposable ForcePrimary() => Push(ScopeFlags.ForcePrimary, null);

    /// <summary>
    /// Refuses, with an <see cref="RwSplitException"/> thrown before anything is sent, every statement that writes or that
    /// RwSplit cannot prove to be a read (unknown statements, procedures not declared read-only, volatile functions),
    /// until the returned scope is disposed. Use it to guard code paths that must stay read-only.
    /// </summary>
    /// <returns>The scope; dispose it to restore the previous behaviour.</returns>
    public static IDisposable PreventWrites() => Push(ScopeFlags.PreventWrites, null);

    /// <summary>
    /// Bounded staleness: reads in the scope may run on any replica at most <paramref name="maxStaleness"/> behind the
    /// primary (as the topology monitor measures it), even after this session wrote and whatever the consistency mode.
    /// When no replica is that fresh, they run on the primary. Writes, transactions and pinned sessions are unaffected.
    /// </summary>
    /// <param name="maxStaleness">How far behind a replica may be; positive.</param>
    /// <returns>The scope; dispose it to restore the previous behaviour.</returns>
    public static IDisposable AllowStaleness(TimeSpan maxStaleness)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxStaleness, TimeSpan.Zero);
        return Push(ScopeFlags.None, maxStaleness);
    }

    private static Restore Push(ScopeFlags flag, TimeSpan? staleness)
    {
        var previous = Current.Value;
        Current.Value = new State((previous?.Flags ?? ScopeFlags.None) | flag, staleness ?? previous?.MaxStaleness);
        return new Restore(previous);
    }

    private sealed record State(ScopeFlags Flags, TimeSpan? MaxStaleness);

    private sealed class Restore : IDisposable
    {
        private readonly State? _previous;
        private bool _disposed;

        public Restore(State? previous) => _previous = previous;

        public void Dispose()
        {
            if (_disposed)
                return;
            _disposed = true;
            Current.Value = _previous;
        }
    }
}
