// RwSplit demo, both halves of the product. Starts local PostgreSQL servers (a primary with two streaming replicas and
// an independent second primary) unless RWSPLIT_PG_PRIMARY / RWSPLIT_PG_REPLICAS / RWSPLIT_PG_SECOND_PRIMARY name
// running ones.
// 1. Read/write splitting: a small mixed workload through one RwSplitDataSource; prints where each kind of statement went
//    and why, with counts per server. Every statement also reports the port of the server that really ran it
//    (inet_server_port()), and the demo checks it against RwSplit's routing decision.
// 2. Atomic commits across two databases: bank transfers between the two primaries under TransactionScope, in a worker
//    process killed (SIGKILL) in the middle of its commits, again and again; through RwSplit with recovery after each
//    kill, then through plain Npgsql (its own two-phase commit, no decision log). Prints both totals.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using RwSplit;
using RwSplit.PgCluster;
using RwSplit.PostgreSql;
using RwSplit.Routing;
using RwSplit.TransferWorkload;

var stopwatch = Stopwatch.StartNew();
Console.WriteLine("RwSplit demo: read/write splitting over PostgreSQL streaming replication");
Console.WriteLine();

await using var cluster = await LocalPgCluster.StartAsync();

// Ctrl+C or SIGTERM ends the process without running finally blocks: stop the servers this run started first (the
// worker processes of part 2 get the terminal's Ctrl+C too, and end by themselves within 30 s otherwise).
void StopServers(PosixSignalContext _) => cluster.DisposeAsync().AsTask().GetAwaiter().GetResult();
using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, StopServers);
using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, StopServers);
Console.WriteLine(cluster.IsExternal
    ? "Using the servers named by RWSPLIT_PG_PRIMARY / RWSPLIT_PG_REPLICAS."
    : $"Started local PostgreSQL: primary :{cluster.Primary.Port}, replicas :{string.Join(", :", cluster.Replicas.Select(r => r.Port))} ({stopwatch.Elapsed.TotalSeconds:0.0} s).");

var services = new ServiceCollection()
    .AddLogging(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning))
    .AddReadWriteSplit(o =>
    {
        o.UseNpgsql();
        o.Primary = cluster.PrimaryConnectionString;
        foreach (var replica in cluster.ReplicaConnectionStrings)
            o.Replicas.Add(replica);
    });
await using var provider = services.BuildServiceProvider();
var dataSource = provider.GetRequiredService<RwSplitDataSource>();

var names = new Dictionary<int, string>();
int PortOf(RoutingDecision d) => d.Target == RouteTarget.Primary
    ? dataSource.PrimaryAddress.Port ?? 5432
    : dataSource.ReplicaAddresses[d.ReplicaIndex].Port ?? 5432;
names[dataSource.PrimaryAddress.Port ?? 5432] = $"primary  {dataSource.PrimaryAddress}";
for (var i = 0; i < dataSource.ReplicaAddresses.Count; i++)
    names[dataSource.ReplicaAddresses[i].Port ?? 5432] = $"replica{i + 1} {dataSource.ReplicaAddresses[i]}";

var rows = new Dictionary<(string Kind, string Server, string Reason), int>();
var perServer = new Dictionary<string, int>();
var mismatches = 0;

async Task<int> Run(RwSplitConnection connection, string kind, string sql, Action<RwSplitCommand>? setup = null)
{
    await using var command = connection.CreateCommand();
    command.CommandText = sql;
    setup?.Invoke(command);
    var ranOn = Convert.ToInt32(await command.ExecuteScalarAsync());
    var decision = command.LastDecision!.Value;
    var server = names.TryGetValue(ranOn, out var n) ? n : $"port {ranOn}";
    var key = (kind, server, decision.Reason.ToString());
    lock (rows) // requests run concurrently
    {
        if (ranOn != PortOf(decision))
            mismatches++;
        rows[key] = rows.GetValueOrDefault(key) + 1;
        perServer[server] = perServer.GetValueOrDefault(server) + 1;
    }

    return ranOn;
}

// Schema: DDL is a write, so it runs on the primary.
await using (var setup = await dataSource.OpenConnectionAsync())
{
    await using var ddl = setup.CreateCommand();
    ddl.CommandText = """
        DROP TABLE IF EXISTS demo_orders;
        CREATE TABLE demo_orders (id serial PRIMARY KEY, customer text NOT NULL, amount numeric(10,2) NOT NULL, written_on int NOT NULL);
        INSERT INTO demo_orders (customer, amount, written_on) SELECT 'customer ' || (g % 10), g, inet_server_port() FROM generate_series(1, 200) g;
        DROP SEQUENCE IF EXISTS demo_invoice_no; CREATE SEQUENCE demo_invoice_no;
        """;
    await ddl.ExecuteNonQueryAsync();
}

