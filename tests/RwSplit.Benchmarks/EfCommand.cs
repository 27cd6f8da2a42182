using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Npgsql;
using RwSplit.EntityFrameworkCore;
using RwSplit.PgCluster;
using RwSplit.PostgreSql;

namespace RwSplit.Benchmarks;

/// <summary>
/// <c>ef [--queries 5000]</c>: what RwSplit's EF Core integration costs per query, on the local primary and two
/// replicas (ports 25450–25452, no CPU quota): one point query per pooled context lease (as a web request), EF Core
/// over raw Npgsql (on the primary, and on a replica: the same work RwSplit sends there), over RwSplit, and over RwSplit
/// with <c>WithMaxStaleness</c> (the tag its command interceptor reads; raw Npgsql with the same tag shows EF's own share)
/// the same bound as a scope (no tag: the routing path alone), and <c>AsPrimary</c>. The variants take
/// turns query by query, each round starting at the next variant, so that neither the machine's drift nor the order
/// falls on one of them.
/// </summary>
internal static class EfCommand
{
    public static async Task<int> RunAsync(ReadOnlyMemory<string> arguments)
    {
        var args = arguments.ToArray();
        var queries = 5000;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--queries" && i + 1 < args.Length)
            {
                queries = int.Parse(args[++i], CultureInfo.InvariantCulture);
            }
            else
            {
                Console.Error.WriteLine($"Unknown argument '{args[i]}'. Usage: ef [--queries n]");
                return 2;
            }
        }

        await using var cluster = await LocalPgCluster.StartAsync(new LocalPgClusterOptions { BasePort = LoadCommand.BasePort, StartSecondPrimary = false, ReplicaCount = 2 }).ConfigureAwait(false);
        await using (var primary = new NpgsqlConnection(cluster.PrimaryConnectionString))
        {
            await primary.OpenAsync().ConfigureAwait(false);
            await using var create = new NpgsqlCommand(
                "DROP TABLE IF EXISTS ef_items; CREATE TABLE ef_items (id int PRIMARY KEY, name text NOT NULL); INSERT INTO ef_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g",
                primary);
            await create.ExecuteNonQueryAsync().ConfigureAwait(false);
        }

        await cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        await using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseNpgsql();
            o.Name = "ef-bench";
            o.Primary = cluster.PrimaryConnectionString;
            foreach (var replica in cluster.ReplicaConnectionStrings)
                o.Replicas.Add(replica);
        });
        await dataSource.RefreshTopologyAsync().ConfigureAwait(false);

        var onPrimary = new PooledDbContextFactory<ItemsContext>(new DbContextOptionsBuilder<ItemsContext>().UseNpgsql(cluster.PrimaryConnectionString).Options);
        var onReplica = new PooledDbContextFactory<ItemsContext>(new DbContextOptionsBuilder<ItemsContext>().UseNpgsql(cluster.ReplicaConnectionStrings[0]).Options);
        var throughRwSplit = new PooledDbContextFactory<ItemsContext>(new DbContextOptionsBuilder<ItemsContext>().UseNpgsql().UseRwSplit(dataSource).Options);
        var variants = new (string Name, Func<int, Task<string?>> Query)[]
        {
            ("EF Core on raw Npgsql, the primary", id => FindAsync(onPrimary, q => q, id)),
            ("EF Core on raw Npgsql, a replica", id => FindAsync(onReplica, q => q, id)),
            ("EF Core on raw Npgsql, a replica, with the same tag (TagWith)", id => FindAsync(onReplica, q => q.TagWith("rwsplit:max-staleness=00:00:05"), id)),
            ("EF Core through RwSplit (reads on the replicas)", id => FindAsync(throughRwSplit, q => q, id)),
            ("EF Core through RwSplit, TagWith(\"report\") (a tag RwSplit ignores)", id => FindAsync(throughRwSplit, q => q.TagWith("report"), id)),
            ("EF Core through RwSplit, WithMaxStaleness(5 s)", id => FindAsync(throughRwSplit, q => q.WithMaxStaleness(TimeSpan.FromSeconds(5)), id)),
            ("EF Core through RwSplit, inside RwSplitScope.AllowStaleness(5 s) (no tag)", async id =>
            {
                using (RwSplit.Routing.RwSplitScope.AllowStaleness(TimeSpan.FromSeconds(5)))
                    return await FindAsync(throughRwSplit, q => q, id).ConfigureAwait(false);
            }),
            ("EF Core through RwSplit, AsPrimary()", id => FindAsync(throughRwSplit, q => q.AsPrimary(), id)),
        };

        var ticks = new long[variants.Length];
        for (var i = -500; i < queries; i++)
        {
            var id = 1 + (Math.Abs(i) % 1000);
            for (var k = 0; k < variants.Length; k++)
            {
                var v = (k + i + variants.Length * 1000) % variants.Length; // each query starts the round at another variant: no variant always follows the same one
                var start = Stopwatch.GetTimestamp();
                var name = await variants[v].Query(id).ConfigureAwait(false);
                if (i >= 0)
                    ticks[v] += Stopwatch.GetTimestamp() - start;
                if (name != "item " + id.ToString(CultureInfo.InvariantCulture))
                    throw new InvalidOperationException($"{variants[v].Name} read '{name}' for item {id}.");
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{queries} point queries per variant, one pooled context lease each, the variants taking turns query by query"));
        Console.WriteLine();
        Console.WriteLine("| variant | µs per query | vs EF Core on raw Npgsql, a replica |");
        Console.WriteLine("|---|---:|---:|");
        double Mean(int v) => ticks[v] * 1e6 / Stopwatch.Frequency / queries;
        for (var v = 0; v < variants.Length; v++)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {variants[v].Name} | {Mean(v):0.0} | {Mean(v) / Mean(1):0.000} |"));
        return 0;
    }

    private static async Task<string?> FindAsync(PooledDbContextFactory<ItemsContext> factory, Func<IQueryable<EfItem>, IQueryable<EfItem>> shape, int id)
    {
        var context = await factory.CreateDbContextAsync().ConfigureAwait(false);
        await using (context.ConfigureAwait(false))
            return await shape(context.Items.AsNoTracking()).Where(i => i.Id == id).Select(i => i.Name).FirstOrDefaultAsync().ConfigureAwait(false);
    }

    /// <summary>A row of <c>ef_items</c>.</summary>
    public sealed class EfItem
    {
        public int Id { get; set; }

        public string Name { get; set; } = "";
    }

    /// <summary>The benchmark's model: one table.</summary>
    public sealed class ItemsContext(DbContextOptions<ItemsContext> options) : DbContext(options)
    {
        public DbSet<EfItem> Items => Set<EfItem>();

        protected override void OnModelCreating(ModelBuilder modelBuilder)
            => modelBuilder.Entity<EfItem>(e =>
            {
                e.ToTable("ef_items");
                e.Property(i => i.Id).HasColumnName("id");
                e.Property(i => i.Name).HasColumnName("name");
            });
    }
}
