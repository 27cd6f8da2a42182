using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit.Execution;

/// <summary>
/// One kind of provider call (non-query, scalar, reader), synchronous or asynchronous: the one place the pipeline calls
/// the provider's command or batch. <c>CommandBehavior.CloseConnection</c> never reaches the provider (it would close the
/// physical connection): the reader is wrapped to close the logical one instead.
/// </summary>
internal abstract class ProviderCall<T>
{
    public ValueTask<T> RunAsync(ExecutionRequest request, CommandBehavior behavior, bool async, CancellationToken cancellationToken)
        => async ? new ValueTask<T>(Start(request, behavior & ~CommandBehavior.CloseConnection, cancellationToken)) : new ValueTask<T>(Run(request, behavior & ~CommandBehavior.CloseConnection));

    /// <summary>Starts the asynchronous call (the behavior is the provider's: without CloseConnection).</summary>
    public abstract Task<T> Start(ExecutionRequest request, CommandBehavior behavior, CancellationToken cancellationToken);

    public abstract T Run(ExecutionRequest request, CommandBehavior behavior);

    /// <summary>Whether the result must be wrapped for <paramref name="behavior"/> (see <see cref="Wrap"/>).</summary>
    public virtual bool Wraps(CommandBehavior behavior) => false;

    /// <summary>The result as the caller gets it: a reader asked for with CloseConnection closes the logical connection.</summary>
    public virtual T Wrap(T result, RwSplitConnection connection) => result;
}

internal static class ProviderCall
{
    public static readonly ProviderCall<int> NonQuery = new NonQueryCall();
    public static readonly ProviderCall<object?> Scalar = new ScalarCall();
    public static readonly ProviderCall<DbDataReader> Reader = new ReaderCall();

    private sealed class NonQueryCall : ProviderCall<int>
    {
        public override Task<int> Start(ExecutionRequest request, CommandBehavior behavior, CancellationToken cancellationToken) => request.ExecuteNonQueryAsync(cancellationToken);

        public override int Run(ExecutionRequest request, CommandBehavior behavior) => request.ExecuteNonQuery();
    }

    private sealed class ScalarCall : ProviderCall<object?>
    {
        public override Task<object?> Start(ExecutionRequest request, CommandBehavior behavior, CancellationToken cancellationToken) => request.ExecuteScalarAsync(cancellationToken);

        public override object? Run(ExecutionRequest request, CommandBehavior behavior) => request.ExecuteScalar();
    }

    private sealed class ReaderCall : ProviderCall<DbDataReader>
    {
        public override Task<DbDataReader> Start(ExecutionRequest request, CommandBehavior behavior, CancellationToken cancellationToken) => request.ExecuteReaderAsync(behavior, cancellationToken);

        public override DbDataReader Run(ExecutionRequest request, CommandBehavior behavior) => request.ExecuteReader(behavior);

        public override bool Wraps(CommandBehavior behavior) => (behavior & CommandBehavior.CloseConnection) != 0;

        public override DbDataReader Wrap(DbDataReader result, RwSplitConnection connection) => new RwSplitDataReader(result, connection);
    }
}
