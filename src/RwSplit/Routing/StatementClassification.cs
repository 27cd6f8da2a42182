using System;
using System.Collections.Generic;

namespace RwSplit.Routing;

/// <summary>What a statement does to data, as far as a dialect's classifier can tell from its text.</summary>
public enum StatementKind
{
    /// <summary>The classifier could not prove the statement is a read. Routed to the primary (fails closed).</summary>
    Unknown = 0,

    /// <summary>The statement only reads and may run on a replica.</summary>
    Read = 1,

    /// <summary>The statement writes (DML, DDL, locking reads, sequence access, ...). Always routed to the primary.</summary>
    Write = 2,
}

/// <summary>How a statement changes the state of the session (the physical connection) that runs it.</summary>
public enum SessionEffect
{
    /// <summary>No lasting effect on the session.</summary>
    None = 0,

    /// <summary>
    /// A replayable session command (<c>SET</c> option, <c>USE</c>): RwSplit runs it on every physical connection the
    /// logical connection uses, now and when it opens one later.
    /// </summary>
    Replay = 1,

    /// <summary>
    /// Session state that cannot be replayed elsewhere (temporary table, application lock, cursor, isolation level
    /// stronger than read committed, transaction control in SQL text): the logical connection is pinned to the primary
    /// until it is closed.
    /// </summary>
    Pin = 2,
}

/// <summary>A routing hint written into the SQL text as a comment, such as <c>/* rwsplit:primary */</c>.</summary>
public enum RoutingHint
{
    /// <summary>No hint.</summary>
    None = 0,

    /// <summary><c>rwsplit:primary</c>: run on the primary.</summary>
    Primary = 1,

    /// <summary>
    /// <c>rwsplit:replica</c>: the caller asserts the statement only reads; it may run on a replica even when the
    /// classifier could not prove that. A statement classified as a write still runs on the primary.
    /// </summary>
    Replica = 2,
}

/// <summary>
/// The result of classifying one command text. Immutable and cached per distinct text, so classification is paid
/// once per statement.
/// </summary>
public sealed class StatementClassification
{
    private static readonly IReadOnlyList<string> NoFunctions = Array.Empty<string>();

    /// <summary>A plain read with no session effect, no hint and no function calls.</summary>
    public static StatementClassification PlainRead { get; } = new(StatementKind.Read);

    /// <summary>A write with no session effect.</summary>
    public static StatementClassification PlainWrite { get; } = new(StatementKind.Write);

    /// <summary>A statement the classifier could not read. Routed to the primary.</summary>
    public static StatementClassification Unreadable { get; } = new(StatementKind.Unknown, detail: "statement could not be classified");

    /// <summary>Creates a classification.</summary>
    /// <param name="kind">What the statement does to data.</param>
    /// <param name="sessionEffect">How the statement changes the session.</param>
    /// <param name="hint">A routing hint found in a comment of the text.</param>
    /// <param name="functions">
    /// Lower-case, unqualified names of the functions the statement calls, for dialects whose functions can write
    /// (PostgreSQL). Empty when the dialect's functions cannot write or the statement calls none.
    /// </param>
    /// <param name="detail">A short, human-readable explanation (for logs), such as <c>"SELECT ... FOR UPDATE"</c>. Never contains parameter values.</param>
    public StatementClassification(
        StatementKind kind,
        SessionEffect sessionEffect = SessionEffect.None,
        RoutingHint hint = RoutingHint.None,
        IReadOnlyList<string>? functions = null,
        string? detail = null)
    {
        Kind = kind;
        SessionEffect = sessionEffect;
        Hint = hint;
        Functions = functions is { Count: > 0 } ? functions : NoFunctions;
        Detail = detail;
    }

    /// <summary>What the statement does to data.</summary>
    public StatementKind Kind { get; }

    /// <summary>How the statement changes the session.</summary>
    public SessionEffect SessionEffect { get; }

    /// <summary>The routing hint found in the text, if any.</summary>
    public RoutingHint Hint { get; }

    /// <summary>Lower-case names of functions the statement calls (see the constructor).</summary>
    public IReadOnlyList<string> Functions { get; }

    /// <summary>A short explanation for logs, or <see langword="null"/>.</summary>
    public string? Detail { get; }

    /// <inheritdoc />
    public override string ToString()
        => $"{Kind}{(SessionEffect != SessionEffect.None ? "+" + SessionEffect : "")}{(Hint != RoutingHint.None ? " hint:" + Hint : "")}{(Functions.Count > 0 ? " fn:" + string.Join(",", Functions) : "")}{(Detail is null ? "" : " (" + Detail + ")")}";
}
