using System;
using System.Data;
using System.Linq;
using System.Threading.Tasks;
using System.Transactions;
using Npgsql;
using NUnit.Framework;
using RwSplit.Routing;
using static RwSplit.IntegrationTests.ClusterSetup;

namespace RwSplit.IntegrationTests.PostgreSql;

/// <summary>
/// Every statement kind, run through RwSplit against the real primary and replicas: each statement reports the port of
/// the server that executed it (<c>inet_server_port()</c>), so the assertion is about where it really ran.
/// </summary>
[TestFixture(DataSourceKind.Builder)]
[TestFixture(DataSourceKind.DependencyInjection)]
public sealed class RoutingTests
{
    private readonly DataSourceKind _kind;
    private RwSplitDataSource _dataSource = null!;
    private IDisposable? _owner;

    public RoutingTests(DataSourceKind kind) => _kind = kind;

    [OneTimeSetUp]
    public void CreateDataSource()
        => (_dataSource, _owner) = TestDataSources.Create(_kind, "rwsplit-routing-" + _kind, o => o.PrimaryReadWeight = 0); // the replica rules alone: with other tests' commands in flight, the primary could take a read by its capacity (PrimaryReadsTests)

    [OneTimeTearDown]
    public void DisposeDataSource()
    {
        _dataSource.Dispose();
        _owner?.Dispose();
    }

