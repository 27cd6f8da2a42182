using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using System.Transactions;
using Microsoft.EntityFrameworkCore;
using RwSplit.EntityFrameworkCore;
using RwSplit.PostgreSql;
using RwSplit.Transactions;
using RwSplit.TransferWorkload;

namespace RwSplit.EntityFrameworkCoreTests;

/// <summary>
/// The crash tests' workload, run in a child process (this assembly's entry point) so that it can die like a crashed
/// service: it places orders in two databases, one context each, inside one <see cref="TransactionScope"/> (an order
/// with several lines per side, one statement per batch), until it is killed — by the parent at a random moment or by
/// itself (SIGKILL) at a named fault point of RwSplit's commit protocol. Afterwards every reference must be in both
/// databases with all its lines, or in neither.
/// </summary>
public static class OrderWorkload
{
    public const int LinesPerOrder = 3;

    public static async Task<int> Main(string[] args)
    {
        if (args is not ["orders", var first, var second, var fault])
        {
            await Console.Error.WriteLineAsync("usage: orders <first connection string> <second connection string> <fault point or none>");
            return 3;
        }

        if (fault != "none")
        {
            FaultInjection.Hook = (point, _) =>
            {
                if (point == fault)
                    Process.GetCurrentProcess().Kill(); // no finally blocks, no rollback: connections cut by the kernel
            };
        }

        using var recovery = new RwSplitRecovery();
        await using var a = CreateDataSource(first, "orders-1", recovery);
        await using var b = CreateDataSource(second, "orders-2", recovery);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        Console.WriteLine("ready");
        for (var i = 0; !stop.IsCancellationRequested; i++)
        {
            await PlaceAsync(a, b, $"{Environment.ProcessId}-{i}");
            if (i == 0)
                Console.WriteLine("committed");
        }

        return 0;
    }

    /// <summary>Starts the workload in a child process (killed by <see cref="ChildProcess.Kill"/> or by itself at <paramref name="fault"/>).</summary>
    public static ChildProcess Start(string first, string second, string? fault)
        => ChildProcess.StartAssembly(typeof(OrderWorkload).Assembly.Location, ["orders", first, second, fault ?? "none"]);

    public static RwSplitDataSource CreateDataSource(string connectionString, string name, RwSplitRecovery recovery) => RwSplitDataSource.Create(o =>
    {
        o.UseNpgsql(b => b.MapEnum<Mood>("mood"));
        o.Primary = connectionString;
        o.Name = name;
        o.HealthMonitoring = false;
        o.Recovery = recovery;
    });

    public static ShopContext NewContext(RwSplitDataSource dataSource) => new(EfCluster.ShopOptions(dataSource, o => o.MaxBatchSize(1)));

    /// <summary>One order under <paramref name="reference"/> in each database, atomically.</summary>
    public static async Task PlaceAsync(RwSplitDataSource a, RwSplitDataSource b, string reference)
    {
        using var scope = new TransactionScope(TransactionScopeOption.Required, new TransactionOptions { IsolationLevel = IsolationLevel.ReadCommitted, Timeout = TimeSpan.FromSeconds(30) }, TransactionScopeAsyncFlowOption.Enabled);
        foreach (var dataSource in new[] { a, b })
        {
            await using var context = NewContext(dataSource);
            var order = new Order { CustomerId = 1, Reference = reference };
            for (var line = 0; line < LinesPerOrder; line++)
                order.Lines.Add(new OrderLine { Product = $"item {line}", Quantity = line + 1 });
            context.Orders.Add(order);
            await context.SaveChangesAsync();
        }

        scope.Complete();
    }
}
