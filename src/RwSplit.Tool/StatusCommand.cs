using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using RwSplit.HealthChecks;
using RwSplit.Topology;

namespace RwSplit.Tool;

/// <summary><c>rwsplit status</c>: every endpoint as the topology monitor sees it, and the exit code of RwSplit's health check.</summary>
internal static class StatusCommand
{
    /// <summary>The JSON document (docs/tool.md).</summary>
    internal sealed record StatusDocument(string Status, int ExitCode, IReadOnlyList<string> Reasons, string CurrentPrimary, double MaxReplicaLagSeconds, IReadOnlyList<EndpointDocument> Endpoints);

    internal sealed record EndpointDocument(
        string Address,
        string Host,
        int? Port,
        string? Database,
        string ConfiguredRole,
        string? ObservedRole,
        bool Current,
        bool Available,
        bool Reachable,
        double? LagSeconds,
        long? LagPosition,
        long? Position,
        double? LatencyMs,
        int ConsecutiveHealthyProbes,
        string? EjectionReason,
        string? LastErrorKind,
        DateTimeOffset? LastProbe);

    public static Command Create(Tool tool)
    {
        var maxLag = new Option<double?>("--max-lag") { Description = "Seconds of replica lag past which a replica counts as lagging (default: the settings file's, else RwSplit's 10)." };
        var command = new Command("status", "Each endpoint: role (configured/observed), availability, lag in time and position, latency, ejection reason. Exit code 0 healthy, 1 degraded, 2 unhealthy, 3 usage or connection error.");
        command.Options.Add(maxLag);
        command.SetAction(tool.Guard((parse, output, cancellationToken) => RunAsync(tool, parse, output, parse.GetValue(maxLag), cancellationToken)));
        return command;
    }

    private static async Task<int> RunAsync(Tool tool, ParseResult parse, Output output, double? maxLagSeconds, CancellationToken cancellationToken)
    {
        var settings = tool.Settings(parse);
        var maxLag = maxLagSeconds is { } s ? TimeSpan.FromSeconds(s) : settings.MaxReplicaLag ?? new RwSplitOptions().MaxReplicaLag;
        await using var dataSource = settings.CreateRoutingDataSource(maxLag);
        await output.ProgressAsync("Probing the endpoints...", async () =>
        {
            await dataSource.RefreshTopologyAsync(cancellationToken); // a completed round: the check judges what it saw
            return 0;
        });

        // The decision is the health check's, the same an application's /health endpoint gives for this data source.
        var topology = dataSource.GetTopology();
        var current = dataSource.CurrentPrimaryAddress;
        var result = await CheckAsync(dataSource, maxLag, cancellationToken);
        var (status, exitCode) = Verdict(result.Status, topology.Any(e => e.IsReachable));
        var reasons = new List<string>(Reasons(result));
        if (exitCode == ExitCodes.UsageOrConnectionError)
            reasons.Insert(0, "no endpoint answered");

        var endpoints = topology.Select(e => new EndpointDocument(
            e.Address.ToString(),
            e.Address.Host,
            e.Address.Port,
            e.Address.Database,
            Role(e.ConfiguredRole),
            e.ObservedRole is { } observed ? Role(observed) : null,
            e.Address.Equals(current),
            e.IsAvailable,
            e.IsReachable,
            e.ReplicationLag is { } lag ? Output.Round(lag.TotalSeconds) : null,
            e.PositionLag,
            e.Position,
            e.Latency is { } latency ? Output.Round(latency.TotalMilliseconds) : null,
            e.ConsecutiveHealthyProbes,
            EjectionReason(e, maxLag),
            e.LastErrorKind,
            e.LastProbe)).ToList();

        if (output.IsJson)
        {
            output.WriteJson(new StatusDocument(status, exitCode, reasons, current.ToString(), Output.Round(maxLag.TotalSeconds), endpoints));
            return exitCode;
        }

        var table = Output.Table("Endpoint", "Role (configured/observed)", "Available", "Lag", "Lag (position)", "Latency", "Ejection reason");
        foreach (var e in endpoints)
        {
            Output.Row(
                table,
                e.Address + (e.Current ? " *" : ""),
                $"{e.ConfiguredRole}/{e.ObservedRole ?? "?"}",
                e.Available ? "yes" : "no",
                e.LagSeconds is { } lag ? Output.Seconds(TimeSpan.FromSeconds(lag)) : "-",
                e.LagPosition?.ToString(CultureInfo.InvariantCulture),
                e.LatencyMs is { } ms ? ms.ToString("0.0", CultureInfo.InvariantCulture) + " ms" : "-",
                e.EjectionReason);
        }

        output.Write(table);
        output.Line("* the primary writes go to now");
        output.Line($"Status: {status}{(reasons.Count == 0 ? "" : Environment.NewLine + string.Join(Environment.NewLine, reasons.Select(r => "  - " + r)))}");
        return exitCode;
    }

    /// <summary>
    /// The status word and exit code of a health check's status: Healthy 0, Degraded 1, Unhealthy 2; whatever the check
    /// says, 3 (<c>unreachable</c>) when no endpoint answered at all.
    /// </summary>
    private static (string Status, int ExitCode) Verdict(HealthStatus status, bool anyEndpointAnswered) => anyEndpointAnswered
        ? status switch
        {
            HealthStatus.Healthy => ("healthy", ExitCodes.Healthy),
            HealthStatus.Degraded => ("degraded", ExitCodes.Degraded),
            _ => ("unhealthy", ExitCodes.Unhealthy),
        }
        : ("unreachable", ExitCodes.UsageOrConnectionError);

    private static Task<HealthCheckResult> CheckAsync(RwSplitDataSource dataSource, TimeSpan maxLag, CancellationToken cancellationToken)
    {
        var check = new RwSplitHealthCheck(dataSource, new RwSplitHealthCheckOptions { MaxReplicaLag = maxLag });
        var context = new HealthCheckContext { Registration = new HealthCheckRegistration("rwsplit", check, HealthStatus.Unhealthy, tags: null) };
        return check.CheckHealthAsync(context, cancellationToken);
    }

    /// <summary>The check's reasons, the worst first (its documented <c>reasons</c> data entry).</summary>
    private static IReadOnlyList<string> Reasons(HealthCheckResult result)
        => result.Data.TryGetValue("reasons", out var reasons) && reasons is IReadOnlyList<string> list ? list : [];

    /// <summary>
    /// Why an endpoint takes no reads now, for the table's column (the status and its reasons are the health check's):
    /// made of the monitor's facts and the error's kind, never of a provider's message.
    /// </summary>
    private static string? EjectionReason(EndpointStatus endpoint, TimeSpan maxReplicaLag)
    {
        if (endpoint.IsAvailable)
            return null;
        if (!endpoint.IsReachable)
            return $"unreachable ({endpoint.LastErrorKind ?? "unknown"})";
        if (endpoint.LastErrorKind is { } kind)
            return kind;
        if (endpoint.ConfiguredRole == EndpointRole.Replica && endpoint.ObservedRole == EndpointRole.Primary)
            return "it reports itself primary (promoted)";
        if (endpoint.ReplicationLag is { } lag && lag > maxReplicaLag)
            return $"lagging {Output.Round(lag.TotalSeconds).ToString(CultureInfo.InvariantCulture)} s, past MaxReplicaLag ({Output.Round(maxReplicaLag.TotalSeconds).ToString(CultureInfo.InvariantCulture)} s)";
        return $"re-admitting ({endpoint.ConsecutiveHealthyProbes} healthy probes so far)";
    }

    private static string Role(EndpointRole role) => role.ToString().ToLowerInvariant();
}
