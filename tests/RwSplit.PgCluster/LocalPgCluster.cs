using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;
using NpgsqlTypes;

namespace RwSplit.PgCluster;

/// <summary>
/// Real local PostgreSQL servers for the integration tests, the benchmarks and the demo: a primary with streaming
/// replicas (<c>pg_basebackup -R -X stream</c>, each with its own physical replication slot, named like the replica) and an independent second primary,
/// all on 127.0.0.1 with trust authentication and a database <c>rwsplit</c>.
/// </summary>
/// <remarks>
/// <para>
/// The data lives in <c>{temp}/rwsplit-pg-{basePort}</c>. <see cref="StartAsync"/> reuses servers of that directory
/// that are already up (then <see cref="OwnsServers"/> is <see langword="false"/> and disposing leaves them running),
/// replaces a stale directory, and otherwise creates everything anew. Starts of the same base port are serialized
/// across processes by the lock file <c>{temp}/rwsplit-pg-{basePort}.lock</c>. Reused servers belong to the run that
/// started them: when that run disposes its cluster they stop, so processes that share servers should keep them
/// (<c>RWSPLIT_PG_KEEP=1</c>, or <c>pg-cluster.sh start</c>).
/// </para>
/// <para>
/// With the environment variable <c>RWSPLIT_PG_PRIMARY</c> set, nothing is started: the servers are taken from
/// <c>RWSPLIT_PG_PRIMARY</c>, <c>RWSPLIT_PG_REPLICAS</c> (connection strings separated by <c>|</c>) and
/// <c>RWSPLIT_PG_SECOND_PRIMARY</c>, and the fault controls of <see cref="PgServer"/> throw.
/// </para>
/// <para>
/// When the process runs as root, every PostgreSQL tool runs as the OS user <c>postgres</c> (<c>runuser</c>), which then
/// owns the directory. The binaries are the highest version under <c>/usr/lib/postgresql/*/bin</c>, or those of the
/// directory in <c>RWSPLIT_PG_BIN</c>.
/// </para>
/// </remarks>
public sealed class LocalPgCluster : IAsyncDisposable
{
    /// <summary>
    /// The default base port: primary 25430, replicas 25431 and 25432, second primary 25433. Every fixed port of the test
    /// clusters lies below the kernel's ephemeral range (<c>ip_local_port_range</c>, 32768–60999 by default): a port in
    /// it can be taken at any moment by the local end of one of the run's own client connections, and a cluster then
    /// fails to start ("port already in use", seen once in CI with the old ports 55430–55460).
    /// </summary>
    public const int DefaultBasePort = 25430;

    private const string BasePortVariable = "RWSPLIT_PG_BASE_PORT";
    private const string KeepVariable = "RWSPLIT_PG_KEEP";
    private const string PrimaryVariable = "RWSPLIT_PG_PRIMARY";
    private const string ReplicasVariable = "RWSPLIT_PG_REPLICAS";
    private const string SecondPrimaryVariable = "RWSPLIT_PG_SECOND_PRIMARY";
    private const string TraceVariable = "RWSPLIT_PG_TRACE";
    private const string LogFileName = "postgresql.log";

    private readonly PgServer? secondPrimary;
    private readonly bool keepRunning;
    private readonly TimeSpan startTimeout;
    private int disposed;

    private LocalPgCluster(
        string rootDirectory, PgServer primary, IReadOnlyList<PgServer> replicas, PgServer? secondPrimary,
        bool isExternal, bool ownsServers, bool keepRunning, TimeSpan startTimeout)
    {
        RootDirectory = rootDirectory;
        Primary = primary;
        Replicas = replicas;
        this.secondPrimary = secondPrimary;
        IsExternal = isExternal;
        OwnsServers = ownsServers;
        this.keepRunning = keepRunning;
        this.startTimeout = startTimeout;
    }

    /// <summary>The primary.</summary>
    public PgServer Primary { get; }

    /// <summary>The streaming replicas of <see cref="Primary"/> (<c>replica1</c>, <c>replica2</c>...).</summary>
    public IReadOnlyList<PgServer> Replicas { get; }

