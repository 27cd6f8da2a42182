using System;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Providers;
using RwSplit.Routing;

namespace RwSplit.Connections;

/// <summary>
/// The questions read-your-writes asks the servers for a logical connection's <see cref="WriteWatermark"/>: where the
/// primary is after the session's writes, which replicas have replayed that far, a bounded wait for one that has not
/// yet, and the token that carries the watermark elsewhere.
/// </summary>
internal static class ReadYourWrites
{
    /// <summary>
    /// The replicas known to have replayed this session's writes (bit per replica). Positions when the dialect has them;
    /// else the time rule. Needs a round trip only while the primary's position after the last write is unknown.
    /// </summary>
    /// <param name="connection">The logical connection.</param>
    /// <param name="queryTimeout">The timeout of the position query, in seconds (what is left of the execution's; 0: the provider's default).</param>
    /// <param name="async">Whether to run asynchronously.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    public static ValueTask<ulong> CaughtUpReplicasAsync(RwSplitConnection connection, int queryTimeout, bool async, CancellationToken cancellationToken)
    {
        var dataSource = connection.DataSourceOrThrow;
        ref var watermark = ref connection.Watermark;
        if (!watermark.HasWritten)
            return new ValueTask<ulong>(ulong.MaxValue);
        if (!dataSource.HealthMonitoring)
            return new ValueTask<ulong>(0UL); // nothing is known of the replicas' progress
        if (watermark.TokenIdentity != 0)
        {
            var identity = dataSource.IdentityHash;
            if (identity == 0)
                return new ValueTask<ulong>(0UL); // cannot check the token's origin yet: the primary is safe
            if (identity != watermark.TokenIdentity)
                return ValueTask.FromException<ulong>(new RwSplitException(RwSplitError.InvalidConsistencyToken, $"The consistency token applied to this connection comes from another database cluster than data source '{dataSource.Name}' ({dataSource.PrimaryAddress})."));
        }

        if (watermark.TokenPositionUnverified)
        {
            if (watermark.RequiredPosition > dataSource.CurrentPrimary.Position)
                return VerifyTokenPositionAsync(connection, queryTimeout, async, cancellationToken);
            watermark.TokenPositionVerified();
        }

        // Only capturing the write position may need a round trip: the rest runs without an async state machine.
        if (!watermark.Unsynced)
            return new ValueTask<ulong>(watermark.CaughtUp(dataSource.Replicas));
        return ReadsOnOpenPrimary(connection)
            ? new ValueTask<ulong>(0UL) // no replica can be known to have the write before asking: the read goes to the open primary
            : CaughtUpAfterCaptureAsync(connection, queryTimeout, async, cancellationToken);
    }

    /// <summary>
    /// <see cref="CaughtUpReplicasAsync"/> when it needs no I/O: the session did not write, positions are known, or the
    /// read goes to the open primary (<see cref="ReadAfterWrite.OpenPrimary"/>) before the write's position is asked.
    /// <see langword="false"/> when the answer needs a round trip or a token's check.
    /// </summary>
    public static bool TryCaughtUpNow(RwSplitConnection connection, out ulong caughtUp)
    {
        ref var watermark = ref connection.Watermark;
        var dataSource = connection.DataSourceOrThrow;
        caughtUp = 0;
        if (!watermark.HasWritten)
        {
            caughtUp = ulong.MaxValue;
            return true;
        }

        if (!dataSource.HealthMonitoring)
            return true;
        if (watermark.TokenIdentity != 0 || watermark.TokenPositionUnverified)
            return false;
        if (!watermark.Unsynced)
        {
            caughtUp = watermark.CaughtUp(dataSource.Replicas);
            return true;
        }

        return ReadsOnOpenPrimary(connection);
    }

    /// <summary>A read after a write goes to the session's open primary connection rather than ask where the write is (<see cref="ReadAfterWrite.OpenPrimary"/>).</summary>
    private static bool ReadsOnOpenPrimary(RwSplitConnection connection)
        => connection.DataSourceOrThrow.ReadAfterWrite == ReadAfterWrite.OpenPrimary && connection.Watermark.WritePending && connection.Physical.HasOpenPrimary;

