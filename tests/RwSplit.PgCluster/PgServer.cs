using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;
using NpgsqlTypes;

namespace RwSplit.PgCluster;

/// <summary>
/// One PostgreSQL server of a <see cref="LocalPgCluster"/>, with the controls that tests use to inject faults and lag.
/// The controls that change a server's state need a local cluster; on external servers they throw
/// <see cref="InvalidOperationException"/>.
/// </summary>
public sealed partial class PgServer
{
    /// <summary>The <c>application_name</c> of the harness's own control connections; <see cref="TerminateBackendsAsync"/> spares them.</summary>
    internal const string ControlApplicationName = "rwsplit-pgcluster";

    internal const string DatabaseName = "rwsplit";

    private readonly string controlConnectionString;
    private readonly string scalarConnectionString;
    private readonly TimeSpan operationTimeout;

    internal PgServer(string name, int port, string dataDirectory, bool isReplica, TimeSpan operationTimeout)
    {
        Name = name;
        Port = port;
        DataDirectory = dataDirectory;
        IsReplica = isReplica;
        IsExternal = false;
        this.operationTimeout = operationTimeout;
        ConnectionString = string.Create(
            CultureInfo.InvariantCulture,
            $"Host=127.0.0.1;Port={port};Username=postgres;Database={DatabaseName};Pooling=true;Timeout=5;Command Timeout=30");
        controlConnectionString = string.Create(
            CultureInfo.InvariantCulture,
            $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Pooling=false;Timeout=5;Command Timeout=30;Application Name={ControlApplicationName}");
        scalarConnectionString = string.Create(
            CultureInfo.InvariantCulture,
            $"Host=127.0.0.1;Port={port};Username=postgres;Database={DatabaseName};Pooling=false;Timeout=5;Command Timeout=30;Application Name={ControlApplicationName}");
    }

    internal PgServer(string name, string externalConnectionString, bool isReplica)
    {
        var builder = new NpgsqlConnectionStringBuilder(externalConnectionString);
        Name = name;
        Port = builder.Port;
        DataDirectory = string.Empty;
        IsReplica = isReplica;
        IsExternal = true;
        operationTimeout = TimeSpan.FromSeconds(60);
        ConnectionString = externalConnectionString;
        builder.Pooling = false;
        builder.ApplicationName = ControlApplicationName;
        controlConnectionString = builder.ConnectionString;
        scalarConnectionString = builder.ConnectionString;
    }

    /// <summary>The server's role name: <c>primary</c>, <c>replica1</c>, <c>replica2</c> or <c>second-primary</c>.</summary>
    public string Name { get; }

    /// <summary>The TCP port on 127.0.0.1 (for an external server, the port of its connection string).</summary>
    public int Port { get; }

    /// <summary>The server's data directory, which also holds its log file <c>postgresql.log</c>; empty for an external server.</summary>
    public string DataDirectory { get; }

    /// <summary>
    /// The Npgsql connection string for database <c>rwsplit</c>:
    /// <c>Host=127.0.0.1;Port=N;Username=postgres;Database=rwsplit;Pooling=true;Timeout=5;Command Timeout=30</c>.
    /// Pooled: after <see cref="StopAsync"/> the caller's pooled connections to this server are dead until it clears the pool.
    /// </summary>
    public string ConnectionString { get; }

    /// <summary>Whether the server is a streaming replica (a hot standby).</summary>
    public bool IsReplica { get; }

    /// <summary>Whether the server was given through the environment rather than started here; then the fault controls throw.</summary>
    public bool IsExternal { get; }

    /// <summary>The server's log file (inside <see cref="DataDirectory"/>); empty for an external server.</summary>
    public string LogFile => IsExternal ? string.Empty : Path.Combine(DataDirectory, "postgresql.log");

    /// <inheritdoc />
    public override string ToString() => $"{Name} (port {Port.ToString(CultureInfo.InvariantCulture)})";

    /// <summary>Stops the server with <c>pg_ctl stop -w</c>. Does nothing when it is not running.</summary>
    /// <param name="immediate"><see langword="true"/> for <c>-m immediate</c> (a crash: no shutdown checkpoint), <see langword="false"/> for <c>-m fast</c>.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public async Task StopAsync(bool immediate = true, CancellationToken cancellationToken = default)
    {
        EnsureLocal(nameof(StopAsync));
        if (!await IsRunningAsync(cancellationToken))
        {
            return;
        }

        await PgTools.RunToolAsync(
            "pg_ctl",
            ["stop", "-D", DataDirectory, "-m", immediate ? "immediate" : "fast", "-w", "-t", TimeoutSeconds(), "-s"],
            ParentDirectory,
            operationTimeout + TimeSpan.FromSeconds(5),
            LogFile,
            cancellationToken);
    }

    /// <summary>
    /// Starts the server with <c>pg_ctl start -w</c> (server output going to <see cref="LogFile"/>) and waits until it
    /// accepts connections. A replica then reconnects to the primary by itself; <see cref="LocalPgCluster.WaitForReplicasToCatchUpAsync"/>
    /// waits for it to have replayed everything. Does nothing but the wait when the server already runs.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        EnsureLocal(nameof(StartAsync));
        if (!await IsRunningAsync(cancellationToken))
        {
            await StartProcessAsync(cancellationToken);
        }

        await WaitUntilAcceptingAsync(operationTimeout, cancellationToken);
    }