await cluster.WaitForReplicasToCatchUpAsync(TimeSpan.FromSeconds(30));

// The workload: 8 concurrent "requests", each on its own logical connection, as a web app would.
var random = new Random(42);
var requests = Enumerable.Range(0, 80).Select(async i =>
{
    await using var connection = await dataSource.OpenConnectionAsync();
    switch (i % 8)
    {
        case 0: // a page view: reads only
            await Run(connection, "point read (SELECT by key)", $"SELECT inet_server_port() FROM demo_orders WHERE id = {1 + (i * 7 % 200)}");
            await Run(connection, "report (aggregate, stable functions)", "SELECT inet_server_port() FROM (SELECT customer, sum(amount), lower(customer), now() FROM demo_orders GROUP BY customer) r LIMIT 1");
            break;
        case 1: // a checkout: write, then read back
            await Run(connection, "INSERT ... RETURNING", $"INSERT INTO demo_orders (customer, amount, written_on) VALUES ('web {i}', {i}, inet_server_port()) RETURNING written_on");
            await Run(connection, "read after own write (read-your-writes)", "SELECT inet_server_port() FROM demo_orders ORDER BY id DESC LIMIT 1");
            break;
        case 2: // a transaction with a locking read
            await using (var tx = await connection.BeginTransactionAsync())
            {
                await Run(connection, "SELECT ... FOR UPDATE in a transaction", "SELECT inet_server_port() FROM demo_orders WHERE id = 1 FOR UPDATE");
                await Run(connection, "UPDATE in the transaction", "UPDATE demo_orders SET amount = amount + 1 WHERE id = 1 RETURNING inet_server_port()");
                await tx.CommitAsync();
            }

            break;
        case 3: // sequences are writes
            await Run(connection, "SELECT nextval() (sequence)", "SELECT nextval('demo_invoice_no') * 0 + inet_server_port()");
            break;
        case 4: // temp tables pin the session
            await Run(connection, "CREATE TEMP TABLE (pins session)", "CREATE TEMP TABLE scratch AS SELECT inet_server_port() AS p; SELECT p FROM scratch");
            await Run(connection, "read on a pinned session", "SELECT inet_server_port()");
            break;
        case 5: // explicit overrides
            await Run(connection, "read with /* rwsplit:primary */ hint", "/* rwsplit:primary */ SELECT inet_server_port()");
            using (RwSplitScope.ForcePrimary())
                await Run(connection, "read in ForcePrimary scope", "SELECT inet_server_port()");
            break;
        case 6: // eventual consistency for a dashboard
            connection.Consistency = ReadConsistency.Eventual;
            await Run(connection, "DELETE (write)", $"WITH gone AS (DELETE FROM demo_orders WHERE customer = 'nobody {i}' RETURNING id) SELECT inet_server_port()");
            await Run(connection, "read after write, Eventual", "SELECT inet_server_port() FROM demo_orders LIMIT 1");
            break;
        default: // a guarded read-only code path
            using (RwSplitScope.PreventWrites())
            {
                await Run(connection, "read in PreventWrites scope", "SELECT inet_server_port()");
                try
                {
                    await Run(connection, "never sent", "DELETE FROM demo_orders");
                }
                catch (RwSplitException ex) when (ex.Error == RwSplitError.WriteBlocked)
                {
                    var key = ("DELETE in PreventWrites scope", "(refused in process)", "WriteBlocked");
                    lock (rows)
                        rows[key] = rows.GetValueOrDefault(key) + 1;
                }
            }

            break;
    }
});

// Run the requests 8 at a time.
foreach (var batch in requests.Chunk(8))
    await Task.WhenAll(batch);

Console.WriteLine();
Console.WriteLine($"{"Statement",-42} {"Ran on",-32} {"Reason",-22} {"Count",5}");
Console.WriteLine(new string('-', 104));
foreach (var ((kind, server, reason), count) in rows.OrderBy(r => r.Key.Kind, StringComparer.Ordinal))
    Console.WriteLine($"{kind,-42} {server,-32} {reason,-22} {count,5}");

Console.WriteLine();
Console.WriteLine("Statements per server:");
foreach (var (server, count) in perServer.OrderBy(p => p.Key, StringComparer.Ordinal))
    Console.WriteLine($"  {server,-40} {count,5}");

Console.WriteLine();
Console.WriteLine("Topology as the health monitor sees it:");
await dataSource.RefreshTopologyAsync();
foreach (var status in dataSource.GetTopology())
    Console.WriteLine($"  {status}");

Console.WriteLine();
var routingShown = mismatches == 0
    ? "Every statement ran on the server RwSplit chose (checked with inet_server_port())."
    : $"{mismatches} statement(s) ran somewhere other than RwSplit's decision!";
