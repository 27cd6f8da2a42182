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
    /// How long a replica that could not be connected to is skipped before RwSplit tries it again. Default: 5 seconds.
    /// Must be positive.
    /// </summary>
    public TimeSpan ReplicaRetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Whether a statement a replica rejects as a write (PostgreSQL SQLSTATE 25006, SQL Server error 3906) is retried once
    /// on the primary and its text remembered as a write. Default: <see langword="true"/>.
    /// </summary>
    public bool RetryMisroutedWrites { get; set; } = true;

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