    private static async Task<object?> ScalarAsync(RwSplitConnection connection, string sql, bool async)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return async ? await command.ExecuteScalarAsync() : command.ExecuteScalar();
    }

    private static async Task<int> PortAsync(RwSplitConnection connection, string sql, bool async)
        => Convert.ToInt32(await ScalarAsync(connection, sql, async));

    private async Task<RwSplitConnection> OpenAsync(bool async)
        => async ? await _dataSource.OpenConnectionAsync() : _dataSource.OpenConnection();

    private static void AssertReplica(int port) => Assert.That(ReplicaPorts, Does.Contain(port), $"expected a replica, ran on port {port} (primary is {PrimaryPort})");

    private static void AssertPrimary(int port) => Assert.That(port, Is.EqualTo(PrimaryPort), "expected the primary");

    public static readonly string[] ReadStatements =
    [
        "SELECT inet_server_port()",
        "SELECT inet_server_port() FROM items WHERE id = 1",
        "select inet_server_port(), count(*), lower(max(name)), now() from items",
        "WITH x AS (SELECT id FROM items WHERE id < 5) SELECT inet_server_port() FROM x LIMIT 1",
        "SELECT inet_server_port() FROM items i JOIN items j ON i.id = j.id WHERE i.name LIKE 'item%' LIMIT 1",
        "SELECT inet_server_port() WHERE item_name(1) = 'item 1'",
        "/* DELETE FROM items */ SELECT inet_server_port() -- ; UPDATE items SET name = 'x'",
        "SELECT inet_server_port() WHERE 'DELETE FROM items' <> $$;INSERT$$",
        "(SELECT inet_server_port()) UNION ALL (SELECT inet_server_port()) LIMIT 1",
    ];

    [Test]
    public async Task Reads_run_on_a_replica([ValueSource(nameof(ReadStatements))] string sql, [Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        AssertReplica(await PortAsync(connection, sql, async));
        Assert.That(connection.CurrentPrimaryConnection, Is.Null, "a connection that only reads never opens the primary");
    }

    public static readonly string[] WriteStatements =
    [
        "INSERT INTO audit(note, written_on) VALUES ('w', inet_server_port()) RETURNING written_on",
        "UPDATE items SET written_on = inet_server_port() WHERE id = 2 RETURNING written_on",
        "WITH d AS (DELETE FROM audit WHERE note = 'nothing' RETURNING written_on) SELECT inet_server_port() FROM (SELECT count(*) FROM d) x",
        "SELECT inet_server_port() FROM items WHERE id = 3 FOR UPDATE",
        "SELECT inet_server_port() FROM items WHERE id = 3 FOR SHARE",
        "SELECT nextval('item_seq') * 0 + inet_server_port()",
        "SELECT add_audit('volatile function')",
        "WITH w AS (INSERT INTO audit(note, written_on) VALUES ('cte', inet_server_port()) RETURNING written_on) SELECT written_on FROM w",
        "MERGE INTO items t USING (SELECT 4 AS id) s ON t.id = s.id WHEN MATCHED THEN UPDATE SET written_on = inet_server_port(); SELECT inet_server_port()",
        "SELECT inet_server_port(); DELETE FROM audit WHERE false",
        "CREATE TABLE IF NOT EXISTS ddl_probe (id int); SELECT inet_server_port()",
        "SELECT inet_server_port(), pg_advisory_xact_lock(42)",
        "SELECT setval('item_seq', 10) * 0 + inet_server_port()",
    ];

    [Test]
    public async Task Writes_run_on_the_primary([ValueSource(nameof(WriteStatements))] string sql, [Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        AssertPrimary(await PortAsync(connection, sql, async));
        Assert.That(connection.CurrentReplicaConnection, Is.Null, "a connection that only writes never opens a replica");
    }

    [Test]
    public async Task Unreadable_sql_fails_closed_to_the_primary([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT inet_server_port() WHERE 'unterminated = '' OR 1=1";
        var ex = Assert.ThrowsAsync<PostgresException>(async () => await (async ? command.ExecuteScalarAsync() : Task.FromResult(command.ExecuteScalar())));
        Assert.That(ex!.SqlState, Is.EqualTo(PostgresErrorCodes.SyntaxError));
        Assert.That(command.LastDecision?.Target, Is.EqualTo(RouteTarget.Primary));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.UnknownStatement));
    }

    [Test]
    public async Task Stored_procedure_runs_on_the_primary([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        await using var command = connection.CreateCommand();
        command.CommandText = "touch_item";
        command.CommandType = CommandType.StoredProcedure;
        command.Parameters.Add(new NpgsqlParameter { Value = 7 });
        if (async)
            await command.ExecuteNonQueryAsync();
        else
            command.ExecuteNonQuery();
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.StoredProcedure));
        AssertPrimary(await PortAsync(connection, "SELECT written_on FROM items WHERE id = 7 /* rwsplit:primary */", async));
    }

    [Test]
    public async Task Local_transaction_pins_reads_to_the_primary([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        await using var transaction = async ? await connection.BeginTransactionAsync() : connection.BeginTransaction();
        await using var command = new RwSplitCommand("SELECT inet_server_port()", connection, transaction);
        AssertPrimary(Convert.ToInt32(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar()));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.LocalTransaction));
        Assert.That(transaction.Connection, Is.SameAs(connection));
        Assert.That(transaction.InnerTransaction, Is.InstanceOf<NpgsqlTransaction>());
        if (async)
            await transaction.RollbackAsync();
        else
            transaction.Rollback();

        // After the transaction a read goes back to a replica (read-your-writes: the transaction may have written, so
        // it stays on the primary unless consistency allows otherwise).
        connection.Consistency = ReadConsistency.Eventual;
        AssertReplica(await PortAsync(connection, "SELECT inet_server_port()", async));
    }

    [Test]
    public async Task Transaction_rollback_discards_writes_and_commit_keeps_them([Values] bool async)
    {
        var note = "tx-" + Guid.NewGuid();
        await using var connection = await OpenAsync(async);
        await using (var transaction = async ? await connection.BeginTransactionAsync() : connection.BeginTransaction())
        {
            await ScalarAsync(connection, $"INSERT INTO audit(note) VALUES ('{note}-rolled-back')", async);
            if (async)
                await transaction.RollbackAsync();
            else
                transaction.Rollback();
        }

        await using (var transaction = async ? await connection.BeginTransactionAsync() : connection.BeginTransaction())
        {
            await ScalarAsync(connection, $"INSERT INTO audit(note) VALUES ('{note}-committed')", async);
            transaction.Save("sp");
            await ScalarAsync(connection, $"INSERT INTO audit(note) VALUES ('{note}-savepoint')", async);
            transaction.Rollback("sp");
            if (async)
                await transaction.CommitAsync();
            else
                transaction.Commit();
        }

        var count = await ScalarAsync(connection, $"SELECT count(*) FROM audit WHERE note LIKE '{note}%' /* rwsplit:primary */", async);
        Assert.That(count, Is.EqualTo(1L));
    }

    [Test]
    public async Task Ambient_transaction_scope_runs_on_the_primary_and_commits_atomically([Values] bool async)
    {
        var note = "scope-" + Guid.NewGuid();
        using (var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            await using var connection = await OpenAsync(async);
            AssertPrimary(await PortAsync(connection, "SELECT inet_server_port()", async));
            await ScalarAsync(connection, $"INSERT INTO audit(note) VALUES ('{note}')", async);
            // not completed: rolled back
        }

        using (var scope = new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            await using var connection = await OpenAsync(async);
            await ScalarAsync(connection, $"INSERT INTO audit(note) VALUES ('{note}-kept')", async);
            scope.Complete();
        }

        await using var check = await OpenAsync(async);
        check.Consistency = ReadConsistency.Strong;
        Assert.That(await ScalarAsync(check, $"SELECT string_agg(note, ',') FROM audit WHERE note LIKE '{note}%'", async), Is.EqualTo(note + "-kept"));
    }

    public static readonly string[] PinningStatements =
    [
        "CREATE TEMP TABLE scratch (id int)",
        "SELECT pg_advisory_lock(4242)",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "DECLARE held CURSOR WITH HOLD FOR SELECT id FROM items",
        "LISTEN rwsplit_channel",
    ];

    [Test]
    public async Task Session_state_that_cannot_be_replayed_pins_the_connection_to_the_primary([ValueSource(nameof(PinningStatements))] string sql, [Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        connection.Consistency = ReadConsistency.Eventual;
        AssertReplica(await PortAsync(connection, "SELECT inet_server_port()", async));
        await ScalarAsync(connection, sql, async);
        Assert.That(connection.PinnedReason, Is.Not.Null);
        AssertPrimary(await PortAsync(connection, "SELECT inet_server_port()", async));
    }

    [Test]
    public async Task Temp_table_is_visible_to_later_reads([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        connection.Consistency = ReadConsistency.Eventual;
        await ScalarAsync(connection, "CREATE TEMP TABLE scratch2 AS SELECT 5 AS v", async);
        Assert.That(await ScalarAsync(connection, "SELECT v FROM scratch2", async), Is.EqualTo(5));
    }

    /// <summary>Defect: the replay list kept the first position of a repeated SET, so SET 1, SET 2, SET 1 replayed 2.</summary>
    [Test]
    public async Task Replayed_settings_keep_the_last_value_written([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        connection.Consistency = ReadConsistency.Eventual;
        await ScalarAsync(connection, "SET statement_timeout = '11s'", async);
        await ScalarAsync(connection, "SET statement_timeout = '12s'", async);
        await ScalarAsync(connection, "SET statement_timeout = '11s'", async);
        Assert.That(await ScalarAsync(connection, "SHOW statement_timeout", async), Is.EqualTo("11s"), "the replica that ran them");

        // The primary opens now: it gets the session replayed, and must end where the session ended.
        Assert.That(await ScalarAsync(connection, "SHOW statement_timeout /* rwsplit:primary */", async), Is.EqualTo("11s"), "a physical connection opened later");
    }

    /// <summary>
    /// Defect: PostgreSQL reverts a SET made in a transaction that rolls back, but RwSplit replayed it anyway (and ran
    /// it at once on the replica). The server is the oracle: what the primary shows after the rollback is what every
    /// other physical connection must show.
    /// </summary>
    [Test]
    public async Task A_set_in_a_rolled_back_transaction_is_not_replayed_and_a_committed_one_is([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        connection.Consistency = ReadConsistency.Eventual;
        Assert.That(await ScalarAsync(connection, "SHOW statement_timeout", async), Is.EqualTo("0"), "replica open, default");

        var rolledBack = async ? await connection.BeginTransactionAsync() : connection.BeginTransaction();
        await ScalarAsync(connection, "SET statement_timeout = '21s'", async);
        if (async)
            await rolledBack.RollbackAsync();
        else
            rolledBack.Rollback();
        var onPrimary = await ScalarAsync(connection, "SHOW statement_timeout /* rwsplit:primary */", async);
        Assert.That(onPrimary, Is.EqualTo("0"), "the server reverted the SET");
        Assert.That(await ScalarAsync(connection, "SHOW statement_timeout", async), Is.EqualTo(onPrimary), "the replica agrees with the primary");

        var committed = async ? await connection.BeginTransactionAsync() : connection.BeginTransaction();
        await ScalarAsync(connection, "SET statement_timeout = '22s'", async);
        if (async)
            await committed.CommitAsync();
        else
            committed.Commit();
        Assert.That(await ScalarAsync(connection, "SHOW statement_timeout /* rwsplit:primary */", async), Is.EqualTo("22s"));
        Assert.That(await ScalarAsync(connection, "SHOW statement_timeout", async), Is.EqualTo("22s"), "the replica gets the committed SET");
    }

    /// <summary>
    /// Defect: a SET made after a savepoint and rolled back to it (<c>DbTransaction.Rollback(name)</c>) is reverted by
    /// the server, but RwSplit replayed it once the transaction committed. The primary is the oracle again.
    /// </summary>
    [Test]
    public async Task A_set_rolled_back_to_a_savepoint_is_not_replayed([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        connection.Consistency = ReadConsistency.Eventual;
        Assert.That(await ScalarAsync(connection, "SHOW statement_timeout", async), Is.EqualTo("0"), "replica open, default");

        var transaction = async ? await connection.BeginTransactionAsync() : connection.BeginTransaction();
        await ScalarAsync(connection, "SET statement_timeout = '31s'", async);
        if (async)
            await transaction.SaveAsync("before_second");
        else
            transaction.Save("before_second");
        await ScalarAsync(connection, "SET statement_timeout = '32s'", async);
        await ScalarAsync(connection, "SET lock_timeout = '33s'", async);
        if (async)
            await transaction.RollbackAsync("before_second");
        else
            transaction.Rollback("before_second");
        transaction.Save("kept");
        await ScalarAsync(connection, "SET idle_in_transaction_session_timeout = '34s'", async);
        transaction.Release("kept");
        if (async)
            await transaction.CommitAsync();
        else
            transaction.Commit();

        foreach (var setting in new[] { "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout" })
        {
            var onPrimary = await ScalarAsync(connection, $"SHOW {setting} /* rwsplit:primary */", async);
            Assert.That(await ScalarAsync(connection, $"SHOW {setting}", async), Is.EqualTo(onPrimary), $"{setting}: the replica agrees with the primary");
        }

        Assert.That(await ScalarAsync(connection, "SHOW statement_timeout /* rwsplit:primary */", async), Is.EqualTo("31s"), "the server kept the SET before the savepoint");
        Assert.That(await ScalarAsync(connection, "SHOW lock_timeout /* rwsplit:primary */", async), Is.EqualTo("0"), "and reverted the one after it");
    }

    [Test]
    public async Task Set_commands_reach_every_physical_connection([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        connection.Consistency = ReadConsistency.Eventual;
        await ScalarAsync(connection, "SET application_name = 'rwsplit-replayed'", async);
        Assert.That(await ScalarAsync(connection, "SHOW application_name", async), Is.EqualTo("rwsplit-replayed"));
        Assert.That(connection.CurrentReplicaConnection, Is.Not.Null);

        // The primary opens later and gets the setting replayed.
        Assert.That(await ScalarAsync(connection, "SHOW application_name /* rwsplit:primary */", async), Is.EqualTo("rwsplit-replayed"));
        Assert.That(connection.CurrentPrimaryConnection, Is.Not.Null);

        // Now both are open: a new SET reaches both at once.
        await ScalarAsync(connection, "SET statement_timeout = '17s'", async);
        Assert.That(await ScalarAsync(connection, "SHOW statement_timeout", async), Is.EqualTo("17s"));
        Assert.That(await ScalarAsync(connection, "SHOW statement_timeout /* rwsplit:primary */", async), Is.EqualTo("17s"));
        Assert.That(connection.PinnedReason, Is.Null);
    }

    [Test]
    public async Task ChangeDatabase_reaches_every_physical_connection([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        connection.Consistency = ReadConsistency.Eventual;
        Assert.That(await ScalarAsync(connection, "SELECT current_database()", async), Is.EqualTo("rwsplit"));
        if (async)
            await connection.ChangeDatabaseAsync("postgres");
        else
            connection.ChangeDatabase("postgres");
        Assert.That(connection.Database, Is.EqualTo("postgres"));
        Assert.That(await ScalarAsync(connection, "SELECT current_database()", async), Is.EqualTo("postgres"));
        Assert.That(await ScalarAsync(connection, "SELECT current_database() /* rwsplit:primary */", async), Is.EqualTo("postgres"));
    }

    [Test]
    public async Task Overrides_send_reads_to_the_primary([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        AssertPrimary(await PortAsync(connection, "/* rwsplit:primary */ SELECT inet_server_port()", async));
        AssertPrimary(await PortAsync(connection, "SELECT inet_server_port() -- rwsplit:primary", async));

        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT inet_server_port()";
        command.Target = RouteTarget.Primary;
        AssertPrimary(Convert.ToInt32(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar()));
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.CommandTarget));

        using (RwSplitScope.ForcePrimary())
            AssertPrimary(await PortAsync(connection, "SELECT inet_server_port()", async));
        AssertReplica(await PortAsync(connection, "SELECT inet_server_port()", async));
    }

    [Test]
    public async Task Consistency_modes_decide_where_a_read_after_a_write_goes([Values] bool async)
    {
        var note = "ryw-" + Guid.NewGuid();
        await using var connection = await OpenAsync(async);
        Assert.That(connection.Consistency, Is.EqualTo(ReadConsistency.ReadYourWrites));
        await ScalarAsync(connection, $"INSERT INTO audit(note) VALUES ('{note}')", async);

        // Read-your-writes: the read runs where the row already is — the primary connection the write used (the default),
        // or a replica that has replayed it.
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT inet_server_port() FROM audit WHERE note = '{note}'";
        var ranOn = async ? await command.ExecuteScalarAsync() : command.ExecuteScalar();
        Assert.That(ranOn, Is.Not.Null, "the session saw its own write");
        Assert.That(command.LastDecision?.Reason, Is.AnyOf(RoutingReason.ReadAfterWrite, RoutingReason.CaughtUpReplica));

        command.CommandText = "SELECT inet_server_port()";
        command.Consistency = ReadConsistency.Eventual;
        AssertReplica(Convert.ToInt32(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar()));

        await using var strong = await OpenAsync(async);
        strong.Consistency = ReadConsistency.Strong;
        AssertPrimary(await PortAsync(strong, "SELECT inet_server_port()", async));
    }

    [Test]
    public async Task PreventWrites_scope_throws_before_the_write_leaves_the_process([Values] bool async)
    {
        var note = "blocked-" + Guid.NewGuid();
        await using var connection = await OpenAsync(async);
        using (RwSplitScope.PreventWrites())
        {
            AssertReplica(await PortAsync(connection, "SELECT inet_server_port()", async));
            var ex = Assert.ThrowsAsync<RwSplitException>(async () => await ScalarAsync(connection, $"INSERT INTO audit(note) VALUES ('{note}')", async));
            Assert.That(ex!.Error, Is.EqualTo(RwSplitError.WriteBlocked));
            Assert.ThrowsAsync<RwSplitException>(async () => await ScalarAsync(connection, "SELECT add_audit('blocked')", async));
        }

        Assert.That(connection.CurrentPrimaryConnection, Is.Null, "nothing reached the primary");
        await using var check = await OpenAsync(async);
        check.Consistency = ReadConsistency.Strong;
        Assert.That(await ScalarAsync(check, $"SELECT count(*) FROM audit WHERE note = '{note}'", async), Is.EqualTo(0L));
    }

    [Test]
    public async Task A_write_misrouted_to_a_replica_is_retried_once_on_the_primary_and_learned([Values] bool async)
    {
        var note = "misroute-" + Guid.NewGuid();
        var sql = $"/* rwsplit:replica */ SELECT add_audit('{note}')";
        await using var connection = await OpenAsync(async);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var port = Convert.ToInt32(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar());
        AssertPrimary(port);
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.MisrouteRetry));

        var again = Convert.ToInt32(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar());
        AssertPrimary(again);
        Assert.That(command.LastDecision?.Reason, Is.EqualTo(RoutingReason.LearnedWrite), "the text is remembered as a write");

        await using var check = await OpenAsync(async);
        check.Consistency = ReadConsistency.Strong;
        Assert.That(await ScalarAsync(check, $"SELECT count(*) FROM audit WHERE note = '{note}'", async), Is.EqualTo(2L), "exactly one row per execution: the failed attempt wrote nothing");
    }

    [Test]
    public async Task Readers_and_parameters_are_the_providers_own([Values] bool async)
    {
        await using var connection = await OpenAsync(async);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, name, inet_server_port() FROM items WHERE id = ANY(@ids) ORDER BY id";
        var parameter = command.CreateParameter();
        Assert.That(parameter, Is.InstanceOf<NpgsqlParameter>());
        parameter.ParameterName = "ids";
        parameter.Value = new[] { 1, 2, 3 };
        command.Parameters.Add(parameter);
        await using var reader = async ? await command.ExecuteReaderAsync() : command.ExecuteReader();
        Assert.That(reader, Is.InstanceOf<NpgsqlDataReader>());
        var ids = new System.Collections.Generic.List<int>();
        while (async ? await reader.ReadAsync() : reader.Read())
        {
            ids.Add(reader.GetInt32(0));
            AssertReplica(reader.GetInt32(2));
        }

        Assert.That(ids, Is.EqualTo(new[] { 1, 2, 3 }));
    }

    [Test]
    public async Task Reads_spread_over_both_replicas_across_connections([Values] bool async)
    {
        var ports = new System.Collections.Generic.HashSet<int>();
        for (var i = 0; i < 8; i++)
        {
            await using var connection = await OpenAsync(async);
            ports.Add(await PortAsync(connection, "SELECT inet_server_port()", async));
        }

        Assert.That(ports, Is.EquivalentTo(ReplicaPorts), "round-robin reaches every replica");
    }

    [Test]
    public async Task Data_source_command_opens_and_closes_its_own_connection([Values] bool async)
    {
        await using var command = _dataSource.CreateCommand("SELECT inet_server_port()");
        AssertReplica(Convert.ToInt32(async ? await command.ExecuteScalarAsync() : command.ExecuteScalar()));
        await using var reader = async ? await command.ExecuteReaderAsync() : command.ExecuteReader();
        Assert.That(async ? await reader.ReadAsync() : reader.Read(), Is.True);
        AssertReplica(reader.GetInt32(0));
    }

    [Test]
    public async Task Only_reads_never_open_the_primary_as_seen_by_the_servers([Values] bool async)
    {
        var app = "rwsplit-lazy-" + Guid.NewGuid().ToString("N")[..8];
        var (dataSource, owner) = TestDataSources.Create(_kind, app);
        try
        {
            await using var connection = async ? await dataSource.OpenConnectionAsync() : dataSource.OpenConnection();
            for (var i = 0; i < 3; i++)
                AssertReplica(await PortAsync(connection, "SELECT inet_server_port() FROM items LIMIT 1", async));

            await using var primary = new NpgsqlConnection(Cluster.PrimaryConnectionString);
            await primary.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE application_name = @app", primary);
            cmd.Parameters.AddWithValue("app", app);
            Assert.That(await cmd.ExecuteScalarAsync(), Is.EqualTo(0L), "no session of this application on the primary");
        }
        finally
        {
            dataSource.Dispose();
            owner?.Dispose();
        }
    }
}
