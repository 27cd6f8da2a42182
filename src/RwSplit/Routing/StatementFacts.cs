using System;

namespace RwSplit.Routing;

/// <summary>
/// What routing needs to know about one command: the cached classification of its text, resolved against the command
/// type, the declared read-only procedures, the function catalog and the misroutes learned so far.
/// </summary>
internal readonly struct StatementFacts
{
    public StatementFacts(StatementKind kind, RoutingReason cause, SessionEffect sessionEffect = SessionEffect.None, RoutingHint hint = RoutingHint.None)
    {
        Kind = kind;
        Cause = cause;
        SessionEffect = sessionEffect;
        Hint = hint;
    }

    /// <summary>Read, write or unknown.</summary>
    public StatementKind Kind { get; }

    /// <summary>The reason to report when the statement's own nature decides the target.</summary>
    public RoutingReason Cause { get; }

    public SessionEffect SessionEffect { get; }

    public RoutingHint Hint { get; }

    /// <summary>
    /// Whether the statement may write: anything not proven to read, except an unknown statement the caller declared a
    /// read (<c>rwsplit:replica</c>). The one definition routing, batches and read-your-writes use.
    /// </summary>
    public bool MayWrite => Kind != StatementKind.Read && !(Kind == StatementKind.Unknown && Hint == RoutingHint.Replica);

    /// <summary>Whether the statement's own nature lets it run on a replica (a read without a pin or a primary hint).</summary>
    public bool MayRunOnReplica => !MayWrite && SessionEffect != SessionEffect.Pin && Hint != RoutingHint.Primary;

    public static StatementFacts Read { get; } = new(StatementKind.Read, RoutingReason.Read);

    public static StatementFacts Write { get; } = new(StatementKind.Write, RoutingReason.Write);

    /// <summary>The facts of a classification, with the cause to report for a read and for a write.</summary>
    public static StatementFacts From(StatementClassification classification, RoutingReason readCause, RoutingReason writeCause)
        => new(classification.Kind, classification.Kind switch
        {
            StatementKind.Read => readCause,
            StatementKind.Write => writeCause,
            _ => RoutingReason.UnknownStatement,
        }, classification.SessionEffect, classification.Hint);

    /// <summary>
    /// The facts of a batch sent in one round trip, which runs on one server: those of its most demanding statement —
    /// the first that may write, else the first with a session effect or a primary hint, else (every statement a plain
    /// read) the first. A session effect anywhere pins the session: a batch's <c>SET</c> cannot be replayed apart from
    /// its other statements.
    /// </summary>
    /// <param name="statements">The facts of each statement, in order (at least one).</param>
    /// <param name="deciding">The index of the statement whose facts decide (named in messages).</param>
    public static StatementFacts Combine(ReadOnlySpan<StatementFacts> statements, out int deciding)
    {
        deciding = -1;
        var decidingWrites = false;
        var sessionEffect = false;
        for (var i = 0; i < statements.Length; i++)
        {
            var facts = statements[i];
            sessionEffect |= facts.SessionEffect != SessionEffect.None;
            if ((facts.MayWrite && !decidingWrites) || (deciding < 0 && (facts.SessionEffect != SessionEffect.None || facts.Hint == RoutingHint.Primary)))
            {
                deciding = i;
                decidingWrites = facts.MayWrite;
            }
        }

        if (deciding < 0)
        {
            deciding = 0;
            return statements[0];
        }

        var chosen = statements[deciding];
        return new StatementFacts(chosen.Kind, chosen.Cause, sessionEffect ? SessionEffect.Pin : SessionEffect.None, chosen.Hint);
    }

    public override string ToString() => $"{Kind}/{Cause}/{SessionEffect}/{Hint}";
}
