using System;
using System.Collections.Generic;
using System.Data;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.Data.SqlClient;
using NUnit.Framework;
using RwSplit.Routing;
using RwSplit.SqlServer;
using RwSplit.Tds;

namespace RwSplit.TdsTests;

/// <summary>
/// RwSplit over the real Microsoft.Data.SqlClient, against a scripted primary and two readable secondaries: the drop-in
/// connection string, pooling, and where each kind of T-SQL statement runs. Every server answers with its own name, so
/// a result says where the statement really ran, and the servers' journals say what SqlClient sent there.
/// </summary>
[TestFixture]
[Category("Tds")]
public sealed class TdsRoutingTests : TdsTestBase
{
    private static readonly DateTime Moment = new DateTime(2025, 3, 14, 15, 9, 26, 535, DateTimeKind.Unspecified).AddTicks(8979);

    /// <summary>Every application statement gets one row: the name of the server that ran it (RwSplit's own probes keep their built-in answers).</summary>
    private void AnswerEverythingWithServerName()
    {
        var dialect = SqlServerDialect.Instance;
        foreach (var server in new[] { Primary, Replica1, Replica2 })
        {
            server.On(TdsMatch.Where(r => r.Kind is TdsRequestKind.SqlBatch or TdsRequestKind.Rpc && r.Text != dialect.Replication!.HealthProbeQuery && r.Text != dialect.Replication!.WritePositionQuery, "any statement"))
                .Reply(TdsReply.Scalar(TdsType.NVarChar(128), server.Name));
        }
    }

    private static string[] ReplicaNames => ["sql-replica-1", "sql-replica-2"];

    [Test]
    public async Task Drop_in_connection_string_reaches_the_right_servers_with_the_right_intent([Values] bool async)
    {
        Replica1.RequireReadOnlyIntent = true; // as a read-intent-only secondary: a login without ReadOnly intent fails
        Replica2.RequireReadOnlyIntent = true;
        Primary.OnText("UPDATE dbo.customers SET name = N'x' WHERE id = 1", TdsReply.Affected(1));
        var cs = ConnectionString(Primary) + $";Replicas={Replica1.DataSource}|{Replica2.DataSource};Read Consistency=Eventual";
        Track(cs);

        // Each logical connection takes the next secondary (round-robin) and keeps it for its reads.
        var ranOn = new List<object?>();
        for (var i = 0; i < 4; i++)
        {
            await using var reader = RwSplitSqlServer.CreateConnection(cs);
            await OpenAsync(reader, async);
            await using var select = reader.CreateCommand();
            select.CommandText = "SELECT @@SERVERNAME";
            ranOn.Add(await ScalarAsync(select, async));
            Assert.That(select.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
        }

        await using var connection = RwSplitSqlServer.CreateConnection(cs);
        await OpenAsync(connection, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "UPDATE dbo.customers SET name = N'x' WHERE id = 1";
        Assert.That(await NonQueryAsync(command, async), Is.EqualTo(1));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.Write));

        Assert.That(ranOn.Count(n => Equals(n, "sql-replica-1")), Is.EqualTo(2), "round-robin over both secondaries");
        Assert.That(ranOn.Count(n => Equals(n, "sql-replica-2")), Is.EqualTo(2));
        Assert.That(Ran(Primary), Is.EqualTo(new[] { "UPDATE dbo.customers SET name = N'x' WHERE id = 1" }));
        Assert.That(connection.ConnectionString, Does.Not.Contain("app-password"), "as SqlClient: no password once opened");
        Assert.That(connection.ConnectionString, Does.Contain("Replicas").IgnoreCase.And.Contain("User ID=app").IgnoreCase, "the rest of its string stays");

        // What SqlClient sent in LOGIN7: RwSplit's keywords are gone, the settings are the primary's, intent by role.
        var primaryLogin = Primary.ApplicationLogins.Single().Login!;
        Assert.That(primaryLogin.ReadOnlyIntent, Is.False);
        foreach (var replica in new[] { Replica1, Replica2 })
        {
            var login = replica.ApplicationLogins.Single().Login!;
            Assert.That(login.ReadOnlyIntent, Is.True, $"{replica.Name} gets ApplicationIntent=ReadOnly");
            Assert.That((login.ApplicationName, login.Database, login.UserName), Is.EqualTo((ApplicationName, "app", "app")));
            Assert.That(replica.Journal.Where(r => r.Kind == TdsRequestKind.Login).Select(r => r.Login!.ReadOnlyIntent), Is.All.True, "the monitor's logins too");
        }

        // A login the background monitor started a moment ago may still be in progress (no outcome yet): none failed.
        Assert.That(new[] { Primary, Replica1, Replica2 }.SelectMany(s => s.Journal).Where(r => r.Kind == TdsRequestKind.Login && r.Outcome is not null).Select(r => r.Outcome), Is.All.EqualTo("logged in"));
        Assert.That(new[] { Primary, Replica1, Replica2 }.SelectMany(s => s.ApplicationLogins).Select(r => r.Outcome), Is.All.EqualTo("logged in"), "every application login completed");

        // SqlClient is the oracle (its login comes last: the checks above count logins): once opened, a connection's string no longer shows the password.
        await using (var raw = new SqlConnection(ConnectionString(Primary)))
        {
            await raw.OpenAsync();
            Assert.That(raw.ConnectionString, Does.Not.Contain("app-password"));
        }
    }

