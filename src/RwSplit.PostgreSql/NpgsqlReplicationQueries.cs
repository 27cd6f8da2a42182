using RwSplit.Providers;

namespace RwSplit.PostgreSql;

/// <summary>PostgreSQL's replication queries: WAL positions in bytes (<c>pg_lsn</c> minus <c>0/0</c>).</summary>
internal sealed class NpgsqlReplicationQueries : ReplicationQueries
{
    public static NpgsqlReplicationQueries Instance { get; } = new();

    /// <summary>
    /// <c>pg_is_in_recovery()</c>; the replay LSN on a replica (<c>pg_last_wal_replay_lsn()</c>) or the current WAL LSN on
    /// the primary (<c>pg_current_wal_lsn()</c>), as bytes; seconds since <c>pg_last_xact_replay_timestamp()</c>; and the
    /// cluster's <c>system_identifier</c> (shared by a primary and its physical replicas).
    /// </summary>
    public override string HealthProbeQuery => """
        SELECT pg_is_in_recovery(),
               (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint,
               CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 END,
               (SELECT system_identifier::text FROM pg_control_system())
        """;

    /// <summary>
    /// The WAL <em>insert</em> position (<c>pg_current_wal_insert_lsn()</c>), as bytes: the end of every record this
    /// session's commits wrote, whatever <c>synchronous_commit</c> says. The write position (<c>pg_current_wal_lsn()</c>)
    /// is not enough: an asynchronous commit (<c>synchronous_commit = off</c>, per server, session or <c>SET LOCAL</c>)
    /// returns while its commit record is still in WAL buffers, so a replica can replay up to the write position without
    /// having replayed the commit. At a WAL page boundary the insert position points past the next page's header, where
    /// a replica's replay position (the end of the last record) stops at the boundary itself; the header is subtracted
    /// (24 bytes, 40 on a segment's first page) so that a caught-up replica compares equal and serves the read.
    /// </summary>
    public override string? WritePositionQuery => """
        SELECT CASE WHEN p % s = 40 THEN p - 40 WHEN p % b = 24 THEN p - 24 ELSE p END
        FROM (SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS p,
                     current_setting('wal_block_size')::bigint AS b,
                     pg_size_bytes(current_setting('wal_segment_size')) AS s) AS wal
        """;

    /// <inheritdoc />
    public override string? ReplayPositionQuery => "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint";
}
