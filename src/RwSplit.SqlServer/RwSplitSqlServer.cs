using System;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Data.SqlClient;

namespace RwSplit.SqlServer;

/// <summary>Entry points of RwSplit for SqlClient, including the drop-in replacement for <c>new SqlConnection(cs)</c>.</summary>
public static class RwSplitSqlServer
{
    /// <summary>
    /// RwSplit's provider factory for SqlClient. Register it in place of <c>SqlClientFactory.Instance</c> for code that
    /// creates connections through a factory.
    /// </summary>
    public static RwSplitProviderFactory Factory => RwSplitProviderFactory.For(SqlServerDialect.Instance);

    /// <summary>
    /// The drop-in replacement for <c>new SqlConnection(connectionString)</c>: SqlClient's connection string for the
    /// primary plus RwSplit's keywords, which are removed before SqlClient sees it:
    /// <c>Replicas=sql-r1|sql-r2,1444</c> (the replicas' servers; every other setting is the primary's, with
    /// <c>ApplicationIntent=ReadOnly</c>) and <c>Read Consistency=ReadYourWrites</c>.
    /// </summary>
    /// <param name="connectionString">The drop-in connection string.</param>
    /// <returns>A closed connection.</returns>
    public static RwSplitConnection CreateConnection(string connectionString) => Factory.CreateConnection(connectionString);

    /// <summary>
    /// Opens (if needed) and returns SqlClient's own connection to the primary, for <c>SqlBulkCopy</c> and other
    /// SqlClient-only APIs. Pins the logical connection to the primary.
    /// </summary>
    /// <param name="connection">The logical connection.</param>
    public static SqlConnection GetSqlPrimaryConnection(this RwSplitConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return (SqlConnection)connection.GetPrimaryConnection();
    }

    /// <inheritdoc cref="GetSqlPrimaryConnection"/>
    /// <param name="connection">The logical connection.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public static async ValueTask<SqlConnection> GetSqlPrimaryConnectionAsync(this RwSplitConnection connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return (SqlConnection)await connection.GetPrimaryConnectionAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The provider's <see cref="SqlTransaction"/> of a logical transaction (for <c>SqlBulkCopy</c>).</summary>
    /// <param name="transaction">The logical transaction.</param>
    public static SqlTransaction GetSqlTransaction(this RwSplitTransaction transaction)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        return (SqlTransaction)transaction.InnerTransaction;
    }
}

/// <summary>Selects the SQL Server dialect on <see cref="RwSplitOptions"/>.</summary>
public static class RwSplitSqlServerExtensions
{
    /// <summary>Routes through Microsoft.Data.SqlClient to SQL Server: <c>Primary</c> and <c>Replicas</c> are SqlClient connection strings.</summary>
    /// <param name="options">The options.</param>
    /// <returns>The options.</returns>
    public static RwSplitOptions UseSqlServer(this RwSplitOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.UseDialect(SqlServerDialect.Instance);
    }
}