    /// <summary>Whether there is a second primary (not when <see cref="LocalPgClusterOptions.StartSecondPrimary"/> is off, or externally without <c>RWSPLIT_PG_SECOND_PRIMARY</c>).</summary>
    public bool HasSecondPrimary => secondPrimary is not null;

    /// <summary>The independent second primary (its own <c>initdb</c>), for cross-server transaction tests.</summary>
    /// <exception cref="InvalidOperationException">There is no second primary (see <see cref="HasSecondPrimary"/>).</exception>
    public PgServer SecondPrimary => secondPrimary ?? throw new InvalidOperationException(
        IsExternal
            ? $"No second primary: set {SecondPrimaryVariable} along with {PrimaryVariable}."
            : "No second primary: LocalPgClusterOptions.StartSecondPrimary was false.");

    /// <summary>The connection string of <see cref="Primary"/> (see <see cref="PgServer.ConnectionString"/>).</summary>
    public string PrimaryConnectionString => Primary.ConnectionString;

    /// <summary>The connection strings of <see cref="Replicas"/>, in order.</summary>
    public IReadOnlyList<string> ReplicaConnectionStrings => Replicas.Select(r => r.ConnectionString).ToList();

    /// <summary>The connection string of <see cref="SecondPrimary"/>.</summary>
    /// <exception cref="InvalidOperationException">There is no second primary (see <see cref="HasSecondPrimary"/>).</exception>
    public string SecondPrimaryConnectionString => SecondPrimary.ConnectionString;

    /// <summary>Whether the servers come from the environment (<c>RWSPLIT_PG_PRIMARY</c>) rather than being started here.</summary>
    public bool IsExternal { get; }

    /// <summary>
    /// Whether this instance started the servers, and so stops them and deletes <see cref="RootDirectory"/> on dispose
    /// (unless kept). <see langword="false"/> for reused and external servers.
    /// </summary>
    public bool OwnsServers { get; }

    /// <summary>The directory holding the servers' data directories, such as <c>/tmp/rwsplit-pg-25430</c>; empty when external.</summary>
    public string RootDirectory { get; }

    /// <summary>All servers: the primary, the replicas and, if any, the second primary.</summary>
    public IReadOnlyList<PgServer> Servers => [Primary, .. Replicas, .. secondPrimary is null ? Array.Empty<PgServer>() : [secondPrimary]];

    /// <summary>
    /// Starts (or reuses, or connects to external) PostgreSQL servers and returns once every replica is
    /// streaming from the primary.
    /// </summary>
    /// <param name="options">Ports, replica count and lifetime; <see langword="null"/> for the defaults.</param>
    /// <param name="ct">Cancels the start.</param>
    /// <returns>The running cluster; dispose it to stop the servers it started.</returns>
    /// <exception cref="InvalidOperationException">A port is taken by something else, or a PostgreSQL tool failed (the message has its output and the server log's tail).</exception>
    /// <exception cref="TimeoutException">A step took longer than <see cref="LocalPgClusterOptions.StartTimeout"/>.</exception>
    public static async Task<LocalPgCluster> StartAsync(LocalPgClusterOptions? options = null, CancellationToken ct = default)
    {
        options ??= new LocalPgClusterOptions();
        if (options.ReplicaCount < 0)
        {
            throw new ArgumentException("ReplicaCount must not be negative.", nameof(options));
        }

        if (options.StartTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("StartTimeout must be positive.", nameof(options));
        }

        var keep = options.KeepRunning || Environment.GetEnvironmentVariable(KeepVariable) == "1";
        var externalPrimary = Environment.GetEnvironmentVariable(PrimaryVariable);
        if (!string.IsNullOrWhiteSpace(externalPrimary))
        {
            return CreateExternal(externalPrimary, options.StartTimeout);
        }

        var basePort = ResolveBasePort(options);
        var root = Path.Combine(Path.GetTempPath(), $"rwsplit-pg-{basePort.ToString(CultureInfo.InvariantCulture)}");
        var primary = new PgServer("primary", basePort, Path.Combine(root, "primary"), isReplica: false, options.StartTimeout);
        var replicas = Enumerable.Range(1, options.ReplicaCount)
            .Select(i => new PgServer($"replica{i}", basePort + i, Path.Combine(root, $"replica{i}"), isReplica: true, options.StartTimeout))
            .ToList();
        var second = options.StartSecondPrimary
            ? new PgServer("second-primary", basePort + options.ReplicaCount + 1, Path.Combine(root, "second-primary"), isReplica: false, options.StartTimeout)
            : null;
        LocalPgCluster Cluster(bool ownsServers) => new(root, primary, replicas, second, isExternal: false, ownsServers, keep, options.StartTimeout);

        var stopwatch = Stopwatch.StartNew();
        using var startLock = await AcquireLockAsync(root + ".lock", options.StartTimeout, ct);
        if (Directory.Exists(root))
        {
            var reused = Cluster(ownsServers: false);
            if (await reused.TryReuseAsync(ct))
            {
                Trace($"reused the running servers of {root}: {stopwatch.ElapsedMilliseconds} ms");
                reused.LimitCpu(options.CpuQuota);
                return reused;
            }

            await RemoveStaleAsync(root, options.StartTimeout, ct);
            Trace($"removed the stale {root}: {stopwatch.ElapsedMilliseconds} ms");
        }

        var cluster = Cluster(ownsServers: true);
        await EnsurePortsFreeAsync(cluster.Servers, ct);
        await cluster.CreateAsync(ct);
        cluster.LimitCpu(options.CpuQuota);
        return cluster;
    }

