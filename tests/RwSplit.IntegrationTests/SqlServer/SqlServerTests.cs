using System;
using System.Data;
using System.Threading.Tasks;
using Microsoft.Data.SqlClient;
using NUnit.Framework;
using RwSplit.PostgreSql;
using RwSplit.Routing;
using RwSplit.SqlServer;

namespace RwSplit.IntegrationTests.SqlServer;

/// <summary>
/// Runs against a real SQL Server when RWSPLIT_SQLSERVER_PRIMARY gives the primary's connection string (and, for the
/// replica tests, RWSPLIT_SQLSERVER_REPLICA a readable secondary's). Without them every test here is skipped with that
/// reason: no SQL Server can run on the build machines.
/// </summary>
[TestFixture]
[Category("SqlServer")]
public sealed class SqlServerTests
{
    public const string PrimaryVariable = "RWSPLIT_SQLSERVER_PRIMARY";
    public const string ReplicaVariable = "RWSPLIT_SQLSERVER_REPLICA";

    private string _primary = null!;
    private string? _replica;

    [OneTimeSetUp]
    public void RequireServer()
    {
        _primary = Environment.GetEnvironmentVariable(PrimaryVariable) ?? "";
        _replica = Environment.GetEnvironmentVariable(ReplicaVariable);
        if (string.IsNullOrWhiteSpace(_primary))
            Assert.Ignore($"No SQL Server configured: set {PrimaryVariable} (and optionally {ReplicaVariable}) to run the SQL Server integration tests.");
    }

    private void RequireReplica()
    {
        if (string.IsNullOrWhiteSpace(_replica))
            Assert.Ignore($"No readable secondary configured: set {ReplicaVariable}.");
    }

    private RwSplitDataSource Create(Action<RwSplitOptions>? configure = null) => RwSplitDataSource.Create(o =>
    {
        o.UseSqlServer();
        o.Primary = _primary;
        if (!string.IsNullOrWhiteSpace(_replica))
            o.Replicas.Add(_replica);
        configure?.Invoke(o);
    });

