using System;
using System.Data.Common;
using System.Threading.Tasks;

namespace RwSplit.Topology;

/// <summary>
/// Opens physical connections to one endpoint through the inner provider. Created by
/// <see cref="RwSplitDialect.CreateConnector(string, EndpointRole, string)"/>; owned and disposed by the data source.
/// </summary>
public abstract class EndpointConnector : IAsyncDisposable, IDisposable
{
    /// <summary>Initializes the connector.</summary>
    /// <param name="address">The endpoint's identity, free of secrets.</param>
    /// <param name="role">The configured role.</param>
    protected EndpointConnector(EndpointAddress address, EndpointRole role)
    {
        Address = address ?? throw new ArgumentNullException(nameof(address));
        Role = role;
    }

    /// <summary>The endpoint's identity, free of secrets.</summary>
    public EndpointAddress Address { get; }

    /// <summary>The configured role.</summary>
    public EndpointRole Role { get; }

    /// <summary>The connection string without its password, for <see cref="DbConnection.ConnectionString"/>-style display.</summary>
    public abstract string RedactedConnectionString { get; }

    /// <summary>Creates a new, closed provider connection to this endpoint (pooled by the provider).</summary>
    public abstract DbConnection CreateConnection();

    /// <summary>
    /// Creates the connection the topology monitor keeps open for its probes. Implementations give it its own pool and
    /// an application name ending in <c>[rwsplit monitor]</c>, so that it neither takes a slot of the application's pool
    /// nor looks like application traffic on the server. The default: <see cref="CreateConnection"/>.
    /// </summary>
    public virtual DbConnection CreateMonitorConnection() => CreateConnection();

    /// <summary>
    /// Empties the provider pool that <paramref name="connection"/> came from, if it came from this connector, after a
    /// connection to the endpoint failed: its idle siblings are likely dead too (server restart, terminated sessions).
    /// Returns whether it did. The one place a pool is cleared (the data source asks its endpoints' connectors in turn).
    /// The default does nothing.
    /// </summary>
    /// <param name="connection">A connection that failed (open or not).</param>
    public virtual bool ClearPool(DbConnection connection) => false;

    /// <summary>
    /// Empties every provider pool of this connector (the application's and the monitor's), for example after the
    /// database was dropped and created again. The default does nothing.
    /// </summary>
    public virtual void ClearAllPools()
    {
    }

    /// <summary>
    /// Creates a new, closed provider connection to <paramref name="database"/> on this endpoint, outside any pool and with
    /// the endpoint's credentials: for database lifecycle commands (<c>CREATE DATABASE</c>, <c>DROP DATABASE</c>) that
    /// must run from another database. The default throws <see cref="NotSupportedException"/>.
    /// </summary>
    /// <param name="database">The database to connect to.</param>
    public virtual DbConnection CreateUnpooledConnection(string database)
        => throw new NotSupportedException($"{GetType().Name} cannot connect to another database.");

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await DisposeAsyncCore().ConfigureAwait(false);
        Dispose(false);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases provider resources (data sources, pools).</summary>
    /// <param name="disposing"><see langword="true"/> from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
    }

    /// <summary>Releases provider resources asynchronously.</summary>
    protected virtual ValueTask DisposeAsyncCore() => default;

    /// <inheritdoc />
    public override string ToString() => $"{Role} {Address}";
}
