using System;
using System.Data.Common;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using RwSplit.Diagnostics;

namespace RwSplit.Topology;

/// <summary>
/// The background monitor of one data source: every <see cref="RwSplitOptions.HealthCheckInterval"/> it probes every
/// endpoint at once (reachability, role, position, replay lag, latency), ejects and re-admits replicas, and notices a
/// failover (a configured replica that reports itself primary while the configured primary is gone or demoted).
/// </summary>
internal sealed class TopologyMonitor : IAsyncDisposable
{
    private readonly RwSplitDataSource _dataSource;
    private readonly Endpoint[] _endpoints;
    private readonly DbConnection?[] _connections;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _probeTimeout;
    private readonly double _maxLagSeconds;
    private readonly int _readmitAfter;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _round = new(1, 1);
    private readonly TaskCompletionSource _firstRound = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _loop;

    public TopologyMonitor(RwSplitDataSource dataSource, Endpoint[] endpoints, RwSplitOptions options)
    {
        _dataSource = dataSource;
        _endpoints = endpoints;
        _connections = new DbConnection?[endpoints.Length];
        _interval = options.HealthCheckInterval;
        _probeTimeout = TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(2).Ticks, options.HealthCheckInterval.Ticks * 2));
        _maxLagSeconds = options.MaxReplicaLag.TotalSeconds;
        _readmitAfter = options.ReadmitAfterHealthyProbes;
    }

    /// <summary>Completes after the first round of probes.</summary>
    public Task FirstRound => _firstRound.Task;

    public long Rounds { get; private set; }

    /// <summary>When the last round completed (<see cref="Stopwatch"/> timestamp), 0 before the first.</summary>
    public long LastRoundTimestamp { get; private set; }

    /// <summary>How long one probe may take before it counts as failed.</summary>
    public TimeSpan ProbeTimeout => _probeTimeout;

    public void Start() => _loop = Task.Run(RunAsync);

    private async Task RunAsync()
    {
        var token = _stop.Token;
        try
        {
            await LoopAsync(token).ConfigureAwait(false);
        }
        finally
        {
            foreach (var connection in _connections)
            {
                try
                {
                    if (connection is not null)
                        await connection.DisposeAsync().ConfigureAwait(false);
                }
#pragma warning disable CA1031 // The data source may already have disposed the provider's pool.
                catch (Exception)
#pragma warning restore CA1031
                {
                }
            }
        }
    }

    private async Task LoopAsync(CancellationToken token)
    {
        while (!token.IsCancellationRequested)
        {
            try
            {
                await ProbeAllAsync(token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                break;
            }
#pragma warning disable CA1031 // The monitor must outlive any single failure; it logs and tries again next round.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.MonitorRoundFailed(_dataSource.Logger, ex);
            }

            _firstRound.TrySetResult();
            try
            {
                await Task.Delay(_interval, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>Runs one round now (tests, and the first round at start).</summary>
    public async Task ProbeAllAsync(CancellationToken cancellationToken)
    {
        // One round at a time: a round owns the probe connections.
        await _round.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await ProbeRoundAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _round.Release();
        }
    }

    private async Task ProbeRoundAsync(CancellationToken cancellationToken)
    {
        var probes = new Task<ProbeResult>[_endpoints.Length];
        for (var i = 0; i < _endpoints.Length; i++)
            probes[i] = ProbeAsync(i, cancellationToken);
        var results = await Task.WhenAll(probes).ConfigureAwait(false);

        // The primary's position this round: from whichever endpoint now reports itself primary (the current one first).
        var current = _dataSource.CurrentPrimary;
        long? primaryPosition = null;
        var currentIndex = Array.IndexOf(_endpoints, current);
        if (currentIndex >= 0 && results[currentIndex] is { Reached: true, IsReplica: false, Position: { } p })
            primaryPosition = p;

        for (var i = 0; i < _endpoints.Length; i++)
        {
            var endpoint = _endpoints[i];
            var result = results[i];
            var isReplicaEndpoint = endpoint.Role == EndpointRole.Replica;
            double? lag = null;
            long? positionLag = null;
            ProbeOutcome outcome;
            if (!result.Reached)
            {
                outcome = ProbeOutcome.Failed;
            }
            else if (!result.IsReplica)
            {
                outcome = ProbeOutcome.NotAReplica;
            }
            else
            {
                if (primaryPosition is { } primary && result.Position is { } replayed)
                {
                    positionLag = Math.Max(0, primary - replayed);
                    lag = replayed >= primary ? 0 : result.SecondsSinceReplay;
                }
                else
                {
                    lag = result.SecondsSinceReplay;
                }

                outcome = lag > _maxLagSeconds ? ProbeOutcome.Lagging : ProbeOutcome.Healthy;
            }

            var wasAdmitted = endpoint.IsAvailable(long.MaxValue);
            var admitted = endpoint.RecordProbe(result, outcome, lag, positionLag, _readmitAfter, isReplicaEndpoint);
            if (isReplicaEndpoint && wasAdmitted != admitted)
            {
                if (admitted)
                {
                    Log.ReplicaReadmitted(_dataSource.Logger, endpoint.Address, _readmitAfter);
                }
                else
                {
                    RwSplitTelemetry.Ejections.Add(1, new System.Collections.Generic.KeyValuePair<string, object?>(TagNames.DataSource, _dataSource.Name));
                    Log.ReplicaEjected(_dataSource.Logger, endpoint.Address, outcome, lag ?? -1, result.Error ?? "");
                }
            }
        }

        DetectFailover(results);
        Rounds++;
        LastRoundTimestamp = Stopwatch.GetTimestamp();
    }

    private void DetectFailover(ProbeResult[] results)
    {
        var current = _dataSource.CurrentPrimary;
        var currentIndex = Array.IndexOf(_endpoints, current);
        var currentOk = currentIndex >= 0 && results[currentIndex] is { Reached: true, IsReplica: false };
        if (currentOk)
            return;

        // The current primary is gone or demoted: promote the endpoint that reports itself primary, if exactly one does.
        Endpoint? promoted = null;
        for (var i = 0; i < _endpoints.Length; i++)
        {
            if (i == currentIndex || results[i] is not { Reached: true, IsReplica: false })
                continue;
            if (promoted is not null)
            {
                Log.AmbiguousPrimary(_dataSource.Logger, promoted.Address, _endpoints[i].Address);
                return; // two servers claim to be primary: do not guess
            }

            promoted = _endpoints[i];
        }

        if (promoted is not null && _dataSource.ChangePrimary(current, promoted))
            Log.PrimaryChanged(_dataSource.Logger, current.Address, promoted.Address);
    }

    private async Task<ProbeResult> ProbeAsync(int index, CancellationToken cancellationToken)
    {
        var endpoint = _endpoints[index];
        var started = Stopwatch.GetTimestamp();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_probeTimeout);
        try
        {
            var connection = _connections[index];
            if (connection is null || connection.State != System.Data.ConnectionState.Open)
            {
                if (connection is not null)
                    await connection.DisposeAsync().ConfigureAwait(false);
                connection = endpoint.Connector.CreateMonitorConnection();
                _connections[index] = connection;
                await connection.OpenAsync(timeout.Token).ConfigureAwait(false);
            }

            var query = _dataSource.Dialect.Replication?.HealthProbeQuery;
            if (query is null)
                return new ProbeResult(true, endpoint.Role == EndpointRole.Replica, null, null, null, Elapsed(started), Stopwatch.GetTimestamp(), null);

            started = Stopwatch.GetTimestamp(); // latency of the query alone, not of a reconnect
            var command = connection.CreateCommand();
            await using (command.ConfigureAwait(false))
            {
                command.CommandText = query;
                command.CommandTimeout = Math.Max(1, (int)_probeTimeout.TotalSeconds);
                var reader = await command.ExecuteReaderAsync(timeout.Token).ConfigureAwait(false);
                await using (reader.ConfigureAwait(false))
                {
                    if (!await reader.ReadAsync(timeout.Token).ConfigureAwait(false))
                        return ProbeResult.Failed("the health probe returned no row", ErrorKinds.NoRow, Stopwatch.GetTimestamp());
                    var timestamp = Stopwatch.GetTimestamp();
                    return new ProbeResult(
                        true,
                        Convert.ToBoolean(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture),
                        reader.IsDBNull(1) ? null : _dataSource.Dialect.Replication!.ToPosition(reader.GetValue(1)),
                        reader.IsDBNull(2) ? null : Convert.ToDouble(reader.GetValue(2), System.Globalization.CultureInfo.InvariantCulture),
                        reader.IsDBNull(3) ? null : Convert.ToString(reader.GetValue(3), System.Globalization.CultureInfo.InvariantCulture),
                        Elapsed(started),
                        timestamp,
                        null);
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var connection = _connections[index];
            _connections[index] = null;
            if (connection is not null)
            {
                try
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                }
#pragma warning disable CA1031 // Disposing a broken connection may throw; it is gone either way.
                catch (Exception)
#pragma warning restore CA1031
                {
                }
            }

            // The endpoint failed: the application's idle pooled connections to it are likely dead too.
            using (var sibling = endpoint.Connector.CreateConnection())
                _dataSource.ClearPoolOf(sibling); // never throws: a failing clear must not turn the probe's result into an exception
            var error = ex is OperationCanceledException ? $"no answer within {_probeTimeout.TotalSeconds:0.#} s" : $"{ex.GetType().Name}: {ex.Message}";
            return ProbeResult.Failed(error, ErrorKinds.Of(ex), Stopwatch.GetTimestamp());
        }
    }

    private static double Elapsed(long started) => Stopwatch.GetElapsedTime(started).TotalMilliseconds;

    /// <summary>Stops the loop without waiting; the loop closes its connections as it ends.</summary>
    public void Stop() => _stop.Cancel();

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            try
            {
                await _loop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }
}
