// RwSplit with EF Core. Starts local PostgreSQL servers (a primary with two streaming replicas, and a second primary)
// unless RWSPLIT_PG_PRIMARY / RWSPLIT_PG_REPLICAS / RWSPLIT_PG_SECOND_PRIMARY name running ones.
// 1. One DbContext: queries read from replicas, SaveChanges writes to the primary, and a query right after SaveChanges
//    on the same context sees the write. WAL replay is paused on both replicas to make the difference visible.
// 2. Two contexts on two servers (shop and warehouse) in one TransactionScope: committed together, or not at all when
//    the warehouse refuses (a check constraint), through RwSplit's two-phase commit with a durable decision.
using System;
using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using System.Transactions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using RwSplit;
using RwSplit.EfCore;
using RwSplit.EntityFrameworkCore;
using RwSplit.PgCluster;
using RwSplit.PostgreSql;

var stopwatch = Stopwatch.StartNew();
await using var cluster = await LocalPgCluster.StartAsync(new LocalPgClusterOptions { BasePort = 25520 });
Console.WriteLine(cluster.IsExternal ? "Using the servers named by RWSPLIT_PG_*." : $"Started local PostgreSQL: primary :{cluster.Primary.Port}, replicas :{string.Join(", :", cluster.Replicas.Select(r => r.Port))}, second primary :{cluster.SecondPrimary.Port}.");

static string Database(string connectionString, string database) => new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { Database = database }.ConnectionString;

var services = new ServiceCollection();
services.AddReadWriteSplit(o =>
{
    o.UseNpgsql(b => b.MapEnum<OrderStatus>("order_status")); // every endpoint's NpgsqlDataSource maps the enum
    o.Primary = Database(cluster.PrimaryConnectionString, "shop");
    foreach (var replica in cluster.ReplicaConnectionStrings)
        o.Replicas.Add(Database(replica, "shop"));
    o.HealthCheckInterval = TimeSpan.FromMilliseconds(200);
    o.MaxReplicaLag = TimeSpan.FromMinutes(10); // keep the paused replicas in rotation for the demonstration
});
services.AddReadWriteSplit("warehouse", o =>
{
    o.UseNpgsql();
    o.Primary = Database(cluster.SecondPrimaryConnectionString, "warehouse");
});
services.AddDbContextPool<ShopContext>((sp, o) => o.UseNpgsql(n => n.MapEnum<OrderStatus>("order_status")).UseRwSplit(sp));
services.AddDbContext<WarehouseContext>((sp, o) => o.UseNpgsql().UseRwSplit(sp, "warehouse"));
await using var provider = services.BuildServiceProvider();

async Task InScopeAsync(Func<ShopContext, WarehouseContext, Task> work)
{
    await using var scope = provider.CreateAsyncScope();
    await work(scope.ServiceProvider.GetRequiredService<ShopContext>(), scope.ServiceProvider.GetRequiredService<WarehouseContext>());
}

// Database lifecycle runs on each primary, through Npgsql's own connection; the replicas receive it by replication.
await InScopeAsync(async (shop, warehouse) =>
{
    await shop.Database.EnsureDeletedAsync();
    await shop.Database.EnsureCreatedAsync();
    await warehouse.Database.EnsureDeletedAsync();
    await warehouse.Database.EnsureCreatedAsync();
    warehouse.Stock.Add(new StockItem { Sku = "tea", OnHand = 5 });
    await warehouse.SaveChangesAsync();
});
await cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
await Task.Delay(500); // the monitor sees the new database on the replicas
Console.WriteLine("Created the shop (primary and replicas) and the warehouse (second primary) with EnsureCreated.");

Console.WriteLine();
Console.WriteLine("1. One context: reads from replicas, writes to the primary, reads its own writes");
foreach (var replica in cluster.Replicas)
    await replica.PauseReplayAsync();
try
{
    await InScopeAsync(async (shop, _) =>
    {
        shop.Orders.Add(new Order { Customer = "ann", Lines = { new OrderLine { Sku = "tea", Quantity = 1 } } });
        await shop.SaveChangesAsync();
        Console.WriteLine($"   SaveChanges (primary): order {shop.Orders.Local.Single().Id} placed");
        Console.WriteLine($"   same context, next query:           {await shop.Orders.CountAsync()} order(s)   (read-your-writes: the replicas have not replayed it, so the primary answered)");
    });
    await InScopeAsync(async (shop, _) =>
    {
        Console.WriteLine($"   another request's context:          {await shop.Orders.CountAsync()} order(s)   (a replica, replay paused: it has not seen the order yet)");
        Console.WriteLine($"   the same with AsPrimary():          {await shop.Orders.AsPrimary().CountAsync()} order(s)");
        Console.WriteLine($"   WithMaxStaleness(10 s):             {await shop.Orders.WithMaxStaleness(TimeSpan.FromSeconds(10)).CountAsync()} order(s)   (a replica within the bound)");
    });
}
finally
{
    foreach (var replica in cluster.Replicas)
        await replica.ResumeReplayAsync();
}

await cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));
await InScopeAsync(async (shop, _) => Console.WriteLine($"   replay resumed, a replica now has:  {await shop.Orders.CountAsync()} order(s), status {(await shop.Orders.FirstAsync()).Status}"));

Console.WriteLine();
Console.WriteLine("2. Two contexts on two servers in one TransactionScope (RwSplit's two-phase commit)");
async Task<string> PlaceAsync(string customer, int quantity)
{
    try
    {
        using var scope = new TransactionScope(TransactionScopeOption.Required, TransactionScopeAsyncFlowOption.Enabled);
        await InScopeAsync(async (shop, warehouse) =>
        {
            shop.Orders.Add(new Order { Customer = customer, Lines = { new OrderLine { Sku = "tea", Quantity = quantity } } });
            await shop.SaveChangesAsync();
            var tea = await warehouse.Stock.SingleAsync(s => s.Sku == "tea");
            tea.OnHand -= quantity;
            await warehouse.SaveChangesAsync();
        });
        scope.Complete();
        return "committed";
    }
    catch (DbUpdateException ex) when (ex.InnerException is Npgsql.PostgresException { SqlState: "23514" })
    {
        return "refused by the warehouse (stock would go below zero): rolled back on both";
    }
}

Console.WriteLine($"   bob orders 3 tea:  {await PlaceAsync("bob", 3)}");
Console.WriteLine($"   cid orders 4 tea:  {await PlaceAsync("cid", 4)}");
await InScopeAsync(async (shop, warehouse) =>
{
    var customers = await shop.Orders.AsPrimary().OrderBy(o => o.Id).Select(o => o.Customer).ToListAsync();
    var onHand = await warehouse.Stock.Where(s => s.Sku == "tea").Select(s => s.OnHand).SingleAsync();
    Console.WriteLine($"   shop orders: {string.Join(", ", customers)}; warehouse tea on hand: {onHand}   (cid's order is in neither database)");
    if (customers.Contains("cid") || onHand != 2)
        throw new InvalidOperationException("The cross-database commit was not all-or-nothing.");
});

Console.WriteLine();
Console.WriteLine($"Done in {stopwatch.Elapsed.TotalSeconds:0.0} s.");
return 0;