    [Test]
    public async Task Pooling_reuses_one_physical_login_per_server_across_logical_connections([Values] bool async)
    {
        Primary.On(TdsMatch.Prefix("UPDATE")).Reply(TdsReply.Affected(1));
        var cs = ConnectionString(Primary) + $";Replicas={Replica1.DataSource};Read Consistency=Eventual";
        Track(cs);
        for (var i = 0; i < 3; i++)
        {
            await using var connection = RwSplitSqlServer.CreateConnection(cs);
            await OpenAsync(connection, async);
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT @@SERVERNAME";
            Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-replica-1"));
            command.CommandText = $"UPDATE dbo.visits SET n = n + 1 WHERE id = {i}";
            Assert.That(await NonQueryAsync(command, async), Is.EqualTo(1));
        }

        foreach (var server in new[] { Primary, Replica1 })
        {
            Assert.That(server.ApplicationLogins, Has.Count.EqualTo(1), $"{server.Name}: one physical connection for three logical ones");
            var requests = server.ApplicationRequests;
            Assert.That(requests, Has.Count.EqualTo(3));
            Assert.That(requests.Select(r => r.ConnectionId).Distinct().Count(), Is.EqualTo(1));
            Assert.That(requests.Select(r => r.ResetConnection), Is.EqualTo(new[] { false, true, true }), $"{server.Name}: SqlClient resets a pooled connection on reuse");
        }
    }

    private static IEnumerable<TestCaseData> StatementKinds()
    {
        TestCaseData Case(string sql, RouteTarget target, RoutingReason reason) => new TestCaseData(sql, target, reason).SetArgDisplayNames(sql.Length > 50 ? sql[..50] : sql, target.ToString());
        yield return Case("SELECT id, name FROM dbo.orders WHERE id = @id", RouteTarget.Replica, RoutingReason.Read);
        yield return Case("WITH recent AS (SELECT id FROM dbo.orders WHERE created > DATEADD(day, -1, GETUTCDATE())) SELECT COUNT(*) FROM recent WHERE id > @id", RouteTarget.Replica, RoutingReason.Read);
        yield return Case("SELECT o.id, c.name FROM dbo.orders o WITH (NOLOCK) JOIN dbo.customers c ON c.id = o.customer_id WHERE o.id = @id", RouteTarget.Replica, RoutingReason.Read);
        yield return Case("EXEC dbo.GetOrders @customer = @id", RouteTarget.Replica, RoutingReason.Read);
        yield return Case("INSERT INTO dbo.orders (customer_id) VALUES (@id)", RouteTarget.Primary, RoutingReason.Write);
        yield return Case("UPDATE dbo.orders SET status = 2 WHERE id = @id", RouteTarget.Primary, RoutingReason.Write);
        yield return Case("DELETE FROM dbo.orders WHERE id = @id", RouteTarget.Primary, RoutingReason.Write);
        yield return Case("MERGE INTO dbo.orders AS t USING (SELECT @id AS id) AS s ON t.id = s.id WHEN MATCHED THEN UPDATE SET t.status = 3;", RouteTarget.Primary, RoutingReason.Write);
        yield return Case("SELECT id FROM dbo.orders WITH (UPDLOCK, ROWLOCK) WHERE id = @id", RouteTarget.Primary, RoutingReason.Write);
        yield return Case("SELECT id, status INTO dbo.orders_snapshot FROM dbo.orders WHERE id > @id", RouteTarget.Primary, RoutingReason.Write);
        yield return Case("INSERT INTO dbo.orders (customer_id) OUTPUT inserted.id VALUES (@id)", RouteTarget.Primary, RoutingReason.Write);
        yield return Case("SELECT NEXT VALUE FOR dbo.order_numbers + @id", RouteTarget.Primary, RoutingReason.Write);
        yield return Case("EXEC dbo.ArchiveOrders @before = @id", RouteTarget.Primary, RoutingReason.Write);
        yield return Case("SELECT id FROM dbo.orders WHERE id = @id; DELETE FROM dbo.orders WHERE id = @id", RouteTarget.Primary, RoutingReason.Write);
        yield return Case("SELECT * FROM dbo.orders WHERE id = @id /* rwsplit:primary */", RouteTarget.Primary, RoutingReason.PrimaryHint);
        yield return Case("SELEKT broken syntax @id", RouteTarget.Primary, RoutingReason.UnknownStatement);
    }

