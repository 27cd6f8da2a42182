using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Topology;

namespace RwSplit.Tool;

/// <summary><c>rwsplit status</c>: every endpoint as the topology monitor sees it, and the exit code of the health rule.</summary>
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
            await dataSource.RefreshTopologyAsync(cancellationToken);
            return 0;
        });
        var topology = dataSource.GetTopology();
        var current = dataSource.CurrentPrimaryAddress;
        var (level, reasons) = HealthRule.Evaluate(topology, current, maxLag);
        var exitCode = topology.Any(e => e.IsReachable) ? (int)level : ExitCodes.UsageOrConnectionError;
        var status = exitCode == ExitCodes.UsageOrConnectionError ? "unreachable" : level.ToString().ToLowerInvariant();
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
            HealthRule.EjectionReason(e, maxLag),
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
                e.LagPosition?.ToString(System.Globalization.CultureInfo.InvariantCulture),
                e.LatencyMs is { } ms ? ms.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) + " ms" : "-",
                e.EjectionReason);
        }

        output.Write(table);
        output.Line("* the primary writes go to now");
        output.Line($"Status: {status}{(reasons.Count == 0 ? "" : Environment.NewLine + string.Join(Environment.NewLine, reasons.Select(r => "  - " + r)))}");
        return exitCode;
    }

    private static string Role(EndpointRole role) => role.ToString().ToLowerInvariant();
}