    /// <summary>
    /// A token asked for a position beyond the primary's as last probed: the primary is asked where it is now (one
    /// round trip). Beyond that too, no write ever reached it: the token is refused (its requirement dropped from this
    /// connection and, if it was the data source's floor, from there) instead of sending every read to the primary.
    /// </summary>
    private static async ValueTask<ulong> VerifyTokenPositionAsync(RwSplitConnection connection, int queryTimeout, bool async, CancellationToken cancellationToken)
    {
        var dataSource = connection.DataSourceOrThrow;
        if (connection.Dialect.Replication?.WritePositionQuery is { } query)
        {
            var primary = await connection.GetPhysicalAsync(RoutingDecision.ToPrimary(RoutingReason.ReadYourWrites), async, cancellationToken).ConfigureAwait(false);
            var position = await QueryPositionAsync(connection, primary, query, queryTimeout, async, cancellationToken).ConfigureAwait(false);
            if (position is { } now && now < connection.Watermark.RequiredPosition)
            {
                var required = connection.Watermark.RequiredPosition;
                connection.Watermark.RefuteTokenPosition(now);
                dataSource.DropFloorBeyond(now);
                throw new RwSplitException(
                    RwSplitError.InvalidConsistencyToken,
                    $"The consistency token applied to this connection asks for replication position {required}, beyond the primary's current {now} of data source '{dataSource.Name}': no write reached it (a token of another timeline, such as a restored cluster, or made by a holder of the key). The token was dropped; apply a token exported from this cluster.");
            }
        }

        connection.Watermark.TokenPositionVerified();
        return await CaughtUpReplicasAsync(connection, queryTimeout, async, cancellationToken).ConfigureAwait(false);
    }

    private static async ValueTask<ulong> CaughtUpAfterCaptureAsync(RwSplitConnection connection, int queryTimeout, bool async, CancellationToken cancellationToken)
        => await CaptureWritePositionAsync(connection, openPrimary: false, queryTimeout, async, cancellationToken).ConfigureAwait(false)
            ? connection.Watermark.CaughtUp(connection.DataSourceOrThrow.Replicas)
            : 0;

    /// <summary>Asks the primary where its WAL (or commit log) is now: at least where this session's writes are.</summary>
    private static async ValueTask<bool> CaptureWritePositionAsync(RwSplitConnection connection, bool openPrimary, int queryTimeout, bool async, CancellationToken cancellationToken)
    {
        var dataSource = connection.DataSourceOrThrow;
        var query = connection.Dialect.Replication?.WritePositionQuery;
        if (query is null || !dataSource.HealthMonitoring)
        {
            connection.Watermark.Synced(null); // no positions: the time rule applies
            return true;
        }

        if (connection.Physical.Primary is null && !openPrimary)
            return false;
        var primary = await connection.GetPhysicalAsync(RoutingDecision.ToPrimary(RoutingReason.ReadYourWrites), async, cancellationToken).ConfigureAwait(false);
        var position = await QueryPositionAsync(connection, primary, query, queryTimeout, async, cancellationToken).ConfigureAwait(false);
        connection.Watermark.Synced(position);
        return true;
    }

    private static async ValueTask<long?> QueryPositionAsync(RwSplitConnection connection, DbConnection physical, string query, int timeout, bool async, CancellationToken cancellationToken)
    {
        var command = physical.CreateCommand();
        await using (command.ConfigureAwait(false))
        {
            command.CommandText = query;
            if (timeout > 0)
                command.CommandTimeout = timeout;
            command.Transaction = connection.InnerTransactionFor(physical);
            var value = await ProviderIo.ExecuteScalarAsync(command, async, cancellationToken).ConfigureAwait(false);
            return value is null or DBNull ? null : connection.Dialect.Replication!.ToPosition(value);
        }
    }

    /// <summary>
    /// Whether <see cref="WaitForReplicaAsync"/> would wait at all (positions known, a replica available, a wait
    /// allowed): the caller sets up the wait's cancellation only then.
    /// </summary>
    public static bool CanWait(RwSplitConnection connection, ulong available, TimeSpan maxWait)
        => connection.Dialect.Replication?.ReplayPositionQuery is not null && connection.Watermark.RequiredPosition >= 0
           && (available & ~connection.Physical.Excluded) != 0 && maxWait > TimeSpan.Zero;

