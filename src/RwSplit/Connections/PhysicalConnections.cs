using System;
using System.Collections.Generic;
using System.Data;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using System.Transactions;
using RwSplit.Diagnostics;
using RwSplit.Providers;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit.Connections;

/// <summary>
/// A logical connection's provider connections: at most one to the primary and one to a replica, each opened on first
/// use with the session's database and replayed session commands; inside a distributed transaction, the transaction's
/// branch for this database instead of the own primary connection. Also the replicas this session stopped using.
/// A struct inside the connection, reached by reference (<see cref="RwSplitConnection.Physical"/>, never copied): no
/// object of its own per logical connection. Its asynchronous operations are static over the owner, as an async method
/// cannot hold a reference to a struct across its awaits.
/// </summary>
internal struct PhysicalConnections
{
    private readonly RwSplitConnection _owner;

    public PhysicalConnections(RwSplitConnection owner) => _owner = owner;

    public DbConnection? Primary { get; private set; }

    /// <summary>Whether <see cref="Primary"/> is open to the data source's current primary (a read there needs no open).</summary>
    public readonly bool HasOpenPrimary => Primary is not null && ReferenceEquals(PrimaryEndpoint, _owner.DataSourceOrThrow.CurrentPrimary);

    /// <summary>The endpoint <see cref="Primary"/> is connected to (a failover changes the data source's primary, not this).</summary>
    public Endpoint? PrimaryEndpoint { get; private set; }

    public DbConnection? Replica { get; private set; }

    public int ReplicaIndex { get; private set; } = -1;

    /// <summary>The replica the session reads from now; -1 when none is open.</summary>
    public int CurrentReplica => Replica is null ? -1 : ReplicaIndex;

    /// <summary>Replicas this session no longer reads from (they failed under it), a bit per replica.</summary>
    public ulong Excluded { get; private set; }

    public void Exclude(int index) => Excluded |= 1UL << index;

    /// <summary>
    /// The physical connection for a decision when it is open already and no distributed transaction is involved (the
    /// caller checked), else <see langword="null"/>: <see cref="GetAsync"/> without opening, waiting or throwing.
    /// </summary>
    public DbConnection? TryGetOpen(in RoutingDecision decision)
    {
        if (decision.Target == RouteTarget.Primary)
        {
            if (Primary is null || !ReferenceEquals(PrimaryEndpoint, _owner.DataSourceOrThrow.CurrentPrimary))
                return null;
            _owner.Enlistment.ActiveBranch = null;
            return Primary;
        }

        return Replica is not null && ReplicaIndex == decision.ReplicaIndex ? Replica : null;
    }

    /// <summary>
    /// The physical connection for a decision, opened on first use. <paramref name="ambient"/>: the System.Transactions
    /// transaction the caller read once. A replica that cannot be opened throws <see cref="ReplicaUnavailableException"/>
    /// so the caller can route again.
    /// </summary>
    public ValueTask<DbConnection> GetAsync(RoutingDecision decision, Transaction? ambient, bool async, CancellationToken cancellationToken)
    {
        // The common case without an async state machine: the connection is open already.
        if (_owner.Enlistment.OnlyOwnConnections(ambient) && TryGetOpen(decision) is { } open)
            return new ValueTask<DbConnection>(open);
        return GetCoreAsync(_owner, decision, ambient, async, cancellationToken);
    }

