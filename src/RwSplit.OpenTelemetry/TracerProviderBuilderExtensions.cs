using System;
using RwSplit.Diagnostics;

namespace OpenTelemetry.Trace;

/// <summary>Adds RwSplit's spans to an OpenTelemetry tracer provider.</summary>
public static class RwSplitTracerProviderBuilderExtensions
{
    /// <summary>
    /// Listens to RwSplit's activity source (<c>RwSplit</c>): one <c>rwsplit.route</c> span per command execution
    /// (routing, read-your-writes and fallback waits, physical opens, and the provider's own spans inside it), the
    /// phases of distributed commits and the actions of recovery. The provider's client spans come from its own
    /// instrumentation (Npgsql's source <c>Npgsql</c>, SqlClient's); add it too to see them under RwSplit's span.
    /// </summary>
    /// <param name="builder">The tracer provider builder.</param>
    /// <returns>The same builder, for chaining.</returns>
    public static TracerProviderBuilder AddRwSplitInstrumentation(this TracerProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddSource(RwSplitTelemetry.Name);
    }
}
