using System;
using System.Linq;
using Microsoft.Data.SqlClient;
using NUnit.Framework;
using RwSplit.SqlServer;
using RwSplit.Topology;

namespace RwSplit.Tests.SqlServer;

/// <summary>SqlClient connection strings: the drop-in keywords, forced settings, redaction and clear errors.</summary>
public sealed class SqlServerDialectTests
{
    private const string Primary = "Server=tcp:sql-primary,1433;Database=app;User Id=app;Password=Sup3rSecret!;Encrypt=false";

    [TestCase("Server=sql1;Database=app", "sql1", null, "app")]
    [TestCase("Data Source=tcp:sql1,1444;Initial Catalog=app", "sql1", 1444, "app")]
    [TestCase(@"Server=sql1\inst;Database=app", @"sql1\inst", null, "app")]
    [TestCase("Server=sql1, 1500", "sql1", 1500, null)]
    public void Endpoint_is_parsed_without_secrets(string cs, string host, int? port, string? database)
    {
        var address = SqlServerDialect.Instance.ParseEndpoint(cs + ";Password=x");
        Assert.That(address, Is.EqualTo(new EndpointAddress(host, port, database)));
    }

    [Test]
    public void Unknown_keyword_is_named_and_the_password_is_not()
    {
        var ex = Assert.Throws<ArgumentException>(() => SqlServerDialect.Instance.ParseEndpoint("Server=a;Colour=blue;Password=Sup3rSecret!"));
        Assert.That(ex!.Message, Does.Contain("colour").IgnoreCase);
        Assert.That(ex.Message, Does.Not.Contain("Sup3rSecret!"));
    }

    [Test]
    public void Missing_server_names_the_fix()
        => Assert.That(() => SqlServerDialect.Instance.ParseEndpoint("Database=app"), Throws.ArgumentException.With.Message.Contains("Server=<host>"));

    [Test]
    public void Connector_forces_enlist_off_and_read_intent_on_replicas_and_redacts()
    {
        using var primary = SqlServerDialect.Instance.CreateConnector(Primary + ";Enlist=true", EndpointRole.Primary);
        using var replica = SqlServerDialect.Instance.CreateConnector(Primary.Replace("sql-primary", "sql-replica", StringComparison.Ordinal), EndpointRole.Replica);
        using var explicitIntent = SqlServerDialect.Instance.CreateConnector(Primary + ";ApplicationIntent=ReadWrite", EndpointRole.Replica);
        var p = new SqlConnectionStringBuilder(primary.CreateConnection().ConnectionString);
        var r = new SqlConnectionStringBuilder(replica.CreateConnection().ConnectionString);
        Assert.That(p.Enlist, Is.False, "RwSplit enlists explicitly");
        Assert.That(p.ApplicationIntent, Is.EqualTo(ApplicationIntent.ReadWrite));
        Assert.That(r.Enlist, Is.False);
        Assert.That(r.ApplicationIntent, Is.EqualTo(ApplicationIntent.ReadOnly));
        Assert.That(new SqlConnectionStringBuilder(explicitIntent.CreateConnection().ConnectionString).ApplicationIntent, Is.EqualTo(ApplicationIntent.ReadWrite), "an explicit intent is kept");
        Assert.That(primary.RedactedConnectionString, Does.Not.Contain("Sup3rSecret!"));
        Assert.That(primary.CreateConnection(), Is.InstanceOf<SqlConnection>());
    }

