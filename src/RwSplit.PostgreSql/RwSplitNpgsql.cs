using System.Threading;
using System.Threading.Tasks;
using Npgsql;

namespace RwSplit.PostgreSql;

/// <summary>Entry points of RwSplit for Npgsql.</summary>
public static class RwSplitNpgsql
{
    /// <summary>
    /// RwSplit's provider factory for Npgsql. Connections it creates take a drop-in connection string: Npgsql's for the
    /// primary plus <c>Replicas=host2:5432|host3</c> (see <see cref="RwSplitProviderFactory"/>).
    /// </summary>
    public static RwSplitProviderFactory Factory => RwSplitProviderFactory.For(NpgsqlDialect.Instance);

    /// <summary>
    /// Opens (if needed) and returns Npgsql's own connection to the primary, for Npgsql-only APIs (binary COPY,
    /// notifications). Pins the logical connection to the primary.
    /// </summary>
    /// <param name="connection">The logical connection.</param>
    public static NpgsqlConnection GetNpgsqlPrimaryConnection(this RwSplitConnection connection)
        => (NpgsqlConnection)connection.GetPrimaryConnection();

    /// <inheritdoc cref="GetNpgsqlPrimaryConnection"/>
    /// <param name="connection">The logical connection.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    public static async ValueTask<NpgsqlConnection> GetNpgsqlPrimaryConnectionAsync(this RwSplitConnection connection, CancellationToken cancellationToken = default)
        => (NpgsqlConnection)await connection.GetPrimaryConnectionAsync(cancellationToken).ConfigureAwait(false);
}

/// <summary>Selects the Npgsql dialect on <see cref="RwSplitOptions"/>.</summary>
public static class RwSplitNpgsqlExtensions
{
    /// <summary>Routes through Npgsql to PostgreSQL: <c>Primary</c> and <c>Replicas</c> are Npgsql connection strings.</summary>
    /// <param name="options">The options.</param>
    /// <returns>The options.</returns>
    public static RwSplitOptions UseNpgsql(this RwSplitOptions options)
    {
        System.ArgumentNullException.ThrowIfNull(options);
        return options.UseDialect(NpgsqlDialect.Instance);
    }

    /// <summary>
    /// Routes through Npgsql to PostgreSQL, with <paramref name="configureDataSource"/> applied to the
    /// <see cref="NpgsqlDataSourceBuilder"/> of each endpoint (primary and replicas), as an application configures its
    /// own <see cref="NpgsqlDataSource"/>: <c>MapEnum</c>, <c>MapComposite</c>, <c>UseNodaTime()</c>,
    /// <c>UseNetTopologySuite()</c>, JSON options. Without it, a PostgreSQL enum or plugin type cannot be read or written
    /// through RwSplit. The topology monitor's own pool is left unconfigured.
    /// </summary>
    /// <param name="options">The options.</param>
    /// <param name="configureDataSource">Configures each endpoint's builder (called once per endpoint when the data source is built).</param>
    /// <returns>The options.</returns>
    public static RwSplitOptions UseNpgsql(this RwSplitOptions options, System.Action<NpgsqlDataSourceBuilder> configureDataSource)
    {
        System.ArgumentNullException.ThrowIfNull(options);
        System.ArgumentNullException.ThrowIfNull(configureDataSource);
        return options.UseDialect(NpgsqlDialect.Configured(configureDataSource));
    }
}
