using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using NUnit.Framework;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace RwSplit.OperationsTests.OpenTelemetry;

/// <summary>
/// An OpenTelemetry tracer provider as an application would build it — <c>AddRwSplitInstrumentation()</c>, Npgsql's
/// own source (and, when asked, the SqlClient instrumentation), and the test's source for a root span — exporting every
/// finished span to a list in memory.
/// </summary>
internal sealed class TraceCapture : IDisposable
{
    public const string TestSourceName = "RwSplit.OperationsTests";

    private readonly List<Activity> _exported = [];
    private readonly TracerProvider _provider;

    public TraceCapture(bool sqlClient = false)
    {
        var builder = Sdk.CreateTracerProviderBuilder()
            .AddRwSplitInstrumentation()
            .AddSource("Npgsql")
            .AddSource(TestSourceName);
        if (sqlClient)
            builder.AddSqlClientInstrumentation();
        _provider = builder.AddInMemoryExporter(_exported).Build();
    }

    /// <summary>The test's own source: a root span around what a test does, as an application's request span would be.</summary>
    public static ActivitySource TestSource { get; } = new(TestSourceName);

    /// <summary>The spans exported so far, in the order they ended.</summary>
    public IReadOnlyList<Activity> Spans
    {
        get
        {
            lock (_exported)
                return _exported.ToList();
        }
    }

    /// <summary>The spans of one trace.</summary>
    public IReadOnlyList<Activity> Trace(Activity root) => Spans.Where(s => s.TraceId == root.TraceId).ToList();

    /// <summary>The spans of this name; fails if there is none.</summary>
    public static IReadOnlyList<Activity> Named(IEnumerable<Activity> spans, string name)
    {
        var found = spans.Where(s => s.OperationName == name).ToList();
        Assert.That(found, Is.Not.Empty, () => $"no span {name}; spans: {string.Join(", ", spans.Select(s => s.OperationName).Distinct())}");
        return found;
    }

    /// <summary>The direct children of a span.</summary>
    public static IReadOnlyList<Activity> ChildrenOf(IEnumerable<Activity> spans, Activity parent)
        => spans.Where(s => s.ParentSpanId == parent.SpanId && s.TraceId == parent.TraceId).ToList();

    /// <summary>Every span below a span, at any depth.</summary>
    public static IReadOnlyList<Activity> DescendantsOf(IReadOnlyList<Activity> spans, Activity ancestor)
    {
        var found = new List<Activity>();
        var frontier = new Queue<Activity>([ancestor]);
        while (frontier.TryDequeue(out var parent))
        {
            foreach (var child in ChildrenOf(spans, parent))
            {
                found.Add(child);
                frontier.Enqueue(child);
            }
        }

        return found;
    }

    /// <summary>Every tag value of RwSplit's spans as text, for the checks that no secret or SQL literal is in them.</summary>
    public static IEnumerable<string> RwSplitTagValues(IEnumerable<Activity> spans) => TagValues(spans.Where(s => s.Source.Name == "RwSplit"));

    /// <summary>Every tag value, name, status and event of these spans as text.</summary>
    public static IEnumerable<string> TagValues(IEnumerable<Activity> spans)
        => spans
            .SelectMany(s => s.TagObjects.Select(t => t.Value?.ToString() ?? "").Append(s.DisplayName).Append(s.StatusDescription ?? "")
                .Concat(s.Events.SelectMany(e => e.Tags.Select(t => t.Value?.ToString() ?? "").Append(e.Name))));

    public void Dispose() => _provider.Dispose();
}