    [Test]
    public void Drop_in_connection_string_builds_a_shared_data_source_with_the_replicas()
    {
        var cs = Primary + ";Replicas=sql-r1|sql-r2,1444;Read Consistency=Eventual";
        using var a = RwSplitSqlServer.CreateConnection(cs);
        using var b = RwSplitSqlServer.CreateConnection(cs);
        a.Open();
        b.Open();
        var dataSource = a.OwningDataSource!;
        Assert.That(b.OwningDataSource, Is.SameAs(dataSource), "one data source per connection string, like a pool");
        Assert.That(dataSource.PrimaryAddress, Is.EqualTo(new EndpointAddress("sql-primary", 1433, "app")));
        Assert.That(dataSource.ReplicaAddresses, Is.EqualTo(new[] { new EndpointAddress("sql-r1", null, "app"), new EndpointAddress("sql-r2", 1444, "app") }));
        Assert.That(a.Consistency, Is.EqualTo(ReadConsistency.Eventual));
        Assert.That(dataSource.ReplicaWeights, Is.Null, "no weights: all weigh 1");
        using (var weighted = RwSplitSqlServer.CreateConnection(cs + ";Replica Weights=1|2.5"))
        {
            weighted.Open();
            Assert.That(weighted.OwningDataSource!.ReplicaWeights is { } w ? new[] { w[0], w[1] } : null, Is.EqualTo(new[] { 1, 2.5 }));
            Assert.That(weighted.OwningDataSource.Replicas, Has.Length.EqualTo(2));
        }

        var replica = new SqlConnectionStringBuilder(dataSource.Replicas[1].Connector.CreateConnection().ConnectionString);
        Assert.That(replica.DataSource, Is.EqualTo("sql-r2,1444"));
        Assert.That(replica.UserID, Is.EqualTo("app"), "every other setting is the primary's");
        Assert.That(replica.ApplicationIntent, Is.EqualTo(ApplicationIntent.ReadOnly));
        Assert.That(a.ConnectionString, Does.Not.Contain("Sup3rSecret!").And.Contain("Replicas").IgnoreCase, "once opened, the drop-in connection's string hides the password (as SqlClient's)");
        Assert.That(dataSource.ConnectionString, Does.Not.Contain("Sup3rSecret!"));
        Assert.That(a.ProviderFactory, Is.SameAs(RwSplitSqlServer.Factory));
        Assert.That(RwSplitSqlServer.Factory.CreateParameter(), Is.InstanceOf<SqlParameter>());
        Assert.That(RwSplitSqlServer.Factory.CreateCommand(), Is.InstanceOf<RwSplitCommand>());
        Assert.That(((RwSplitCommand)RwSplitSqlServer.Factory.CreateCommand()).InnerCommand, Is.InstanceOf<SqlCommand>());
    }

    [TestCase("Replicas=sql-r1|", "empty entry")]
    [TestCase("Replicas=sql-primary,1433", "is the primary itself")]
    [TestCase("Read Consistency=Sometimes", "Eventual, ReadYourWrites or Strong")]
    [TestCase("Read Consistency=7", "Eventual, ReadYourWrites or Strong")]
    [TestCase("Replica=sql-r1", "replica")]
    [TestCase("Replicas=sql-r1|sql-r2;Replica Weights=1|heavy", "one number per replica")]
    [TestCase("Replicas=sql-r1|sql-r2;Replica Weights=1", "1 ReplicaWeights for 2 replicas")]
    [TestCase("Replicas=sql-r1;Replica Weights=-2", "out of range")]
    public void Bad_drop_in_strings_get_a_clear_error_without_the_password(string extra, string expected)
    {
        // Defect: the error came only at Open, as RwSplitException for some strings and ArgumentException for others.
        // Now it comes at assignment, as SqlConnection's setter throws (ArgumentException), and the old string stays.
        using var connection = (RwSplitConnection)RwSplitSqlServer.Factory.CreateConnection();
        connection.ConnectionString = Primary;
        var ex = Assert.Throws<ArgumentException>(() => connection.ConnectionString = Primary + ";" + extra);
        Assert.That(ex!.Message, Does.Contain(expected).IgnoreCase);
        Assert.That(ex.Message, Does.Not.Contain("Sup3rSecret!"));
        Assert.That(connection.ConnectionString, Is.EqualTo(Primary), "the connection keeps its previous string");
        Assert.Throws<ArgumentException>(() => RwSplitSqlServer.CreateConnection(Primary + ";" + extra));
        Assert.Throws<ArgumentException>(() => RwSplitSqlServer.Factory.GetDataSource(Primary + ";" + extra));
    }