    /// <summary>Caps every server at <paramref name="cores"/> CPUs (see <see cref="LocalPgClusterOptions.CpuQuota"/>); <see langword="null"/> lifts the caps.</summary>
    /// <param name="cores">The quota per server in cores.</param>
    public void LimitCpu(double? cores)
    {
        if (IsExternal || (cores is null && Servers.All(s => s.CpuQuota is null)))
            return;
        foreach (var server in Servers)
            server.LimitCpu(cores);
    }

    /// <summary>
    /// Waits until every replica has replayed all WAL the primary had written when the call began
    /// (<c>pg_last_wal_replay_lsn() &gt;= pg_current_wal_lsn()</c>), polling every 20 ms.
    /// </summary>
    /// <param name="timeout">How long to wait for all replicas together.</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <exception cref="TimeoutException">A replica did not catch up in time; the message names it.</exception>
    public async Task WaitForReplicasToCatchUpAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        string target;
        await using (var connection = await Primary.OpenControlAsync(ct))
        await using (var command = new NpgsqlCommand("SELECT pg_current_wal_lsn()::text", connection))
        {
            target = (string)(await command.ExecuteScalarAsync(ct))!;
        }

        var deadline = Stopwatch.StartNew();
        await Task.WhenAll(Replicas.Select(r => WaitForReplayAsync(r, target, timeout, deadline, ct)));
    }

    /// <summary>
    /// Stops the servers and deletes <see cref="RootDirectory"/> when this instance started them and neither
    /// <see cref="LocalPgClusterOptions.KeepRunning"/> nor <c>RWSPLIT_PG_KEEP=1</c> asks to keep them. Safe to call twice.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0 || !OwnsServers || keepRunning)
        {
            return;
        }

        IDisposable? startLock = null;
        try
        {
            startLock = await AcquireLockAsync(RootDirectory + ".lock", startTimeout, CancellationToken.None);
        }
        catch (TimeoutException)
        {
            // Another process is stuck starting the same cluster: stop ours anyway.
        }

        using var releaseLock = startLock;
        await Task.WhenAll(Servers.Select(async s =>
        {
            if (await s.TryStopAsync(immediate: false, CancellationToken.None) is not null)
            {
                await s.TryStopAsync(immediate: true, CancellationToken.None);
            }
        }));
        foreach (var server in Servers)
        {
            using var connection = new NpgsqlConnection(server.ConnectionString);
            NpgsqlConnection.ClearPool(connection);
            CpuQuota.Remove(server.CpuGroup); // a group left by LimitCpu, if any
        }

        await DeleteDirectoryAsync(RootDirectory);
    }

    /// <summary>Step timings on standard error when <c>RWSPLIT_PG_TRACE=1</c>, to find out where a slow start spends its time.</summary>
    private static void Trace(string message)
    {
        if (Environment.GetEnvironmentVariable(TraceVariable) == "1")
        {
            Console.Error.WriteLine($"[RwSplit.PgCluster] {message}");
        }
    }

    private static LocalPgCluster CreateExternal(string primaryConnectionString, TimeSpan startTimeout)
    {
        var primary = new PgServer("primary", primaryConnectionString, isReplica: false);
        var replicas = (Environment.GetEnvironmentVariable(ReplicasVariable) ?? string.Empty)
            .Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select((cs, i) => new PgServer($"replica{i + 1}", cs, isReplica: true))
            .ToList();
        var secondConnectionString = Environment.GetEnvironmentVariable(SecondPrimaryVariable);
        var second = string.IsNullOrWhiteSpace(secondConnectionString) ? null : new PgServer("second-primary", secondConnectionString, isReplica: false);
        return new LocalPgCluster(string.Empty, primary, replicas, second, isExternal: true, ownsServers: false, keepRunning: true, startTimeout);
    }

    private static int ResolveBasePort(LocalPgClusterOptions options)
    {
        var basePort = DefaultBasePort;
        if (options.BasePort is { } fromOptions)
        {
            basePort = fromOptions;
        }
        else if (Environment.GetEnvironmentVariable(BasePortVariable) is { Length: > 0 } fromEnvironment)
        {
            if (!int.TryParse(fromEnvironment, NumberStyles.None, CultureInfo.InvariantCulture, out basePort))
            {
                throw new InvalidOperationException($"{BasePortVariable}='{fromEnvironment}' is not a port number.");
            }
        }

        var highest = basePort + options.ReplicaCount + 1;
        if (basePort < 1024 || highest > 65535)
        {
            throw new InvalidOperationException(
                $"Base port {basePort} does not leave room for ports {basePort}..{highest} in 1024..65535; change it with {BasePortVariable} or LocalPgClusterOptions.BasePort.");
        }

        return basePort;
    }

    /// <summary>Serializes starts (and disposals) of one base port across processes.</summary>
    private static async Task<IDisposable?> AcquireLockAsync(string path, TimeSpan timeout, CancellationToken ct)
    {
        var stopwatch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (UnauthorizedAccessException)
            {
                // A lock file of another OS user that we may not open: go on without the lock.
                return null;
            }
            catch (IOException) when (stopwatch.Elapsed < timeout)
            {
                await Task.Delay(100, ct);
            }
            catch (IOException e)
            {
                throw new TimeoutException($"Another process held {path} (starting or stopping the same cluster) for more than {timeout.TotalSeconds:0} s.", e);
            }
        }
    }

    /// <summary>Whether every server of this layout already runs from its directory, in the right role, with replicas streaming.</summary>
    private async Task<bool> TryReuseAsync(CancellationToken ct)
    {
        var checks = await Task.WhenAll(Servers.Select(s => IsServingAsync(s, ct)));
        if (checks.Any(ok => !ok))
        {
            return false;
        }

        try
        {
            // A kept cluster may come back with a replica left paused by an aborted test.
            await Task.WhenAll(Replicas.Select(r => r.ExecuteControlAsync("SELECT pg_wal_replay_resume() WHERE pg_is_wal_replay_paused()", ct)));
            await WaitForStreamingAsync(TimeSpan.FromSeconds(5), ct);
            return true;
        }
        catch (Exception e) when (PgServer.IsConnectFailure(e))
        {
            return false;
        }
    }

    private static async Task<bool> IsServingAsync(PgServer server, CancellationToken ct)
    {
        if (!File.Exists(Path.Combine(server.DataDirectory, "postmaster.pid")))
        {
            return false;
        }

        try
        {
            await using var connection = await server.OpenControlAsync(ct);
            await using var command = new NpgsqlCommand(
                "SELECT current_setting('data_directory'), pg_is_in_recovery(), EXISTS (SELECT FROM pg_database WHERE datname = $1)", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = PgServer.DatabaseName, NpgsqlDbType = NpgsqlDbType.Text });
            await using var reader = await command.ExecuteReaderAsync(ct);
            await reader.ReadAsync(ct);
            return SamePath(reader.GetString(0), server.DataDirectory) && reader.GetBoolean(1) == server.IsReplica && reader.GetBoolean(2);
        }
        catch (Exception e) when (PgServer.IsConnectFailure(e))
        {
            return false;
        }
    }

    private static bool SamePath(string a, string b)
        => string.Equals(Path.TrimEndingDirectorySeparator(a), Path.TrimEndingDirectorySeparator(b), StringComparison.Ordinal);

    /// <summary>Stops whatever still runs from a directory of an earlier (crashed or partial) run and deletes it.</summary>
    private static async Task RemoveStaleAsync(string root, TimeSpan timeout, CancellationToken ct)
    {
        // Only data directories whose postmaster still lives: pg_ctl would wait out its whole timeout on a postmaster that
        // was killed but not yet reaped (a zombie still "exists" for kill(pid, 0)).
        var dataDirectories = Directory.GetDirectories(root).Where(d => File.Exists(Path.Combine(d, "PG_VERSION")) && PostmasterMayLive(d)).ToList();
        await Task.WhenAll(dataDirectories.Select(d => PgTools.TryRunToolAsync(
            "pg_ctl",
            ["stop", "-D", d, "-m", "immediate", "-w", "-t", "10", "-s"],
            root,
            TimeSpan.FromSeconds(15) < timeout ? TimeSpan.FromSeconds(15) : timeout,
            ct)));
        await DeleteDirectoryAsync(root);
    }

    private static bool PostmasterMayLive(string dataDirectory)
    {
        try
        {
            var pidFile = Path.Combine(dataDirectory, "postmaster.pid");
            if (!File.Exists(pidFile))
            {
                return false;
            }

            var firstLine = File.ReadLines(pidFile).FirstOrDefault()?.Trim();
            if (!int.TryParse(firstLine, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || !Directory.Exists("/proc/self"))
            {
                return true;
            }

            // /proc/PID/stat: "PID (comm) STATE ...": gone, or Z (zombie) / X (dead), means the postmaster has exited.
            var statFile = $"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat";
            if (!File.Exists(statFile))
            {
                return false;
            }

            var stat = File.ReadAllText(statFile);
            var state = stat[(stat.LastIndexOf(')') + 2)..].TrimStart();
            return state.Length == 0 || (state[0] != 'Z' && state[0] != 'X');
        }
        catch (IOException)
        {
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            return true;
        }
    }

    private static async Task DeleteDirectoryAsync(string directory)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (Directory.Exists(directory))
                {
                    Directory.Delete(directory, recursive: true);
                }

                return;
            }
            catch (IOException) when (attempt < 5)
            {
                // A server process that is just exiting may still be writing a file.
                await Task.Delay(100 * attempt);
            }
        }
    }

    private static async Task EnsurePortsFreeAsync(IReadOnlyList<PgServer> servers, CancellationToken ct)
    {
        foreach (var server in servers)
        {
            var listener = new TcpListener(IPAddress.Loopback, server.Port);
            // As PostgreSQL does: a port left in TIME_WAIT by a server that just stopped is free to listen on again.
            listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            try
            {
                listener.Start();
            }
            catch (SocketException e)
            {
                var what = await DescribeOccupantAsync(server.Port, ct);
                throw new InvalidOperationException(
                    $"Port {server.Port} (for the {server.Name}) on 127.0.0.1 is already in use{what}. " +
                    $"Stop that process or pick other ports with the environment variable {BasePortVariable} " +
                    $"(or LocalPgClusterOptions.BasePort); this cluster needs {servers.Min(s => s.Port)}..{servers.Max(s => s.Port)}.",
                    e);
            }
            finally
            {
                listener.Stop();
            }
        }
    }

    private static async Task<string> DescribeOccupantAsync(int port, CancellationToken ct)
    {
        try
        {
            var connectionString = string.Create(
                CultureInfo.InvariantCulture,
                $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Pooling=false;Timeout=2;Application Name={PgServer.ControlApplicationName}");
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(ct);
            await using var command = new NpgsqlCommand("SELECT current_setting('data_directory')", connection);
            return $" by a PostgreSQL server with data directory {await command.ExecuteScalarAsync(ct)}";
        }
        catch (Exception e) when (PgServer.IsConnectFailure(e))
        {
            return string.Empty;
        }
    }

    private async Task CreateAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(RootDirectory);
        await PgTools.HandOverDirectoryAsync(RootDirectory, ct);
        var primaries = Servers.Where(s => !s.IsReplica).ToList();
        try
        {
            var stopwatch = Stopwatch.StartNew();
            await Task.WhenAll(primaries.Select(s => InitDbAsync(s, ct)));
            Trace($"initdb: {stopwatch.ElapsedMilliseconds} ms");
            await Task.WhenAll(primaries.Select(s => s.StartProcessAsync(ct)));
            Trace($"primaries started: {stopwatch.ElapsedMilliseconds} ms");
            await Task.WhenAll(primaries.Select(s => CreateDatabaseAsync(s, ct)));
            Trace($"databases created: {stopwatch.ElapsedMilliseconds} ms");

            // Create the slots before any backup: each reserves WAL from now on, so the fast checkpoint of one backup cannot
            // recycle a segment that another backup running in parallel still has to stream (seen with pg_basebackup -C).
            foreach (var replica in Replicas)
            {
                await Primary.ExecuteControlAsync($"SELECT pg_create_physical_replication_slot('{replica.SlotName}', true)", ct);
            }

            await Task.WhenAll(Replicas.Select(r => BaseBackupAsync(r, ct)));
            Trace($"base backups taken: {stopwatch.ElapsedMilliseconds} ms");
            await Task.WhenAll(Replicas.Select(r => r.StartProcessAsync(ct)));
            Trace($"replicas started: {stopwatch.ElapsedMilliseconds} ms");
            await WaitForStreamingAsync(startTimeout, ct);
            Trace($"replicas streaming: {stopwatch.ElapsedMilliseconds} ms");
        }
        catch
        {
            // Leave the directory (its logs explain the failure); the next start finds it stale and replaces it.
            await Task.WhenAll(Servers.Select(s => s.TryStopAsync(immediate: true, CancellationToken.None)));
            throw;
        }
    }

    private async Task InitDbAsync(PgServer server, CancellationToken ct)
    {
        await PgTools.RunToolAsync(
            "initdb",
            [
                "-D", server.DataDirectory, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
                // 1 MB WAL segments instead of 16 MB: far less zero-filling in initdb, the backups and the replicas.
                "--wal-segsize=1",
            ],
            RootDirectory,
            startTimeout,
            null,
            ct);
        await File.AppendAllTextAsync(Path.Combine(server.DataDirectory, "postgresql.conf"), Settings(server), ct);
    }

    private async Task BaseBackupAsync(PgServer replica, CancellationToken ct)
    {
        await PgTools.RunToolAsync(
            "pg_basebackup",
            [
                "-h", "127.0.0.1", "-p", Primary.Port.ToString(CultureInfo.InvariantCulture), "-U", "postgres",
                "-D", replica.DataDirectory, "-R", "-X", "stream", "-S", replica.SlotName, "-c", "fast", "--no-sync", "--no-manifest",
            ],
            RootDirectory,
            startTimeout,
            Primary.LogFile,
            ct);

        // The copy holds the primary's log and configuration: start the replica's own log, and override the port and name
        // (later lines of postgresql.conf win; -R put primary_conninfo and primary_slot_name into postgresql.auto.conf).
        File.Delete(Path.Combine(replica.DataDirectory, LogFileName));
        var conf = Path.Combine(replica.DataDirectory, "postgresql.conf");
        await File.AppendAllTextAsync(conf, PerServerSettings(replica), ct);
    }

    private string Settings(PgServer server)
    {
        // The socket path must fit in sun_path (107 bytes); pg_ctl -w and all clients here use TCP, so none is needed.
        var socketDirectory = RootDirectory.Length + 20 < 107 ? RootDirectory.Replace("'", "''", StringComparison.Ordinal) : string.Empty;
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"""

            # ---- Added by RwSplit.PgCluster ----
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '{socketDirectory}'
            wal_level = replica
            max_wal_senders = 10
            max_replication_slots = 10
            hot_standby = on
            hot_standby_feedback = on
            max_prepared_transactions = 64
            max_connections = 200
            fsync = off
            full_page_writes = off
            shared_buffers = 32MB
            wal_receiver_status_interval = 1s
            wal_retrieve_retry_interval = 500ms
            track_commit_timestamp = on
            logging_collector = off
            log_min_messages = warning

            """);
        text.Append(PerServerSettings(server));
        return text.ToString();
    }

    private static string PerServerSettings(PgServer server)
        => string.Create(CultureInfo.InvariantCulture, $"port = {server.Port}\ncluster_name = '{server.Name}'\n");

    private static async Task CreateDatabaseAsync(PgServer server, CancellationToken ct)
        // FILE_COPY: a copy of the template files instead of the default WAL_LOG's ~7 MB of WAL that every backup would stream.
        => await server.ExecuteControlAsync($"CREATE DATABASE {PgServer.DatabaseName} STRATEGY = FILE_COPY", ct);

    /// <summary>Waits until <c>pg_stat_replication</c> on the primary shows every replica streaming.</summary>
    private async Task WaitForStreamingAsync(TimeSpan timeout, CancellationToken ct)
    {
        if (Replicas.Count == 0)
        {
            return;
        }

        var stopwatch = Stopwatch.StartNew();
        await using var connection = await Primary.OpenControlAsync(ct);
        await using var command = new NpgsqlCommand("SELECT count(*)::int FROM pg_stat_replication WHERE state = 'streaming'", connection);
        while (true)
        {
            var streaming = (int)(await command.ExecuteScalarAsync(ct))!;
            if (streaming >= Replicas.Count)
            {
                return;
            }

            if (stopwatch.Elapsed > timeout)
            {
                var logs = string.Concat(Replicas.Select(r =>
                    $"{Environment.NewLine}--- last lines of {r.LogFile} ---{Environment.NewLine}{PgTools.TailOfFile(r.LogFile, 15)}"));
                throw new TimeoutException(
                    $"Only {streaming} of {Replicas.Count} replicas were streaming from the primary after {timeout.TotalSeconds:0} s.{logs}");
            }

            await Task.Delay(25, ct);
        }
    }

    private static async Task WaitForReplayAsync(PgServer replica, string targetLsn, TimeSpan timeout, Stopwatch elapsed, CancellationToken ct)
    {
        string lastState = "not asked yet";
        NpgsqlConnection? connection = null;
        try
        {
            while (true)
            {
                try
                {
                    connection ??= await replica.OpenControlAsync(ct);
                    await using var command = new NpgsqlCommand(
                        "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn, pg_last_wal_replay_lsn()::text, pg_is_wal_replay_paused()", connection);
                    command.Parameters.Add(new NpgsqlParameter { Value = targetLsn, NpgsqlDbType = NpgsqlDbType.Text });
                    await using var reader = await command.ExecuteReaderAsync(ct);
                    await reader.ReadAsync(ct);
                    if (!reader.IsDBNull(0) && reader.GetBoolean(0))
                    {
                        return;
                    }

                    lastState = $"replayed up to {(reader.IsDBNull(1) ? "nothing" : reader.GetString(1))}{(reader.GetBoolean(2) ? ", replay paused" : string.Empty)}";
                }
                catch (Exception e) when (PgServer.IsConnectFailure(e))
                {
                    lastState = $"not reachable: {e.Message}";
                    if (connection is not null)
                    {
                        await connection.DisposeAsync();
                        connection = null;
                    }
                }

                if (elapsed.Elapsed > timeout)
                {
                    throw new TimeoutException(
                        $"Replica {replica} did not replay up to the primary's WAL position {targetLsn} within {timeout.TotalMilliseconds:0} ms ({lastState}).");
                }

                await Task.Delay(20, ct);
            }
        }
        finally
        {
            if (connection is not null)
            {
                await connection.DisposeAsync();
            }
        }
    }
}