Console.WriteLine(routingShown);

// Part 2: the same transfer workload through RwSplit and through plain Npgsql, each killed mid-commit. The routing data
// source goes first: it shares the primary's database, and its own recovery would meet the transfer branches there,
// whose decisions live on the second primary, which only the recovery of the bank's data sources knows.
await provider.DisposeAsync();
Console.WriteLine();
Console.WriteLine("Atomic commits across two databases, with the process killed in the middle of its commits");
Console.WriteLine(new string('-', 104));
if (!cluster.HasSecondPrimary)
{
    Console.WriteLine("Skipped: no second primary (set RWSPLIT_PG_SECOND_PRIMARY next to RWSPLIT_PG_PRIMARY).");
    Console.WriteLine($"Done in {stopwatch.Elapsed.TotalSeconds:0.0} s.");
    return mismatches == 0 ? 0 : 1;
}

var bank = new Bank(cluster.PrimaryConnectionString, cluster.SecondPrimaryConnectionString);
var kills = new KillRunOptions { Kills = 10, Workers = Bank.AccountsPerDatabase, MaxDelayAfterFirstCommit = TimeSpan.FromMilliseconds(250), RollBackNpgsqlOrphansAfterEachKill = true };
Console.WriteLine($"Transfers move money between {Bank.AccountsPerDatabase} accounts on {cluster.Primary} and {Bank.AccountsPerDatabase} on {cluster.SecondPrimary}, each inside one");
Console.WriteLine($"TransactionScope; the total is {Bank.ExpectedTotal} unless a transfer commits on one side only. A worker process runs {kills.Workers}");
Console.WriteLine($"transfers at a time and is killed (SIGKILL) 0-{kills.MaxDelayAfterFirstCommit.TotalMilliseconds:0} ms after its first commit, {kills.Kills} times per workload.");
Console.WriteLine();
var results = new List<KillRunResult>();
foreach (var mode in new[] { "rwsplit", "npgsql" })
{
    Console.Write(mode == "rwsplit" ? "  RwSplit, recovery after each kill: " : "  plain Npgsql (Enlist=true):        ");
    results.Add(await Comparison.RunKillsAsync(bank, mode, kills, _ => Console.Write('x')));
    Console.WriteLine($" {results[^1].Elapsed.TotalSeconds:0.0} s");
}

var (viaRwSplit, viaNpgsql) = (results[0], results[1]);
Console.WriteLine();
Console.WriteLine($"{"Workload",-42} {"Kills",5} {"Total",7} {"Drift",6} {"Prepared left",14}  After the kills");
Console.WriteLine(new string('-', 104));
Console.WriteLine($"{"RwSplit (TransactionScope)",-42} {viaRwSplit.Kills,5} {viaRwSplit.Total,7} {viaRwSplit.Drift,6:+0;-0;0} {viaRwSplit.PreparedLeft,14}  recovery resolved {viaRwSplit.Recovered} branch(es) from the decision log, {viaRwSplit.Unresolved} unresolved");
Console.WriteLine($"{"plain Npgsql (TransactionScope, its 2PC)",-42} {viaNpgsql.Kills,5} {viaNpgsql.Total,7} {viaNpgsql.Drift,6:+0;-0;0} {viaNpgsql.PreparedLeft,14}  {viaNpgsql.Recovered} orphaned prepared transaction(s), no decision to follow: rolled back by guess");
await Bank.RollbackAllPreparedAsync(bank.Database1);
await Bank.RollbackAllPreparedAsync(bank.Database2);

var atomic = viaRwSplit.Drift == 0 && viaRwSplit.PreparedLeft == 0 && viaRwSplit.Unresolved == 0;
Console.WriteLine();
Console.WriteLine("What this showed:");
Console.WriteLine($"  Routing: {routingShown}");
Console.WriteLine(atomic
    ? $"  RwSplit: total exact ({viaRwSplit.Total}) after {viaRwSplit.Kills} kills mid-commit, nothing left prepared."
    : $"  RwSplit: total {viaRwSplit.Total}, {viaRwSplit.PreparedLeft} prepared left, {viaRwSplit.Unresolved} unresolved after {viaRwSplit.Kills} kills: atomicity was LOST!");
Console.WriteLine(viaNpgsql.Drift != 0
    ? $"  Plain Npgsql: total drifted by {viaNpgsql.Drift:+0;-0} after {viaNpgsql.Kills} kills (transfers committed on one server only)."
    : $"  Plain Npgsql: no drift this time ({viaNpgsql.Kills} kills, {viaNpgsql.Recovered} orphaned prepared transaction(s)): the kills missed the window between its two commits.");
Console.WriteLine($"Done in {stopwatch.Elapsed.TotalSeconds:0.0} s.");
return mismatches == 0 && atomic ? 0 : 1;
