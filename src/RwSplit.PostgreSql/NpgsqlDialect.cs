using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Globalization;
using Npgsql;
using RwSplit.Providers;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit.PostgreSql;

/// <summary>
/// The PostgreSQL dialect over Npgsql: a lexer-based classifier (comments, quoted identifiers, string and dollar quoting),
/// function volatility from <c>pg_proc</c> (<see cref="CreateClassifier"/>), and SQLSTATE 25006 (read-only transaction)
/// as the misroute signal (<see cref="Failures"/>).
/// Select it with <see cref="RwSplitNpgsqlExtensions.UseNpgsql(RwSplitOptions)"/>.
/// </summary>
public sealed class NpgsqlDialect : RwSplitDialect
{
    private readonly Action<NpgsqlDataSourceBuilder>? _configureDataSource;

    private NpgsqlDialect(Action<NpgsqlDataSourceBuilder>? configureDataSource = null) => _configureDataSource = configureDataSource;

    /// <summary>
    /// The dialect with <paramref name="configureDataSource"/> applied to the <see cref="NpgsqlDataSourceBuilder"/> of
    /// every endpoint (primary and replicas) of the data sources that use it: enum and composite mappings
    /// (<c>MapEnum</c>), type plugins (NodaTime, NetTopologySuite), JSON options. Not applied to the topology monitor's
    /// own pool. Use it through <see cref="RwSplitNpgsqlExtensions.UseNpgsql(RwSplitOptions, Action{NpgsqlDataSourceBuilder})"/>.
    /// </summary>
    /// <param name="configureDataSource">Configures each endpoint's builder; called once per endpoint, when the data source is built.</param>
    internal static NpgsqlDialect Configured(Action<NpgsqlDataSourceBuilder> configureDataSource) => new(configureDataSource);

    /// <summary>The dialect.</summary>
    public static NpgsqlDialect Instance { get; } = new();

    /// <inheritdoc />
    public override string SystemName => "postgresql";

    /// <summary>PostgreSQL undoes a <c>SET</c> (not only <c>SET LOCAL</c>) of a transaction that rolls back.</summary>
    public override bool RevertsSessionCommandsOnRollback => true;

    /// <inheritdoc />
    public override DbProviderFactory ProviderFactory => NpgsqlFactory.Instance;

    /// <inheritdoc />
    public override ReplicationQueries Replication => NpgsqlReplicationQueries.Instance;

    /// <inheritdoc />
    public override TransactionStatements TransactionStatements => NpgsqlTransactionStatements.Instance;

    /// <inheritdoc />
    public override FailureRules Failures => NpgsqlFailureRules.Instance;

    /// <inheritdoc />
    public override EndpointAddress ParseEndpoint(string connectionString)
    {
        var builder = Parse(connectionString);
        return new EndpointAddress(builder.Host!, builder.Port, builder.Database ?? builder.Username);
    }

    /// <inheritdoc />
    public override EndpointConnector CreateConnector(string connectionString, EndpointRole role)
        => CreateConnector(connectionString, role, "default"); // RwSplitOptions.Name's default

    /// <inheritdoc />
    public override EndpointConnector CreateConnector(string connectionString, EndpointRole role, string dataSourceName)
    {
        var builder = Parse(connectionString);
        var address = new EndpointAddress(builder.Host!, builder.Port, builder.Database ?? builder.Username);

        // RwSplit enlists explicitly (one enlistment per transaction); the provider must not enlist on open. The string
        // the logical connection reports leaves Enlist out: the logical connection does enlist in an ambient transaction
        // (EF Core's PostgreSQL provider reads Enlist=false there as "ignore Transaction.Current").
        builder.Enlist = false;
        var redacted = new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Password = null, Passfile = null, SslPassword = null };
        redacted.Remove("Enlist");
        return new NpgsqlEndpointConnector(address, role, builder, redacted.ConnectionString, dataSourceName, _configureDataSource);
    }

    /// <inheritdoc />
    public override StatementClassifier CreateClassifier(IReadOnlySet<string> readOnlyProcedures)
        => new NpgsqlStatementClassifier(readOnlyProcedures);

    /// <summary>Replaces <c>Host</c> (and <c>Port</c>, when given as <c>host:port</c>).</summary>
    /// <param name="connectionString">The primary's connection string.</param>
    /// <param name="server"><c>host</c> or <c>host:port</c>.</param>
    public override string WithServer(string connectionString, string server)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(server);
        var builder = Parse(connectionString);
        var colon = server.LastIndexOf(':');
        if (colon > 0 && server.IndexOf(']', StringComparison.Ordinal) < colon)
        {
            if (!int.TryParse(server.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
                throw new ArgumentException($"Replica server '{server}' has an invalid port: use host or host:port.", nameof(server));
            builder.Host = server[..colon];
            builder.Port = port;
        }
        else
        {
            builder.Host = server;
        }

        return builder.ConnectionString;
    }

    private static NpgsqlConnectionStringBuilder Parse(string connectionString)
    {
        ArgumentNullException.ThrowIfNull(connectionString);
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            // Npgsql's messages name the keyword; they never echo a password value.
            throw new ArgumentException(ex.Message, nameof(connectionString), ex);
        }

        if (string.IsNullOrWhiteSpace(builder.Host))
            throw new ArgumentException("Host is missing: add Host=<server> to the connection string.", nameof(connectionString));
        if (builder.Host.Contains(',', StringComparison.Ordinal))
            throw new ArgumentException("Host lists several servers: give each server its own connection string (the primary in Primary, each replica in Replicas).", nameof(connectionString));
        return builder;
    }
}
