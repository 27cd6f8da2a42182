using System;
using Npgsql;
using NUnit.Framework;
using RwSplit.PostgreSql;
using RwSplit.Topology;

namespace RwSplit.Tests.PostgreSql;

public sealed class NpgsqlDialectTests
{
    [Test]
    public void Endpoint_is_parsed_with_database_defaulting_to_user()
    {
        Assert.That(NpgsqlDialect.Instance.ParseEndpoint("Host=pg1;Port=5433;Database=app;Password=x"), Is.EqualTo(new EndpointAddress("pg1", 5433, "app")));
        Assert.That(NpgsqlDialect.Instance.ParseEndpoint("Host=pg1;Username=bob"), Is.EqualTo(new EndpointAddress("pg1", 5432, "bob")));
    }

    [TestCase("Database=app", "Host=<server>")]
    [TestCase("Host=a,b;Database=app", "own connection string")]
    [TestCase("Host=a;Colour=blue", "colour")]
    public void Bad_connection_strings_name_the_fix(string cs, string expected)
        => Assert.That(() => NpgsqlDialect.Instance.ParseEndpoint(cs + ";Password=TopSecret"),
            Throws.ArgumentException.With.Message.Contains(expected).IgnoreCase.And.Message.Not.Contains("TopSecret"));

    /// <summary>
    /// Npgsql is the oracle: where NpgsqlConnection's setter refuses a string, the drop-in connection's setter refuses it
    /// at assignment with the same exception type (it used to accept it and fail at Open, as RwSplitException for some
    /// strings), never quotes the password, and keeps its previous string.
    /// </summary>
    [TestCase("Host=a;Colour=blue")]
    [TestCase("Host=a;Port=fifty")]
    [TestCase("Host=a;=b")]
    [TestCase("Host='unterminated")]
    [TestCase("Host=a;Replicas=b|;Read Consistency=Sometimes")]
    public void An_invalid_string_is_refused_at_assignment_as_NpgsqlConnection_refuses_it(string text)
    {
        var withSecret = text + ";Password=TopSecret";
        var expected = text.Contains("Replicas", StringComparison.Ordinal)
            ? new ArgumentException("RwSplit's own keywords: Npgsql has no opinion")
            : Assert.Catch(() => _ = new NpgsqlConnection { ConnectionString = withSecret });
        using var connection = (RwSplitConnection)RwSplitNpgsql.Factory.CreateConnection();
        connection.ConnectionString = "Host=good";
        var actual = Assert.Catch(() => connection.ConnectionString = withSecret);
        Assert.That(actual, Is.InstanceOf(expected!.GetType()), actual!.ToString());
        Assert.That(actual.Message, Does.Not.Contain("TopSecret"));
        Assert.That(connection.ConnectionString, Is.EqualTo("Host=good"), "the previous string stays");
    }

    [Test]
    public void Connector_clears_only_the_pool_its_connections_come_from()
    {
        using var primary = NpgsqlDialect.Instance.CreateConnector("Host=pg-a;Database=app;Username=app;Password=x", EndpointRole.Primary);
        using var replica = NpgsqlDialect.Instance.CreateConnector("Host=pg-b;Database=app;Username=app;Password=x", EndpointRole.Replica);
        using var fromPrimary = primary.CreateConnection();
        using var fromMonitor = primary.CreateMonitorConnection();
        using var foreign = new NpgsqlConnection("Host=pg-a;Database=app;Username=app;Password=x");

        // NpgsqlConnection.ClearPool reaches only connection-string pools; each connector owns an NpgsqlDataSource.
        Assert.That(primary.ClearPool(fromPrimary), Is.True);
        Assert.That(replica.ClearPool(fromPrimary), Is.False);
        Assert.That(primary.ClearPool(fromMonitor), Is.True, "the monitor's own pool");
        Assert.That(primary.ClearPool(foreign), Is.False, "not one of its data sources' connections");
    }

    [Test]
    public void Connector_forces_enlist_off_and_redacts()
    {
        using var connector = NpgsqlDialect.Instance.CreateConnector("Host=pg1;Database=app;Password=TopSecret;Enlist=true", EndpointRole.Primary);
        using var connection = (NpgsqlConnection)connector.CreateConnection();
        Assert.That(new NpgsqlConnectionStringBuilder(connection.ConnectionString).Enlist, Is.False);
        Assert.That(connector.RedactedConnectionString, Does.Not.Contain("TopSecret"));
    }

    [TestCase("pg2", "pg2", 5432)]
    [TestCase("pg2:6000", "pg2", 6000)]
    public void WithServer_replaces_host_and_port(string server, string host, int port)
    {
        var cs = NpgsqlDialect.Instance.WithServer("Host=pg1;Port=5432;Database=app;Username=u;Password=p", server);
        var builder = new NpgsqlConnectionStringBuilder(cs);
        Assert.That((builder.Host, builder.Port, builder.Database, builder.Username, builder.Password), Is.EqualTo((host, port, "app", "u", "p")));
    }

    [Test]
    public void WithServer_rejects_a_bad_port()
        => Assert.That(() => NpgsqlDialect.Instance.WithServer("Host=pg1", "pg2:99999"), Throws.ArgumentException.With.Message.Contains("host:port"));

    [Test]
    public void Misroute_signal_is_sqlstate_25006_only()
    {
        Assert.That(NpgsqlDialect.Instance.Failures.IsReadOnlyViolation(new PostgresException("read-only", "ERROR", "ERROR", PostgresErrorCodes.ReadOnlySqlTransaction)), Is.True);
        Assert.That(NpgsqlDialect.Instance.Failures.IsReadOnlyViolation(new PostgresException("syntax", "ERROR", "ERROR", PostgresErrorCodes.SyntaxError)), Is.False);
        Assert.That(NpgsqlDialect.Instance.Failures.IsReadOnlyViolation(new InvalidOperationException()), Is.False);
    }

    [Test]
    public void Function_catalog_query_and_volatile_read_only_builtins()
    {
        Assert.That(NpgsqlDialect.Instance.CreateClassifier(new System.Collections.Generic.HashSet<string>()).FunctionCatalogQuery, Does.Contain("pg_proc").And.Contain("provolatile"));
        Assert.That(NpgsqlDialect.Instance.CreateClassifier(new System.Collections.Generic.HashSet<string>()).ReadOnlyVolatileFunctions, Does.Contain("random").And.Not.Contain("nextval"));
    }
}
