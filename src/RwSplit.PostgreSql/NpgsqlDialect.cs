using System;
using System.Collections.Frozen;
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
/// function volatility from <c>pg_proc</c>, and SQLSTATE 25006 (read-only transaction) as the misroute signal.
/// Select it with <see cref="RwSplitNpgsqlExtensions.UseNpgsql"/>.
/// </summary>
public sealed class NpgsqlDialect : RwSplitDialect
{
    private static readonly FrozenSet<string> VolatileButReadOnly = new[]
    {
        // Volatile only because their result changes between calls; none writes, and all run on a hot standby.
        "random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc",
        "uuid_generate_v4", "pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_is_in_recovery", "pg_last_wal_replay_lsn",
        "pg_last_wal_receive_lsn", "pg_last_xact_replay_timestamp", "pg_is_wal_replay_paused", "inet_server_port",
        "inet_server_addr", "pg_backend_pid",
    }.ToFrozenSet(StringComparer.Ordinal);

    private NpgsqlDialect()
    {
    }

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

    /// <summary>
    /// Lists every function name with its most volatile overload's volatility (<c>pg_proc.provolatile</c>: <c>i</c> &lt;
    /// <c>s</c> &lt; <c>v</c>, so <c>max</c> picks the most volatile), and every type name as stable (a function-style
    /// cast such as <c>regclass('t')</c> runs the type's input function, which never writes). Functions whose catalog
    /// volatility understates their effect count as volatile: <c>txid_current()</c> and <c>pg_current_xact_id()</c> are
    /// marked stable but assign a transaction id, which a hot standby refuses.
    /// </summary>
    public override string? FunctionCatalogQuery => """
        SELECT name, max(volatility) FROM (
            SELECT proname::text AS name,
                   CASE WHEN proname IN ('txid_current', 'pg_current_xact_id') THEN 'v' ELSE provolatile::text END AS volatility
            FROM pg_catalog.pg_proc
            UNION ALL
            SELECT typname::text, 's' FROM pg_catalog.pg_type WHERE typtype NOT IN ('c', 'p')) AS catalog
        GROUP BY name
        """;

    /// <inheritdoc />
    public override IReadOnlyCollection<string> ReadOnlyVolatileFunctions => VolatileButReadOnly;

    /// <summary>
    /// Also a connection failure: the server shutting down or terminating the backend (SQLSTATE class 57P), and a replica
    /// cancelling a query because of a conflict with recovery (40001 with the hot-standby message), which another server
    /// can answer.
    /// </summary>
    /// <param name="exception">The exception.</param>
    /// <param name="connection">The connection.</param>
    public override bool IsConnectionFailure(Exception exception, DbConnection connection)
        => exception switch
        {
            // A reply of the server: only those saying the session is gone (shutdown, crash, idle timeout, connection
            // errors) or that replay cancelled the statement count. A statement error after which Npgsql closes the
            // connection (classes 53, 58, F0, XX raised by one query) is the statement's, not the server's.
            PostgresException pg => pg.SqlState is "57P01" or "57P02" or "57P03" or "57P05"
                                    || pg.SqlState.StartsWith("08", StringComparison.Ordinal)
                                    || (pg.SqlState == PostgresErrorCodes.SerializationFailure && pg.MessageText.Contains("recovery", StringComparison.Ordinal)),
            NpgsqlException { InnerException: System.IO.IOException or System.Net.Sockets.SocketException or TimeoutException } => true,
            _ => base.IsConnectionFailure(exception, connection),
        };

    /// <inheritdoc />
    public override EndpointAddress ParseEndpoint(string connectionString)
    {
        var builder = Parse(connectionString);
        return new EndpointAddress(builder.Host!, builder.Port, builder.Database ?? builder.Username);
    }

    /// <inheritdoc />
    public override EndpointConnector CreateConnector(string connectionString, EndpointRole role)
    {
        var builder = Parse(connectionString);
        var address = new EndpointAddress(builder.Host!, builder.Port, builder.Database ?? builder.Username);

        // RwSplit enlists explicitly (one enlistment per transaction); the provider must not enlist on open.
        builder.Enlist = false;
        var redacted = new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Password = null, Passfile = null, SslPassword = null }.ConnectionString;
        return new NpgsqlEndpointConnector(address, role, builder, redacted);
    }

    /// <inheritdoc />
    public override StatementClassification Classify(string commandText, IReadOnlySet<string> readOnlyProcedures)
        => PgStatementClassifier.Classify(commandText);

    /// <summary>
    /// A hot standby's refusals: SQLSTATE 25006 (read-only transaction), and the refusals PostgreSQL words as "… during
    /// recovery" under other codes — 0A000 (<c>cannot set transaction read-write mode during recovery</c>), XX000
    /// (<c>cannot assign TransactionIds during recovery</c>, e.g. <c>txid_current()</c> inside a view) and 55000. The
    /// statement did nothing on the standby, so it can run again on the primary.
    /// </summary>
    /// <param name="exception">The exception thrown by the provider.</param>
    public override bool IsReadOnlyViolation(Exception exception)
        => exception is PostgresException { SqlState: PostgresErrorCodes.ReadOnlySqlTransaction }
           || exception is PostgresException { SqlState: PostgresErrorCodes.FeatureNotSupported or PostgresErrorCodes.InternalError or PostgresErrorCodes.ObjectNotInPrerequisiteState } pg
              && pg.MessageText.Contains("during recovery", StringComparison.Ordinal);

    /// <inheritdoc />
    public override void ClearPool(DbConnection connection)
    {
        if (connection is NpgsqlConnection npgsql)
            NpgsqlConnection.ClearPool(npgsql);
    }

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