    [TestCaseSource(nameof(StatementKinds))]
    public async Task Statement_kinds_run_where_RwSplit_routes_them(string sql, RouteTarget target, RoutingReason reason)
    {
        AnswerEverythingWithServerName();
        var dataSource = CreateDataSource(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.ReadOnlyProcedures.Add("dbo.GetOrders");
        });

        foreach (var async in new[] { false, true })
        {
            foreach (var withParameter in new[] { false, true })
            {
                await using var connection = await OpenAsync(dataSource, async);
                await using var command = connection.CreateCommand();
                // Without parameters SqlClient sends a SQL batch; with parameters an sp_executesql RPC. RwSplit reads the text either way.
                command.CommandText = withParameter ? sql : sql.Replace("@id", "7", StringComparison.Ordinal);
                if (withParameter)
                    command.Parameters.Add(new SqlParameter("@id", SqlDbType.Int) { Value = 7 });
                var ranOn = await ScalarAsync(command, async);

                var where = $"{(async ? "async" : "sync")}, {(withParameter ? "sp_executesql" : "batch")}";
                Assert.That(command.LastDecision?.Target, Is.EqualTo(target), where);
                Assert.That(command.LastDecision?.Reason, Is.EqualTo(reason), where);
                if (target == RouteTarget.Primary)
                    Assert.That(ranOn, Is.EqualTo("sql-primary"), where);
                else
                    Assert.That(ReplicaNames, Does.Contain(ranOn), where);
            }
        }

