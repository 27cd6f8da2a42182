using System;
using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit.Providers;

/// <summary>
/// The provider's I/O calls, sync or async, spelled once: code that serves both <c>Open</c> and <c>OpenAsync</c> is written
/// once as an async method taking <c>bool async</c> (as Npgsql and MySqlConnector do) and calls these. With
/// <c>async: false</c> each runs the provider's synchronous member on the calling thread and returns a completed task;
/// with <c>async: true</c> it returns the provider's own task. Commands and batches of the pipeline go through
/// <see cref="Execution.ProviderCall{T}"/> instead, which also avoids the state machine on the hot path.
/// </summary>
internal static class ProviderIo
{
    public static ValueTask OpenAsync(DbConnection connection, bool async, CancellationToken cancellationToken)
    {
        if (async)
            return new ValueTask(connection.OpenAsync(cancellationToken));
        connection.Open();
        return default;
    }

    public static ValueTask CloseAsync(DbConnection connection, bool async)
    {
        if (async)
            return new ValueTask(connection.CloseAsync());
        connection.Close();
        return default;
    }

    public static ValueTask DisposeAsync(DbConnection connection, bool async)
    {
        if (async)
            return connection.DisposeAsync();
        connection.Dispose();
        return default;
    }

    public static ValueTask DisposeAsync(DbTransaction transaction, bool async)
    {
        if (async)
            return transaction.DisposeAsync();
        transaction.Dispose();
        return default;
    }

    public static ValueTask ChangeDatabaseAsync(DbConnection connection, string databaseName, bool async, CancellationToken cancellationToken)
    {
        if (async)
            return new ValueTask(connection.ChangeDatabaseAsync(databaseName, cancellationToken));
        connection.ChangeDatabase(databaseName);
        return default;
    }

    public static ValueTask<DbTransaction> BeginTransactionAsync(DbConnection connection, IsolationLevel isolationLevel, bool async, CancellationToken cancellationToken)
        => async ? connection.BeginTransactionAsync(isolationLevel, cancellationToken) : new ValueTask<DbTransaction>(connection.BeginTransaction(isolationLevel));

    public static ValueTask CommitAsync(DbTransaction transaction, bool async, CancellationToken cancellationToken)
    {
        if (async)
            return new ValueTask(transaction.CommitAsync(cancellationToken));
        transaction.Commit();
        return default;
    }

    public static ValueTask RollbackAsync(DbTransaction transaction, bool async, CancellationToken cancellationToken)
    {
        if (async)
            return new ValueTask(transaction.RollbackAsync(cancellationToken));
        transaction.Rollback();
        return default;
    }

    public static ValueTask PrepareAsync(DbCommand command, bool async, CancellationToken cancellationToken)
    {
        if (async)
            return new ValueTask(command.PrepareAsync(cancellationToken));
        command.Prepare();
        return default;
    }

    public static ValueTask<int> ExecuteNonQueryAsync(DbCommand command, bool async, CancellationToken cancellationToken)
        => async ? new ValueTask<int>(command.ExecuteNonQueryAsync(cancellationToken)) : new ValueTask<int>(command.ExecuteNonQuery());

    public static ValueTask<object?> ExecuteScalarAsync(DbCommand command, bool async, CancellationToken cancellationToken)
        => async ? new ValueTask<object?>(command.ExecuteScalarAsync(cancellationToken)) : new ValueTask<object?>(command.ExecuteScalar());

    public static ValueTask<DbDataReader> ExecuteReaderAsync(DbCommand command, bool async, CancellationToken cancellationToken)
        => async ? new ValueTask<DbDataReader>(command.ExecuteReaderAsync(cancellationToken)) : new ValueTask<DbDataReader>(command.ExecuteReader());

    public static ValueTask<bool> ReadAsync(DbDataReader reader, bool async, CancellationToken cancellationToken)
        => async ? new ValueTask<bool>(reader.ReadAsync(cancellationToken)) : new ValueTask<bool>(reader.Read());

    public static ValueTask WaitAsync(SemaphoreSlim semaphore, bool async, CancellationToken cancellationToken)
    {
        if (async)
            return new ValueTask(semaphore.WaitAsync(cancellationToken));
        semaphore.Wait(cancellationToken);
        return default;
    }

    /// <summary>Enters the semaphore if it can within <paramref name="timeout"/> (zero: only if it is free now).</summary>
    public static ValueTask<bool> TryWaitAsync(SemaphoreSlim semaphore, TimeSpan timeout, bool async, CancellationToken cancellationToken)
        => async ? new ValueTask<bool>(semaphore.WaitAsync(timeout, cancellationToken)) : new ValueTask<bool>(semaphore.Wait(timeout, cancellationToken));

    public static ValueTask DelayAsync(int milliseconds, bool async, CancellationToken cancellationToken)
    {
        if (async)
            return new ValueTask(Task.Delay(milliseconds, cancellationToken));
        cancellationToken.ThrowIfCancellationRequested();
        if (!cancellationToken.CanBeCanceled)
            Thread.Sleep(milliseconds);
        else if (cancellationToken.WaitHandle.WaitOne(milliseconds))
            cancellationToken.ThrowIfCancellationRequested(); // a synchronous wait ends at once when cancelled, as an asynchronous one does
        return default;
    }
}