    /// <summary>The provider is the oracle: where SqlConnection's setter refuses a string, RwSplit's refuses it the same way, at once.</summary>
    [TestCase("Colour=blue")]
    [TestCase("Connect Timeout=soon")]
    [TestCase("Server=a;=b")]
    [TestCase("Server='unterminated")]
    public void An_invalid_provider_string_is_refused_at_assignment_as_SqlConnection_refuses_it(string text)
    {
        var expected = Assert.Catch(() => _ = new SqlConnection { ConnectionString = text + ";Password=Sup3rSecret!" });
        using var connection = (RwSplitConnection)RwSplitSqlServer.Factory.CreateConnection();
        var actual = Assert.Catch(() => connection.ConnectionString = text + ";Password=Sup3rSecret!");
        Assert.That(actual, Is.InstanceOf(expected!.GetType()), actual!.ToString());
        Assert.That(actual.Message, Does.Not.Contain("Sup3rSecret!"));
        Assert.That(connection.ConnectionString, Is.Empty);
    }

    [Test]
    public void Connection_without_a_connection_string_says_what_to_set()
    {
        using var connection = RwSplitSqlServer.Factory.CreateConnection();
        Assert.That(() => connection.Open(), Throws.InvalidOperationException.With.Message.Contains("ConnectionString"));
    }

    [Test]
    public void Drop_in_data_source_is_shared_per_connection_string_and_replaced_once_disposed()
    {
        var cs = "Data Source=sql-dropin-dispose;Initial Catalog=app;User ID=app;Password=x;Encrypt=False;Replicas=sql-dropin-r1";
        var first = RwSplitSqlServer.Factory.GetDataSource(cs);
        Assert.That(RwSplitSqlServer.Factory.GetDataSource(cs), Is.SameAs(first));
        first.Dispose();

        var second = RwSplitSqlServer.Factory.GetDataSource(cs);
        Assert.That(second, Is.Not.SameAs(first), "a disposed data source is never handed out again");
        using (var connection = RwSplitSqlServer.CreateConnection(cs))
        {
            connection.Open(); // lazy: no server is contacted until a command runs
            Assert.That(connection.DataSource, Does.Contain("sql-dropin-dispose"));
        }

        Assert.That(RwSplitSqlServer.Factory.GetDataSource(cs), Is.SameAs(second));
        Assert.That(second.Recovery, Is.SameAs(RwSplitSqlServer.Factory.Recovery), "drop-in data sources share the factory's recovery");
        Assert.That(RwSplitSqlServer.Factory.Recovery.DataSources, Does.Contain(second).And.Not.Contain(first));
        second.Dispose();
    }

    [Test]
    public void Read_only_procedures_via_command_type()
    {
        var procedures = new System.Collections.Generic.HashSet<string>(StringComparer.OrdinalIgnoreCase) { "dbo.GetOrders" };
        var classifier = SqlServerDialect.Instance.CreateClassifier(procedures);
        Assert.That(classifier.ClassifyProcedure("dbo.GetOrders").Kind, Is.EqualTo(RwSplit.Routing.StatementKind.Read));
        Assert.That(classifier.ClassifyProcedure("dbo.PlaceOrder").Kind, Is.EqualTo(RwSplit.Routing.StatementKind.Write));
        var applock = classifier.ClassifyProcedure("sp_getapplock");
        Assert.That(applock.SessionEffect, Is.EqualTo(RwSplit.Routing.SessionEffect.Pin));
    }

    private static void AssertParses(string sql)
    {
        var parser = new Microsoft.SqlServer.TransactSql.ScriptDom.TSql160Parser(initialQuotedIdentifiers: true);
        parser.Parse(new System.IO.StringReader(sql), out var errors);
        Assert.That(errors, Is.Empty, () => string.Join("; ", errors.Select(e => $"line {e.Line}: {e.Message}")) + "\n" + sql);
    }

    private static string InnerDynamicSql(string sql)
    {
        var start = sql.IndexOf("EXEC(N'", StringComparison.Ordinal) + "EXEC(N'".Length;
        var end = start;
        while (!(sql[end] == '\'' && sql[end + 1] != '\''))
            end += sql[end] == '\'' ? 2 : 1;
        return sql[start..end].Replace("''", "'", StringComparison.Ordinal);
    }

