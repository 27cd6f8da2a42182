using System;
using System.Diagnostics;
using System.IO;
using System.Threading.Tasks;
using NUnit.Framework;

namespace RwSplit.EntityFrameworkCoreTests;

/// <summary>The sample <c>samples/RwSplit.EfCore</c> runs (on servers it starts itself) and checks its own result.</summary>
[TestFixture]
public sealed class SampleTests
{
    [Test]
    [CancelAfter(180_000)]
    public async Task The_EF_Core_sample_runs_and_its_cross_database_order_is_all_or_nothing()
    {
        // .../tests/RwSplit.EntityFrameworkCoreTests/bin/<Configuration>/<TargetFramework>/ → .../samples/RwSplit.EfCore/bin/<Configuration>/<TargetFramework>/
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var root = output.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
        var sample = Path.Combine(root, "samples", "RwSplit.EfCore", "bin", output.Parent.Name, output.Name, "RwSplit.EfCore.dll");
        Assert.That(File.Exists(sample), Is.True, $"the sample is built by this project's reference: {sample}");

        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var info = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(sample);
        foreach (var variable in new[] { "RWSPLIT_PG_PRIMARY", "RWSPLIT_PG_REPLICAS", "RWSPLIT_PG_SECOND_PRIMARY" })
            info.Environment.Remove(variable); // the sample starts servers of its own, on its own ports
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        TestContext.Out.WriteLine(await stdout);
        Assert.That(process.ExitCode, Is.Zero, await stderr);
        Assert.That(await stdout, Does.Contain("same context, next query:           1 order(s)")
            .And.Contain("another request's context:          0 order(s)")
            .And.Contain("cid orders 4 tea:  refused by the warehouse")
            .And.Contain("warehouse tea on hand: 2"));
    }
}
