using System;
using System.Collections.Generic;

namespace RwSplit.OperationsTests.WebApi;

/// <summary>A span as OpenTelemetry's console exporter prints it: the fields these tests look at.</summary>
internal sealed record ConsoleSpan(string TraceId, string SpanId, string? ParentSpanId, string Name, string? Source, string? QueryText)
{
    /// <summary>Every complete span block in the output ("Activity.TraceId:" opens one).</summary>
    public static IReadOnlyList<ConsoleSpan> Parse(string output)
    {
        var spans = new List<ConsoleSpan>();
        var blocks = output.Split("Activity.TraceId:", StringSplitOptions.None);
        for (var i = 1; i < blocks.Length; i++)
        {
            var lines = ("Activity.TraceId:" + blocks[i]).Split('\n');
            string? Field(string name)
            {
                foreach (var line in lines)
                {
                    var trimmed = line.Trim();
                    if (trimmed.StartsWith(name + ":", StringComparison.Ordinal))
                        return trimmed[(name.Length + 1)..].Trim();
                }

                return null;
            }

            // "Instrumentation scope (ActivitySource):" is followed by "    Name: <source>".
            string? source = null;
            for (var l = 0; l < lines.Length - 1; l++)
            {
                if (lines[l].Trim().StartsWith("Instrumentation scope (ActivitySource):", StringComparison.Ordinal))
                {
                    var next = lines[l + 1].Trim();
                    source = next.StartsWith("Name:", StringComparison.Ordinal) ? next[5..].Trim() : null;
                    break;
                }
            }

            if (Field("Activity.TraceId") is { } traceId && Field("Activity.SpanId") is { } spanId && Field("Activity.DisplayName") is { } name && source is not null)
                spans.Add(new ConsoleSpan(traceId, spanId, Field("Activity.ParentSpanId"), name, source, Field("db.query.text") ?? Field("db.statement")));
        }

        return spans;
    }
}
