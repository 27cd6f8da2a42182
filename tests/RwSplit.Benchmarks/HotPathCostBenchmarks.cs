using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using System.Transactions;
using BenchmarkDotNet.Attributes;
using RwSplit.Routing;

namespace RwSplit.Benchmarks;

/// <summary>
/// What the ingredients of one routed execution cost on their own, to explain the decorator path's total: the ambient
/// lookups every command makes (System.Transactions, the RwSplitScope async-locals), the clocks it reads, and a chain
/// of async ValueTask methods completing synchronously, as RwSplitCommand's sync-over-async shape runs them.
/// </summary>
[MemoryDiagnoser]
public class HotPathCostBenchmarks
{
    private int _counter;

    /// <summary>Read twice per command on the primary (session state, then enlistment check), once on a replica.</summary>
    [Benchmark]
    public Transaction? TransactionCurrent() => Transaction.Current;

    /// <summary>The three <see cref="RwSplitScope"/> reads of every command (each an AsyncLocal lookup).</summary>
    [Benchmark]
    public bool RwSplitScope_ThreeReads() => RwSplitScope.IsForcePrimary | RwSplitScope.IsPreventWrites | RwSplitScope.MaxStaleness.HasValue;

    /// <summary>Read by the topology snapshot of every command.</summary>
    [Benchmark]
    public long StopwatchGetTimestamp() => Stopwatch.GetTimestamp();

    /// <summary>The coarse monotonic clock (CLOCK_MONOTONIC_COARSE on Linux): read by every read, for the time of the session's last read.</summary>
    [Benchmark]
    public long EnvironmentTickCount64() => Environment.TickCount64;

    /// <summary>Read by every write (the time of the session's last write).</summary>
    [Benchmark]
    public DateTimeOffset DateTimeOffsetUtcNow() => DateTimeOffset.UtcNow;

    /// <summary>The balancer ticket plus the replica's outstanding-command counter (increment and decrement).</summary>
    [Benchmark]
    public int ThreeInterlockedOperations()
    {
        Interlocked.Increment(ref _counter);
        Interlocked.Increment(ref _counter);
        return Interlocked.Decrement(ref _counter);
    }

    /// <summary>
    /// Six nested async ValueTask methods that complete synchronously and pass a 48-byte struct up, called through
    /// <c>GetAwaiter().GetResult()</c>: the shape of ExecuteScalar → ExecuteAsync → RouteAsync → GetFactsAsync /
    /// GetPhysicalAsync → RunTrackedAsync → RunAsync, without any of their work.
    /// </summary>
    [Benchmark]
    public long AsyncValueTaskChain_SixDeep_Sync() => Level1(false).GetAwaiter().GetResult().A;

    /// <summary>The same work as <see cref="AsyncValueTaskChain_SixDeep_Sync"/> as plain synchronous calls.</summary>
    [Benchmark]
    public long PlainCallChain_SixDeep() => Plain1().A;

    private readonly record struct Payload(long A, long B, long C, object? D, object? E, int F);

    private async ValueTask<Payload> Level1(bool async)
    {
        var route = await Level2(async).ConfigureAwait(false);
        var outcome = await Level5(route, async).ConfigureAwait(false);
        return outcome;
    }

    private async ValueTask<Payload> Level2(bool async)
    {
        var facts = await Level3(async).ConfigureAwait(false);
        var physical = await Level4(async).ConfigureAwait(false);
        return facts with { D = physical };
    }

    private async ValueTask<Payload> Level3(bool async)
    {
        if (async)
            await Task.Yield();
        return new Payload(_counter, 2, 3, null, null, 4);
    }

    private async ValueTask<object> Level4(bool async)
    {
        if (async)
            await Task.Yield();
        return this;
    }

    private async ValueTask<Payload> Level5(Payload route, bool async)
    {
        var result = await Level6(route, async).ConfigureAwait(false);
        return result;
    }

    private async ValueTask<Payload> Level6(Payload route, bool async)
    {
        if (async)
            await Task.Yield();
        return route with { F = route.F + 1 };
    }

    private Payload Plain1()
    {
        var route = Plain2();
        return Plain6(route);
    }

    private Payload Plain2()
    {
        var facts = Plain3();
        return facts with { D = Plain4() };
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private Payload Plain3() => new(_counter, 2, 3, null, null, 4);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private object Plain4() => this;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static Payload Plain6(Payload route) => route with { F = route.F + 1 };
}
