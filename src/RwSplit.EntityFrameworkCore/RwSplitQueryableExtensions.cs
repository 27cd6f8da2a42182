using System;
using System.Globalization;
using System.Linq;
using Microsoft.EntityFrameworkCore;
using RwSplit.EntityFrameworkCore.Storage;

namespace RwSplit.EntityFrameworkCore;

/// <summary>Per-query routing for LINQ queries over an RwSplit context.</summary>
public static class RwSplitQueryableExtensions
{
    /// <summary>
    /// Runs the query on the primary: it is tagged <c>rwsplit:primary</c> (EF writes tags as SQL comments, which
    /// RwSplit's classifier reads). For a read that must see every committed write, not only the session's own.
    /// </summary>
    /// <param name="source">The query.</param>
    /// <typeparam name="T">The element type.</typeparam>
    /// <returns>The tagged query.</returns>
    public static IQueryable<T> AsPrimary<T>(this IQueryable<T> source) => source.TagWith("rwsplit:primary");

    /// <summary>
    /// Lets the query read from a replica up to <paramref name="maxStaleness"/> behind the primary, even after the
    /// context wrote (bounded staleness instead of read-your-writes), as <see cref="RwSplitCommand.MaxStaleness"/> does
    /// for a command. When no replica is within the bound, the query runs on the primary.
    /// </summary>
    /// <param name="source">The query.</param>
    /// <param name="maxStaleness">How far behind the primary the replica may be; positive.</param>
    /// <typeparam name="T">The element type.</typeparam>
    /// <returns>The tagged query.</returns>
    public static IQueryable<T> WithMaxStaleness<T>(this IQueryable<T> source, TimeSpan maxStaleness)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxStaleness, TimeSpan.Zero);
        return source.TagWith(RwSplitContextSession.MaxStalenessTag + maxStaleness.ToString("c", CultureInfo.InvariantCulture));
    }
}
