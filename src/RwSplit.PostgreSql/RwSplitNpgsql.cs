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
}