    private static async ValueTask<DbConnection> GetCoreAsync(RwSplitConnection owner, RoutingDecision decision, Transaction? ambient, bool async, CancellationToken cancellationToken)
    {
        var dataSource = owner.DataSourceOrThrow;
        var settings = owner.SettingsIfAny;
        if (decision.Target == RouteTarget.Primary)
        {
            // Inside a distributed transaction: the transaction's branch for this database, shared by every logical
            // connection of the transaction (opened with Enlist=false: RwSplit is the one durable participant).
            if (owner.Enlistment.Current(ambient) is { } distributed)
            {
                var branch = await distributed.GetBranchAsync(dataSource, async, cancellationToken).ConfigureAwait(false);
                await branch.UseDatabaseAsync(settings?.Database ?? dataSource.PrimaryAddress.Database, async, cancellationToken).ConfigureAwait(false);
                if (settings?.Replay is { } replay)
                    await branch.ApplySessionAsync(replay, async, cancellationToken).ConfigureAwait(false); // this session's SETs, as on its own connections
                owner.Enlistment.ActiveBranch = branch;
                return branch.Connection;
            }

            owner.Enlistment.ActiveBranch = null;
            var current = dataSource.CurrentPrimary;
            if (owner.Physical.Primary is not null && !ReferenceEquals(owner.Physical.PrimaryEndpoint, current))
            {
                throw new RwSplitException(
                    RwSplitError.PrimaryChanged,
                    $"The primary of data source '{dataSource.Name}' changed from {owner.Physical.PrimaryEndpoint!.Address} to {current.Address} (failover) while this connection used the old one; its transaction or session state there is lost. Close and reopen the connection, then retry.")
                { Endpoint = owner.Physical.PrimaryEndpoint.Address };
            }

            if (owner.Physical.Primary is null)
            {
                DbConnection opened;
                try
                {
                    opened = await OpenAsync(owner, current, async, cancellationToken).ConfigureAwait(false);
                }
                catch (RwSplitException ex) when (ex.Error == RwSplitError.EndpointUnreachable && decision.Reason == RoutingReason.PrimaryCapacity)
                {
                    // A read the primary took for its spare capacity: the replicas can serve it. The primary takes no
                    // reads for a while; the read routes again.
                    current.SkipReadsFor(dataSource.ReplicaRetryDelay);
                    Log.PrimaryReadOpenFailed(dataSource.Logger, current.Address, dataSource.ReplicaRetryDelay, ex.InnerException ?? ex);
                    throw new ReplicaUnavailableException(ex);
                }

                owner.Physical.Primary = opened;
                owner.Physical.PrimaryEndpoint = current;
            }

            return owner.Physical.Primary;
        }

        if (owner.Physical.Replica is not null && owner.Physical.ReplicaIndex == decision.ReplicaIndex)
            return owner.Physical.Replica;
        var endpoint = dataSource.Replicas[decision.ReplicaIndex];
        DbConnection connection;
        try
        {
            connection = await OpenAsync(owner, endpoint, async, cancellationToken).ConfigureAwait(false);
        }
        catch (RwSplitException ex) when (ex.Error == RwSplitError.EndpointUnreachable)
        {
            endpoint.MarkUnreachable(dataSource.ReplicaRetryDelay, ex.InnerException?.Message ?? ex.Message, ErrorKinds.Of(ex));
            owner.Physical.Exclude(decision.ReplicaIndex);
            RwSplitTelemetry.ReplicaFailures.Add(1, new KeyValuePair<string, object?>(TagNames.DataSource, dataSource.Name));
            Log.ReplicaOpenFailed(dataSource.Logger, endpoint.Address, dataSource.ReplicaRetryDelay, ex.InnerException ?? ex);
            throw new ReplicaUnavailableException(ex);
        }

        if (owner.Physical.Replica is { } previous)
            await ProviderIo.DisposeAsync(previous, async).ConfigureAwait(false);
        owner.Physical.Replica = connection;
        owner.Physical.ReplicaIndex = decision.ReplicaIndex;
        return connection;
    }

