using System;
using System.Threading.Tasks;
using BenchmarkDotNet.Running;

namespace RwSplit.Benchmarks;

internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length > 0 && string.Equals(args[0], "load", StringComparison.OrdinalIgnoreCase))
            return await LoadCommand.RunAsync(args.AsMemory(1)).ConfigureAwait(false);
        if (args.Length > 0 && string.Equals(args[0], "growth", StringComparison.OrdinalIgnoreCase))
            return await GrowthCommand.RunAsync(args.AsMemory(1)).ConfigureAwait(false);
        if (args.Length > 0 && string.Equals(args[0], "ef", StringComparison.OrdinalIgnoreCase))
            return await EfCommand.RunAsync(args.AsMemory(1)).ConfigureAwait(false);
        if (args.Length > 0 && string.Equals(args[0], "loop", StringComparison.OrdinalIgnoreCase))
            return HotLoop.Run(args[1..]);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
