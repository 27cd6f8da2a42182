using System;
using System.Collections.Concurrent;
using System.Data.Common;
using Microsoft.Extensions.Options;

namespace RwSplit;

/// <summary>
/// RwSplit's <see cref="DbProviderFactory"/>, one per provider dialect (<c>RwSplitSqlServer.Factory</c>,
/// <c>RwSplitNpgsql.Factory</c>). Connections it creates take a drop-in connection string: the provider's own connection
/// string for the primary, plus RwSplit's keywords, which are removed before the provider sees the string:
/// <list type="bullet">
/// <item><description><c>Replicas</c>: the replicas' servers, separated by <c>|</c>, in the provider's syntax
/// (<c>Replicas=sql-r1|sql-r2,1444</c>). Every other setting (credentials, database) is the primary's.</description></item>
/// <item><description><c>Read Consistency</c>: <c>Eventual</c>, <c>ReadYourWrites</c> (default) or <c>Strong</c>.</description></item>
/// <item><description><c>Replica Weights</c>: one weight per replica, in the same order, separated by <c>|</c>
/// (<c>Replica Weights=1|3</c>; see <see cref="RwSplitOptions.ReplicaWeights"/>).</description></item>
/// </list>
/// Connections with the same drop-in connection string share one <see cref="RwSplitDataSource"/>, as the provider shares a pool.
/// </summary>
public sealed class RwSplitProviderFactory : DbProviderFactory
{
    /// <summary>The drop-in keyword listing the replicas' servers.</summary>
    public const string ReplicasKeyword = "Replicas";

    /// <summary>The drop-in keyword giving the read consistency.</summary>
    public const string ReadConsistencyKeyword = "Read Consistency";

    /// <summary>The drop-in keyword giving the replicas' read weights.</summary>
    public const string ReplicaWeightsKeyword = "Replica Weights";

    // Weak: a dialect configured for one data source (RwSplitNpgsqlExtensions.UseNpgsql with a builder callback) is not
    // kept alive by this cache once nothing else refers to it.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<RwSplitDialect, RwSplitProviderFactory> Factories = new();
    private readonly ConcurrentDictionary<string, RwSplitDataSource> _dataSources = new(StringComparer.Ordinal);

    private RwSplitProviderFactory(RwSplitDialect dialect) => Dialect = dialect;

    /// <summary>The factory of a dialect (one instance per dialect instance).</summary>
    /// <param name="dialect">The dialect.</param>
    public static RwSplitProviderFactory For(RwSplitDialect dialect)
    {
        ArgumentNullException.ThrowIfNull(dialect);
        return Factories.GetValue(dialect, static d => new RwSplitProviderFactory(d));
    }

    /// <summary>The provider dialect.</summary>
    public RwSplitDialect Dialect { get; }

    /// <summary>The crash recovery shared by the data sources of this factory's drop-in connections.</summary>
    public Transactions.RwSplitRecovery Recovery { get; } = new();

    /// <inheritdoc />
    public override bool CanCreateDataSourceEnumerator => false;

    /// <summary>Creates a closed connection; set its <see cref="RwSplitConnection.ConnectionString"/> before opening.</summary>
    public override DbConnection CreateConnection() => new RwSplitConnection(this);

    /// <summary>
    /// Creates a closed connection from a drop-in connection string: the one-line replacement for
    /// <c>new SqlConnection(connectionString)</c>.
    /// </summary>
    /// <param name="connectionString">The provider's connection string plus RwSplit's keywords.</param>
    public RwSplitConnection CreateConnection(string connectionString) => new(this) { ConnectionString = connectionString };

    /// <inheritdoc />
    public override DbCommand CreateCommand() => new RwSplitCommand(Dialect);

    /// <summary>Whether the provider can batch statements: then <see cref="CreateBatch"/> and <see cref="CreateBatchCommand"/> work.</summary>
    public override bool CanCreateBatch => Dialect.ProviderFactory.CanCreateBatch;

    /// <summary>Creates a batch without a connection; set its <see cref="RwSplitBatch.Connection"/> before executing.</summary>
    /// <returns>The batch.</returns>
    /// <exception cref="NotSupportedException">The provider cannot batch (<see cref="CanCreateBatch"/> is false).</exception>
    public override DbBatch CreateBatch() => new RwSplitBatch(Dialect);

    /// <summary>Creates a batch statement whose parameters are the provider's.</summary>
    /// <returns>The statement.</returns>
    /// <exception cref="NotSupportedException">The provider cannot batch (<see cref="CanCreateBatch"/> is false).</exception>
    public override DbBatchCommand CreateBatchCommand() => new RwSplitBatchCommand(Dialect);

    /// <summary>Creates a parameter of the provider's own type.</summary>
    public override DbParameter CreateParameter()
        => Dialect.ProviderFactory.CreateParameter() ?? throw new NotSupportedException($"The {Dialect.SystemName} provider cannot create parameters.");

    /// <summary>Whether the provider has a command builder: then <see cref="CreateCommandBuilder"/> returns RwSplit's.</summary>
    public override bool CanCreateCommandBuilder => Dialect.ProviderFactory.CanCreateCommandBuilder;

    /// <summary>An <see cref="RwSplitCommandBuilder"/> (generated writes run on the primary), or null when the provider has no command builder.</summary>
    public override DbCommandBuilder? CreateCommandBuilder() => CanCreateCommandBuilder ? new RwSplitCommandBuilder(Dialect) : null;