    /// <summary>
    /// Waits up to <paramref name="maxWait"/> (<see cref="RwSplitOptions.ReadYourWritesTimeout"/>, cut to what is left
    /// of the execution's timeout) for one available replica (this session's, else the most advanced) to replay this
    /// session's writes, polling its position. <see langword="true"/> if it did. <paramref name="waitToken"/> ends the
    /// polling (the caller's token, <c>Cancel()</c>, the execution's timeout); <paramref name="cancellationToken"/>, the
    /// caller's own, is the one given to the replica's open (a wait that ends must not count as the replica failing).
    /// </summary>
    public static async ValueTask<bool> WaitForReplicaAsync(RwSplitConnection connection, ulong available, TimeSpan maxWait, int queryTimeout, bool async, CancellationToken waitToken, CancellationToken cancellationToken)
    {
        if (!CanWait(connection, available, maxWait))
            return false;
        var query = connection.Dialect.Replication!.ReplayPositionQuery!;
        available &= ~connection.Physical.Excluded;
        var dataSource = connection.DataSourceOrThrow;
        var replicas = dataSource.Replicas;
        var current = connection.Physical.CurrentReplica;
        var candidate = current >= 0 && (available & (1UL << current)) != 0 ? current : -1;
        if (candidate < 0)
        {
            // The most advanced replica; ties are broken in turn (balancer ticket), so waits spread over equal replicas.
            var start = (int)(dataSource.NextBalancerTicket() % (uint)replicas.Length);
            for (var k = 0; k < replicas.Length; k++)
            {
                var i = (start + k) % replicas.Length;
                if ((available & (1UL << i)) != 0 && (candidate < 0 || replicas[i].Position > replicas[candidate].Position))
                    candidate = i;
            }
        }

        DbConnection physical;
        try
        {
            physical = await connection.GetPhysicalAsync(RoutingDecision.ToReplica(candidate, RoutingReason.ReadYourWrites), async, cancellationToken).ConfigureAwait(false);
        }
        catch (ReplicaUnavailableException)
        {
            return false;
        }

        var deadline = Stopwatch.GetTimestamp() + (long)(maxWait.TotalSeconds * Stopwatch.Frequency);
        var delay = 1;
        while (true)
        {
            long? position;
            try
            {
                position = await QueryPositionAsync(connection, physical, query, queryTimeout, async, waitToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is DbException or InvalidOperationException && connection.Dialect.Failures.IsConnectionFailure(ex, physical))
            {
                // The replica's session died while waiting (terminated, restarted): drop it; the read routes again.
                await connection.Physical.DiscardReplicaAsync(candidate, ex, async).ConfigureAwait(false);
                return false;
            }

            if (position is { } p)
            {
                replicas[candidate].ObservePosition(p);
                if (p >= connection.Watermark.RequiredPosition)
                    return true;
            }

            if (Stopwatch.GetTimestamp() >= deadline)
                return false;
            await ProviderIo.DelayAsync(delay, async, waitToken).ConfigureAwait(false);
            delay = Math.Min(delay * 2, 20);
        }
    }

    /// <summary>
    /// The token covering the session's writes (and tokens applied to it); <see langword="null"/> when it neither wrote
    /// nor received a token. After a write, asks the primary for its current position unless already known.
    /// </summary>
    public static async ValueTask<string?> ExportTokenAsync(RwSplitConnection connection, bool async, CancellationToken cancellationToken)
    {
        if (!connection.Watermark.HasWritten)
            return null;
        if (connection.Watermark.Unsynced)
            await CaptureWritePositionAsync(connection, openPrimary: true, 0, async, cancellationToken).ConfigureAwait(false);
        var dataSource = connection.DataSourceOrThrow;
        var identity = connection.Watermark.TokenIdentity != 0 ? connection.Watermark.TokenIdentity : dataSource.IdentityHash;
        if (identity == 0)
            identity = await AskPrimaryIdentityAsync(connection, async, cancellationToken).ConfigureAwait(false);
        var token = connection.Watermark.ToToken(dataSource, identity);
        dataSource.RecordToken(token);
        return token.ToString();
    }

    /// <summary>
    /// The replica set's identity hash from the primary itself, when no probe has reported it yet (the monitor's first
    /// round may still be under way): a token without it would be accepted by a data source over any other cluster.
    /// One round trip, only until the identity is known; 0 when the dialect reports none.
    /// </summary>
    private static async ValueTask<ulong> AskPrimaryIdentityAsync(RwSplitConnection connection, bool async, CancellationToken cancellationToken)
    {
        var dataSource = connection.DataSourceOrThrow;
        if (connection.Dialect.Replication?.HealthProbeQuery is not { } query || !dataSource.HealthMonitoring)
            return 0;
        var primary = await connection.GetPhysicalAsync(RoutingDecision.ToPrimary(RoutingReason.ReadYourWrites), async, cancellationToken).ConfigureAwait(false);
        var command = primary.CreateCommand();
        await using (command.ConfigureAwait(false))
        {
            command.CommandText = query;
            command.Transaction = connection.InnerTransactionFor(primary);
            var reader = await ProviderIo.ExecuteReaderAsync(command, async, cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                var read = await ProviderIo.ReadAsync(reader, async, cancellationToken).ConfigureAwait(false);
                if (!read || reader.FieldCount < 4 || reader.IsDBNull(3))
                    return 0;
                var identity = Convert.ToString(reader.GetValue(3), CultureInfo.InvariantCulture)!;
                dataSource.CurrentPrimary.LearnIdentity(identity);
                return ConsistencyToken.HashIdentity(identity);
            }
        }
    }
}
