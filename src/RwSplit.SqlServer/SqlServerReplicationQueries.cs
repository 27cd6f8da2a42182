using System;
using RwSplit.Providers;

namespace RwSplit.SqlServer;

/// <summary>
/// SQL Server's replication queries, over <c>sys.dm_hadr_database_replica_states</c>: the primary's
/// <c>last_commit_lsn</c>, a secondary's <c>last_redone_lsn</c>, packed into order-preserving 64-bit positions.
/// </summary>
internal sealed class SqlServerReplicationQueries : ReplicationQueries
{
    public static SqlServerReplicationQueries Instance { get; } = new();

    /// <summary>
    /// Role from <c>DATABASEPROPERTYEX(DB_NAME(), 'Updateability')</c>. With <c>VIEW SERVER STATE</c>, from the database's
    /// local row in <c>sys.dm_hadr_database_replica_states</c>: the position (<see cref="ToPosition"/>) is the primary's
    /// <c>last_commit_lsn</c> and a secondary's <c>last_redone_lsn</c> (what a read there can see, which lags what it has
    /// hardened while redo catches up); the lag is the seconds since the last commit the secondary received plus, while
    /// redo is behind it, the redo queue over the redo rate (an estimate); the identity is the availability group's
    /// <c>group_database_id</c>. Without that permission, or outside an availability group, only the role is known and
    /// reads after a write go to the primary.
    /// </summary>
    public override string HealthProbeQuery => """
        DECLARE @replica bit = CASE WHEN CONVERT(nvarchar(20), DATABASEPROPERTYEX(DB_NAME(), 'Updateability')) = N'READ_ONLY' THEN 1 ELSE 0 END;
        IF HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') = 1
            EXEC(N'SELECT @r, CASE WHEN @r = 1 THEN s.last_redone_lsn ELSE s.last_commit_lsn END,
                      CASE WHEN @r = 1 THEN DATEDIFF_BIG(millisecond, s.last_commit_time, GETDATE()) / 1000.0
                          + CASE WHEN s.last_redone_lsn < s.last_commit_lsn THEN ISNULL(s.redo_queue_size * 1.0 / NULLIF(s.redo_rate, 0), 3600) ELSE 0 END END,
                      CONVERT(nvarchar(36), d.group_database_id)
                   FROM sys.databases d LEFT JOIN sys.dm_hadr_database_replica_states s ON s.database_id = d.database_id AND s.is_local = 1
                   WHERE d.database_id = DB_ID()', N'@r bit', @r = @replica);
        ELSE
            SELECT @replica, CAST(NULL AS numeric(25,0)), CAST(NULL AS float), CAST(NULL AS nvarchar(36));
        """;

    /// <summary>
    /// The primary's <c>last_commit_lsn</c> (its local row in <c>sys.dm_hadr_database_replica_states</c>): read right after
    /// a write committed, at least that write's commit record. Null without <c>VIEW SERVER STATE</c>.
    /// </summary>
    public override string? WritePositionQuery => """
        IF HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') = 1
            EXEC(N'SELECT last_commit_lsn FROM sys.dm_hadr_database_replica_states WHERE database_id = DB_ID() AND is_local = 1');
        ELSE
            SELECT CAST(NULL AS numeric(25,0));
        """;

    /// <summary>
    /// A secondary's <c>last_redone_lsn</c>: the last log record redo applied, so the last commit a read there can see
    /// (not <c>last_commit_lsn</c> or <c>last_commit_time</c>, which advance when the log is hardened, before redo).
    /// </summary>
    public override string? ReplayPositionQuery => """
        IF HAS_PERMS_BY_NAME(NULL, NULL, 'VIEW SERVER STATE') = 1
            EXEC(N'SELECT last_redone_lsn FROM sys.dm_hadr_database_replica_states WHERE database_id = DB_ID() AND is_local = 1');
        ELSE
            SELECT CAST(NULL AS numeric(25,0));
        """;

    /// <summary>
    /// A log sequence number as SQL Server's DMVs show it, <c>numeric(25,0)</c> = VLF sequence number × 10<sup>15</sup> +
    /// log block offset × 10<sup>5</sup> + slot, packed into a <c>bigint</c> that orders the same way: 25 bits of VLF
    /// sequence number, 26 bits of block offset (VLFs up to 32 GiB) and 12 bits of slot. An LSN beyond that range has no
    /// position (<see langword="null"/>): reads after a write then go to the primary.
    /// </summary>
    /// <param name="value">The value the position query returned.</param>
    public override long? ToPosition(object? value)
    {
        if (value is not decimal lsn)
            return base.ToPosition(value);
        if (lsn < 0 || lsn != decimal.Truncate(lsn))
            return null;
        var vlf = decimal.Truncate(lsn / 1_000_000_000_000_000m);
        var block = decimal.Truncate(lsn / 100_000m) % 10_000_000_000m;
        var slot = lsn % 100_000m;
        if (vlf >= 1L << 25 || block >= 1L << 26 || slot >= 1L << 12)
            return null;
        return ((long)vlf << 38) | ((long)block << 12) | (long)slot;
    }
}
