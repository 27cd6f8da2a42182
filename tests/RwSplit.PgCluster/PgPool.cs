using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Npgsql;

namespace RwSplit.PgCluster;

/// <summary>
/// pgpool-II in front of a <see cref="LocalPgCluster"/>, as the read/write-splitting proxy PostgreSQL users pick:
/// streaming-replication mode, <c>load_balance_mode = on</c>, <c>statement_level_load_balance = on</c>, equal backend
/// weights, its own connection cache, and optionally its own CPU quota (like the servers'). It runs as the
/// <c>postgres</c> user with its files in a temp directory. Nothing is installed: <see cref="Binary"/> is
/// <see langword="null"/> when pgpool-II (Debian package <c>pgpool2</c>) is missing, and the caller skips the peer.
/// </summary>
public sealed class PgPool : IAsyncDisposable
{
    private readonly string _directory;
    private readonly string _config;

    private PgPool(string directory, string config, int port)
    {
        _directory = directory;
        _config = config;
        Port = port;
    }

    /// <summary>The pgpool executable, or <see langword="null"/> when pgpool-II is not installed.</summary>
    public static string? Binary { get; } = new[] { "/usr/sbin/pgpool", "/usr/bin/pgpool" }.FirstOrDefault(File.Exists);

    /// <summary>The port clients connect to.</summary>
    public int Port { get; }

    /// <summary>A connection string to pgpool with the primary's user and database.</summary>
    public string ConnectionString { get; private set; } = "";

    /// <summary>
    /// Starts pgpool on <paramref name="port"/> (and <paramref name="port"/> + 1 for PCP) over the cluster's primary and
    /// replicas, and waits until it accepts connections.
    /// </summary>
    /// <param name="cluster">The servers (local ones: their ports on 127.0.0.1).</param>
    /// <param name="port">Its port.</param>
    /// <param name="children">Its <c>num_init_children</c>: the most concurrent clients.</param>
    /// <param name="resetQuery">Its <c>reset_query_list</c> (pgpool's default: <c>ABORT; DISCARD ALL</c>).</param>
    /// <param name="cpuQuota">A CPU quota for pgpool's processes, in cores (see <see cref="CpuQuota"/>); <see langword="null"/>: none.</param>
    /// <param name="ct">Cancels the start.</param>
    public static async Task<PgPool> StartAsync(LocalPgCluster cluster, int port, int children, string resetQuery = "ABORT; DISCARD ALL", double? cpuQuota = null, CancellationToken ct = default)
    {
        var binary = Binary ?? throw new InvalidOperationException("pgpool-II is not installed (Debian package pgpool2).");
        var directory = Directory.CreateTempSubdirectory("rwsplit-pgpool-").FullName;
        var config = Path.Combine(directory, "pgpool.conf");
        var text = new StringBuilder();
        void Set(string name, string value) => text.Append(name).Append(" = ").AppendLine(value);
        Set("backend_clustering_mode", "'streaming_replication'");
        Set("listen_addresses", "'127.0.0.1'");
        Set("port", port.ToString(CultureInfo.InvariantCulture));
        Set("unix_socket_directories", $"'{directory}'");
        Set("pcp_listen_addresses", "''");
        Set("pcp_port", (port + 1).ToString(CultureInfo.InvariantCulture));
        Set("pcp_socket_dir", $"'{directory}'");
        Set("pid_file_name", $"'{Path.Combine(directory, "pgpool.pid")}'");
        Set("logdir", $"'{directory}'");
        Set("log_destination", "'stderr'");
        var servers = new[] { cluster.Primary }.Concat(cluster.Replicas).ToList();
        for (var i = 0; i < servers.Count; i++)
        {
            Set($"backend_hostname{i}", "'127.0.0.1'");
            Set($"backend_port{i}", servers[i].Port.ToString(CultureInfo.InvariantCulture));
            Set($"backend_weight{i}", "1");
            Set($"backend_data_directory{i}", $"'{servers[i].DataDirectory}'");
            Set($"backend_flag{i}", "'DISALLOW_TO_FAILOVER'");
        }

        Set("load_balance_mode", "on");
        Set("statement_level_load_balance", "on");
        Set("num_init_children", children.ToString(CultureInfo.InvariantCulture));
        Set("max_pool", "4");
        Set("connection_cache", "on");
        Set("reset_query_list", $"'{resetQuery}'");
        Set("enable_pool_hba", "off");
        Set("sr_check_period", "0"); // no lag check: the servers' trust authentication has no sr_check password to give
        Set("health_check_period", "0");
        Set("failover_on_backend_error", "off");
        Set("memory_cache_enabled", "off");
        await File.WriteAllTextAsync(config, text.ToString(), ct);
        await File.WriteAllTextAsync(Path.Combine(directory, "pcp.conf"), "", ct);
        await PgTools.HandOverDirectoryAsync(directory, ct);

        var pool = new PgPool(directory, config, port)
        {
            ConnectionString = new NpgsqlConnectionStringBuilder(cluster.PrimaryConnectionString) { Host = "127.0.0.1", Port = port, Multiplexing = false }.ConnectionString,
        };
        await PgTools.RunToolAsync(binary, ["-f", config, "-F", Path.Combine(directory, "pcp.conf"), "-D"], directory, TimeSpan.FromSeconds(30), null, ct);
        await pool.WaitUntilAcceptingAsync(ct);
        if (cpuQuota is { } cores)
        {
            var pid = int.Parse((await File.ReadAllLinesAsync(Path.Combine(directory, "pgpool.pid"), ct)).First().Trim(), CultureInfo.InvariantCulture);
            CpuQuota.Apply($"pgpool-{port.ToString(CultureInfo.InvariantCulture)}", pid, cores);
        }

        return pool;
    }

    private async Task WaitUntilAcceptingAsync(CancellationToken ct)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ConnectionString) { Pooling = false, Timeout = 2 }.ConnectionString);
                await connection.OpenAsync(ct);
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException && watch.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(200, ct);
            }
        }
    }

    /// <summary>Stops pgpool (fast) and removes its files and CPU group.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Binary is { } binary)
            await PgTools.TryRunToolAsync(binary, ["-f", _config, "-m", "fast", "stop"], _directory, TimeSpan.FromSeconds(30), CancellationToken.None);
        CpuQuota.Remove($"pgpool-{Port.ToString(CultureInfo.InvariantCulture)}");
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