    [Test]
    public async Task Writes_and_temp_tables_run_on_the_primary_and_reads_on_the_secondary([Values] bool async)
    {
        RequireReplica();
        await using var dataSource = Create(o => o.Consistency = ReadConsistency.Eventual);
        await using var connection = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
        await using var command = connection.CreateCommand();

        command.CommandText = "SELECT CONVERT(nvarchar(20), DATABASEPROPERTYEX(DB_NAME(), 'Updateability'))";
        Assert.That(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar(), Is.EqualTo("READ_ONLY"));
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));

        command.CommandText = "SELECT CONVERT(nvarchar(20), DATABASEPROPERTYEX(DB_NAME(), 'Updateability')) FROM sys.objects WITH (UPDLOCK) WHERE 1 = 0 UNION ALL SELECT 'READ_WRITE'";
        Assert.That(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar(), Is.EqualTo("READ_WRITE"));
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Primary));

        command.CommandText = "CREATE TABLE #scratch (id int); INSERT #scratch VALUES (1)";
        if (async)
            await command.ExecuteNonQueryAsync();
        else
            command.ExecuteNonQuery();
        command.CommandText = "SELECT COUNT(*) FROM #scratch";
        Assert.That(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar(), Is.EqualTo(1));
        Assert.That(connection.PinnedReason, Is.Not.Null);
    }

    [Test]
    public async Task Drop_in_connection_string_and_sql_types([Values] bool async)
    {
        RequireReplica();
        var server = new SqlConnectionStringBuilder(_replica).DataSource;
        await using var connection = RwSplitSqlServer.CreateConnection(_primary + $";Replicas={server};Read Consistency=Eventual");
        if (async)
            await connection.OpenAsync();
        else
            connection.Open();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT @p + 1";
        var parameter = (SqlParameter)command.CreateParameter();
        parameter.ParameterName = "@p";
        parameter.SqlDbType = SqlDbType.Int;
        parameter.Value = 41;
        command.Parameters.Add(parameter);
        await using var reader = async ? await command.ExecuteReaderAsync() : command.ExecuteReader();
        Assert.That(reader, Is.InstanceOf<SqlDataReader>());
        Assert.That(async ? await reader.ReadAsync() : reader.Read(), Is.True);
        Assert.That(reader.GetInt32(0), Is.EqualTo(42));
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
    }

    [Test]
    public async Task Local_transaction_and_bulk_copy_use_the_providers_own_types([Values] bool async)
    {
        await using var dataSource = Create();
        await using var connection = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
        await using var transaction = async ? await connection.BeginTransactionAsync() : connection.BeginTransaction();
        await using var command = new RwSplitCommand("CREATE TABLE #bulk (id int)", connection, transaction);
        if (async)
            await command.ExecuteNonQueryAsync();
        else
            command.ExecuteNonQuery();

        using var table = new DataTable();
        table.Columns.Add("id", typeof(int));
        table.Rows.Add(1);
        table.Rows.Add(2);
        using (var bulk = new SqlBulkCopy(connection.GetSqlPrimaryConnection(), SqlBulkCopyOptions.Default, transaction.GetSqlTransaction()) { DestinationTableName = "#bulk" })
            bulk.WriteToServer(table);

        command.CommandText = "SELECT COUNT(*) FROM #bulk";
        Assert.That(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar(), Is.EqualTo(2));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.LocalTransaction));
        transaction.Rollback();
    }

    [Test]
    public async Task Monitor_reads_roles_and_lag_from_the_availability_group()
    {
        RequireReplica();
        await using var dataSource = Create();
        await dataSource.RefreshTopologyAsync();
        var topology = dataSource.GetTopology();
        Assert.That(topology[0].ObservedRole, Is.EqualTo(Topology.EndpointRole.Primary), topology[0].ToString());
        Assert.That(topology[1].ObservedRole, Is.EqualTo(Topology.EndpointRole.Replica), topology[1].ToString());
        Assert.That(topology[1].IsReachable, Is.True);
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, topology));

        // Read-your-writes: a write, then a read that must see it (a caught-up secondary or the primary).
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "IF OBJECT_ID('dbo.rwsplit_probe') IS NULL CREATE TABLE dbo.rwsplit_probe (id uniqueidentifier PRIMARY KEY)";
        await command.ExecuteNonQueryAsync();
        var id = Guid.NewGuid();
        command.CommandText = "INSERT dbo.rwsplit_probe VALUES (@id)";
        command.Parameters.Add(new SqlParameter("@id", id));
        await command.ExecuteNonQueryAsync();
        command.CommandText = "SELECT COUNT(*) FROM dbo.rwsplit_probe WHERE id = @id";
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(1));
    }

    [Test]
    public async Task Distributed_transaction_with_PostgreSQL_keeps_its_decision_in_the_SQL_Server_database()
    {
        // The coordinator's T-SQL on a real server: the decision table's DDL, the decision insert in the last resource's
        // local transaction, the decision lookup, and the heuristic recovery queries.
        await using var sql = Create(o =>
        {
            o.Replicas.Clear();
            o.HealthMonitoring = false;
            o.AllowHeuristicCommit = true; // makes recovery run the heuristic queries against this server too
        });
        await using var pg = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Primary = ClusterSetup.Cluster.PrimaryConnectionString;
            o.HealthMonitoring = false;
        });
        await using (var setup = await pg.OpenConnectionAsync())
        await using (var command = setup.CreateCommand())
        {
            command.CommandText = "CREATE TABLE IF NOT EXISTS rwsplit_sqlserver_dtx (id uuid PRIMARY KEY)";
            await command.ExecuteNonQueryAsync();
        }

        await using (var setup = await sql.OpenConnectionAsync())
        await using (var command = setup.CreateCommand())
        {
            command.CommandText = "IF OBJECT_ID('dbo.rwsplit_dtx') IS NULL CREATE TABLE dbo.rwsplit_dtx (id uniqueidentifier PRIMARY KEY)";
            await command.ExecuteNonQueryAsync();
        }

        var id = Guid.NewGuid();
        using (var scope = new System.Transactions.TransactionScope(System.Transactions.TransactionScopeAsyncFlowOption.Enabled))
        {
            await using (var connection = await pg.OpenConnectionAsync())
            await using (var command = connection.CreateCommand())
            {
                command.CommandText = "INSERT INTO rwsplit_sqlserver_dtx VALUES (@id)";
                command.Parameters.Add(new Npgsql.NpgsqlParameter("id", id));
                await command.ExecuteNonQueryAsync();
            }

            await using (var connection = await sql.OpenConnectionAsync())
            await using (var command = connection.CreateCommand())
            {
                command.CommandText = "INSERT dbo.rwsplit_dtx VALUES (@id)";
                command.Parameters.Add(new SqlParameter("@id", id));
                await command.ExecuteNonQueryAsync();
            }

            scope.Complete();
        }

        await using (var check = await sql.OpenConnectionAsync())
        await using (var command = check.CreateCommand())
        {
            command.CommandText = "SELECT COUNT(*) FROM dbo.rwsplit_dtx WHERE id = @id";
            command.Parameters.Add(new SqlParameter("@id", id));
            Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(1));
            command.CommandText = "SELECT COUNT(*) FROM dbo.rwsplit_decisions WHERE outcome = 'c' AND created > DATEADD(minute, -5, SYSUTCDATETIME())";
            Assert.That(await command.ExecuteScalarAsync(), Is.GreaterThanOrEqualTo(1), "the decision row is in the SQL Server database");
        }

        await using (var check = await pg.OpenConnectionAsync())
        await using (var command = check.CreateCommand())
        {
            command.CommandText = "SELECT count(*) FROM rwsplit_sqlserver_dtx WHERE id = @id";
            command.Parameters.Add(new Npgsql.NpgsqlParameter("id", id));
            Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo(1L));
        }

        // The recovery statements parse and run on the real server (recovery itself would only log a failure).
        await using (var check = await sql.OpenConnectionAsync())
        await using (var command = check.CreateCommand())
        {
            command.CommandText = SqlServerDialect.Instance.TransactionStatements.ListHeuristicExpectationsSql;
            await using (var reader = await command.ExecuteReaderAsync())
                Assert.That(reader.FieldCount, Is.EqualTo(2));
            command.CommandText = SqlServerDialect.Instance.TransactionStatements.DeleteDecisionSql;
            command.Parameters.Add(new SqlParameter("@gtrid", "rwsplit-test-none"));
            Assert.That(await command.ExecuteNonQueryAsync(), Is.Zero);
        }

        var recovery = await sql.Recovery!.RecoverAsync();
        Assert.That(recovery.HeuristicOutcomes, Is.Empty);
    }
}
