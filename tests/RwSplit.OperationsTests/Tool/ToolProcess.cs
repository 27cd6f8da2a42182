using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace RwSplit.OperationsTests.Tool;

/// <summary>What one run of the tool printed and returned.</summary>
internal sealed record ToolResult(int ExitCode, string StandardOutput, string StandardError)
{
    public JsonElement Json => JsonDocument.Parse(StandardOutput).RootElement;

    public override string ToString() => $"exit code {ExitCode}{Environment.NewLine}stdout:{Environment.NewLine}{StandardOutput}{Environment.NewLine}stderr:{Environment.NewLine}{StandardError}";
}

/// <summary>
/// Runs the BUILT tool (src/RwSplit.Tool/bin/&lt;Configuration&gt;/net10.0/RwSplit.Tool.dll, built first because the test
/// project references it) as a process, as an operator would, with only the environment variables given (no RWSPLIT_*,
/// PGPASSWORD or PGPASSFILE of the machine leaks in).
/// </summary>
internal static class ToolProcess
{
    private static readonly Lazy<string> Path_ = new(Locate);

    public static string ToolPath => Path_.Value;

    public static async Task<ToolResult> RunAsync(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var info = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(ToolPath);
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        foreach (var name in new List<string>(info.Environment.Keys))
        {
            if (name.StartsWith("RWSPLIT_", StringComparison.Ordinal) || name.StartsWith("PGPASS", StringComparison.Ordinal))
                info.Environment.Remove(name);
        }

        if (environment is not null)
        {
            foreach (var (name, value) in environment)
                info.Environment[name] = value;
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("Could not start the tool.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"rwsplit {string.Join(' ', args)} did not exit within 90 s");
        }

        return new ToolResult(process.ExitCode, await stdout, await stderr);
    }

    public static Task<ToolResult> RunAsync(params string[] args) => RunAsync(null, args);

    /// <summary>The tool built in the same configuration as this test assembly.</summary>
    private static string Locate()
    {
        // tests/RwSplit.OperationsTests/bin/<Configuration>/net10.0/
        var here = new DirectoryInfo(AppContext.BaseDirectory);
        var configuration = here.Parent!.Name;
        var root = here;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "RwSplit.sln")))
            root = root.Parent;
        if (root is null)
            throw new InvalidOperationException($"No RwSplit.sln above {AppContext.BaseDirectory}.");
        var tool = Path.Combine(root.FullName, "src", "RwSplit.Tool", "bin", configuration, "net10.0", "RwSplit.Tool.dll");
        if (!File.Exists(tool))
            throw new InvalidOperationException($"The tool is not built: {tool} is missing (build tests/RwSplit.OperationsTests, which builds it).");
        return tool;
    }
}
