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
    private static readonly AsyncLocal<ScopeFlags> Current = new();

    [Flags]
    private enum ScopeFlags
    {
        None = 0,
        ForcePrimary = 1,
        PreventWrites = 2,
    }

    /// <summary>Whether a <see cref="ForcePrimary"/> scope is active in this async context.</summary>
    public static bool IsForcePrimary => (Current.Value & ScopeFlags.ForcePrimary) != 0;

    /// <summary>Whether a <see cref="PreventWrites"/> scope is active in this async context.</summary>
    public static bool IsPreventWrites => (Current.Value & ScopeFlags.PreventWrites) != 0;

    /// <summary>Sends every statement, reads included, to the primary until the returned scope is disposed.</summary>
    /// <returns>The scope; dispose it to restore the previous behaviour.</returns>
    public static IDisposable ForcePrimary() => Push(ScopeFlags.ForcePrimary);

    /// <summary>
    /// Refuses, with an <see cref="RwSplitException"/> thrown before anything is sent, every statement that writes or that
    /// RwSplit cannot prove to be a read (unknown statements, procedures not declared read-only, volatile functions),
    /// until the returned scope is disposed. Use it to guard code paths that must stay read-only.
    /// </summary>
    /// <returns>The scope; dispose it to restore the previous behaviour.</returns>
    public static IDisposable PreventWrites() => Push(ScopeFlags.PreventWrites);

    private static Restore Push(ScopeFlags flag)
    {
        var previous = Current.Value;
        Current.Value = previous | flag;
        return new Restore(previous);
    }

    private sealed class Restore : IDisposable
    {
        private readonly ScopeFlags _previous;
        private bool _disposed;

        public Restore(ScopeFlags previous) => _previous = previous;

        public void Dispose()
        {
            if (_disposed)
                return;
            _disposed = true;
            Current.Value = _previous;
        }
    }
}
