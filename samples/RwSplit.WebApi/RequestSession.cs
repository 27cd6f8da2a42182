using System;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit.WebApi;

/// <summary>
/// One logical RwSplit connection per HTTP request (scoped), opened on first use. Every statement of the request runs on
/// it, so a read after the request's own write sees it, and its consistency token covers all the request's writes.
/// </summary>
internal sealed class RequestSession(RwSplitDataSource dataSource) : IAsyncDisposable
{
    private RwSplitConnection? _connection;

    public async ValueTask<RwSplitConnection> GetConnectionAsync(CancellationToken cancellationToken)
        => _connection ??= await dataSource.OpenConnectionAsync(cancellationToken);

    /// <summary>Makes the request's reads see what the token covers (throws <see cref="RwSplitException"/> for a refused token).</summary>
    public async ValueTask ApplyConsistencyTokenAsync(string token, CancellationToken cancellationToken)
        => (await GetConnectionAsync(cancellationToken)).ApplyConsistencyToken(token);

    /// <summary>A token covering the request's writes and the tokens it received; <see langword="null"/> when neither.</summary>
    public ValueTask<string?> GetConsistencyTokenAsync(CancellationToken cancellationToken)
        => _connection is null ? ValueTask.FromResult<string?>(null) : _connection.GetConsistencyTokenAsync(cancellationToken);

    public ValueTask DisposeAsync() => _connection?.DisposeAsync() ?? ValueTask.CompletedTask;
}
