using System;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;

namespace RwSplit.EntityFrameworkCore.Storage;

/// <summary>
/// A retrying strategy of the provider (<c>EnableRetryOnFailure()</c>), extended to RwSplit's transient errors
/// (<see cref="RwSplitException.IsTransient"/>: an endpoint that failed to open with a transient provider error, the
/// primary changed, the fallback limit was reached, RwSplit's own wait timed out). The provider's strategy retries
/// what it recognises, as before; an RwSplit transient error, which it rethrows at once, is retried here with the
/// same limits (<see cref="ExecutionStrategy.MaxRetryCount"/>, <see cref="ExecutionStrategy.MaxRetryDelay"/>) and
/// EF's exponential back-off, and reported as <see cref="RetryLimitExceededException"/> once they are spent. Only the
/// outermost execution retries, as in EF.
/// </summary>
internal sealed class RwSplitRetryingExecutionStrategy(IExecutionStrategy inner, ICurrentDbContext currentContext) : IExecutionStrategy
{
    private static readonly TimeSpan DefaultMaxRetryDelay = TimeSpan.FromSeconds(30);

    // Nested executions (an operation that runs another strategy) leave retrying to the outermost one.
    private static readonly AsyncLocal<bool> Executing = new();

    private int MaxRetryCount => inner is ExecutionStrategy strategy ? strategy.MaxRetryCount : 6;

    private TimeSpan MaxRetryDelay => inner is ExecutionStrategy strategy ? strategy.MaxRetryDelay : DefaultMaxRetryDelay;

    public bool RetriesOnFailure => inner.RetriesOnFailure;

    public TResult Execute<TState, TResult>(TState state, Func<Microsoft.EntityFrameworkCore.DbContext, TState, TResult> operation, Func<Microsoft.EntityFrameworkCore.DbContext, TState, ExecutionResult<TResult>>? verifySucceeded)
    {
        if (Executing.Value || ExecutionStrategy.Current is not null)
            return inner.Execute(state, operation, verifySucceeded);
        for (var retries = 0; ; retries++)
        {
            Executing.Value = true;
            try
            {
                return inner.Execute(state, operation, verifySucceeded);
            }
            catch (Exception ex) when (IsRwSplitTransient(ex))
            {
                Executing.Value = false;
                if (verifySucceeded?.Invoke(currentContext.Context, state) is { IsSuccessful: true } verified)
                    return verified.Result;
                Thread.Sleep(NextDelay(retries, ex));
            }
            finally
            {
                Executing.Value = false;
            }
        }
    }

    public async Task<TResult> ExecuteAsync<TState, TResult>(TState state, Func<Microsoft.EntityFrameworkCore.DbContext, TState, CancellationToken, Task<TResult>> operation, Func<Microsoft.EntityFrameworkCore.DbContext, TState, CancellationToken, Task<ExecutionResult<TResult>>>? verifySucceeded, CancellationToken cancellationToken = default)
    {
        if (Executing.Value || ExecutionStrategy.Current is not null)
            return await inner.ExecuteAsync(state, operation, verifySucceeded, cancellationToken).ConfigureAwait(false);
        for (var retries = 0; ; retries++)
        {
            TimeSpan delay;
            Executing.Value = true;
            try
            {
                return await inner.ExecuteAsync(state, operation, verifySucceeded, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsRwSplitTransient(ex))
            {
                Executing.Value = false;
                if (verifySucceeded is not null && await verifySucceeded(currentContext.Context, state, cancellationToken).ConfigureAwait(false) is { IsSuccessful: true } verified)
                    return verified.Result;
                delay = NextDelay(retries, ex);
            }
            finally
            {
                Executing.Value = false;
            }

            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>An RwSplit error that may pass on retry, as thrown or wrapped by <c>SaveChanges</c> in a <c>DbUpdateException</c>.</summary>
    internal static bool IsRwSplitTransient(Exception exception)
        => ExecutionStrategy.CallOnWrappedException(exception, static e => e is RwSplitException { IsTransient: true });

    /// <summary>EF's back-off: (2^n - 1) seconds with up to 10 % jitter, at most <see cref="MaxRetryDelay"/>; past the limit, the error EF throws.</summary>
    private TimeSpan NextDelay(int retries, Exception exception)
    {
        if (retries >= MaxRetryCount)
        {
            throw new RetryLimitExceededException($"The maximum number of retries ({MaxRetryCount}) was exceeded while executing database operations with '{inner.GetType().Name}' wrapped by RwSplit. See the inner exception for the most recent failure.", exception);
        }

        var delta = (Math.Pow(2, retries + 1) - 1) * (1 + (Random.Shared.NextDouble() * 0.1));
        var delay = TimeSpan.FromSeconds(Math.Min(delta, MaxRetryDelay.TotalSeconds));
        return delay;
    }
}
