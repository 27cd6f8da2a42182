using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit.TransferWorkload;

/// <summary>Starts the workload as a child process (so it can be killed like a crashed container) and kills it.</summary>
public sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource _committed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ChildProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data == "committed")
                _committed.TrySetResult();
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
                StandardError += e.Data + Environment.NewLine;
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string StandardError { get; private set; } = "";

    /// <summary>Completes once the child committed its first transfer (it is then warm and mid-workload).</summary>
    public Task FirstCommit => _committed.Task;

    public bool HasExited => _process.HasExited;

    public static ChildProcess Start(string mode, string database1, string database2, string? fault = null, int seconds = 60, bool forwardOnly = false, int workers = 1)
    {
        var args = new List<string> { "run", "--mode", mode, "--db1", database1, "--db2", database2, "--seconds", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        if (fault is not null)
            args.AddRange(["--fault", fault]);
        if (forwardOnly)
            args.AddRange(["--direction", "forward"]);
        if (workers != 1)
            args.AddRange(["--workers", workers.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        return StartAssembly(typeof(ChildProcess).Assembly.Location, args);
    }

    /// <summary>
    /// Runs another workload assembly's entry point with <paramref name="args"/> (it prints <c>committed</c> after its
    /// first commit, as this one does).
    /// </summary>
    public static ChildProcess StartAssembly(string assemblyPath, IEnumerable<string> args)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var info = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(assemblyPath);
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        return new ChildProcess(Process.Start(info) ?? throw new InvalidOperationException("Could not start the workload process."));
    }

    /// <summary>137 once it was killed (128 + SIGKILL), as at a fault point; anything else means it failed or finished.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>SIGKILL, no cleanup: what a crash or a replaced container does.</summary>
    public void Kill()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }

    public Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        return _process.WaitForExitAsync(cts.Token).ContinueWith(t => t.IsCompletedSuccessfully, TaskScheduler.Default);
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
