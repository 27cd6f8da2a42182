using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;

namespace RwSplit.EntityFrameworkCore.Storage;

/// <summary>
/// The provider's execution strategy factory; a strategy that retries (<c>EnableRetryOnFailure()</c>) is wrapped so
/// that it also retries RwSplit's transient errors, which the provider's strategy does not recognise.
/// </summary>
internal sealed class RwSplitExecutionStrategyFactory(IExecutionStrategyFactory inner, ICurrentDbContext currentContext) : IExecutionStrategyFactory
{
    public IExecutionStrategy Create()
    {
        var strategy = inner.Create();
        return strategy.RetriesOnFailure ? new RwSplitRetryingExecutionStrategy(strategy, currentContext) : strategy;
    }
}
