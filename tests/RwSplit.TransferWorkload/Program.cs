// The child process of the crash tests: runs bank transfers across two PostgreSQL databases until it is killed —
// by the parent at a random moment, or by itself at a named fault point of RwSplit's commit protocol.
//
//   RwSplit.TransferWorkload run --mode rwsplit|npgsql --db1 <cs> --db2 <cs> [--fault <point>] [--seconds N] [--workers N]
//   RwSplit.TransferWorkload compare [--kills N]     (side by side: RwSplit vs plain Npgsql, random kills, one table)
//   RwSplit.TransferWorkload throughput [--seconds 8] [--workers 4] [--rounds 2]   (commit cost vs the baselines)
//   RwSplit.TransferWorkload phases [--transfers 2000]   (where one distributed transfer's time goes, per protocol step)
using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.TransferWorkload;

var command = args.FirstOrDefault() ?? "run";
string? Arg(string name) => args.SkipWhile(a => a != "--" + name).Skip(1).FirstOrDefault();

if (command == "compare")
    return await Comparison.RunAsync(int.Parse(Arg("kills") ?? "40", System.Globalization.CultureInfo.InvariantCulture));
if (command == "throughput")
{
    return await Throughput.RunAsync(
        int.Parse(Arg("seconds") ?? "8", System.Globalization.CultureInfo.InvariantCulture),
        int.Parse(Arg("workers") ?? "4", System.Globalization.CultureInfo.InvariantCulture),
        int.Parse(Arg("rounds") ?? "2", System.Globalization.CultureInfo.InvariantCulture));
}

if (command == "phases")
    return await Phases.RunAsync(int.Parse(Arg("transfers") ?? "2000", System.Globalization.CultureInfo.InvariantCulture));

var mode = Arg("mode") ?? "rwsplit";
var bank = new Bank(Arg("db1") ?? throw new ArgumentException("--db1 is required"), Arg("db2") ?? throw new ArgumentException("--db2 is required"));
var fault = Arg("fault");
var seconds = int.Parse(Arg("seconds") ?? "60", System.Globalization.CultureInfo.InvariantCulture);
var forwardOnly = Arg("direction") == "forward";
var workers = int.Parse(Arg("workers") ?? "1", System.Globalization.CultureInfo.InvariantCulture);

if (fault is not null)
{
    // Die like a crashed container: SIGKILL, no finally blocks, no rollback, connections cut by the kernel.
    RwSplit.Transactions.FaultInjection.Hook = (point, _) =>
    {
        if (point == fault)
            Process.GetCurrentProcess().Kill();
    };
}

using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
Console.WriteLine("ready");
var committed = await bank.RunAsync(mode, stop.Token, () => Console.WriteLine("committed"), forwardOnly, workers);
Console.WriteLine($"done {committed}");
return 0;
