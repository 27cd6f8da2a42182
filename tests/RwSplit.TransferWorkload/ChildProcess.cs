using System;
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
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var info = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        foreach (var arg in new[] { "run", "--mode", mode, "--db1", database1, "--db2", database2, "--seconds", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            info.ArgumentList.Add(arg);
        if (fault is not null)
        {
            info.ArgumentList.Add("--fault");
            info.ArgumentList.Add(fault);
        }

        if (forwardOnly)
        {
            info.ArgumentList.Add("--direction");
            info.ArgumentList.Add("forward");
        }

        if (workers != 1)
        {
            info.ArgumentList.Add("--workers");
            info.ArgumentList.Add(workers.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return new ChildProcess(Process.Start(info) ?? throw new InvalidOperationException("Could not start the workload process."));
    }

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
