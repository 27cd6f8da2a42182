using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit.OperationsTests.WebApi;

/// <summary>
/// The built sample (<c>samples/RwSplit.WebApi</c>) run as its own process, configured through environment variables
/// only (its working directory, the content root, is an empty one: no appsettings.json), listening on a port Kestrel
/// picks on loopback (read back from its "Now listening on" line). Disposing kills it.
/// </summary>
public sealed class WebApiInstance : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private readonly string _contentRoot;

    private WebApiInstance(string name, Process process, string contentRoot)
    {
        Name = name;
        _process = process;
        _contentRoot = contentRoot;
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.Exited += (_, _) => _listening.TrySetException(new InvalidOperationException($"{Name} exited with code {_process.ExitCode} before listening:{Environment.NewLine}{Output}"));
        _process.EnableRaisingEvents = true;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Name { get; }

    /// <summary>The base address, once the instance listens.</summary>
    public Uri BaseAddress => _listening.Task.IsCompletedSuccessfully ? _listening.Task.Result : throw new InvalidOperationException($"{Name} is not listening.");

    /// <summary>What the process wrote so far (stdout and stderr), for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
                return _output.ToString();
        }
    }

    /// <summary>The sample's main assembly, built next to this test project by its ReferenceOutputAssembly=false reference.</summary>
    public static string AssemblyPath
    {
        get
        {
            // .../tests/RwSplit.OperationsTests/bin/<Configuration>/<TargetFramework>/ → .../samples/RwSplit.WebApi/bin/<Configuration>/<TargetFramework>/
            var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            var framework = output.Name;
            var configuration = output.Parent!.Name;
            var root = output.Parent.Parent!.Parent!.Parent!.Parent!.FullName;
            var path = Path.Combine(root, "samples", "RwSplit.WebApi", "bin", configuration, framework, "RwSplit.WebApi.dll");
            return File.Exists(path) ? path : throw new FileNotFoundException("The web sample is not built (the test project's reference builds it).", path);
        }
    }

    public static async Task<WebApiInstance> StartAsync(string name, IReadOnlyDictionary<string, string> environment, TimeSpan timeout)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var assembly = AssemblyPath;
        var contentRoot = Directory.CreateTempSubdirectory("rwsplit-webapi-").FullName;
        var info = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = contentRoot,
        };
        info.ArgumentList.Add(assembly);
        foreach (var inherited in info.Environment.Keys.ToList())
        {
            // Configuration from this machine's environment (keys are case-insensitive) stays out: only what is given counts.
            if (inherited.StartsWith("RwSplit__", StringComparison.OrdinalIgnoreCase) || inherited.StartsWith("Telemetry__", StringComparison.OrdinalIgnoreCase) || inherited.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase))
                info.Environment.Remove(inherited);
        }

        info.Environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0";
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        info.Environment["Logging__Console__FormatterOptions__SingleLine"] = "true";
        info.Environment["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning";
        foreach (var (key, value) in environment)
            info.Environment[key] = value;

        var instance = new WebApiInstance(name, Process.Start(info) ?? throw new InvalidOperationException($"Could not start {name}."), contentRoot);
        try
        {
            using var cancel = new CancellationTokenSource(timeout);
            await instance._listening.Task.WaitAsync(cancel.Token);
            return instance;
        }
        catch (OperationCanceledException)
        {
            instance.Dispose();
            throw new TimeoutException($"{name} did not listen within {timeout.TotalSeconds:0} s:{Environment.NewLine}{instance.Output}");
        }
        catch
        {
            instance.Dispose();
            throw;
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
            return;
        lock (_output)
            _output.AppendLine(line);
        const string marker = "Now listening on: ";
        var at = line.IndexOf(marker, StringComparison.Ordinal);
        if (at >= 0 && Uri.TryCreate(line[(at + marker.Length)..].Trim(), UriKind.Absolute, out var address))
            _listening.TrySetResult(address);
    }

    /// <summary>SIGKILL, whole process tree; safe to call twice.</summary>
    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // never started or already gone
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_contentRoot, recursive: true);
        }
        catch (IOException)
        {
            // already gone
        }
    }
}