    [Test]
    public void Health_and_position_queries_are_valid_T_SQL_with_a_permission_fallback()
    {
        foreach (var query in new[] { SqlServerDialect.Instance.Replication.HealthProbeQuery!, SqlServerDialect.Instance.Replication.WritePositionQuery!, SqlServerDialect.Instance.Replication.ReplayPositionQuery! })
        {
            AssertParses(query);
            AssertParses(InnerDynamicSql(query));
            Assert.That(query, Does.Contain("HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE')"), "without the permission the probe still answers");
            Assert.That(InnerDynamicSql(query), Does.Contain("sys.dm_hadr_database_replica_states").And.Contain("is_local = 1"));
        }

        Assert.That(SqlServerDialect.Instance.Replication.HealthProbeQuery, Does.Contain("DATABASEPROPERTYEX(DB_NAME(), 'Updateability')"), "the role comes from the database's updateability");
        Assert.That(InnerDynamicSql(SqlServerDialect.Instance.Replication.WritePositionQuery!), Does.Contain("last_commit_lsn").And.Not.Contain("last_commit_time"), "the primary's watermark is its last commit record");
        Assert.That(InnerDynamicSql(SqlServerDialect.Instance.Replication.ReplayPositionQuery!), Does.Contain("last_redone_lsn"), "a secondary's readers see what redo applied, not what was hardened");
        Assert.That(InnerDynamicSql(SqlServerDialect.Instance.Replication.HealthProbeQuery!), Does.Contain("THEN s.last_redone_lsn ELSE s.last_commit_lsn END"));
    }

    private static decimal Lsn(long vlf, long block, int slot) => (vlf * 1_000_000_000_000_000m) + (block * 100_000m) + slot;

    [Test]
    public void An_LSN_packs_into_a_position_that_orders_as_the_LSN_does()
    {
        var dialect = SqlServerDialect.Instance;
        decimal[] ordered =
        [
            Lsn(0, 0, 0), Lsn(0, 0, 1), Lsn(0, 1, 0), Lsn(34, 999, 4095), Lsn(35, 0, 1), Lsn(35, 16, 2), Lsn(35, 17, 1),
            Lsn(1_000_000, 5, 5), Lsn((1 << 25) - 1, (1 << 26) - 1, 4095),
        ];
        var positions = ordered.Select(l => dialect.Replication!.ToPosition(l)).ToArray();
        Assert.That(positions, Is.All.Not.Null.And.All.GreaterThanOrEqualTo(0));
        Assert.That(positions, Is.Ordered.Ascending.And.Unique);
        Assert.That(dialect.Replication!.ToPosition(Lsn(35, 16, 2)), Is.EqualTo((35L << 38) | (16L << 12) | 2));
    }

    [Test]
    public void An_LSN_beyond_the_packed_range_has_no_position()
    {
        var dialect = SqlServerDialect.Instance;
        Assert.That(dialect.Replication!.ToPosition(Lsn(1 << 25, 0, 0)), Is.Null, "VLF sequence number beyond 25 bits");
        Assert.That(dialect.Replication!.ToPosition(Lsn(1, 1 << 26, 0)), Is.Null, "log block offset beyond 32 GiB");
        Assert.That(dialect.Replication!.ToPosition(Lsn(1, 1, 4096)), Is.Null, "slot beyond 12 bits");
        Assert.That(dialect.Replication!.ToPosition(-1m), Is.Null);
        Assert.That(dialect.Replication!.ToPosition(1.5m), Is.Null);
        Assert.That(dialect.Replication!.ToPosition(42L), Is.EqualTo(42), "an integer is a position as it is");
    }

    [Test]
    public void Misroute_signal_is_only_sql_errors()
        => Assert.That(SqlServerDialect.Instance.Failures.IsReadOnlyViolation(new InvalidOperationException("3906")), Is.False);
}
