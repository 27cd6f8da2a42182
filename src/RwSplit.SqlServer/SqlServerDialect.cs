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
/// The SQL Server dialect over Microsoft.Data.SqlClient: T-SQL classified by Microsoft's own parser (ScriptDom), and
/// error 3906 (database is read-only) as the misroute signal. Select it with
/// <see cref="RwSplitSqlServerExtensions.UseSqlServer"/>.
/// </summary>
public sealed class SqlServerDialect : RwSplitDialect
{
    /// <summary>SQL Server errors meaning "this server is read-only here", so the statement did nothing.</summary>
    private static readonly HashSet<int> ReadOnlyErrors =
    [
        3906, // Failed to update database because the database is read-only.
        3908, // Could not run BEGIN TRANSACTION in database because the database is in bypass recovery mode / read-only.
        16000, // Only read-intent connections are allowed on this secondary (write attempted).
    ];

    private volatile ClassifierEntry? _classifier;

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
        return new SqlServerEndpointConnector(address, role, builder.ConnectionString, redacted.ConnectionString);
    }

    /// <inheritdoc />
    public override StatementClassification Classify(string commandText, IReadOnlySet<string> readOnlyProcedures)
    {
        // One data source per process is usual: keep the classifier of the last procedure set.
        var entry = _classifier;
        if (entry is null || !ReferenceEquals(entry.Procedures, readOnlyProcedures))
            _classifier = entry = new ClassifierEntry(readOnlyProcedures, new TSqlStatementClassifier(readOnlyProcedures));
        return entry.Classifier.Classify(commandText);
    }

    /// <inheritdoc />
    public override StatementClassification ClassifyProcedure(string procedureName, IReadOnlySet<string> readOnlyProcedures)
    {
        ArgumentNullException.ThrowIfNull(procedureName);
        var entry = _classifier;
        if (entry is null || !ReferenceEquals(entry.Procedures, readOnlyProcedures))
            _classifier = entry = new ClassifierEntry(readOnlyProcedures, new TSqlStatementClassifier(readOnlyProcedures));
        return entry.Classifier.ClassifyProcedure(procedureName);
    }

    /// <inheritdoc />
    public override void ClearPool(DbConnection connection)
    {
        if (connection is SqlConnection sql)
            SqlConnection.ClearPool(sql);
    }

    /// <inheritdoc />
    public override bool IsReadOnlyViolation(Exception exception)
    {
        if (exception is not SqlException sql)
            return false;
        foreach (SqlError error in sql.Errors)
        {
            if (ReadOnlyErrors.Contains(error.Number))
                return true;
        }

        return false;
    }

    /// <summary>
    /// Also a connection failure: a <see cref="SqlException"/> of severity 20 or more — SqlClient's transport-level errors
    /// ("A transport-level error has occurred…") and server errors that end the session. On the async path SqlClient may
    /// still report the broken connection as open when the exception arrives, so the state alone does not tell.
    /// </summary>
    /// <param name="exception">The exception.</param>
    /// <param name="connection">The connection.</param>
    public override bool IsConnectionFailure(Exception exception, DbConnection connection)
        => base.IsConnectionFailure(exception, connection) || exception is SqlException { Class: >= 20 };

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

    private sealed record ClassifierEntry(IReadOnlySet<string> Procedures, TSqlStatementClassifier Classifier);
}
