using System;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Providers;

namespace RwSplit.Transactions;

/// <summary>
/// Short, self-contained calls on a fresh provider connection to a data source's primary, for the coordinator's set-up
/// queries and for recovery. A pooled connection the server already closed (restart, <c>pg_terminate_backend</c>) fails on
/// first use: such a failure is retried on another connection, a few times, before it counts as "unreachable".
/// </summary>
internal static class ProviderCalls
{
    private const int Attempts = 3;

    public static async ValueTask<T> RunAsync<T>(RwSplitDataSource dataSource, Func<DbConnection, bool, CancellationToken, ValueTask<T>> call, bool async, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var connection = dataSource.CurrentPrimary.Connector.CreateConnection();
            try
            {
                await ProviderIo.OpenAsync(connection, async, cancellationToken).ConfigureAwait(false);
                return await call(connection, async, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException && dataSource.Dialect.Failures.IsConnectionFailure(ex, connection) && dataSource.ClearPoolOf(connection) && attempt < Attempts)
            {
                // a dead pooled connection: its siblings are gone from the pool now; dial anew
            }
            finally
            {
                await ProviderIo.DisposeAsync(connection, async).ConfigureAwait(false);
            }
        }
    }

    public static ValueTask<object?> ScalarAsync(RwSplitDataSource dataSource, string sql, bool async, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
        => CommandAsync(dataSource, sql, parameters, static (command, isAsync, token) => ProviderIo.ExecuteScalarAsync(command, isAsync, token), async, cancellationToken);

    /// <summary>Runs a statement; returns the rows it affected.</summary>
    public static ValueTask<int> NonQueryAsync(RwSplitDataSource dataSource, string sql, bool async, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
        => CommandAsync(dataSource, sql, parameters, static (command, isAsync, token) => ProviderIo.ExecuteNonQueryAsync(command, isAsync, token), async, cancellationToken);

    /// <summary>One parameterized command on a fresh connection (<see cref="RunAsync{T}"/>), executed by <paramref name="execute"/>.</summary>
    private static ValueTask<T> CommandAsync<T>(RwSplitDataSource dataSource, string sql, (string Name, object Value)[] parameters, Func<DbCommand, bool, CancellationToken, ValueTask<T>> execute, bool async, CancellationToken cancellationToken)
        => RunAsync(dataSource, async (connection, isAsync, token) =>
        {
            var command = connection.CreateCommand();
            await using (command.ConfigureAwait(false))
            {
                command.CommandText = sql;
                foreach (var (name, value) in parameters)
                    DistributedTransaction.AddParameter(command, name, value);
                return await execute(command, isAsync, token).ConfigureAwait(false);
            }
        }, async, cancellationToken);
}
