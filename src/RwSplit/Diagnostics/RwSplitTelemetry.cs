using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Reflection;

namespace RwSplit.Diagnostics;

/// <summary>
/// The library's one <see cref="ActivitySource"/> and one <see cref="Meter"/>, both named <c>RwSplit</c>. Listen to them
/// with OpenTelemetry (<c>AddSource("RwSplit")</c>, <c>AddMeter("RwSplit")</c>) or any listener.
/// </summary>
public static class RwSplitTelemetry
{
    /// <summary>The name of the activity source and of the meter: <c>RwSplit</c>.</summary>
    public const string Name = "RwSplit";

    private static readonly string? Version = typeof(RwSplitTelemetry).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;

    internal static readonly ActivitySource Source = new(Name, Version);

    internal static readonly Meter Meter = new(Name, Version);

    /// <summary>Every routing decision, tagged with target, reason and data source.</summary>
    internal static readonly Counter<long> Decisions = Meter.CreateCounter<long>(
        "rwsplit.routing.decisions", unit: "{decision}", description: "Commands routed, by target role and reason.");

    /// <summary>Statements a replica rejected as writes and that were retried on the primary.</summary>
    internal static readonly Counter<long> Misroutes = Meter.CreateCounter<long>(
        "rwsplit.routing.misroutes", unit: "{statement}", description: "Statements a replica rejected as writes; retried once on the primary and remembered as writes.");

    /// <summary>Replicas skipped because a connection to them could not be opened.</summary>
    internal static readonly Counter<long> ReplicaFailures = Meter.CreateCounter<long>(
        "rwsplit.replica.connection_failures", unit: "{failure}", description: "Failed attempts to open a connection to a replica; the read moved elsewhere.");

    /// <summary>Physical connections opened through the provider, by role.</summary>
    internal static readonly Counter<long> PhysicalOpens = Meter.CreateCounter<long>(
        "rwsplit.connection.physical_opens", unit: "{connection}", description: "Provider connections opened (taken from the provider's pool) by logical connections, by role.");

    /// <summary>Writes refused by a prevent-writes scope.</summary>
    internal static readonly Counter<long> WritesBlocked = Meter.CreateCounter<long>(
        "rwsplit.routing.writes_blocked", unit: "{statement}", description: "Statements refused by a PreventWrites scope before they left the process.");
}
