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

    public override string ToString() => $"{Kind}/{Cause}/{SessionEffect}/{Hint}";
}
