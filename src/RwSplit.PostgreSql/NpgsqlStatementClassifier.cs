using System;
using System.Collections.Frozen;
using System.Collections.Generic;
using RwSplit.Providers;
using RwSplit.Routing;

namespace RwSplit.PostgreSql;

/// <summary>
/// PostgreSQL's SQL read for routing: the lexer-based classifier (comments, quoted identifiers, string and dollar
/// quoting) and function volatility from <c>pg_proc</c>.
/// </summary>
internal sealed class NpgsqlStatementClassifier : StatementClassifier
{
    private static readonly FrozenSet<string> VolatileButReadOnly = new[]
    {
        // Volatile only because their result changes between calls; none writes, and all run on a hot standby.
        "random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc",
        "uuid_generate_v4", "pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_is_in_recovery", "pg_last_wal_replay_lsn",
        "pg_last_wal_receive_lsn", "pg_last_xact_replay_timestamp", "pg_is_wal_replay_paused", "inet_server_port",
        "inet_server_addr", "pg_backend_pid",
    }.ToFrozenSet(StringComparer.Ordinal);

    public NpgsqlStatementClassifier(IReadOnlySet<string> readOnlyProcedures)
        : base(readOnlyProcedures)
    {
    }

    /// <inheritdoc />
    public override StatementClassification Classify(string commandText) => PgStatementClassifier.Classify(commandText);

    /// <summary>
    /// Lists every function name with its most volatile overload's volatility (<c>pg_proc.provolatile</c>: <c>i</c> &lt;
    /// <c>s</c> &lt; <c>v</c>, so <c>max</c> picks the most volatile), and every type name as stable (a function-style
    /// cast such as <c>regclass('t')</c> runs the type's input function, which never writes). Functions whose catalog
    /// volatility understates their effect count as volatile: <c>txid_current()</c> and <c>pg_current_xact_id()</c> are
    /// marked stable but assign a transaction id, which a hot standby refuses.
    /// </summary>
    public override string FunctionCatalogQuery => """
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
}