        // What really reached each server, and how SqlClient sent it.
        var executed = new[] { Primary, Replica1, Replica2 }.SelectMany(s => s.ApplicationRequests).OrderBy(r => r.ReceivedAt).ToArray();
        Assert.That(executed.Select(r => r.Server), Is.All.EqualTo("sql-primary").Or.All.StartsWith("sql-replica"), "every execution on the expected kind of server");
        Assert.That(executed.Where(r => r.Kind == TdsRequestKind.SqlBatch).Select(r => r.Text), Is.All.EqualTo(sql.Replace("@id", "7", StringComparison.Ordinal)));
        var rpcs = executed.Where(r => r.Kind == TdsRequestKind.Rpc).ToArray();
        Assert.That(rpcs, Has.Length.EqualTo(2));
        Assert.That(rpcs.Select(r => (r.Procedure, r.Text, r.ParameterDeclarations, r.Parameter("@id"))), Is.All.EqualTo(("sp_executesql", sql, "@id int", (object)7)));
    }

    [Test]
    public async Task Temp_tables_and_session_state_pin_the_logical_connection_to_the_primary([Values] bool async)
    {
        AnswerEverythingWithServerName();
        var dataSource = CreateDataSource(o => o.Consistency = ReadConsistency.Eventual);
        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT @@SERVERNAME";
        Assert.That(ReplicaNames, Does.Contain(await ScalarAsync(command, async)));

        command.CommandText = "CREATE TABLE #work (id int PRIMARY KEY)";
        Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-primary"));
        Assert.That(connection.PinnedReason, Is.Not.Null);
        command.CommandText = "SELECT COUNT(*) FROM dbo.orders";
        Assert.That(await ScalarAsync(command, async), Is.EqualTo("sql-primary"));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.PinnedSession));
        Assert.That(Ran(Primary), Is.EqualTo(new[] { "CREATE TABLE #work (id int PRIMARY KEY)", "SELECT COUNT(*) FROM dbo.orders" }));
    }

    [Test]
    public async Task Session_commands_are_replayed_on_each_physical_connection([Values] bool async)
    {
        AnswerEverythingWithServerName();
        var dataSource = CreateDataSource(o => o.Consistency = ReadConsistency.Eventual);
        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "SET LOCK_TIMEOUT 1000";
        await NonQueryAsync(command, async);
        var first = command.LastDecision!.Value;
        command.CommandText = "UPDATE dbo.orders SET status = 1 WHERE id = 1";
        await NonQueryAsync(command, async);

        // The SET ran where it was routed (a replica); the primary's connection, opened later, got it before the UPDATE.
        Assert.That(first.Target, Is.EqualTo(RouteTarget.Replica));
        var replica = first.ReplicaIndex == 0 ? Replica1 : Replica2;
        Assert.That(Ran(replica), Is.EqualTo(new[] { "SET LOCK_TIMEOUT 1000" }));
        Assert.That(Ran(Primary), Is.EqualTo(new[] { "SET LOCK_TIMEOUT 1000", "UPDATE dbo.orders SET status = 1 WHERE id = 1" }));
        Assert.That(Primary.ApplicationRequests.Select(r => r.ConnectionId).Distinct().Count(), Is.EqualTo(1), "on the same physical connection");
    }

    [Test]
    public async Task ChangeDatabase_switches_every_physical_connection_now_and_later([Values] bool async)
    {
        Primary.On(TdsMatch.Prefix("UPDATE")).Reply(TdsReply.Affected(1));
        var dataSource = CreateDataSource(o => o.Consistency = ReadConsistency.Eventual);
        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT @@SERVERNAME";
        await ScalarAsync(command, async);
        var replica = command.LastDecision!.Value.ReplicaIndex == 0 ? Replica1 : Replica2;
        if (async)
            await connection.ChangeDatabaseAsync("reports");
        else
            connection.ChangeDatabase("reports");
        Assert.That(connection.Database, Is.EqualTo("reports"));
        Assert.That(connection.CurrentReplicaConnection!.Database, Is.EqualTo("reports"), "SqlClient saw the ENVCHANGE");

        command.CommandText = "UPDATE dbo.totals SET n = 0";
        await NonQueryAsync(command, async);
        Assert.That(connection.CurrentPrimaryConnection!.Database, Is.EqualTo("reports"), "the primary's connection, opened later, switched too");
        Assert.That(Ran(replica), Is.EqualTo(new[] { "SELECT @@SERVERNAME", "USE [reports]" }));
        Assert.That(Ran(Primary), Is.EqualTo(new[] { "USE [reports]", "UPDATE dbo.totals SET n = 0" }));
    }

    [Test]
    public async Task Prepared_commands_are_prepared_where_they_run([Values] bool async)
    {
        Primary.OnText("UPDATE dbo.orders SET status = @status WHERE id = 1", TdsReply.Affected(1));
        var dataSource = CreateDataSource(o => o.Consistency = ReadConsistency.Eventual);
        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = "UPDATE dbo.orders SET status = @status WHERE id = 1";
        command.Parameters.Add(new SqlParameter("@status", SqlDbType.Int) { Value = 1 });
        if (async)
            await command.PrepareAsync();
        else
            command.Prepare();
        for (var status = 1; status <= 3; status++)
        {
            command.Parameters[0].Value = status;
            Assert.That(await NonQueryAsync(command, async), Is.EqualTo(1));
        }

        Assert.That(Primary.ApplicationRequests.Select(r => (r.Procedure, r.Parameter("@status"))), Is.EqualTo(new[] { ("sp_prepexec", (object)1), ("sp_execute", (object)2), ("sp_execute", (object)3) }));
        Assert.That(Ran(Replica1).Concat(Ran(Replica2)), Is.Empty);
    }

    [Test]
    public async Task Readers_are_SqlClients_own_and_every_column_type_round_trips([Values] bool async)
    {
        const string sql = "SELECT id, big, name, active, changed, amount, ratio FROM dbo.samples WHERE id >= @from";
        foreach (var replica in new[] { Replica1, Replica2 })
        {
            replica.On(TdsMatch.Exact(sql)).Reply(r => TdsReply.Rows(new TdsResultSet(
                    TdsColumn.Int("id"), TdsColumn.BigInt("big"), TdsColumn.NVarChar("name", 40), TdsColumn.Bit("active"),
                    TdsColumn.DateTime2("changed"), TdsColumn.Decimal("amount", 19, 4), TdsColumn.Float("ratio"))
                .Row(r.Parameter("@from"), long.MaxValue, replica.Name + " ✓", true, Moment, 123456789012345.6789m, Math.PI)
                .Row(null, null, null, null, null, null, null)));
        }

        var dataSource = CreateDataSource(o => o.Consistency = ReadConsistency.Eventual);
        await using var connection = await OpenAsync(dataSource, async);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var parameter = command.CreateParameter();
        Assert.That(parameter, Is.InstanceOf<SqlParameter>());
        parameter.ParameterName = "@from";
        parameter.DbType = DbType.Int32;
        parameter.Value = 42;
        command.Parameters.Add(parameter);

        await using var reader = await ReaderAsync(command, async);
        Assert.That(reader, Is.InstanceOf<SqlDataReader>(), "the provider's own reader, not a wrapper");
        var sqlReader = (SqlDataReader)reader;
        Assert.That(await ReadAsync(reader, async), Is.True);
        Assert.That(sqlReader.GetInt32(0), Is.EqualTo(42));
        Assert.That(sqlReader.GetInt64(1), Is.EqualTo(long.MaxValue));
        Assert.That(sqlReader.GetString(2), Does.StartWith("sql-replica-").And.EndWith(" ✓"));
        Assert.That(sqlReader.GetBoolean(3), Is.True);
        Assert.That(sqlReader.GetDateTime(4), Is.EqualTo(Moment));
        Assert.That(sqlReader.GetDecimal(5), Is.EqualTo(123456789012345.6789m));
        Assert.That(sqlReader.GetSqlDecimal(5).Scale, Is.EqualTo(4));
        Assert.That(sqlReader.GetDouble(6), Is.EqualTo(Math.PI));
        Assert.That(await ReadAsync(reader, async), Is.True);
        Assert.That(Enumerable.Range(0, 7).All(sqlReader.IsDBNull), Is.True);
        Assert.That(await ReadAsync(reader, async), Is.False);
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Replica));
        Assert.That(Ran(Primary), Is.Empty);
    }

    [Test]
    public async Task Stored_procedures_are_RPCs_on_the_primary_unless_declared_read_only([Values] bool async)
    {
        Primary.On(TdsMatch.Procedure("dbo.ArchiveOrders")).Reply(r => TdsReply.Affected(5).WithOutput("@archived", 5).WithReturnStatus(0));
        foreach (var replica in new[] { Replica1, Replica2 })
            replica.OnProcedure("GetOrders", TdsReply.Rows(new TdsResultSet(TdsColumn.Int("id"), TdsColumn.NVarChar("server", 128)).Row(1, replica.Name).Row(2, replica.Name)));
        var dataSource = CreateDataSource(o =>
        {
            o.Consistency = ReadConsistency.Eventual;
            o.ReadOnlyProcedures.Add("dbo.GetOrders");
        });
        await using var connection = await OpenAsync(dataSource, async);

        await using (var archive = connection.CreateCommand())
        {
            archive.CommandType = CommandType.StoredProcedure;
            archive.CommandText = "dbo.ArchiveOrders";
            archive.Parameters.Add(new SqlParameter("@before", SqlDbType.DateTime2) { Value = Moment });
            var archived = new SqlParameter("@archived", SqlDbType.Int) { Direction = ParameterDirection.Output };
            archive.Parameters.Add(archived);
            Assert.That(await NonQueryAsync(archive, async), Is.EqualTo(5));
            Assert.That(archived.Value, Is.EqualTo(5), "the output parameter came back through RwSplit's command");
            Assert.That((archive.LastDecision?.Target, archive.LastDecision?.Reason), Is.EqualTo((RouteTarget.Primary, RoutingReason.StoredProcedure)));
        }

        await using (var read = connection.CreateCommand())
        {
            read.CommandType = CommandType.StoredProcedure;
            read.CommandText = "dbo.GetOrders";
            await using var reader = await ReaderAsync(read, async);
            Assert.That(await ReadAsync(reader, async), Is.True);
            Assert.That(reader.GetString(1), Does.StartWith("sql-replica-"));
            Assert.That(read.LastDecision?.Reason, Is.EqualTo(RoutingReason.ReadOnlyProcedure));
        }

        var call = Primary.ApplicationRequests.Single();
        Assert.That((call.Kind, call.Procedure, call.Text), Is.EqualTo((TdsRequestKind.Rpc, "dbo.ArchiveOrders", (string?)null)));
        Assert.That(call.Parameter("@before"), Is.EqualTo(Moment));
        Assert.That(Ran(Replica1).Concat(Ran(Replica2)), Is.EqualTo(new[] { "dbo.GetOrders" }));
    }
}
