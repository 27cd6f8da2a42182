using System;
using System.Data;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Routing;

namespace RwSplit;

public sealed partial class RwSplitDataSource
{
    /// <summary>
    /// Explains how a command text would be routed now — its classification, the decision and its reason — on a new
    /// connection of this data source that has not written yet, outside any transaction and scope, with the replicas
    /// available now (call <see cref="RefreshTopologyAsync"/> first for a fresh view). The statement is not run; a read
    /// calling functions may look their volatility up in the database's catalog, as routing does.
    /// </summary>
    /// <param name="commandText">The SQL text (never logged or returned).</param>
    /// <param name="consistency">The consistency to explain for; <see langword="null"/> for the data source's default.</param>
    /// <param name="cancellationToken">Cancels a catalog lookup.</param>
    /// <returns>The explanation.</returns>
    public async ValueTask<RoutingExplanation> ExplainAsync(string commandText, ReadConsistency? consistency = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(commandText);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var classification = Statements.Classify(commandText);
        var facts = await ResolveFactsAsync(commandText, CommandType.Text, true, cancellationToken).ConfigureAwait(false);
        var effective = consistency ?? Consistency;
        var decision = Router.Route(facts, SessionState.Fresh, effective, Snapshot(), 0);
        var endpoint = decision.Target switch
        {
            RouteTarget.Primary => CurrentPrimaryAddress,
            RouteTarget.Replica => _replicas[decision.ReplicaIndex].Address,
            _ => null,
        };
        return new RoutingExplanation(classification, facts.Kind, effective, decision, endpoint);
    }
}
