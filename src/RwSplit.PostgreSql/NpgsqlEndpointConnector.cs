using System;
using System.Data.Common;
using System.Threading.Tasks;
using Npgsql;
using RwSplit.Topology;

namespace RwSplit.PostgreSql;

/// <summary>Opens Npgsql connections to one endpoint through an <see cref="NpgsqlDataSource"/> (one pool per endpoint).</summary>
internal sealed class NpgsqlEndpointConnector : EndpointConnector
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly Lazy<NpgsqlDataSource> _monitorDataSource;
    private readonly string _connectionString;

    /// <summary>
    /// Builds the endpoint's Npgsql data sources, named <c>{RwSplit data source}/{role}/{host:port/database}</c> (the
    /// monitor's with <c>/monitor</c> after it): Npgsql's own metrics carry that name (<c>db.client.connection.pool.name</c>),
    /// so they say which endpoint they measure. The name holds no secret: the address is host, port and database.
    /// <paramref name="configure"/> (type mappings, plugins) applies to the application's data source, not the monitor's,
    /// whose probes read plain values: a plugin such as NodaTime would change the types they get.
    /// </summary>
    public NpgsqlEndpointConnector(EndpointAddress address, EndpointRole role, NpgsqlConnectionStringBuilder builder, string redacted, string dataSourceName, Action<NpgsqlDataSourceBuilder>? configure)
        : base(address, role)
    {
        var poolName = $"{dataSourceName}/{(role == EndpointRole.Primary ? "primary" : "replica")}/{address}";
        _connectionString = builder.ConnectionString;
        var dataSourceBuilder = new NpgsqlDataSourceBuilder(builder.ConnectionString) { Name = poolName };
        configure?.Invoke(dataSourceBuilder);
        _dataSource = dataSourceBuilder.Build();
        var monitor = new NpgsqlConnectionStringBuilder(builder.ConnectionString)
        {
            ApplicationName = (builder.ApplicationName is { Length: > 0 } name ? name + " " : "") + "[rwsplit monitor]",
            MaxPoolSize = 2,
            Multiplexing = false,
        };
        _monitorDataSource = new Lazy<NpgsqlDataSource>(() => new NpgsqlDataSourceBuilder(monitor.ConnectionString) { Name = poolName + "/monitor" }.Build());
        RedactedConnectionString = redacted;
    }

    public override string RedactedConnectionString { get; }

    public override DbConnection CreateConnection() => _dataSource.CreateConnection();

    public override DbConnection CreateMonitorConnection() => _monitorDataSource.Value.CreateConnection();

    /// <summary>
    /// Clears this endpoint's <see cref="NpgsqlDataSource"/> pool (or the monitor's). <c>NpgsqlConnection.ClearPool</c>
    /// only reaches pools made from connection strings, never a data source's.
    /// </summary>
    public override bool ClearPool(DbConnection connection)
    {
        if (connection is not NpgsqlConnection npgsql)
            return false;
        if (string.Equals(npgsql.ConnectionString, _dataSource.ConnectionString, StringComparison.Ordinal))
        {
            _dataSource.Clear();
            return true;
        }

        if (_monitorDataSource.IsValueCreated && string.Equals(npgsql.ConnectionString, _monitorDataSource.Value.ConnectionString, StringComparison.Ordinal))
        {
            _monitorDataSource.Value.Clear();
            return true;
        }

        return false;
    }

    public override void ClearAllPools()
    {
        _dataSource.Clear();
        if (_monitorDataSource.IsValueCreated)
            _monitorDataSource.Value.Clear();
    }

    public override DbConnection CreateUnpooledConnection(string database)
        => new NpgsqlConnection(new NpgsqlConnectionStringBuilder(_connectionString) { Database = database, Pooling = false, Multiplexing = false }.ConnectionString);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _dataSource.Dispose();
            if (_monitorDataSource.IsValueCreated)
                _monitorDataSource.Value.Dispose();
        }
    }

    protected override async ValueTask DisposeAsyncCore()
    {
        await _dataSource.DisposeAsync().ConfigureAwait(false);
        if (_monitorDataSource.IsValueCreated)
            await _monitorDataSource.Value.DisposeAsync().ConfigureAwait(false);
    }
}
