using System;
using Microsoft.Data.SqlClient;
using RwSplit.Providers;

namespace RwSplit.SqlServer;

/// <summary>
/// SQL Server's distributed-transaction statements: the decision table only. Outside MSDTC SQL Server cannot prepare a
/// transaction and commit it from another session, so a SQL Server branch is the last resource of a transaction.
/// </summary>
internal sealed class SqlServerTransactionStatements : TransactionStatements
{
    public static SqlServerTransactionStatements Instance { get; } = new();

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
}
