using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;
using System.Linq;

namespace RwSplit.Benchmarks;

/// <summary>
/// <c>loop &lt;path&gt; [seconds] [--types]</c>: runs one decorator path over the in-memory provider in a tight loop, for
/// a profiler to attach to (<c>perf record</c>, see docs/benchmarks.md), and prints ns and bytes per operation; with
/// <c>--types</c>, which types those bytes are, from the runtime's allocation sampling (one event per ~100 KB).
/// Paths: read, write, read-async, read-async-yielding, read-task (the async read's task consumed as BenchmarkDotNet
/// does), open-close, open-command-close, open-execute-close, raw-open-execute-close.
/// </summary>
internal static class HotLoop
{
    public static int Run(string[] args)
    {
        var path = args.Length > 0 ? args[0] : "read";
        var seconds = args.Length > 1 && double.TryParse(args[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var s) ? s : 10;
        var yielding = path.EndsWith("-yielding", StringComparison.Ordinal);
        using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(yielding ? InMemoryDialect.Yielding : InMemoryDialect.Instance);
            o.Primary = "Server=primary";
            o.Replicas.Add("Server=replica1");
            o.Replicas.Add("Server=replica2");
            o.HealthMonitoring = false;
        });
        using var connection = dataSource.OpenConnection();
        using var command = connection.CreateCommand();
        command.CommandText = path == "write" ? Statements.PgShortWrite : Statements.PgShortRead;

        Action operation = path switch
        {
            "read" => () => command.ExecuteScalar(),
            "write" => () => command.ExecuteNonQuery(),
            "read-async" or "read-async-yielding" => () => command.ExecuteScalarAsync().GetAwaiter().GetResult(),
            "open-execute-close" => () =>
            {
                using var c = dataSource.OpenConnection();
                using var k = c.CreateCommand();
                k.CommandText = Statements.PgShortRead;
                k.ExecuteScalar();
            },
            "read-task" => () => Consume(command.ExecuteScalarAsync()),
            "open-close" => () =>
            {
                using var c = dataSource.OpenConnection();
            },
            "open-command-close" => () =>
            {
                using var c = dataSource.OpenConnection();
                using var k = c.CreateCommand();
                k.CommandText = Statements.PgShortRead;
            },
            "raw-open-execute-close" => () =>
            {
                using DbConnection c = new InMemoryConnection("primary");
                c.Open();
                using var k = c.CreateCommand();
                k.CommandText = Statements.PgShortRead;
                k.ExecuteScalar();
            },
            _ => throw new ArgumentException($"Unknown path '{path}'.", nameof(args)),
        };

        for (var i = 0; i < 100_000; i++)
            operation(); // tiered compilation reaches its optimized code before the measurement
        using var listener = args.Contains("--types") ? new AllocationSampler() : null;
        long operations = 0;
        var stopwatch = Stopwatch.StartNew();
        var before = GC.GetAllocatedBytesForCurrentThread();
        while (stopwatch.Elapsed.TotalSeconds < seconds)
        {
            for (var i = 0; i < 10_000; i++)
                operation();
            operations += 10_000;
        }

        var bytes = (double)(GC.GetAllocatedBytesForCurrentThread() - before) / operations;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{path}: {stopwatch.Elapsed.TotalNanoseconds / operations:0.0} ns/op, {bytes:0.0} B/op, last decision {command.LastDecision}"));
        if (listener is not null)
        {
            var sampled = listener.Bytes.Values.Sum();
            foreach (var (type, amount) in listener.Bytes.OrderByDescending(kv => kv.Value).Where(kv => kv.Value * 100 >= sampled))
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  ~{bytes * amount / sampled,6:0} B/op  {type}"));
        }

        return 0;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void Consume(System.Threading.Tasks.Task<object?> task)
    {
        if (!task.IsCompletedSuccessfully)
            task.GetAwaiter().GetResult();
    }

    /// <summary>Counts the runtime's AllocationTick events (GC keyword, verbose) by type.</summary>
    private sealed class AllocationSampler : EventListener
    {
        public Dictionary<string, long> Bytes { get; } = new(StringComparer.Ordinal);

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
                EnableEvents(eventSource, EventLevel.Verbose, (EventKeywords)0x1);
        }

        protected override void OnEventWritten(EventWrittenEventArgs eventData)
        {
            if (eventData.EventName?.StartsWith("GCAllocationTick", StringComparison.Ordinal) != true || eventData.Payload is null || eventData.PayloadNames is null)
                return;
            var type = eventData.Payload[eventData.PayloadNames.IndexOf("TypeName")] as string ?? "?";
            var index = eventData.PayloadNames.IndexOf("AllocationAmount64");
            var amount = index >= 0 ? Convert.ToInt64(eventData.Payload[index], CultureInfo.InvariantCulture) : 100_000;
            lock (Bytes)
                Bytes[type] = Bytes.GetValueOrDefault(type) + amount;
        }
    }
}