    private static async ValueTask<DbConnection> OpenAsync(RwSplitConnection owner, Endpoint endpoint, bool async, CancellationToken cancellationToken)
    {
        var dataSource = owner.DataSourceOrThrow;
        var settings = owner.SettingsIfAny;
        using var span = RouteTelemetry.StartOpen(dataSource, endpoint);
        var connection = endpoint.Connector.CreateConnection();
        try
        {
            await ProviderIo.OpenAsync(connection, async, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is DbException or TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            _ = RouteTelemetry.Failed(span, ex);
            await ProviderIo.DisposeAsync(connection, async).ConfigureAwait(false);
            throw new RwSplitException(
                RwSplitError.EndpointUnreachable,
                $"Could not open a connection to the {endpoint.Role.ToString().ToLowerInvariant()} {endpoint.Address} of data source '{dataSource.Name}': {ex.Message} Check that the server is running and reachable, and its connection string in the RwSplit options.",
                ex) { Endpoint = endpoint.Address };
        }

        try
        {
            RwSplitTelemetry.PhysicalOpens.Add(1, new KeyValuePair<string, object?>(TagNames.Role, endpoint.Role == EndpointRole.Primary ? "primary" : "replica"));
            Log.PhysicalOpened(dataSource.Logger, endpoint.Role, endpoint.Address);
            if (settings?.Database is { } database && !string.Equals(connection.Database, database, StringComparison.Ordinal))
                await ProviderIo.ChangeDatabaseAsync(connection, database, async, cancellationToken).ConfigureAwait(false);
            if (settings?.Replay is { } replay)
            {
                try
                {
                    foreach (var text in replay)
                        await RunSessionCommandAsync(connection, text, async, cancellationToken).ConfigureAwait(false);
                }
                catch (DbException ex)
                {
                    // The session's state cannot be rebuilt on this server (a role or setting gone since): the command
                    // fails, naming the server; the log names neither the command nor its values.
                    Log.ReplayFailed(dataSource.Logger, endpoint.Address, ex);
                    throw;
                }
            }
        }
        catch
        {
            await ProviderIo.DisposeAsync(connection, async).ConfigureAwait(false);
            throw;
        }

        return connection;
    }

    /// <summary>
    /// The escape hatch (<see cref="RwSplitConnection.GetPrimaryConnection"/>): the primary's connection (a distributed
    /// transaction's branch inside one), handed to the application. RwSplit cannot see what runs on it: the session is
    /// pinned and counts as written (a branch then commits atomically as a writer). Refused inside PreventWrites.
    /// </summary>
    public readonly ValueTask<DbConnection> HandOverPrimaryAsync(bool async, CancellationToken cancellationToken) => HandOverPrimaryAsync(_owner, async, cancellationToken);

    private static async ValueTask<DbConnection> HandOverPrimaryAsync(RwSplitConnection owner, bool async, CancellationToken cancellationToken)
    {
        if (RwSplitScope.IsPreventWrites)
        {
            throw new RwSplitException(
                RwSplitError.WriteBlocked,
                "A PreventWrites scope refused the provider connection to the primary: whatever runs on it (COPY, bulk copy, any command) cannot be checked. Get it outside the scope.");
        }

        var primary = await owner.GetPhysicalAsync(RoutingDecision.ToPrimary(RoutingReason.PinnedSession), async, cancellationToken).ConfigureAwait(false);
        owner.Settings.Pin("the provider connection to the primary was handed to the application");
        owner.MarkWritten();
        return primary;
    }

    /// <summary>Switches the database of the open physical connections and records it in the session (later ones open in it).</summary>
    public readonly ValueTask ChangeDatabaseAsync(string databaseName, bool async, CancellationToken cancellationToken) => ChangeDatabaseAsync(_owner, databaseName, async, cancellationToken);

    private static async ValueTask ChangeDatabaseAsync(RwSplitConnection owner, string databaseName, bool async, CancellationToken cancellationToken)
    {
        if (owner.Physical.Primary is { } primary)
            await ProviderIo.ChangeDatabaseAsync(primary, databaseName, async, cancellationToken).ConfigureAwait(false);
        if (owner.Physical.Replica is { } replica)
            await ProviderIo.ChangeDatabaseAsync(replica, databaseName, async, cancellationToken).ConfigureAwait(false);
        owner.Settings.Database = databaseName;
    }

    public static async ValueTask RunSessionCommandAsync(DbConnection connection, string text, bool async, CancellationToken cancellationToken)
    {
        var command = connection.CreateCommand();
        await using (command.ConfigureAwait(false))
        {
            command.CommandText = text;
            _ = await ProviderIo.ExecuteNonQueryAsync(command, async, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Runs a session command on the replica's connection, if one is open; a replica that cannot take it is let go.</summary>
    public readonly ValueTask RunOnReplicaOrDropAsync(string text, bool async) => Replica is null ? default : RunOnReplicaOrDropAsync(_owner, text, async);

    private static async ValueTask RunOnReplicaOrDropAsync(RwSplitConnection owner, string text, bool async)
    {
        if (owner.Physical.Replica is not { } replica)
            return;
        try
        {
            await RunSessionCommandAsync(replica, text, async, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is DbException or InvalidOperationException)
        {
            if (ReferenceEquals(owner.Physical.Replica, replica))
                owner.Physical.DropReplica();
            await ProviderIo.DisposeAsync(replica, async).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A statement failed for a reason that is not its server's (a client-side error, a statement error) and the
    /// provider closed its physical connection doing so: forget that connection, so that the session's next command
    /// opens a fresh one (with the session's state replayed) instead of failing, and the endpoint stays in rotation. A
    /// primary connection carrying a transaction or pinned session state is kept: the provider's own error about it
    /// must go on surfacing, as losing that state silently would be worse.
    /// </summary>
    public void ForgetBroken(DbConnection physical)
    {
        if (physical.State == ConnectionState.Open)
            return;
        if (ReferenceEquals(physical, Replica))
            DropReplica();
        else if (ReferenceEquals(physical, Primary) && !_owner.Enlistment.HoldsPrimaryState && _owner.PinnedReason is null)
            DropPrimary();
        else
            return;
        DisposeQuietly(physical);
    }

    /// <summary>A read's replica failed: eject it, drop its connection, and let the read go elsewhere.</summary>
    public ValueTask DiscardReplicaAsync(int index, Exception failure, bool async)
    {
        var dataSource = _owner.DataSourceOrThrow;
        var endpoint = dataSource.Replicas[index];
        endpoint.MarkUnreachable(dataSource.ReplicaRetryDelay, $"{failure.GetType().Name}: {failure.Message}", ErrorKinds.Of(failure));
        Exclude(index);
        Log.ReadRetried(dataSource.Logger, endpoint.Address, failure);
        RwSplitTelemetry.ReadRetries.Add(1, new KeyValuePair<string, object?>(TagNames.DataSource, dataSource.Name));
        if (Replica is not { } broken || ReplicaIndex != index)
            return default;
        DropReplica();
        return DisposeBrokenAsync(broken, async);
    }

    private static async ValueTask DisposeBrokenAsync(DbConnection broken, bool async)
    {
        try
        {
            await ProviderIo.DisposeAsync(broken, async).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // A broken connection may fail to close; it is discarded either way.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    /// <summary>Returns both connections to their pools and forgets them and the exclusions.</summary>
    public ValueTask CloseAsync(bool async)
    {
        var primary = Primary;
        var replica = Replica;
        DropPrimary();
        DropReplica();
        Excluded = 0;
        if (async)
            return DisposeBothAsync(primary, replica);
        try
        {
            primary?.Dispose(); // the sync path without a state machine: Close is called for every logical connection
        }
        finally
        {
            replica?.Dispose();
        }

        return default;
    }

    private static async ValueTask DisposeBothAsync(DbConnection? primary, DbConnection? replica)
    {
        try
        {
            if (primary is not null)
                await primary.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            if (replica is not null)
                await replica.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void DropPrimary()
    {
        Primary = null;
        PrimaryEndpoint = null;
    }

    private void DropReplica()
    {
        Replica = null;
        ReplicaIndex = -1;
    }

    private static void DisposeQuietly(DbConnection connection)
    {
        try
        {
            connection.Dispose();
        }
#pragma warning disable CA1031 // A broken connection may fail to close; it is discarded either way.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }
}

/// <summary>A replica could not be opened; the command routes again without it.</summary>
internal sealed class ReplicaUnavailableException : Exception
{
    public ReplicaUnavailableException(Exception inner)
        : base(inner.Message, inner)
    {
    }
}
