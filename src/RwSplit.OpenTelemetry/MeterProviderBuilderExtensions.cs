using System;
using RwSplit.Diagnostics;

namespace OpenTelemetry.Metrics;

/// <summary>Adds RwSplit's instruments to an OpenTelemetry meter provider.</summary>
public static class RwSplitMeterProviderBuilderExtensions
{
    /// <summary>
    /// Listens to RwSplit's meter (<c>RwSplit</c>): routing decisions, misroutes, fallbacks, replica lag and
    /// availability, physical opens, distributed transactions and their commit duration (seconds), recovery. Operation
    /// durations of single statements are the provider's own <c>db.client.operation.duration</c>: RwSplit does not
    /// duplicate them.
    /// </summary>
    /// <param name="builder">The meter provider builder.</param>
    /// <returns>The same builder, for chaining.</returns>
    public static MeterProviderBuilder AddRwSplitInstrumentation(this MeterProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddMeter(RwSplitTelemetry.Name);
    }
}