    /// <summary>
    /// Promotes this replica to a primary (<c>pg_ctl promote -w</c>): it leaves recovery and accepts writes, as after a
    /// failover. Replicas only.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public async Task PromoteAsync(CancellationToken cancellationToken = default)
    {
        EnsureLocal(nameof(PromoteAsync));
        EnsureReplica(nameof(PromoteAsync));
        await PgTools.RunToolAsync(
            "pg_ctl",
            ["promote", "-D", DataDirectory, "-w", "-t", TimeoutSeconds(), "-s"],
            ParentDirectory,
            operationTimeout + TimeSpan.FromSeconds(5),
            LogFile,
            cancellationToken);
    }

    /// <summary>Restarts the server: a fast stop (<c>-m fast</c>), then <see cref="StartAsync"/>.</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        EnsureLocal(nameof(RestartAsync));
        await StopAsync(immediate: false, cancellationToken);
        await StartAsync(cancellationToken);
    }

    /// <summary>
    /// Sets a server parameter with <c>ALTER SYSTEM SET name = 'value'</c> and reloads the configuration; returns once
    /// the postmaster has re-read it (new connections see the value; already open sessions and the replication
    /// processes pick it up asynchronously). Parameters that need a restart need <see cref="RestartAsync"/> as well.
    /// Works on replicas too: <c>ALTER SYSTEM</c> writes the server's own <c>postgresql.auto.conf</c>.
    /// </summary>
    /// <param name="name">The parameter, such as <c>recovery_min_apply_delay</c>.</param>
    /// <param name="value">The value, as written in <c>postgresql.conf</c>, such as <c>500ms</c>.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public Task SetConfigAsync(string name, string value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(value);
        EnsureLocal(nameof(SetConfigAsync));
        ValidateParameterName(name);
        return AlterSystemAsync($"ALTER SYSTEM SET {name} = '{value.Replace("'", "''", StringComparison.Ordinal)}'", cancellationToken);
    }

    /// <summary>Undoes <see cref="SetConfigAsync"/>: <c>ALTER SYSTEM RESET name</c>, then a reload as there.</summary>
    /// <param name="name">The parameter.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public Task ResetConfigAsync(string name, CancellationToken cancellationToken = default)
    {
        EnsureLocal(nameof(ResetConfigAsync));
        ValidateParameterName(name);
        return AlterSystemAsync($"ALTER SYSTEM RESET {name}", cancellationToken);
    }

    /// <summary>
    /// Pauses WAL replay on this replica (<c>pg_wal_replay_pause()</c>): from now on no further change of the primary
    /// becomes visible here until <see cref="ResumeReplayAsync"/>. Replicas only.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public async Task PauseReplayAsync(CancellationToken cancellationToken = default)
    {
        EnsureLocal(nameof(PauseReplayAsync));
        EnsureReplica(nameof(PauseReplayAsync));
        await ExecuteControlAsync("SELECT pg_wal_replay_pause()", cancellationToken);
    }

    /// <summary>Resumes WAL replay on this replica (<c>pg_wal_replay_resume()</c>). Replicas only.</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public async Task ResumeReplayAsync(CancellationToken cancellationToken = default)
    {
        EnsureLocal(nameof(ResumeReplayAsync));
        EnsureReplica(nameof(ResumeReplayAsync));
        await ExecuteControlAsync("SELECT pg_wal_replay_resume()", cancellationToken);
    }

    /// <summary>
    /// Terminates every other client connection to database <c>rwsplit</c> on this server (the harness's own control
    /// connections excepted) and waits up to 5 s for each to be gone.
    /// </summary>
    /// <param name="applicationName">When given, only connections whose <c>application_name</c> equals it.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>How many connections were terminated.</returns>
    public async Task<int> TerminateBackendsAsync(string? applicationName = null, CancellationToken cancellationToken = default)
    {
        EnsureLocal(nameof(TerminateBackendsAsync));
        await using var connection = await OpenAsync(controlConnectionString, cancellationToken);
        await using var command = new NpgsqlCommand(
            """
            SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))::int
            FROM pg_stat_activity
            WHERE datname = $1
              AND backend_type = 'client backend'
              AND pid <> pg_backend_pid()
              AND application_name <> $2
              AND ($3::text IS NULL OR application_name = $3::text)
            """,
            connection);
        command.Parameters.Add(new NpgsqlParameter { Value = DatabaseName, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = ControlApplicationName, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)applicationName ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        return (int)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// Runs <paramref name="sql"/> on a fresh, unpooled connection to database <c>rwsplit</c> and returns the first
    /// column of the first row (<see langword="default"/> for SQL NULL or no row).
    /// </summary>
    /// <typeparam name="T">The CLR type to read the value as, as Npgsql's <c>GetFieldValue&lt;T&gt;</c> does.</typeparam>
    /// <param name="sql">The SQL text.</param>
    /// <param name="cancellationToken">Cancels the command.</param>
    public async Task<T> ScalarAsync<T>(string sql, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAsync(scalarConnectionString, cancellationToken);
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken) || await reader.IsDBNullAsync(0, cancellationToken))
        {
            return default!;
        }

        return await reader.GetFieldValueAsync<T>(0, cancellationToken);
    }

    /// <summary>The replica's physical replication slot on the primary (slot names allow no dash).</summary>
    internal string SlotName => Name.Replace('-', '_');

    internal string ParentDirectory => Path.GetDirectoryName(DataDirectory)!;

    internal async Task<bool> IsRunningAsync(CancellationToken cancellationToken)
    {
        // pg_ctl status: 0 = running, 3 = not running, 4 = no data directory.
        var result = await PgTools.TryRunToolAsync("pg_ctl", ["status", "-D", DataDirectory], ParentDirectory, TimeSpan.FromSeconds(30), cancellationToken);
        return result.ExitCode == 0;
    }

    internal async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        await PgTools.RunToolAsync(
            "pg_ctl",
            ["start", "-D", DataDirectory, "-l", LogFile, "-w", "-t", TimeoutSeconds(), "-s"],
            ParentDirectory,
            operationTimeout + TimeSpan.FromSeconds(5),
            LogFile,
            cancellationToken);
        ApplyCpuQuota();
    }

    /// <summary>The CPU quota this server runs under, in cores (<see cref="LocalPgClusterOptions.CpuQuota"/>); <see langword="null"/>: none.</summary>
    public double? CpuQuota { get; private set; }

    /// <summary>The cgroup name of this server's quota.</summary>
    public string CpuGroup => $"{Name}-{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Caps the running server (and every later start of it) at <paramref name="cores"/> CPUs; <see langword="null"/> lifts the cap.</summary>
    /// <param name="cores">The quota in cores.</param>
    public void LimitCpu(double? cores)
    {
        EnsureLocal(nameof(LimitCpu));
        CpuQuota = cores;
        if (cores is null)
            RwSplit.PgCluster.CpuQuota.Lift(CpuGroup);
        else
            ApplyCpuQuota();
    }

    private void ApplyCpuQuota()
    {
        if (CpuQuota is not { } cores)
            return;
        var pidFile = Path.Combine(DataDirectory, "postmaster.pid");
        var postmaster = int.Parse(File.ReadLines(pidFile).First().Trim(), CultureInfo.InvariantCulture);
        RwSplit.PgCluster.CpuQuota.Apply(CpuGroup, postmaster, cores);
    }

    /// <summary>Stops the server if it runs, reporting rather than throwing a failure (for cleanup paths).</summary>
    internal async Task<string?> TryStopAsync(bool immediate, CancellationToken cancellationToken)
    {
        var result = await PgTools.TryRunToolAsync(
            "pg_ctl",
            ["stop", "-D", DataDirectory, "-m", immediate ? "immediate" : "fast", "-w", "-t", TimeoutSeconds(), "-s"],
            ParentDirectory,
            operationTimeout + TimeSpan.FromSeconds(5),
            cancellationToken);
        return result.ExitCode == 0 ? null : $"{result.CommandLine}: exit {result.ExitCode}: {result.StandardError.Trim()}";
    }

    /// <summary>Polls until a control connection succeeds.</summary>
    internal async Task WaitUntilAcceptingAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await ExecuteControlAsync("SELECT 1", cancellationToken);
                return;
            }
            catch (Exception e) when (IsConnectFailure(e) && stopwatch.Elapsed < timeout)
            {
                await Task.Delay(50, cancellationToken);
            }
            catch (Exception e) when (IsConnectFailure(e))
            {
                throw new TimeoutException(
                    $"{this} did not accept connections within {timeout.TotalSeconds:0} s: {e.Message}" +
                    $"{Environment.NewLine}--- last lines of {LogFile} ---{Environment.NewLine}{PgTools.TailOfFile(LogFile, 25)}",
                    e);
            }
        }
    }

    internal static bool IsConnectFailure(Exception e)
        => e is NpgsqlException or SocketException or IOException or TimeoutException;

    internal Task<NpgsqlConnection> OpenControlAsync(CancellationToken cancellationToken) => OpenAsync(controlConnectionString, cancellationToken);

    internal async Task ExecuteControlAsync(string sql, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(controlConnectionString, cancellationToken);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<NpgsqlConnection> OpenAsync(string connectionString, CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private async Task AlterSystemAsync(string alterSystem, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(controlConnectionString, cancellationToken);
        string before;
        await using (var command = new NpgsqlCommand("SELECT clock_timestamp()::text", connection))
        {
            before = (string)(await command.ExecuteScalarAsync(cancellationToken))!;
        }

        // One statement per command: ALTER SYSTEM cannot run in the implicit transaction of a multi-statement batch.
        await using (var command = new NpgsqlCommand(alterSystem, connection))
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var command = new NpgsqlCommand("SELECT pg_reload_conf()", connection))
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        // The reload is asynchronous. A new session's pg_conf_load_time() is the postmaster's last load time, so once it
        // is past `before`, every new connection sees the new value.
        var stopwatch = Stopwatch.StartNew();
        while (true)
        {
            await using (var fresh = await OpenAsync(controlConnectionString, cancellationToken))
            await using (var command = new NpgsqlCommand("SELECT pg_conf_load_time() >= $1::timestamptz", fresh))
            {
                command.Parameters.Add(new NpgsqlParameter { Value = before, NpgsqlDbType = NpgsqlDbType.Text });
                if ((bool)(await command.ExecuteScalarAsync(cancellationToken))!)
                {
                    return;
                }
            }

            if (stopwatch.Elapsed > TimeSpan.FromSeconds(10))
            {
                throw new TimeoutException($"{this} did not reload its configuration within 10 s after `{alterSystem}`.");
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    private void EnsureLocal(string operation)
    {
        if (IsExternal)
        {
            throw new InvalidOperationException(
                $"{operation} on {Name} needs the local cluster; the servers come from RWSPLIT_PG_PRIMARY (external servers). " +
                "Unset RWSPLIT_PG_PRIMARY to run this test.");
        }
    }

    private void EnsureReplica(string operation)
    {
        if (!IsReplica)
        {
            throw new InvalidOperationException($"{operation} works on replicas only; {Name} is a primary.");
        }
    }

    private static void ValidateParameterName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!ParameterName().IsMatch(name))
        {
            throw new ArgumentException($"'{name}' is not a server parameter name.", nameof(name));
        }
    }

    private string TimeoutSeconds() => ((int)Math.Ceiling(operationTimeout.TotalSeconds)).ToString(CultureInfo.InvariantCulture);

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_.]*$")]
    private static partial Regex ParameterName();
}