    /// <summary>Whether the provider has a data adapter: then <see cref="CreateDataAdapter"/> returns RwSplit's.</summary>
    public override bool CanCreateDataAdapter => Dialect.ProviderFactory.CanCreateDataAdapter;

    /// <summary>An <see cref="RwSplitDataAdapter"/> (its fill is routed as a read, its updates run on the primary), or null when the provider has none.</summary>
    public override DbDataAdapter? CreateDataAdapter() => CanCreateDataAdapter ? new RwSplitDataAdapter() : null;

    /// <summary>A plain <see cref="DbConnectionStringBuilder"/>: the drop-in string mixes RwSplit's keywords with the provider's.</summary>
    public override DbConnectionStringBuilder CreateConnectionStringBuilder() => new();

    /// <summary>The shared data source for a drop-in connection string.</summary>
    /// <param name="connectionString">The provider's connection string plus RwSplit's keywords.</param>
    public override DbDataSource CreateDataSource(string connectionString) => GetDataSource(connectionString);

    /// <summary>
    /// The shared data source for a drop-in connection string, built and validated on first use (and again after it was
    /// disposed).
    /// </summary>
    /// <param name="connectionString">The provider's connection string plus RwSplit's keywords.</param>
    /// <exception cref="ArgumentException">The string is invalid (as the provider's own connection string setter throws); the message names the problem and its fix, never a value of the string.</exception>
    public RwSplitDataSource GetDataSource(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        while (true)
        {
            if (_dataSources.TryGetValue(connectionString, out var existing))
            {
                if (!existing.IsDisposed)
                    return existing;

                // Someone disposed the shared data source (an application shutting a component down, a test): its
                // connections are gone, so the next caller gets a new one rather than an ObjectDisposedException.
                _dataSources.TryRemove(new(connectionString, existing));
                continue;
            }

            var created = Build(connectionString);
            var winner = _dataSources.GetOrAdd(connectionString, created);
            if (!ReferenceEquals(winner, created))
                created.Dispose();
            if (!winner.IsDisposed)
                return winner;
        }
    }

    private RwSplitDataSource Build(string connectionString) => new(ParseDropIn(connectionString));

    /// <summary>
    /// Checks a drop-in string when it is assigned to a connection. A string whose shared data source is live was checked
    /// when that was built, so creating a connection per request (<c>CreateConnection(string)</c>) parses nothing again.
    /// </summary>
    /// <exception cref="ArgumentException">The string is invalid (see <see cref="ParseDropIn"/>).</exception>
    internal void Validate(string connectionString)
    {
        if (_dataSources.TryGetValue(connectionString, out var existing) && !existing.IsDisposed)
            return;
        ParseDropIn(connectionString);
    }

    /// <summary>
    /// The options a drop-in connection string stands for, validated as a whole (what <see cref="RwSplitConnection.ConnectionString"/>
    /// checks when it is assigned).
    /// </summary>
    /// <exception cref="ArgumentException">The string is invalid; the message never quotes a value of it.</exception>
    internal RwSplitOptions ParseDropIn(string connectionString)
    {
        var builder = new DbConnectionStringBuilder();
        try
        {
            builder.ConnectionString = connectionString;
        }
        catch (ArgumentException ex)
        {
            // The provider's own message may echo the string; say only where it broke.
            throw Invalid($"The RwSplit connection string is malformed ({ex.GetType().Name}); check quoting of values containing ';' or '='.");
        }

        var options = new RwSplitOptions { Name = "drop-in", Recovery = Recovery };
        options.UseDialect(Dialect);
        string? replicas = null;
        if (builder.TryGetValue(ReplicasKeyword, out var value))
        {
            replicas = Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture);
            builder.Remove(ReplicasKeyword);
        }

        if (builder.TryGetValue(ReadConsistencyKeyword, out var consistency))
        {
            builder.Remove(ReadConsistencyKeyword);
            var text = Convert.ToString(consistency, System.Globalization.CultureInfo.InvariantCulture);
            if (!Enum.TryParse<ReadConsistency>(text, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed) || int.TryParse(text, out _))
                throw Invalid("The Read Consistency keyword's value is not valid: use Eventual, ReadYourWrites or Strong.");
            options.Consistency = parsed;
        }

        if (builder.TryGetValue(ReplicaWeightsKeyword, out var weights))
        {
            builder.Remove(ReplicaWeightsKeyword);
            foreach (var weight in (Convert.ToString(weights, System.Globalization.CultureInfo.InvariantCulture) ?? "").Split('|', StringSplitOptions.TrimEntries))
            {
                if (!double.TryParse(weight, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var parsed))
                    throw Invalid("The Replica Weights keyword's value is not valid: give one number per replica, separated by '|', e.g. Replica Weights=1|3.");
                options.ReplicaWeights.Add(parsed);
            }
        }

        var primary = builder.ConnectionString;
        options.Primary = primary;
        if (!string.IsNullOrWhiteSpace(replicas))
        {
            foreach (var server in replicas.Split('|', StringSplitOptions.TrimEntries))
            {
                if (server.Length == 0)
                    throw Invalid("The Replicas keyword has an empty entry: list servers separated by '|', e.g. Replicas=sql-r1|sql-r2,1444.");
                options.Replicas.Add(Dialect.WithServer(primary, server));
            }
        }

        var result = new RwSplitOptionsValidator().Validate(null, options);
        if (result.Failed)
            throw Invalid(string.Join(Environment.NewLine, result.Failures));
        return options;
    }

    private static ArgumentException Invalid(string message) => new(message, "connectionString");
}
