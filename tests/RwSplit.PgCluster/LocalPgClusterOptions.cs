using System;

namespace RwSplit.PgCluster;

/// <summary>How <see cref="LocalPgCluster.StartAsync"/> lays out and keeps the local PostgreSQL servers.</summary>
public sealed class LocalPgClusterOptions
{
    /// <summary>
    /// The primary's port; replica <c>n</c> listens on <c>BasePort + n</c> and the second primary on
    /// <c>BasePort + ReplicaCount + 1</c>. <see langword="null"/> uses the environment variable <c>RWSPLIT_PG_BASE_PORT</c>,
    /// else 25430 (primary 25430, replicas 25431 and 25432, second primary 25433).
    /// </summary>
    public int? BasePort { get; set; }

    /// <summary>
    /// Leaves the servers running (and their directory in place) when the cluster is disposed, so that the next run
    /// reuses them. The environment variable <c>RWSPLIT_PG_KEEP=1</c> does the same.
    /// </summary>
    public bool KeepRunning { get; set; }

    /// <summary>Whether to start the independent second primary (for cross-server transaction tests). Default <see langword="true"/>.</summary>
    public bool StartSecondPrimary { get; set; } = true;

    /// <summary>How many streaming replicas of the primary to start. Default 2.</summary>
    public int ReplicaCount { get; set; } = 2;

    /// <summary>
    /// A CPU quota for each server, in cores (0.25 = a quarter of one core), as if each ran on a machine of that size:
    /// a cgroup v1 <c>cpu</c> group per server (see <see cref="CpuQuota"/>), set after each start. Needs root.
    /// <see langword="null"/> (the default): no quota. Not applied to servers named by <c>RWSPLIT_PG_PRIMARY</c>.
    /// </summary>
    public double? CpuQuota { get; set; }

    /// <summary>The longest any single step of the start (initdb, a server start, the replicas reaching streaming) may take. Default 60 s.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(60);
}
