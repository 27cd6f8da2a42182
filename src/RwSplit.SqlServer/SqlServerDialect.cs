using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Globalization;
using Microsoft.Data.SqlClient;
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
    public override string SystemName => "microsoft.sql_server";

    /// <inheritdoc />
    public override DbProviderFactory ProviderFactory => SqlClientFactory.Instance;

    /// <inheritdoc />
    public override EndpointAddress ParseEndpoint(string connectionString) => Address(Parse(connectionString));

    /// <summary>
    /// Role from <c>DATABASEPROPERTYEX(DB_NAME(), 'Updateability')</c>. With <c>VIEW SERVER STATE</c>, from the database's
    /// local row in <c>sys.dm_hadr_database_replica_states</c>: the position (<see cref="ToPosition"/>) is the primary's
    /// <c>last_commit_lsn</c> and a secondary's <c>last_redone_lsn</c> (what a read there can see, which lags what it has
    /// hardened while redo catches up); the lag is the seconds since the last commit the secondary received plus, while
    /// redo is behind it, the redo queue over the redo rate (an estimate); the identity is the availability group's
    /// <c>group_database_id</c>. Without that permission, or outside an availability group, only the role is known and
    /// reads after a write go to the primary.
    /// </summary>
    public override string? HealthProbeQuery => """
        DECLARE @replica bit = CASE WHEN CONVERT(nvarchar(20), DATABASEPROPERTYEX(DB_NAME(), 'Updateability')) = N'READ_ONLY' THEN 1 ELSE 0 END;
        IF HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') = 1
            EXEC(N'SELECT @r, CASE WHEN @r = 1 THEN s.last_redone_lsn ELSE s.last_commit_lsn END,
                      CASE WHEN @r = 1 THEN DATEDIFF_BIG(millisecond, s.last_commit_time, GETDATE()) / 1000.0
                          + CASE WHEN s.last_redone_lsn < s.last_commit_lsn THEN ISNULL(s.redo_queue_size * 1.0 / NULLIF(s.redo_rate, 0), 3600) ELSE 0 END END,
                      CONVERT(nvarchar(36), d.group_database_id)
                   FROM sys.databases d LEFT JOIN sys.dm_hadr_database_replica_states s ON s.database_id = d.database_id AND s.is_local = 1
                   WHERE d.database_id = DB_ID()', N'@r bit', @r = @replica);
        ELSE
            SELECT @replica, CAST(NULL AS numeric(25,0)), CAST(NULL AS float), CAST(NULL AS nvarchar(36));
        """;

    /// <summary>
    /// The primary's <c>last_commit_lsn</c> (its local row in <c>sys.dm_hadr_database_replica_states</c>): read right after
    /// a write committed, at least that write's commit record. Null without <c>VIEW SERVER STATE</c>.
    /// </summary>
    public override string? WritePositionQuery => """
        IF HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') = 1
            EXEC(N'SELECT last_commit_lsn FROM sys.dm_hadr_database_replica_states WHERE database_id = DB_ID() AND is_local = 1');
        ELSE
            SELECT CAST(NULL AS numeric(25,0));
        """;

    /// <summary>
    /// A secondary's <c>last_redone_lsn</c>: the last log record redo applied, so the last commit a read there can see
    /// (not <c>last_commit_lsn</c> or <c>last_commit_time</c>, which advance when the log is hardened, before redo).
    /// </summary>
    public override string? ReplayPositionQuery => """
        IF HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') = 1
            EXEC(N'SELECT last_redone_lsn FROM sys.dm_hadr_database_replica_states WHERE database_id = DB_ID() AND is_local = 1');
        ELSE
            SELECT CAST(NULL AS numeric(25,0));
        """;

    /// <summary>
    /// A log sequence number as SQL Server's DMVs show it, <c>numeric(25,0)</c> = VLF sequence number × 10<sup>15</sup> +
    /// log block offset × 10<sup>5</sup> + slot, packed into a <c>bigint</c> that orders the same way: 25 bits of VLF
    /// sequence number, 26 bits of block offset (VLFs up to 32 GiB) and 12 bits of slot. An LSN beyond that range has no
    /// position (<see langword="null"/>): reads after a write then go to the primary.
    /// </summary>
    /// <param name="value">The value the position query returned.</param>
    public override long? ToPosition(object? value)
    {
        if (value is not decimal lsn)
            return base.ToPosition(value);
        if (lsn < 0 || lsn != decimal.Truncate(lsn))
            return null;
        var vlf = decimal.Truncate(lsn / 1_000_000_000_000_000m);
        var block = decimal.Truncate(lsn / 100_000m) % 10_000_000_000m;
        var slot = lsn % 100_000m;
        if (vlf >= 1L << 25 || block >= 1L << 26 || slot >= 1L << 12)
            return null;
        return ((long)vlf << 38) | ((long)block << 12) | (long)slot;
    }

    /// <summary>The database's identity: the availability group database id when there is one, else server and database name.</summary>
    public override string DatabaseIdentitySql
        => "SELECT COALESCE(CONVERT(nvarchar(36), group_database_id), CONVERT(nvarchar(128), SERVERPROPERTY('ServerName'))) + N'/' + DB_NAME() FROM sys.databases WHERE database_id = DB_ID()";

    /// <inheritdoc />
    public override string CreateDecisionTableSql => """
        IF OBJECT_ID(N'dbo.rwsplit_decisions', N'U') IS NULL
            CREATE TABLE dbo.rwsplit_decisions (
                gtrid varchar(200) NOT NULL PRIMARY KEY,
                outcome char(1) NOT NULL CHECK (outcome IN ('c', 'a', 'h')),
                coordinator varchar(64) NOT NULL,
                created datetime2 NOT NULL DEFAULT SYSUTCDATETIME())
        """;

    /// <inheritdoc />
    public override string InsertDecisionSql => "INSERT INTO dbo.rwsplit_decisions (gtrid, outcome, coordinator) VALUES (@gtrid, @outcome, @coordinator)";

    /// <inheritdoc />
    public override string SelectDecisionSql => "SELECT outcome FROM dbo.rwsplit_decisions WHERE gtrid = @gtrid";

    /// <inheritdoc />
    public override string DeleteDecisionSql => "DELETE FROM dbo.rwsplit_decisions WHERE gtrid = @gtrid";

    /// <inheritdoc />
    public override string? ListHeuristicExpectationsSql
        => "SELECT gtrid, DATEDIFF(second, created, SYSUTCDATETIME()) FROM dbo.rwsplit_decisions WHERE outcome = 'h' AND gtrid LIKE '%:expect:%'";

    /// <inheritdoc />
    public override string? PurgeDecisionsSql => "DELETE FROM dbo.rwsplit_decisions WHERE created < DATEADD(day, -@days, SYSUTCDATETIME())";

    /// <inheritdoc />
    public override bool IsUniqueViolation(Exception exception)
        => exception is SqlException sql && (sql.Number == 2627 || sql.Number == 2601);

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
