using System;
using RwSplit.Topology;

namespace RwSplit.Routing;

/// <summary>
/// How a data source would route one command text now, on a new connection that has not written yet, without running
/// it (see <see cref="RwSplitDataSource.ExplainAsync"/>).
/// </summary>
public sealed class RoutingExplanation
{
    internal RoutingExplanation(StatementClassification classification, StatementKind kind, ReadConsistency consistency, RoutingDecision decision, EndpointAddress? endpoint)
    {
        Classification = classification;
        Kind = kind;
        Consistency = consistency;
        Decision = decision;
        Endpoint = endpoint;
    }

    /// <summary>What the dialect's classifier read from the text alone.</summary>
    public StatementClassification Classification { get; }

    /// <summary>
    /// What routing takes the statement for: the classification's kind, unless the data source knows better (a text
    /// learned as a write after a replica refused it, a read calling a function that may write).
    /// </summary>
    public StatementKind Kind { get; }

    /// <summary>The consistency the decision was made for.</summary>
    public ReadConsistency Consistency { get; }

    /// <summary>Where the command would go and why.</summary>
    public RoutingDecision Decision { get; }

    /// <summary>The endpoint it would run on (free of secrets), or <see langword="null"/> when it would be refused.</summary>
    public EndpointAddress? Endpoint { get; }

    /// <inheritdoc />
    public override string ToString() => FormattableString.Invariant($"{Kind} under {Consistency}: {Decision}{(Endpoint is null ? "" : " on " + Endpoint)}");
}
