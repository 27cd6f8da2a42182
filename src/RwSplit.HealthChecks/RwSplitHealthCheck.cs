using System;
using System.Collections.Generic;
using System.Globalization;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using RwSplit.Topology;

namespace RwSplit.HealthChecks;

/// <summary>
/// The health of one <see cref="RwSplitDataSource"/>, read from its topology monitor and its recovery
/// (<see cref="RwSplitDataSource.GetHealth"/>): a probe sends no query to any server. Unhealthy (the registration's
/// failure status) when there is no writable primary or the monitor is stale; Degraded when a replica is ejected or lags
/// past the limit, reads fall back to the primary, a failover happened recently, or recovery left prepared branches
/// unresolved or heuristic outcomes unacknowledged; Healthy otherwise. The description names every reason; the data has
/// the data source's figures and one entry per endpoint, free of secrets. Register it with
/// <c>AddHealthChecks().AddRwSplit()</c>.
/// </summary>
public sealed class RwSplitHealthCheck : IHealthCheck
{
    private readonly RwSplitDataSource _dataSource;
    private readonly RwSplitHealthCheckOptions _options;

    /// <summary>Creates a check of <paramref name="dataSource"/>.</summary>
    /// <param name="dataSource">The data source to check.</param>
    /// <param name="options">The thresholds; <see langword="null"/> derives them all from the data source's options.</param>
    public RwSplitHealthCheck(RwSplitDataSource dataSource, RwSplitHealthCheckOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        _dataSource = dataSource;
        _options = options ?? new RwSplitHealthCheckOptions();
    }

    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var health = _dataSource.GetHealth();
        var verdict = HealthRules.Evaluate(HealthFacts.From(health), HealthThresholds.Resolve(_options, health));
        var status = verdict.Status == HealthStatus.Unhealthy ? context.Registration.FailureStatus : verdict.Status;
        var description = verdict.Reasons.Count == 0
            ? $"Data source '{health.DataSourceName}': primary {health.CurrentPrimary} writable, every replica serving reads."
            : $"Data source '{health.DataSourceName}': {string.Join("; ", verdict.Reasons)}.";
        return Task.FromResult(new HealthCheckResult(status, description, exception: null, Data(health, verdict)));
    }

    private static Dictionary<string, object> Data(DataSourceHealth health, HealthVerdict verdict)
    {
        var data = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["dataSource"] = health.DataSourceName,
            ["monitoring"] = health.MonitoringEnabled,
            ["configuredPrimary"] = health.ConfiguredPrimary.ToString(),
            ["currentPrimary"] = health.CurrentPrimary.ToString(),
            ["completedRounds"] = health.CompletedRounds,
            ["failovers"] = health.Failovers,
            ["fallbackReads"] = health.FallbackReads,
            ["fallbackReadsInFlight"] = health.FallbackReadsInFlight,
            ["unresolvedTransactions"] = health.UnresolvedTransactions.Count,
            ["heuristicOutcomes"] = health.HeuristicOutcomes.Count,
            ["reasons"] = verdict.Reasons,
        };
        AddSeconds(data, "lastRoundSecondsAgo", health.SinceLastRound);
        AddSeconds(data, "lastFailoverSecondsAgo", health.SinceLastFailover);
        AddSeconds(data, "lastFallbackReadSecondsAgo", health.SinceLastFallbackRead);
        var replica = 0;
        foreach (var endpoint in health.Endpoints)
        {
            var key = endpoint.ConfiguredRole == EndpointRole.Primary ? "primary" : "replica" + (replica++).ToString(CultureInfo.InvariantCulture);
            data[key] = Endpoint(endpoint);
        }

        return data;
    }

    private static Dictionary<string, object> Endpoint(EndpointStatus endpoint)
    {
        // LastError is left out on purpose: a provider's message may name users or hosts; its kind carries no message text.
        var entry = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["address"] = endpoint.Address.ToString(),
            ["configuredRole"] = endpoint.ConfiguredRole.ToString(),
            ["available"] = endpoint.IsAvailable,
            ["reachable"] = endpoint.IsReachable,
        };
        if (endpoint.ObservedRole is { } observed)
            entry["observedRole"] = observed.ToString();
        AddSeconds(entry, "lagSeconds", endpoint.ReplicationLag);
        if (endpoint.PositionLag is { } positionLag)
            entry["positionLag"] = positionLag;
        if (endpoint.Position is { } position)
            entry["position"] = position;
        if (endpoint.Latency is { } latency)
            entry["latencyMs"] = Math.Round(latency.TotalMilliseconds, 3);
        if (endpoint.LastErrorKind is { } kind)
            entry["lastErrorKind"] = kind;
        if (endpoint.LastProbe is { } probed)
            entry["lastProbe"] = probed.ToString("O", CultureInfo.InvariantCulture);
        return entry;
    }

    private static void AddSeconds(Dictionary<string, object> data, string key, TimeSpan? value)
    {
        if (value is { } v)
            data[key] = Math.Round(v.TotalSeconds, 3);
    }
}
