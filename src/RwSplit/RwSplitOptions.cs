using System;
using System.Collections.Generic;
using Microsoft.Extensions.Logging;

namespace RwSplit;

/// <summary>
/// Configuration of an <see cref="RwSplitDataSource"/>: the provider, the primary, the replicas and the routing rules.
/// Validated once by <see cref="RwSplitOptionsValidator"/> (all errors together) and frozen when the data source is built;
/// later changes to this object do not affect a built data source.
/// </summary>
public sealed class RwSplitOptions
{
    /// <summary>The provider dialect. Set with <c>UseNpgsql()</c> or <c>UseSqlServer()</c>. Required.</summary>
    public RwSplitDialect? Dialect { get; private set; }

    /// <summary>The primary's provider connection string. Required.</summary>
    public string? Primary { get; set; }

    /// <summary>
    /// The replicas' provider connection strings. Default: empty (every command runs on the primary). At most 64.
    /// </summary>
    public IList<string> Replicas { get; } = new List<string>();

    /// <summary>The consistency of reads. Default: <see cref="ReadConsistency.ReadYourWrites"/>.</summary>
    public ReadConsistency Consistency { get; set; } = ReadConsistency.ReadYourWrites;

    /// <summary>
    /// Stored procedures that only read, so that calling them (<c>CommandType.StoredProcedure</c> or <c>EXEC</c>) may
    /// run on a replica. Case-insensitive; a name with a schema (<c>dbo.GetOrders</c>) or without one. Default: empty.
    /// </summary>
    public ISet<string> ReadOnlyProcedures { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Functions the database marks volatile that the application knows never write, so that a read calling them may
    /// run on a replica (PostgreSQL). Case-insensitive, unqualified names. Default: empty.
    /// </summary>
    public ISet<string> ReadOnlyFunctions { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// How many distinct command texts keep their classification cached. Default: 10 000. Range: 16 to 10 000 000.
    /// </summary>
    public int StatementCacheSize { get; set; } = 10_000;

    /// <summary>How often the function catalog (PostgreSQL <c>pg_proc</c>) is reloaded. Default: 5 minutes. Must be positive.</summary>
    public TimeSpan FunctionCatalogRefreshInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How long a replica that could not be connected to is skipped before RwSplit tries it again, when health monitoring
    /// is off (with monitoring, it comes back after <see cref="ReadmitAfterHealthyProbes"/> good probes). Default: 5 seconds.
    /// Must be positive.
    /// </summary>
    public TimeSpan ReplicaRetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Whether a background monitor probes every endpoint (reachability, role, replication lag, latency). Default:
    /// <see langword="true"/>. Without it, replicas are assumed healthy and in sync except after a failed open, and
    /// read-your-writes reads after a write use the primary.
    /// </summary>
    public bool HealthMonitoring { get; set; } = true;

    /// <summary>How often each endpoint is probed. Default: 1 second. Range: 50 milliseconds to 10 minutes.</summary>
    public TimeSpan HealthCheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A replica further behind the primary than this is ejected: no read goes to it until it catches up (and passes
    /// <see cref="ReadmitAfterHealthyProbes"/> probes). Also the staleness allowed to <see cref="ReadConsistency.Eventual"/>
    /// reads. Default: 10 seconds. Must be positive.
    /// </summary>
    public TimeSpan MaxReplicaLag { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How many consecutive healthy probes an ejected replica needs before it serves reads again (hysteresis, so that a
    /// flapping replica does not take traffic on its first good answer). Default: 3. Range: 1 to 1000.
    /// </summary>
    public int ReadmitAfterHealthyProbes { get; set; } = 3;

    /// <summary>
    /// How reads are spread over the available replicas. Default: <see cref="ReplicaBalancing.LeastOutstanding"/> (of two
    /// replicas drawn in turn, the one with fewer commands in flight): it follows the replicas' real capacity, and with
    /// no command in flight it takes the replica round-robin would.
    /// </summary>
    public ReplicaBalancing Balancing { get; set; } = ReplicaBalancing.LeastOutstanding;

    /// <summary>
    /// The keys <see cref="Routing.ConsistencyToken"/>s are signed and checked with (HMAC-SHA256; each at least 16
    /// bytes, 32 random bytes recommended, e.g. from <c>RandomNumberGenerator.GetBytes(32)</c>, kept with the
    /// application's other secrets). The first key signs new tokens; every key listed verifies. Rotation: put the new
    /// key first and keep the old one after it until the tokens it signed are no longer in flight, then remove it. Empty
    /// (the default): the data source generates a random key of its own, so its tokens are accepted by it alone, in this
    /// process; configure the same keys on every data source and service that exchanges tokens.
    /// </summary>
    public IList<byte[]> ConsistencyTokenKeys { get; } = new List<byte[]>();

    /// <summary>
    /// Under <see cref="ReadConsistency.ReadYourWrites"/>, how long a read after a write may wait for a replica to replay
    /// that write before it goes to the primary instead. Default: 100 milliseconds. Range: zero (never wait) to 30 seconds.
    /// </summary>
    public TimeSpan ReadYourWritesTimeout { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Under <see cref="ReadConsistency.ReadYourWrites"/>, where a read right after the session's own write goes while no
    /// replica is known to have replayed it. Default: <see cref="RwSplit.ReadAfterWrite.OpenPrimary"/>, the session's
    /// open primary connection (as cheap as without RwSplit); <see cref="RwSplit.ReadAfterWrite.WaitForReplica"/> keeps
    /// such reads off the primary, waiting up to <see cref="ReadYourWritesTimeout"/> for a replica.
    /// </summary>
    public ReadAfterWrite ReadAfterWrite { get; set; } = ReadAfterWrite.OpenPrimary;

    /// <summary>
    /// How much read load the primary takes, relative to one replica, when the consistency lets a read run anywhere:
    /// a new read goes to the primary instead of the replica balancing chose when the primary has fewer outstanding
    /// commands (its writes included) per unit of weight. Default: 1, the primary serves reads as one more replica of
    /// the same size when it has spare capacity (with nothing in flight, reads go to the replicas); 0.5: half as many;
    /// 0: none, the primary is kept for writes. Range: 0 to 100. Counts this data source's commands only: other
    /// processes' load on the primary is not seen.
    /// </summary>
    public double PrimaryReadWeight { get; set; } = 1;

    /// <summary>
    /// The replicas' read weights, one per entry of <see cref="Replicas"/> in the same order, for replicas of different
    /// sizes: a replica of weight 2 takes twice the new reads of one of weight 1 (round-robin draws in proportion;
    /// <see cref="ReplicaBalancing.LeastOutstanding"/> compares commands in flight per unit of weight), and
    /// <see cref="PrimaryReadWeight"/> is relative to a replica of weight 1. Weight 0: the replica serves reads only when
    /// no replica of positive weight is usable (a standby kept for failover, a replica being drained). Default: empty,
    /// every replica weighs 1. Range: 0 to 100 each.
    /// </summary>
    public IList<double> ReplicaWeights { get; } = new List<double>();

    /// <summary>
    /// The most reads that may run on the primary at once because no replica qualified (all down, all lagging, none
    /// caught up with a write). Protects the primary from a sudden flood when replicas fail. Default: 32. Range: 0 to
    /// 100 000. Applies only when replicas are configured. Reads a session runs on its open primary connection right
    /// after its own write (<see cref="RwSplit.ReadAfterWrite.OpenPrimary"/>) and reads the primary takes by its
    /// <see cref="PrimaryReadWeight"/> are not fallbacks and take no slot.
    /// </summary>
    public int FallbackReadLimit { get; set; } = 32;

    /// <summary>What a read gets when <see cref="FallbackReadLimit"/> is reached. Default: <see cref="FallbackOverflow.Wait"/>.</summary>
    public FallbackOverflow FallbackOverflow { get; set; } = FallbackOverflow.Wait;

    /// <summary>
    /// How long a read waits for a fallback slot under <see cref="FallbackOverflow.Wait"/> before it fails with
    /// <see cref="RwSplitError.FallbackLimitReached"/>. Default: 5 seconds. Range: zero to 10 minutes.
    /// </summary>
    public TimeSpan FallbackWaitTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Whether a statement a replica rejects as a write (PostgreSQL SQLSTATE 25006, SQL Server error 3906) is retried once
    /// on the primary and its text remembered as a write. Default: <see langword="true"/>.
    /// </summary>
    public bool RetryMisroutedWrites { get; set; } = true;

    /// <summary>
    /// Whether this data source takes part in distributed transactions (<c>TransactionScope</c> or
    /// <see cref="Transactions.RwSplitDistributedTransaction"/> across several databases) and is recovered after a crash
    /// (<see cref="Recovery"/>). Default: <see langword="true"/>. When off, joining a distributed transaction is refused.
    /// </summary>
    public bool DistributedTransactions { get; set; } = true;

    /// <summary>
    /// Whether the decision table <c>rwsplit_decisions</c> is created on first use in a database that holds decisions.
    /// Default: <see langword="true"/>. Turn off where the application may not run DDL, and create it with the script in
    /// docs/transactions.md.
    /// </summary>
    public bool AutoCreateDecisionTable { get; set; } = true;

    /// <summary>
    /// Opt-in: whether this data source may commit as a <em>heuristic participant</em> of a distributed transaction that
    /// writes to several SQL Server instances. SQL Server cannot prepare a transaction outside MSDTC, so only one instance
    /// can be the last resource (its commit is the decision); with this on, the other instances commit right after it,
    /// each with a marker row. A crash or connection loss in that window leaves a mixed (heuristic) outcome that recovery
    /// detects, logs, counts and lists (<see cref="Transactions.RwSplitRecovery.HeuristicOutcomes"/>) but cannot repair.
    /// Default: <see langword="false"/> (such a transaction is refused before anything commits). No effect for engines
    /// that can prepare (PostgreSQL). See docs/transactions.md.
    /// </summary>
    public bool AllowHeuristicCommit { get; set; }

    /// <summary>
    /// How long a prepared branch may wait for its decision before recovery aborts it (fence row, then rollback). Must be
    /// longer than any commit takes. Default: 1 minute. Range: 1 second to 1 day.
    /// </summary>
    public TimeSpan RecoveryGracePeriod { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How often recovery runs (it also runs at start-up). Default: 30 seconds. Range: 1 second to 1 day.</summary>
    public TimeSpan RecoveryInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The crash recovery this data source joins when <see cref="DistributedTransactions"/> is on. Give every data source
    /// whose databases take part in the same distributed transactions the same instance (the DI registration does: one per
    /// container). Default: none, and the data source gets a recovery of its own, disposed with it.
    /// </summary>
    public Transactions.RwSplitRecovery? Recovery { get; set; }

    /// <summary>The logger factory. Default: none (no logging). The DI registration takes the container's.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>A name for logs and telemetry (<c>rwsplit.data_source</c>). Default: <c>"default"</c>, or the DI key.</summary>
    public string Name { get; set; } = "default";

    /// <summary>Selects the provider dialect. Called by <c>UseNpgsql()</c> and <c>UseSqlServer()</c>.</summary>
    /// <param name="dialect">The dialect.</param>
    /// <returns>These options, for chaining.</returns>
    public RwSplitOptions UseDialect(RwSplitDialect dialect)
    {
        Dialect = dialect ?? throw new ArgumentNullException(nameof(dialect));
        return this;
    }
}
