using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit.PgCluster;

/// <summary>Finds the PostgreSQL server binaries and runs them, as the <c>postgres</c> OS user when we are root.</summary>
internal static class PgTools
{
    private const string BinEnvironmentVariable = "RWSPLIT_PG_BIN";
    private static readonly Lazy<string> LazyBinDirectory = new(FindBinDirectory);

    /// <summary>PostgreSQL refuses to run as root; then every server tool runs through <c>runuser -u postgres</c>.</summary>
    internal static bool RunAsPostgresUser { get; } = !OperatingSystem.IsWindows() && Environment.IsPrivilegedProcess;

    internal static string BinDirectory => LazyBinDirectory.Value;

    private static string FindBinDirectory()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(BinEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            if (!File.Exists(Path.Combine(fromEnvironment, "pg_ctl")) && !File.Exists(Path.Combine(fromEnvironment, "pg_ctl.exe")))
            {
                throw new InvalidOperationException(
                    $"{BinEnvironmentVariable}='{fromEnvironment}' does not contain pg_ctl; point it at the PostgreSQL server's bin directory.");
            }

            return fromEnvironment;
        }

        const string debianRoot = "/usr/lib/postgresql";
        if (Directory.Exists(debianRoot))
        {
            var best = Directory.GetDirectories(debianRoot)
                .Select(d => (Dir: d, Ok: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v), Version: v))
                .Where(x => x.Ok && File.Exists(Path.Combine(x.Dir, "bin", "pg_ctl")))
                .OrderByDescending(x => x.Version)
                .Select(x => Path.Combine(x.Dir, "bin"))
                .FirstOrDefault();
            if (best is not null)
            {
                return best;
            }
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            if (File.Exists(Path.Combine(dir, "pg_ctl")) && File.Exists(Path.Combine(dir, "initdb")))
            {
                return dir;
            }
        }

        throw new InvalidOperationException(
            "No PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and PATH for pg_ctl and initdb). " +
            $"Install the PostgreSQL server (Debian: postgresql-15) or set {BinEnvironmentVariable} to its bin directory.");
    }

    /// <summary>Makes <paramref name="directory"/> belong to the <c>postgres</c> user when the tools run as that user.</summary>
    internal static async Task HandOverDirectoryAsync(string directory, CancellationToken ct)
    {
        if (!RunAsPostgresUser)
        {
            return;
        }

        await RunRawAsync("chown", ["-R", "postgres:postgres", directory], directory, TimeSpan.FromSeconds(30), null, ct);
    }

    /// <summary>
    /// Runs one PostgreSQL tool (<c>initdb</c>, <c>pg_ctl</c>, <c>pg_basebackup</c>...) and throws when it fails. The error
    /// names the command, the exit code, the tool's output and the last lines of <paramref name="serverLog"/>.
    /// </summary>
    internal static Task<ProcessResult> RunToolAsync(
        string tool, IReadOnlyList<string> arguments, string workingDirectory, TimeSpan timeout, string? serverLog, CancellationToken ct)
    {
        var executable = Path.Combine(BinDirectory, tool);
        if (RunAsPostgresUser)
        {
            var wrapped = new List<string>(arguments.Count + 4) { "-u", "postgres", "--", executable };
            wrapped.AddRange(arguments);
            return RunRawAsync("runuser", wrapped, workingDirectory, timeout, serverLog, ct);
        }

        return RunRawAsync(executable, arguments, workingDirectory, timeout, serverLog, ct);
    }

    /// <summary>Like <see cref="RunToolAsync"/>, but returns the result of a failed run instead of throwing.</summary>
    internal static async Task<ProcessResult> TryRunToolAsync(
        string tool, IReadOnlyList<string> arguments, string workingDirectory, TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            return await RunToolAsync(tool, arguments, workingDirectory, timeout, null, ct);
        }
        catch (PgToolException e)
        {
            return e.Result;
        }
    }

    private static async Task<ProcessResult> RunRawAsync(
        string fileName, IReadOnlyList<string> arguments, string workingDirectory, TimeSpan timeout, string? serverLog, CancellationToken ct)
    {
        // Servers started here outlive this process: they must not inherit descriptors this process got from its own
        // parent (a build lock held by `flock`, say), or they would hold them for as long as they run.
        var shellArguments = new List<string>(arguments.Count + 3)
        {
            "-c",
            "exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-; exec \"$0\" \"$@\"",
            fileName,
        };
        shellArguments.AddRange(arguments);
        var startInfo = new ProcessStartInfo("/bin/sh")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in shellArguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        // libpq variables of the caller (PGHOST, PGSSLMODE, PGOPTIONS...) must not steer our tools.
        foreach (var key in startInfo.Environment.Keys.Where(k => k.StartsWith("PG", StringComparison.Ordinal)).ToList())
        {
            startInfo.Environment.Remove(key);
        }

        startInfo.Environment["LC_ALL"] = "C";

        var commandLine = FormatCommand(fileName, arguments);
        using var process = new Process { StartInfo = startInfo };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"Could not start `{commandLine}`: {e.Message}", e);
        }

        process.StandardInput.Close();

        // Read both pipes concurrently and never wait for their end-of-file before the exit: `pg_ctl start` leaves a
        // postmaster behind, and if anything in that tree kept our pipes open, waiting for EOF would hang.
        var stdoutTask = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderrTask = process.StandardError.ReadToEndAsync(CancellationToken.None);

        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeoutCts.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(timeoutCts.Token);
        }
        catch (OperationCanceledException)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Exited meanwhile.
            }

            ct.ThrowIfCancellationRequested();
            var partial = new ProcessResult(commandLine, -1, await DrainAsync(stdoutTask), await DrainAsync(stderrTask));
            throw new TimeoutException(
                $"`{commandLine}` did not finish within {timeout.TotalSeconds:0} s and was killed." + Describe(partial, serverLog));
        }

        var result = new ProcessResult(commandLine, process.ExitCode, await DrainAsync(stdoutTask), await DrainAsync(stderrTask));
        if (result.ExitCode != 0)
        {
            throw new PgToolException(result, $"`{commandLine}` failed with exit code {result.ExitCode}." + Describe(result, serverLog));
        }

        return result;
    }

    private static async Task<string> DrainAsync(Task<string> readTask)
    {
        try
        {
            return await readTask.WaitAsync(TimeSpan.FromSeconds(2));
        }
        catch (TimeoutException)
        {
            return "(output not complete: a child process still holds the pipe)";
        }
        catch (IOException e)
        {
            return $"(output unreadable: {e.Message})";
        }
    }

    private static string Describe(ProcessResult result, string? serverLog)
    {
        var text = new StringBuilder();
        AppendSection(text, "stderr", LastLines(result.StandardError, 20));
        AppendSection(text, "stdout", LastLines(result.StandardOutput, 10));
        if (serverLog is not null)
        {
            AppendSection(text, $"last lines of {serverLog}", TailOfFile(serverLog, 25));
        }

        return text.ToString();
    }

    private static void AppendSection(StringBuilder text, string title, string body)
    {
        if (!string.IsNullOrWhiteSpace(body))
        {
            text.Append(Environment.NewLine).Append("--- ").Append(title).Append(" ---").Append(Environment.NewLine).Append(body.TrimEnd());
        }
    }

    /// <summary>The last <paramref name="lines"/> lines of a (server log) file, or an empty string when it cannot be read.</summary>
    internal static string TailOfFile(string path, int lines)
    {
        try
        {
            if (!File.Exists(path))
            {
                return string.Empty;
            }

            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            const int maxBytes = 16 * 1024;
            if (stream.Length > maxBytes)
            {
                stream.Seek(-maxBytes, SeekOrigin.End);
            }

            using var reader = new StreamReader(stream, Encoding.UTF8);
            return LastLines(reader.ReadToEnd(), lines);
        }
        catch (IOException)
        {
            return string.Empty;
        }
        catch (UnauthorizedAccessException)
        {
            return string.Empty;
        }
    }

    private static string LastLines(string text, int lines)
    {
        var all = text.Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines - 1)));
    }

    private static string FormatCommand(string fileName, IEnumerable<string> arguments)
        => string.Join(' ', new[] { fileName }.Concat(arguments).Select(a => a.Length == 0 || a.Any(char.IsWhiteSpace) || a.Contains('\'') ? "'" + a.Replace("'", "'\\''") + "'" : a));
}

/// <summary>What one finished tool run produced.</summary>
internal sealed record ProcessResult(string CommandLine, int ExitCode, string StandardOutput, string StandardError);

/// <summary>A PostgreSQL tool exited with a non-zero code.</summary>
internal sealed class PgToolException : InvalidOperationException
{
    internal PgToolException(ProcessResult result, string message)
        : base(message)
    {
        Result = result;
    }

    internal ProcessResult Result { get; }
}
