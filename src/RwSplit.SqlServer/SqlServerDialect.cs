using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Globalization;
using Microsoft.Data.SqlClient;
using RwSplit.Providers;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit.SqlServer;

/// <summary>
/// The SQL Server dialect over Microsoft.Data.SqlClient: T-SQL classified by Microsoft's own parser (ScriptDom,
/// <see cref="CreateClassifier"/>), and error 3906 (database is read-only) as the misroute signal (<see cref="Failures"/>). Select it with
/// <see cref="RwSplitSqlServerExtensions.UseSqlServer"/>.
/// </summary>
public sealed class SqlServerDialect : RwSplitDialect
{
    private SqlServerDialect()
    {
    }

    /// <summary>The dialect.</summary>
    public static SqlServerDialect Instance { get; } = new();

    /// <inheritdoc />
    public override ReplicationQueries Replication => SqlServerReplicationQueries.Instance;

    /// <inheritdoc />
    public override TransactionStatements TransactionStatements => SqlServerTransactionStatements.Instance;

    /// <inheritdoc />
    public override FailureRules Failures => SqlServerFailureRules.Instance;

    /// <inheritdoc />
    public override string SystemName => "microsoft.sql_server";

    /// <inheritdoc />
    public override DbProviderFactory ProviderFactory => SqlClientFactory.Instance;

    /// <inheritdoc />
    public override EndpointAddress ParseEndpoint(string connectionString) => Address(Parse(connectionString));

    /// <summary>
    /// Creates the connector. The provider's own enlistment is turned off (<c>Enlist=false</c>); a replica without an
    /// explicit <c>ApplicationIntent</c> gets <c>ApplicationIntent=ReadOnly</c>, as availability-group read-only routing
    /// and read-intent-only secondaries require.
    /// </summary>
    /// <param name="connectionString">The connection string.</param>
    /// <param name="role">The role.</param>
    public override EndpointConnector CreateConnector(string connectionString, EndpointRole role)
    {
        var builder = Parse(connectionString);
        var address = Address(builder);
        builder.Enlist = false;
        if (role == EndpointRole.Replica && !builder.ShouldSerialize("Application Intent"))
            builder.ApplicationIntent = ApplicationIntent.ReadOnly;
        var redacted = new SqlConnectionStringBuilder(builder.ConnectionString);
        redacted.Remove("Password");
        redacted.Remove("Enlist"); // the logical connection does enlist in an ambient transaction
        return new SqlServerEndpointConnector(address, role, builder.ConnectionString, redacted.ConnectionString);
    }

    /// <inheritdoc />
    public override StatementClassifier CreateClassifier(IReadOnlySet<string> readOnlyProcedures)
        => new SqlServerStatementClassifier(readOnlyProcedures);

    /// <summary>Replaces <c>Data Source</c> with <paramref name="server"/> and asks for <c>ApplicationIntent=ReadOnly</c>.</summary>
    /// <param name="connectionString">The primary's connection string.</param>
    /// <param name="server">The replica's server: <c>host</c>, <c>host,port</c> or <c>host\instance</c>.</param>
    public override string WithServer(string connectionString, string server)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(server);
        var builder = Parse(connectionString);
        builder.DataSource = server;
        builder.ApplicationIntent = ApplicationIntent.ReadOnly;
        return builder.ConnectionString;
    }

    private static SqlConnectionStringBuilder Parse(string connectionString)
    {
        ArgumentNullException.ThrowIfNull(connectionString);
        SqlConnectionStringBuilder builder;
        try
        {
            builder = new SqlConnectionStringBuilder(connectionString);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidOperationException or KeyNotFoundException)
        {
            // SqlClient's messages name the keyword ("Keyword not supported: 'x'."), never a password value.
            throw new ArgumentException(ex.Message, nameof(connectionString), ex);
        }

        if (string.IsNullOrWhiteSpace(builder.DataSource))
            throw new ArgumentException("Data Source (Server) is missing: add Server=<host> to the connection string.", nameof(connectionString));
        return builder;
    }

    private static EndpointAddress Address(SqlConnectionStringBuilder builder)
    {
        // Data Source forms: host, host\instance, host,port, tcp:host,port, np:..., (localdb)\x.
        var dataSource = builder.DataSource.Trim();
        var colon = dataSource.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0 && colon < 4 && !dataSource.StartsWith('('))
            dataSource = dataSource[(colon + 1)..];
        int? port = null;
        var comma = dataSource.LastIndexOf(',');
        if (comma > 0 && int.TryParse(dataSource.AsSpan(comma + 1).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
        {
            port = parsed;
            dataSource = dataSource[..comma].Trim();
        }

        var database = string.IsNullOrEmpty(builder.InitialCatalog) ? null : builder.InitialCatalog;
        return new EndpointAddress(dataSource, port, database);
    }
}
